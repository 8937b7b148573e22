"""Doubles that ship with the package, for tests and benchmarks. Each takes input the
way the real thing does and refuses what the real thing would refuse.

- :class:`WireAsterisk`: a real :class:`~gateway.ami.client.AmiClient` connected to an
  in-memory transport. The actions the client writes are read back from its bytes;
  responses and events are fed to it as AMI bytes. Tests say which action they expect
  by name and headers, never by position.
- :class:`ChannelDouble`: an AGI session whose ``GET FULL VARIABLE`` evaluates the
  ``${BASE64_ENCODE(=…)}`` terms the scripts send, from a table of channel values.
- :class:`FlakyStore`: a :class:`~gateway.bridge.store.MemoryStore` that fails like an
  unreachable Redis while ``down`` is set.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from gateway.agi.codec import format_command
from gateway.ami.client import AmiClient, AmiProtocol
from gateway.ami.codec import AmiMessage, AmiParser, encode_action
from gateway.bridge.change import Change
from gateway.bridge.store import MemoryStore


def null_log() -> Any:
    """A structlog logger that drops everything below CRITICAL (nothing here logs at
    that level): bound and called like the real one, writing nowhere."""
    return structlog.wrap_logger(structlog.ReturnLogger(), processors=[],
                                 wrapper_class=structlog.make_filtering_bound_logger(
                                     logging.CRITICAL))


class _NoEndpoint:
    """The client's endpoint is never used: the test connects its protocol by hand."""

    def connect(self, factory: Factory) -> defer.Deferred[Any]:
        return defer.Deferred()


class WireAsterisk:
    """Asterisk at the far end of a real AMI client, speaking bytes."""

    def __init__(self, clock: IReactorTime, log: Any = None) -> None:
        self.client = AmiClient(_NoEndpoint(), "linkgw", "secret", clock=clock,  # type: ignore[arg-type]
                                log=log if log is not None else null_log())
        self.transport = StringTransport()
        self.protocol: AmiProtocol = self.client.make_protocol()
        self.protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]
        self.protocol.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        self.client.current = self.protocol
        self._parser = AmiParser(starts=("action",))
        self._parser.banner = "(test)"  # what the client writes has no banner
        self._open: dict[str, AmiMessage] = {}  # by ActionID

    # -- what the client sent ------------------------------------------------------------
    def _read(self) -> None:
        for action in self._parser.feed(self.transport.value()):
            self._open[action.action_id] = action
        self.transport.clear()

    def pending(self, name: str | None = None) -> list[AmiMessage]:
        """Actions written and not answered yet (of one name), oldest first."""
        self._read()
        return [a for a in self._open.values() if name is None or a.get("Action") == name]

    def expect(self, name: str, **headers: str) -> AmiMessage:
        """The one unanswered action of this name whose headers match; fails otherwise."""
        found = [a for a in self.pending(name)
                 if all(a.get(k) == v for k, v in headers.items())]
        if len(found) != 1:
            raise AssertionError(f"expected one pending {name} {headers}, got "
                                 f"{[a.as_dict() for a in self.pending()]}")
        return found[0]

    def nothing_pending(self) -> bool:
        return not self.pending()

    # -- what Asterisk answers ---------------------------------------------------------
    def feed(self, *headers: tuple[str, str]) -> None:
        self.protocol.dataReceived(
            "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n")

    def reply(self, action: AmiMessage, **headers: str) -> None:
        self._open.pop(action.action_id, None)
        self.feed(("Response", "Success"), ("ActionID", action.action_id),
                  *headers.items())

    def reply_error(self, action: AmiMessage, message: str) -> None:
        self._open.pop(action.action_id, None)
        self.feed(("Response", "Error"), ("ActionID", action.action_id),
                  ("Message", message))

    def reply_list(self, action: AmiMessage, items: list[dict[str, str]],
                   event: str, complete: str) -> None:
        """A response that opens an event list, its items and its closing event."""
        self._open.pop(action.action_id, None)
        aid = action.action_id
        self.feed(("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                  ("Message", "will follow"))
        for item in items:
            self.feed(("Event", event), ("ActionID", aid), *item.items())
        self.feed(("Event", complete), ("ActionID", aid), ("EventList", "Complete"),
                  ("ListItems", str(len(items))))

    def event(self, name: str, **headers: str) -> None:
        self.feed(("Event", name), *headers.items())

    def cut(self) -> None:
        """The AMI connection is lost."""
        self.transport.loseConnection()
        self.protocol.connectionLost(Failure(ConnectionError("cut")))


_TERM = re.compile(r"\$\{BASE64_ENCODE\(=(\$\{(?:[^{}]|\{[^{}]*\})*\}|[0-9a-f]+)\)\}")


@dataclass
class ChannelDouble:
    """An AGI session on one channel. ``values`` maps what a term asks for (``UNIQUEID``,
    ``IMPORT(PJSIP/citizen-1,CALLERID(num))``, ``SHARED(LINKGW_ACTIVE,…)``) to its value;
    anything not in it is empty, as an unset variable is in Asterisk. Commands go
    through the real codec first, so a value the wire would refuse is refused here."""

    env_channel: str
    env_uniqueid: str
    env_args: tuple[str, ...]
    values: dict[str, str]
    set: dict[str, str] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)
    reads: int = 0

    async def get_full_variable(self, expression: str) -> str | None:
        format_command("GET FULL VARIABLE", expression)
        self.reads += 1
        out = []
        for match in _TERM.finditer(expression):
            inner = match.group(1)
            value = self.values.get(inner[2:-1], "") if inner.startswith("${") else inner
            out.append(base64.b64encode(("=" + value).encode()).decode())
        return ",".join(out)

    async def set_variable(self, name: str, value: str) -> None:
        format_command("SET VARIABLE", name, value)
        self.set[name] = value

    async def stream_file(self, sound: str) -> None:
        format_command("STREAM FILE", sound, "")
        self.played.append(sound)


class FlakyStore(MemoryStore):
    """A MemoryStore that fails while ``down`` is set, as Redis does when it is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def apply(self, change: Change) -> defer.Deferred[bool]:
        self.calls += 1
        if self.down:
            return defer.fail(ConnectionError("Error 111 connecting to 127.0.0.1:6379"))
        return super().apply(change)


def ami_bytes(action: str, action_id: str, **headers: str) -> bytes:
    """One action as the wire carries it (for parser tests and benchmarks)."""
    return encode_action(action, action_id, headers)


def agi_env(script: str = "demo", channel: str = "PJSIP/seat1-00000001",
            uniqueid: str = "u-1", callerid: str = "110", calleridname: str = "",
            args: tuple[str, ...] = (), network: bool = True) -> bytes:
    """An env block in the order and form Asterisk 22's res_agi writes it (values
    unescaped, as Asterisk does: a caller ID may break its line)."""
    lines = ["agi_network: yes", f"agi_network_script: {script}"] if network else []
    lines += [
        f"agi_request: agi://127.0.0.1:4573/{script}", f"agi_channel: {channel}",
        "agi_language: en", "agi_type: PJSIP", f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.10.1", f"agi_callerid: {callerid}",
        f"agi_calleridname: {calleridname}", "agi_callingpres: 0", "agi_callingani2: 0",
        "agi_callington: 0", "agi_callingtns: 0", "agi_dnid: 110", "agi_rdnis: unknown",
        "agi_context: linkgw-110", "agi_extension: 110", "agi_priority: 3",
        "agi_enhanced: 0.0", "agi_accountcode: ", "agi_threadid: 140352384509632",
    ]
    lines += [f"agi_arg_{n}: {a}" for n, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")
