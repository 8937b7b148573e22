"""Loopback ports for the lab.

A lab's ports come from a :class:`PortSlot`: a block below the kernel's ephemeral range
(32768 up, where no process's outgoing connection can take one), claimed with a lock
file for as long as the lab lives, so that labs running side by side (``pytest -n 4``)
never share a port. The slot was once a random free port per service: a phone's SIPp
binds its media port *and* the three after it (RTCP, video), which no check had
claimed, and a liaison phone failed a whole lab's tests with "Address already in use".

:func:`free_ports` stays for one-off servers of unit and integration tests.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.lab.process import LabError

SLOT_BASE = 10000
SLOT_SIZE = 500
#: Each slot: 110's RTP range, 12345's RTP range, then ports handed out one by one.
RTP_PORTS = 200
OWN_PORTS = SLOT_SIZE - 2 * RTP_PORTS
SLOT_COUNT = (32768 - SLOT_BASE) // SLOT_SIZE
LOCK_DIR = Path(tempfile.gettempdir()) / f"linkgw-lab-ports-{os.getuid()}"


class PortSlot:
    """One lab's ports, from ``base`` (held while the lock file descriptor is open)."""

    def __init__(self, index: int, lock_fd: int) -> None:
        self.index = index
        self.base = SLOT_BASE + index * SLOT_SIZE
        self.rtp_110 = self.base
        self.rtp_12345 = self.base + RTP_PORTS
        self._lock_fd: int | None = lock_fd
        self._next = self.base + 2 * RTP_PORTS

    def take(self, count: int = 1) -> int:
        """The first of ``count`` consecutive ports nobody else in the lab has."""
        first = self._next
        if first + count > self.base + SLOT_SIZE:
            raise LabError(f"port slot {self.index}: fewer than {count} port(s) left")
        self._next += count
        return first

    def own_ports_free(self) -> bool:
        """Nothing outside the labs (a service of this machine) holds one of its ports."""
        first = self.base + 2 * RTP_PORTS
        return all(port_free(port) for port in range(first, first + OWN_PORTS))

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock goes with it
            self._lock_fd = None


def claim_slot(lock_dir: Path = LOCK_DIR, rng: random.Random | None = None,
               usable: Callable[[PortSlot], bool] | None = None) -> PortSlot:
    """A slot no other lab of this machine holds and whose own ports nothing else holds
    (``usable``, by default :meth:`PortSlot.own_ports_free`); LabError when none is."""
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    held = lock_dir.lstat()
    if held.st_uid != os.getuid() or held.st_mode & 0o022 or not lock_dir.is_dir() or \
            lock_dir.is_symlink():
        raise LabError(f"{lock_dir}: not a folder of this user's that only it can write")
    start = (rng or random.SystemRandom()).randrange(SLOT_COUNT)
    for step in range(SLOT_COUNT):
        index = (start + step) % SLOT_COUNT
        fd = os.open(lock_dir / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        slot = PortSlot(index, fd)
        if (usable or PortSlot.own_ports_free)(slot):
            return slot
        slot.release()
    last = SLOT_BASE + SLOT_COUNT * SLOT_SIZE - 1
    raise LabError(f"all {SLOT_COUNT} lab port slots ({SLOT_BASE}-{last}) are held by other "
                   f"labs or services ({lock_dir})")


def port_free(port: int) -> bool:
    """No listener on the TCP port (a closing connection's TIME_WAIT does not count) and
    nobody bound to the UDP one."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """``count`` distinct ports free for TCP and UDP on 127.0.0.1 right now."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                udp.close()
                continue
            held += [tcp, udp]
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports
