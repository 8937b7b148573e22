"""One change of one record: what a writer hands to the bridge log (pure, no I/O).

See :mod:`gateway.bridge.store` for the rules a store applies it by.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.schema import SCHEMA_VERSION, feed_fields

#: Fields a change may not move once the record has ended.
FINAL_FIELDS = ("state", "outcome")


class GuardFailed(Exception):
    """A guarded change found a field holding a value it does not allow: nothing of it
    was applied (another writer got there first)."""

    def __init__(self, change_id: str) -> None:
        super().__init__(f"change {change_id}: a guarded field holds another value")
        self.change_id = change_id


def new_change_id() -> str:
    """128 random bits: unique across processes without any coordination."""
    return secrets.token_hex(16)


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
    event: str  # what happened: "transfer_requested", "agent_answered", …
    at: float  # epoch seconds
    fields: Mapping[str, str] = field(default_factory=dict)
    indexes: tuple[Index, ...] = ()
    data: Mapping[str, str] = field(default_factory=dict)  # extra detail for the event
    id: str = field(default_factory=new_change_id)
    #: Check-and-write in one step: each (field, allowed values) must hold one of its
    #: values ("" = absent or empty) for the change to apply at all.
    guard: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: The line this record's bridge was handed to ("12345", "110"): the change also goes,
    #: with :func:`gateway.schema.feed_fields` only, to that line's feed. "": nobody's.
    feed: str = ""

    def allows(self, record: Mapping[str, str]) -> bool:
        return all(record.get(name, "") in allowed for name, allowed in self.guard)

    def guard_json(self) -> str:
        return json.dumps([[name, *allowed] for name, allowed in self.guard],
                          ensure_ascii=False)

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d")

    def fields_json(self) -> str:
        return json.dumps(dict(self.fields), ensure_ascii=False, sort_keys=True)

    def data_json(self) -> str:
        return json.dumps(dict(self.data), ensure_ascii=False, sort_keys=True)

    def to_json(self) -> str:
        """One line of the spool: ASCII only (``ensure_ascii``), so no byte of a Chinese
        name or a Unicode line separator (U+2028, U+0085) ever sits in the file raw."""
        return json.dumps({
            "id": self.id, "record": self.record, "event": self.event, "at": self.at,
            "fields": dict(self.fields), "data": dict(self.data),
            "indexes": [[i.name, i.member, i.score] for i in self.indexes],
            "guard": [[name, *allowed] for name, allowed in self.guard],
            "feed": self.feed,
        }, ensure_ascii=True, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> Change:
        """Raises ValueError for anything that is not one whole change."""
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("a spool line must be a JSON object")
        fields, data = _str_map(d["fields"]), _str_map(d["data"])
        indexes = tuple(Index(str(n), str(m), float(s)) for n, m, s in d["indexes"])
        guard = tuple((str(g[0]), tuple(str(v) for v in g[1:])) for g in d.get("guard", []))
        return Change(str(d["record"]), str(d["event"]), float(d["at"]), fields, indexes,
                      data, str(d["id"]), guard, str(d.get("feed", "")))


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("fields and data must map text to text")
    return value


#: The stream entry's fields, in the order they are hashed.
HASHED = ("record", "seq", "id", "event", "at", "data", "fields")


def chain_hash(prev: str, entry: Mapping[str, str]) -> str:
    """SHA-1 over the previous hash and the entry's content (as Redis computes it)."""
    text = "\n".join([prev, *(entry[k] for k in HASHED)])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324 - tamper evidence, not secrecy


def entry_of(change: Change, seq: int, prev: str) -> dict[str, str]:
    entry = {"record": change.record, "seq": str(seq), "id": change.id,
             "event": change.event, "at": repr(change.at), "data": change.data_json(),
             "fields": change.fields_json()}
    return entry | {"prev": prev, "hash": chain_hash(prev, entry),
                    "schema": str(SCHEMA_VERSION)}


def feed_entry_of(change: Change) -> dict[str, str]:
    """The entry a change makes on its line's feed (no chain: the events stream has it)."""
    return {"record": change.record, "id": change.id, "event": change.event,
            "at": repr(change.at), "data": change.data_json(),
            "fields": json.dumps(feed_fields(change.fields), ensure_ascii=False,
                                 sort_keys=True), "schema": str(SCHEMA_VERSION)}


def settable(record: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """The fields a change may set on ``record``: all, but the final ones once ended."""
    if record.get("state") != "ended":
        return dict(fields)
    return {k: v for k, v in fields.items() if k not in FINAL_FIELDS}
