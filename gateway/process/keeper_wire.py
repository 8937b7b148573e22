"""The digit keeper's wire, shared by the keeper (:mod:`gateway.process.keeper`) and the
programs that ask it (:mod:`gateway.process.keeper_client`): where its lock and socket
are, the lines it speaks, and whose process is at the other end of the socket.
Standard library only.

The protocol, ASCII lines: the program sends ``<uniqueid>\\n``; the keeper answers with
``H <digit> <epoch>\\n`` for each digit it holds of that channel, oldest first, then
``.\\n``, then ``D <digit> <epoch>\\n`` for each new digit until the program hangs up.
Anything else is answered ``ERR\\n`` and the connection closed.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from pathlib import Path

DIGITS = frozenset("0123456789*#ABCD")
_UNIQUEID = re.compile(rb"[A-Za-z0-9._-]{1,100}")
_EPOCH = re.compile(rb"[0-9]{1,12}\.[0-9]{3}")
LOCK_NAME, SOCKET_NAME = "keeper.lock", "keeper.sock"


def encode_digit(kind: str, digit: str, at: float) -> bytes:
    return f"{kind} {digit} {at:.3f}\n".encode("ascii")


def parse_question(line: bytes) -> str | None:
    """The uniqueid a program asks about, or None for anything else."""
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    return line.decode("ascii") if _UNIQUEID.fullmatch(line) else None


def parse_digit_line(line: bytes, kind: bytes) -> tuple[str, float] | None:
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != kind or parts[1].decode("latin-1") not in DIGITS \
            or _EPOCH.fullmatch(parts[2]) is None:
        return None
    return parts[1].decode("ascii"), float(parts[2])


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def trusted_peer(sock: socket.socket) -> bool:
    """This process's own user, or root, at the other end."""
    return peer_uid(sock) in (os.getuid(), 0)


def paths(spool_dir: str) -> tuple[Path, Path]:
    spool = Path(spool_dir)
    return spool / LOCK_NAME, spool / SOCKET_NAME
