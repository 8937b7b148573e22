"""The bridge store: a narrow interface, an in-memory twin, and the change it applies.

A :class:`Change` is one change of one record (a bridge, a registered call, a callback
task, a ticket): the hash fields it sets, the event it appends to the stream, the
indexes it adds to. Each record counts its changes (``seq``). A change made by the
record's single writer carries its ``seq`` and is applied only when that ``seq`` is new,
so replaying it is harmless; a change with ``seq`` 0 takes the next number (for records
written by several writers, such as tickets).

Every stream entry carries ``prev`` and ``hash``: the SHA-1 of the previous entry of the
same UTC day and of this entry's content, so that editing or removing an entry breaks
the day's chain (:func:`chain_hash`; checked by ``linkgw verify-chain``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from twisted.internet import defer


@dataclass(frozen=True)
class Index:
    """Add ``member`` to the sorted set ``name`` (without prefix) scored by ``score``;
    a negative score removes it."""

    name: str
    member: str
    score: float


@dataclass(frozen=True)
class Change:
    record: str  # "bridge:<id>", "call:<uniqueid>", "callback:<id>", "ticket:<id>"
    seq: int  # 1, 2, 3 … per record; 0: the next one
    event: str  # what happened: "transfer_requested", "agent_answered", …
    at: float  # epoch seconds
    fields: Mapping[str, str] = field(default_factory=dict)
    indexes: tuple[Index, ...] = ()
    data: Mapping[str, str] = field(default_factory=dict)  # extra detail for the event

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d")

    def fields_json(self) -> str:
        return json.dumps(dict(self.fields), ensure_ascii=False, sort_keys=True)

    def data_json(self) -> str:
        return json.dumps(dict(self.data), ensure_ascii=False, sort_keys=True)

    def to_json(self) -> str:
        """One line of the spool."""
        return json.dumps({
            "record": self.record, "seq": self.seq, "event": self.event, "at": self.at,
            "fields": dict(self.fields), "data": dict(self.data),
            "indexes": [[i.name, i.member, i.score] for i in self.indexes],
        }, ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> Change:
        d = json.loads(line)
        return Change(d["record"], int(d["seq"]), d["event"], float(d["at"]), d["fields"],
                      tuple(Index(n, m, float(s)) for n, m, s in d["indexes"]), d["data"])


#: The stream entry's fields, in the order they are hashed.
HASHED = ("record", "seq", "event", "at", "data", "fields")


def chain_hash(prev: str, entry: Mapping[str, str]) -> str:
    """SHA-1 over the previous hash and the entry's content (as Redis computes it)."""
    text = "\n".join([prev, *(entry[k] for k in HASHED)])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324 - tamper evidence, not secrecy


def entry_of(change: Change, seq: int, prev: str) -> dict[str, str]:
    entry = {"record": change.record, "seq": str(seq), "event": change.event,
             "at": repr(change.at), "data": change.data_json(),
             "fields": change.fields_json()}
    return entry | {"prev": prev, "hash": chain_hash(prev, entry)}


class BridgeStore(Protocol):
    def apply(self, change: Change) -> defer.Deferred[bool]:
        """Apply one change; True if applied, False if its seq was already there."""
        ...


class MemoryStore:
    """The in-memory twin of the Redis store: same seq rule, same chain."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}
        self.events: list[dict[str, str]] = []
        self.indexes: dict[str, dict[str, float]] = {}
        self.chains: dict[str, str] = {}

    def apply(self, change: Change) -> defer.Deferred[bool]:
        record = self.records.setdefault(change.record, {})
        current = int(record.get("seq", "0"))
        seq = change.seq or current + 1
        if current >= seq:
            return defer.succeed(False)
        record.update(change.fields)
        record["seq"] = str(seq)
        entry = entry_of(change, seq, self.chains.get(change.day, ""))
        self.chains[change.day] = entry["hash"]
        self.events.append(entry)
        for index in change.indexes:
            members = self.indexes.setdefault(index.name, {})
            if index.score < 0:
                members.pop(index.member, None)
            else:
                members[index.member] = index.score
        return defer.succeed(True)
