"""A blocking AMI session for short-lived programs (process-mode AGI): connect, log in,
a few actions, log off. Standard library sockets and this project's codec only, so that a
program starting per call does not pay for Twisted. Every wait has a deadline.
"""

from __future__ import annotations

import hashlib
import itertools
import socket
import time
from types import TracebackType

from gateway.ami.codec import AmiMessage, AmiParser, HeaderItems, encode_action
from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout


class SyncAmi:
    def __init__(self, host: str, port: int, username: str, secret: str,
                 auth: str = "md5", timeout: float = 2.0, events: str = "off") -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._parser = AmiParser()
        self._queue: list[AmiMessage] = []
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AmiNotConnected(f"AMI {host}:{port}: {exc}") from exc
        try:
            self._login(username, secret, auth, events)
        except BaseException:
            self._sock.close()
            raise

    def _login(self, username: str, secret: str, auth: str, events: str) -> None:
        """``events``: "off", or the classes to receive (e.g. "dtmf")."""
        if auth == "md5":
            challenge = self.action("Challenge", {"AuthType": "MD5"}).get("Challenge")
            key = hashlib.md5((challenge + secret).encode()).hexdigest()  # noqa: S324 - AMI's MD5 login
            self.action("Login", {"AuthType": "MD5", "Username": username, "Key": key,
                                  "Events": events})
        else:
            self.action("Login", {"Username": username, "Secret": secret, "Events": events})

    def action(self, name: str, headers: HeaderItems = (),
               timeout: float | None = None) -> AmiMessage:
        """Send an action and return its response (an error response raises); wait at
        most ``timeout`` seconds (the session's by default)."""
        action_id = f"s{next(self._ids)}"
        self._sock.sendall(encode_action(name, action_id, headers))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, message in enumerate(self._queue):
                if message.action_id == action_id and message.is_response:
                    del self._queue[i]
                    if message.get("Response").lower() == "error":
                        raise AmiActionError(name, message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AmiTimeout(f"{name}: no response in time")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError as exc:
                raise AmiTimeout(f"{name}: no response in time") from exc
            except OSError as exc:
                raise AmiNotConnected(f"{name}: {exc}") from exc
            if not data:
                raise AmiNotConnected(f"{name}: AMI closed the connection")
            self._queue.extend(self._parser.feed(data))

    def event(self, deadline: float) -> AmiMessage | None:
        """The next event, or None once ``deadline`` (monotonic) has passed."""
        while True:
            for i, message in enumerate(self._queue):
                if message.event:
                    del self._queue[i]
                    return message
            # what came before the deadline is still read after it: only waiting stops
            self._sock.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                data = self._sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return None
            except OSError as exc:
                raise AmiNotConnected(f"AMI: {exc}") from exc
            if not data:
                raise AmiNotConnected("AMI closed the connection")
            self._queue.extend(self._parser.feed(data))

    def fileno(self) -> int:
        return self._sock.fileno()

    def pump(self) -> list[AmiMessage]:
        """Once the socket is readable (a selector said so): read what is there and
        hand back the events queued so far. AMI gone raises."""
        self._sock.settimeout(self.timeout)
        try:
            data = self._sock.recv(65536)
        except OSError as exc:
            raise AmiNotConnected(f"AMI: {exc}") from exc
        if not data:
            raise AmiNotConnected("AMI closed the connection")
        self._queue.extend(self._parser.feed(data))
        return self.take_events()

    def take_events(self) -> list[AmiMessage]:
        """The events queued so far without reading (those an :meth:`action` read while
        it waited for its response: the socket may have nothing more to say)."""
        events = [m for m in self._queue if m.event]
        self._queue = [m for m in self._queue if not m.event]
        return events

    def close(self) -> None:
        try:
            self._sock.sendall(encode_action("Logoff", "bye"))
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> SyncAmi:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def endpoint_address(endpoint: str) -> tuple[str, int]:
    """``tcp:host=127.0.0.1:port=5038`` (or ``tcp:127.0.0.1:5038``) → (host, port)."""
    parts = endpoint.split(":")
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    plain = [p for p in parts[1:] if "=" not in p]
    host = named.get("host") or (plain[0] if plain else "127.0.0.1")
    port = named.get("port") or (plain[1] if len(plain) > 1 else "5038")
    return host, int(port)
