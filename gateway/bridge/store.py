"""The bridge store: a narrow interface, an in-memory twin, and the change it applies.

A :class:`Change` is one state change of one record (a bridge or a registered call): the
hash fields it sets, the event it appends to the stream, the indexes it adds to. Each
record counts its changes (``seq``); a store applies a change only when its ``seq`` is
new, so replaying a change is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet import defer


@dataclass(frozen=True)
class Index:
    """Add ``member`` to the sorted set ``name`` (without prefix) scored by ``score``."""

    name: str
    member: str
    score: float


@dataclass(frozen=True)
class Change:
    record: str  # "bridge:<id>" or "call:<uniqueid>", without the key prefix
    seq: int  # 1, 2, 3 … per record
    event: str  # what happened: "transfer_requested", "agent_answered", …
    at: float  # epoch seconds
    fields: Mapping[str, str] = field(default_factory=dict)
    indexes: tuple[Index, ...] = ()
    data: Mapping[str, str] = field(default_factory=dict)  # extra detail for the event

    def event_entry(self) -> dict[str, str]:
        """The stream entry for this change."""
        return {
            "record": self.record,
            "seq": str(self.seq),
            "event": self.event,
            "at": repr(self.at),
            "data": json.dumps(dict(self.data), ensure_ascii=False, sort_keys=True),
        }


class BridgeStore(Protocol):
    def apply(self, change: Change) -> defer.Deferred[bool]:
        """Apply one change; True if applied, False if its seq was already there."""
        ...


class MemoryStore:
    """The in-memory twin of the Redis store, with the same seq rule."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}
        self.events: list[dict[str, str]] = []
        self.indexes: dict[str, dict[str, float]] = {}

    def apply(self, change: Change) -> defer.Deferred[bool]:
        record = self.records.setdefault(change.record, {})
        if int(record.get("seq", "0")) >= change.seq:
            return defer.succeed(False)
        record.update(change.fields)
        record["seq"] = str(change.seq)
        self.events.append(change.event_entry())
        for index in change.indexes:
            self.indexes.setdefault(index.name, {})[index.member] = index.score
        return defer.succeed(True)
