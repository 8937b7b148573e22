"""Fakes that ship with the package, for tests and benchmarks: an AMI that records actions
and rejects what the wire would reject, a store that can fail like Redis, a silent log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from twisted.internet import defer

from gateway.ami.client import AmiResult, EventBus
from gateway.ami.codec import AmiMessage, HeaderItems, encode_action
from gateway.bridge.store import Change, MemoryStore


class NullLog:
    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None

    def bind(self, **kw: object) -> NullLog:
        return self


@dataclass
class SentAction:
    name: str
    headers: list[tuple[str, str]]
    deferred: defer.Deferred[AmiResult]

    def header(self, key: str) -> str:
        return dict(self.headers)[key]

    def succeed(self, **headers: str) -> None:
        self.deferred.callback(AmiResult(AmiMessage(tuple({"Response": "Success",
                                                             **headers}.items()))))


@dataclass
class FakeAmi:
    """Takes actions like the real client (bad headers refused), answers when told."""

    events: EventBus = field(default_factory=lambda: EventBus(NullLog()))
    sent: list[SentAction] = field(default_factory=list)

    def action(self, action: str, headers: HeaderItems = (), timeout: float = 5.0
               ) -> defer.Deferred[AmiResult]:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        encode_action(action, "check", items)  # reject what the real wire would reject
        d: defer.Deferred[AmiResult] = defer.Deferred()
        self.sent.append(SentAction(action, items, d))
        return d

    def emit(self, event: str, **headers: str) -> None:
        self.events.publish(AmiMessage((("Event", event), *headers.items())))


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
