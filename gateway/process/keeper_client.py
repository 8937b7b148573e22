"""A key's program asking the digit keeper (:mod:`gateway.process.keeper`) for the digits
of its channel. On the key's path, so standard library only: it imports nothing of the
keeper's server, AMI, Redis or Twisted (a test checks what it loads)."""

from __future__ import annotations

import socket
import time

from gateway.process.keeper_wire import parse_digit_line, paths, trusted_peer


class KeeperFeed:
    """A program's question to the keeper: the channel's digits so far, then new ones."""

    def __init__(self, sock: socket.socket, history: list[tuple[str, float]],
                 rest: bytes) -> None:
        self.sock, self.history, self._buffer = sock, history, rest

    @classmethod
    def ask(cls, spool_dir: str, uniqueid: str, timeout: float = 1.0) -> KeeperFeed | None:
        """None when no keeper answers in time, or answers what it never sends (the
        program then reads AMI itself). A keeper answers in milliseconds; the second
        allowed is for a loaded host, where 0.3 s lost a code typed with the key."""
        _, socket_path = paths(spool_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        try:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            if not trusted_peer(sock):  # another user's "keeper": tell it nothing
                raise PermissionError(f"{socket_path} is served by another user")
            sock.sendall(uniqueid.encode("ascii") + b"\n")
            feed = cls(sock, [], b"")
            while (line := feed._line(deadline)) != b".":
                if line is None:
                    raise TimeoutError("keeper: no answer in time")
                feed.history.append(_digit_or_raise(line, b"H"))
            return feed
        except (OSError, UnicodeEncodeError):
            sock.close()
            return None

    def next(self, deadline: float) -> tuple[str, float] | None:
        """The next digit, or None once ``deadline`` (monotonic) has passed. The keeper
        gone, or a line it never sends, raises OSError."""
        line = self._line(deadline)
        return None if line is None else _digit_or_raise(line, b"D")

    def _line(self, deadline: float) -> bytes | None:
        """The next whole line, or None once ``deadline`` has passed and nothing more is
        there. What the keeper sent before the deadline is still read after it (the
        program may have been busy playing a prompt): only waiting stops."""
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            self.sock.settimeout(max(left, 0.0))
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return None
            if not data:
                raise OSError("keeper: closed")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def close(self) -> None:
        self.sock.close()


def _digit_or_raise(line: bytes, kind: bytes) -> tuple[str, float]:
    item = parse_digit_line(line, kind)
    if item is None:
        raise OSError(f"keeper: unexpected {line[:40]!r}")
    return item
