"""sd_notify(3): the datagram systemd reads from the socket named in ``$NOTIFY_SOCKET``.

The message is ``KEY=value`` lines. A value is one line: a newline inside a status text
would add an assignment of its own (``STATUS=x\\nREADY=1`` would say ready), so every
line break, including U+2028, U+2029 and U+0085, becomes a space, and control
characters are dropped.

The protocol is one ``sendto`` of a few bytes; it is written here rather than taken
from ``systemd-python`` (a C extension built against libsystemd) or ``sdnotify`` (which
hides every error).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

_BREAKS = {"\r": " ", "\n": " ", "\u2028": " ", "\u2029": " ", "\u0085": " "}


def clean_value(value: str) -> str:
    """One line of printable text: breaks become spaces, other controls are dropped."""
    out = []
    for char in value:
        if char in _BREAKS:
            out.append(" ")
        elif char.isprintable() or char == "\t":
            out.append(char)
    return "".join(out)


def message(fields: Mapping[str, str]) -> bytes:
    """The datagram for ``fields``; keys are systemd's upper-case names."""
    lines = []
    for key, value in fields.items():
        if not key or not key.replace("_", "").isalnum() or not key.isupper():
            raise ValueError(f"not a sd_notify key: {key!r}")
        lines.append(f"{key}={clean_value(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def socket_address(raw: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as ``sendto`` wants it: a leading ``@`` names an abstract
    socket (a NUL byte first); anything else is a path."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode("utf-8")
    if not raw.startswith("/"):
        raise ValueError(f"NOTIFY_SOCKET is neither a path nor @name: {raw!r}")
    return raw


class Notifier:
    """Sends to the service manager, or does nothing when not started by one."""

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        raw = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        return cls(socket_address(raw) if raw else None)

    @property
    def active(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """One datagram; False (and counted) when the manager's socket is gone."""
        if self.address is None:
            return False
        data = message(fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(data, self.address)
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    advises; None when no watchdog is asked for, or it is asked of another process
    (``$WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
