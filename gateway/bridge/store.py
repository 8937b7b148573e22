"""The bridge store: a narrow interface, an in-memory twin, and the change it applies.

A :class:`Change` is one change of one record (a bridge, a registered call, a callback
task, a ticket): the hash fields it sets, the event it appends to the stream, the
indexes it adds to or removes from. Every change carries an ``id`` made by its writer,
unique across processes; the store applies a change once per id, so replaying it (from a
spool, by a second gateway, after a restart) is harmless. The store, not the writer,
counts a record's changes (``seq``), so several processes may write one record.

Once a record's ``state`` is ``ended``, no change moves its ``state`` or ``outcome``
again: a late change (a gateway that was cut off, a replayed spool) still lands on the
stream, but the ended record stays ended.

Every stream entry carries ``prev`` and ``hash``: the SHA-1 of the previous entry of the
same UTC day and of this entry's content, so that editing or removing an entry breaks
the day's chain (:func:`chain_hash`; checked by ``linkgw verify-chain``).
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet import defer
from twisted.python.failure import Failure

from gateway.bridge.change import (
    FINAL_FIELDS,
    HASHED,
    Change,
    GuardFailed,
    Index,
    chain_hash,
    entry_of,
    feed_entry_of,
    new_change_id,
    settable,
)
from gateway.schema import SCHEMA_VERSION

__all__ = ["FINAL_FIELDS", "HASHED", "BridgeStore", "Change", "GuardFailed", "Index",
           "MemoryStore",
           "chain_hash", "entry_of", "new_change_id", "settable"]


class BridgeStore(Protocol):
    def apply(self, change: Change) -> defer.Deferred[bool]:
        """Apply one change; True if applied, False if its id was applied before."""
        ...

    def apply_many(self, changes: list[Change]) -> defer.Deferred[list[int]]:
        """Apply changes in order, in one round trip: per change 1 applied, 0 applied
        before, -1 refused by its guard. Fails as a whole when the store is down (a
        part may have landed: applying it again changes nothing)."""
        ...


class MemoryStore:
    """The in-memory twin of the Redis store: same id rule, same guard, same chain."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}
        self.events: list[dict[str, str]] = []
        self.indexes: dict[str, dict[str, float]] = {}
        self.chains: dict[str, str] = {}
        self.applied: dict[str, set[str]] = {}
        self.feeds: dict[str, list[dict[str, str]]] = {}  # audience → its feed's entries

    def apply(self, change: Change) -> defer.Deferred[bool]:
        done = self.applied.setdefault(change.record, set())
        if change.id in done:
            return defer.succeed(False)
        if not change.allows(self.records.get(change.record, {})):
            return defer.fail(GuardFailed(change.id))
        done.add(change.id)
        created = change.record not in self.records
        record = self.records.setdefault(change.record, {})
        record.update(settable(record, change.fields))
        if created:
            record["schema"] = str(SCHEMA_VERSION)
        seq = int(record.get("seq", "0")) + 1
        record["seq"] = str(seq)
        entry = entry_of(change, seq, self.chains.get(change.day, ""))
        self.chains[change.day] = entry["hash"]
        self.events.append(entry)
        if change.feed:
            self.feeds.setdefault(change.feed, []).append(feed_entry_of(change))
        for index in change.indexes:
            members = self.indexes.setdefault(index.name, {})
            if index.score < 0:
                members.pop(index.member, None)
            else:
                members[index.member] = index.score
        return defer.succeed(True)

    def apply_many(self, changes: list[Change]) -> defer.Deferred[list[int]]:
        out: list[int] = []
        for change in changes:
            failed: list[Failure] = []
            d = self.apply(change)
            d.addCallbacks(lambda applied: out.append(int(applied)), failed.append)
            if failed:
                if failed[0].check(GuardFailed):
                    out.append(-1)
                    continue
                return defer.fail(failed[0])
        return defer.succeed(out)
