"""ONC RPC portmapper / rpcbind (111): which RPC programs does it list to anyone?

One call, the same `rpcinfo -p` makes: PMAPPROC_DUMP (program 100000, version 2, procedure 4)
with AUTH_NULL, over TCP with record marking. The reply lists every registered program, its
version, protocol and port (NFS, mountd, NIS...). Nothing is registered, nothing is asked of
any listed program.
"""

from __future__ import annotations

import os
import struct

from scanner.checks.services.model import NOT_IDENTIFIED, Auth, ProbeOutcome
from scanner.net import Connector, NetError

PMAP_PROGRAM, PMAP_VERSION, PMAPPROC_DUMP = 100000, 2, 4
REPLY_CAP = 64 * 1024
MAX_ENTRIES = 200
LAST_FRAGMENT = 0x80000000
PROGRAMS = {
    100000: "portmapper", 100003: "nfs", 100005: "mountd", 100021: "nlockmgr",
    100024: "status", 100004: "ypserv", 100007: "ypbind", 100009: "yppasswdd",
    100011: "rquotad", 100227: "nfs_acl", 100083: "ttdbserverd", 150001: "pcnfsd",
}
PROTOCOLS = {6: "tcp", 17: "udp"}


def dump_call(xid: int) -> bytes:
    body = struct.pack("!10I", xid, 0, 2, PMAP_PROGRAM, PMAP_VERSION, PMAPPROC_DUMP, 0, 0, 0, 0)
    return struct.pack("!I", LAST_FRAGMENT | len(body)) + body


def record_complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + (struct.unpack("!I", data[:4])[0] & 0x7FFFFFFF)


def parse_dump(data: bytes, xid: int) -> list[tuple[int, int, str, int]] | None:
    """(program, version, protocol, port) entries; None when this is no portmapper reply."""
    if len(data) < 28:
        return None
    length = struct.unpack("!I", data[:4])[0] & 0x7FFFFFFF
    body = data[4 : 4 + min(length, REPLY_CAP)]
    if len(body) < 24:
        return None
    reply_xid, kind, reply_stat = struct.unpack("!3I", body[:12])
    if reply_xid != xid or kind != 1 or reply_stat != 0:
        return None
    verifier_length = struct.unpack("!I", body[16:20])[0]
    offset = 20 + ((min(verifier_length, 400) + 3) // 4) * 4
    if len(body) < offset + 4 or struct.unpack("!I", body[offset : offset + 4])[0] != 0:
        return None  # accept_stat is not SUCCESS
    offset += 4
    entries: list[tuple[int, int, str, int]] = []
    while len(body) >= offset + 4 and len(entries) < MAX_ENTRIES:
        (follows,) = struct.unpack("!I", body[offset : offset + 4])
        offset += 4
        if follows != 1 or len(body) < offset + 16:
            break
        program, version, protocol, port = struct.unpack("!4I", body[offset : offset + 16])
        offset += 16
        entries.append((program, version, PROTOCOLS.get(protocol, str(protocol)), port))
    return entries


def probe(connector: Connector) -> ProbeOutcome:
    if connector.tls:
        return NOT_IDENTIFIED
    xid = struct.unpack("!I", os.urandom(4))[0]
    try:
        with connector.open(cap=REPLY_CAP + 8) as stream:
            stream.send(dump_call(xid))
            reply = stream.recv_until(record_complete, REPLY_CAP + 4)
    except NetError:
        return NOT_IDENTIFIED
    entries = parse_dump(reply, xid)
    if entries is None:
        return NOT_IDENTIFIED
    return outcome(entries)


def outcome(entries: list[tuple[int, int, str, int]]) -> ProbeOutcome:
    names = sorted({PROGRAMS.get(program, str(program)) for program, _, _, _ in entries})
    listed = [f"{PROGRAMS.get(p, p)} v{v} {proto}/{port}" for p, v, proto, port in entries[:12]]
    nfs = bool({"nfs", "mountd"} & set(names))
    return ProbeOutcome(
        True, Auth.UNKNOWN,
        f"PMAPPROC_DUMP listed {len(entries)} registration(s): {', '.join(listed)}",
        product="rpcbind (portmapper)", facts={"programs": names, "nfs": nfs},
        notes=(("NFS is registered: its exports may be mountable from the internet",)
               if nfs else ()),
    )
