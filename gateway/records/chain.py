"""Verify a day's hash chain: each event carries the hash of the one before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from gateway.bridge.store import HASHED, chain_hash
from gateway.schema import Keys


@dataclass(frozen=True)
class ChainReport:
    day: str
    checked: int
    broken_at: str | None = None  # stream id of the first entry that does not fit
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_day(client: redis.Redis, prefix: str, day: str, batch: int = 1000) -> ChainReport:
    """Walk the stream in order; entries whose ``at`` falls on ``day`` (UTC) must chain.

    The last hash must also match ``<p>:chain:<day>``, so that removing the newest
    entries is caught too.
    """
    prev = ""
    checked = 0
    start = "-"
    while True:
        entries = cast(list[tuple[str, dict[str, str]]],
                       client.xrange(Keys(prefix).events, start, "+", count=batch))
        for entry_id, entry in entries:
            try:
                at_day = datetime.fromtimestamp(float(entry["at"]), UTC).strftime("%Y-%m-%d")
            except (KeyError, ValueError):
                return ChainReport(day, checked, entry_id, "entry without a valid time")
            if at_day != day:
                continue
            checked += 1
            if entry.get("prev", "") != prev:
                return ChainReport(day, checked, entry_id,
                                   "prev does not match the entry before it")
            if any(k not in entry for k in HASHED) or \
                    chain_hash(prev, entry) != entry.get("hash"):
                return ChainReport(day, checked, entry_id, "content does not match its hash")
            prev = entry["hash"]
        if len(entries) < batch:
            break
        start = "(" + entries[-1][0]
    last = cast(str | None, client.get(Keys(prefix).chain(day))) or ""
    if last != prev:
        return ChainReport(day, checked, "(end)",
                           "the day's last hash is not the last entry's: entries removed")
    return ChainReport(day, checked)
