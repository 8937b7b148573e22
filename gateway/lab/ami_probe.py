"""A blocking AMI client for tests and the demo: what does Asterisk itself report?

It reuses the pure codec (:mod:`gateway.ami.codec`) over a plain socket read by a thread,
keeps every event it sees, and can wait for an event matching a condition.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable

from gateway.ami.codec import AmiMessage, AmiParser, encode_action
from gateway.lab.process import LabError


class AmiProbe:
    def __init__(self, port: int, username: str, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.parser = AmiParser()
        self.events: list[AmiMessage] = []
        self._responses: dict[str, list[AmiMessage]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.action("Login", {"Username": username, "Secret": secret})

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    return
                for message in self.parser.feed(data):
                    if message.action_id.startswith("probe-"):
                        self._responses.setdefault(message.action_id, []).append(message)
                    if message.event:
                        self.events.append(message)
                self._cond.notify_all()

    def action(self, name: str, headers: dict[str, str] | None = None,
               timeout: float = 10.0) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send an action; return its response and, for event lists, the list's events."""
        action_id = f"probe-{next(self._ids)}"
        self.sock.sendall(encode_action(name, action_id, headers or {}))

        def done() -> bool:
            got = self._responses.get(action_id, [])
            if not got:
                return False
            if got[0].get("EventList").lower() != "start":
                return True
            return any(m.get("EventList").lower() == "complete" for m in got[1:])

        self._wait(done, timeout, f"the response to {name}")
        got = self._responses.pop(action_id)
        if got[0].get("Response").lower() == "error":
            raise LabError(f"AMI {name} failed: {got[0].get('Message')}")
        items = [m for m in got[1:] if m.get("EventList").lower() != "complete"]
        return got[0], items

    def mark(self) -> int:
        """Index of the next event: pass it as ``since`` to look only at what follows."""
        with self._cond:
            return len(self.events)

    def wait_event(self, match: Callable[[AmiMessage], bool], timeout: float,
                   what: str, since: int = 0) -> AmiMessage:
        """Wait for (or find among those seen from index ``since``) an event that matches."""
        found: list[AmiMessage] = []

        def seen() -> bool:
            found[:] = [m for m in self.events[since:] if match(m)]
            return bool(found)

        self._wait(seen, timeout, what)
        return found[0]

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(f"AMI: timed out after {timeout}s waiting for {what}")
                if self._closed:
                    raise LabError(f"AMI connection closed while waiting for {what}")
                self._cond.wait(left)

    def conference_members(self, conference: str) -> list[AmiMessage]:
        """``ConfbridgeList``: who Asterisk says is in the conference now."""
        try:
            _, members = self.action("ConfbridgeList", {"Conference": conference})
        except LabError as exc:
            if "No active conferences" in str(exc) or "No Conference" in str(exc):
                return []
            raise
        return members

    def close(self) -> None:
        try:
            self.sock.sendall(encode_action("Logoff", "probe-logoff"))
        except OSError:
            pass
        self.sock.close()
