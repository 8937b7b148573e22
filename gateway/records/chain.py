"""Verify a day's hash chain: each event carries the hash of the one before it.

What retention trimmed is taken from the day's checkpoint (how many entries went, the
last one's hash); with the chain key, the day's seal (an HMAC a Redis writer cannot make
without the key) is checked against the chain as it is now.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from gateway.bridge.store import HASHED, chain_hash
from gateway.records.retention import seal_mac, walk_start
from gateway.schema import Keys


@dataclass(frozen=True)
class ChainReport:
    day: str
    checked: int
    broken_at: str | None = None  # stream id of the first entry that does not fit
    reason: str = ""
    trimmed: int = 0  # entries retention removed (checked from the checkpoint)
    sealed: str = ""  # "", "yes" (seal checked), "unchecked" (no key given)

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_day(client: redis.Redis, prefix: str, day: str, batch: int = 1000,
               key: bytes = b"", manifest: dict[str, str] | None = None) -> ChainReport:
    """Walk the stream in order; entries whose ``at`` falls on ``day`` (UTC) must chain.

    The last hash must also match ``<p>:chain:<day>``, so that removing the newest
    entries is caught too. ``manifest`` is the day's seal as retention wrote it into the
    export folder (:func:`gateway.records.retention.read_manifest`), out of a Redis
    writer's reach: a day sealed there must have that very seal in Redis.
    """
    keys = Keys(prefix)
    checkpoint = cast(dict[str, str], client.hgetall(keys.checkpoint(day)))
    trimmed = int(checkpoint.get("removed", "0") or 0)
    prev = checkpoint.get("hash", "") if trimmed else ""
    seal = cast(dict[str, str], client.hgetall(keys.seal(day)))
    if manifest is not None:
        wrong = _against_manifest(seal, manifest)
        if wrong:
            return ChainReport(day, 0, "(seal)", wrong, trimmed)
    sealed_count = int(seal.get("count", "0") or 0)
    at_seal = prev if sealed_count and sealed_count == trimmed else None
    checked = 0
    start = walk_start(day)  # nothing is written before its time (give or take skew)
    while True:
        entries = cast(list[tuple[str, dict[str, str]]],
                       client.xrange(keys.events, start, "+", count=batch))
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
                                   "prev does not match the entry before it" + (
                                       " (or the checkpoint)" if checked == 1 and trimmed
                                       else ""), trimmed)
            if any(k not in entry for k in HASHED) or \
                    chain_hash(prev, entry) != entry.get("hash"):
                return ChainReport(day, checked, entry_id, "content does not match its hash",
                                   trimmed)
            prev = entry["hash"]
            if trimmed + checked == sealed_count:
                at_seal = prev
        if len(entries) < batch:
            break
        start = "(" + entries[-1][0]
    last = cast(str | None, client.get(keys.chain(day))) or ""
    if last != prev:
        return ChainReport(day, checked, "(end)",
                           "the day's last hash is not the last entry's: entries removed",
                           trimmed)
    if not seal:
        return ChainReport(day, checked, trimmed=trimmed)
    if not key:
        return ChainReport(day, checked, trimmed=trimmed, sealed="unchecked")
    expected = seal_mac(key, day, sealed_count, seal.get("hash", ""))
    if at_seal != seal.get("hash") or not hmac.compare_digest(expected, seal.get("mac", "")):
        return ChainReport(day, checked, "(seal)", "the seal does not match the chain: "
                           "rewritten after sealing, or another key", trimmed)
    return ChainReport(day, checked, trimmed=trimmed, sealed="yes")


def _against_manifest(seal: dict[str, str], manifest: dict[str, str]) -> str:
    """Why the seal in Redis is not the one the export folder recorded ("" if it is)."""
    if "invalid" in manifest:
        return f"the export folder's seal manifest cannot be trusted: {manifest['invalid']}"
    if not seal:
        return "the day was sealed (the export folder's manifest says so) but its seal " \
               "is gone from Redis"
    if any(seal.get(k) != manifest.get(k) for k in ("count", "hash", "mac")):
        return "the seal in Redis is not the one the export folder recorded"
    return ""
