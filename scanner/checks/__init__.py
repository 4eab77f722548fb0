"""Checks stage: one module per thing we test; each defines CHECK (see base.py)."""
