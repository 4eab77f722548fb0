"""Unauthenticated services: the catalogue of what self-hosters forward, and its engine.

What is checked is data (catalogue.py: one small definition per product: the probe, the markers
that identify it, the markers that mean "open to anyone" or "asks for credentials", severity,
remediation, references). The engine (engine.py) runs HTTP definitions with bounded GETs and hands
protocol definitions to one small module per protocol (mqtt, redis, memcached, vnc, telnet, rtsp,
smb, mongodb). check.py is the check the registry finds (`CHECK`).

Nothing here writes, subscribes or authenticates: GETs only over HTTP, and for the other protocols
the one read-only command an anonymous client may send (INFO, stats, CONNECT without credentials
followed at once by DISCONNECT, a VNC/RFB security-type read, ...).
"""
