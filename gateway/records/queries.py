"""Look-ups and figures over the records in Redis (blocking client)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, cast

import redis

from gateway.records.errors import NotFound, Unavailable
from gateway.records.tickets import check_bridge_id, epoch
from gateway.schema import (
    IDX_DEADLINE,
    Keys,
    bridge_record,
    callback_record,
    idx_caller,
    idx_day,
    idx_incident,
    idx_seat,
    idx_ticket,
    ticket_record,
)

FINDERS = ("number", "ticket", "incident", "seat", "day")
_INDEX = {"number": idx_caller, "ticket": idx_ticket, "incident": idx_incident,
          "seat": idx_seat, "day": idx_day}


class Records:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc

    def bridge(self, bridge_id: str) -> dict[str, Any]:
        """The bridge, its ticket record and its events, oldest first."""
        check_bridge_id(bridge_id)
        bridge = cast(dict[str, str], self._call(self.client.hgetall,
                                                 self.keys.bridge(bridge_id)))
        if not bridge:
            raise NotFound(f"no bridge {bridge_id}", "bridge_not_found")
        ticket = cast(dict[str, str], self._call(self.client.hgetall,
                                                 self.keys.ticket(bridge_id)))
        start = int(epoch(bridge["requested_at"]) * 1000) if "requested_at" in bridge else 0
        entries = cast(list[tuple[str, dict[str, str]]], self._call(
            self.client.xrange, self.keys.events, f"{start}-0", "+"))
        mine = {bridge_record(bridge_id), ticket_record(bridge_id), callback_record(bridge_id)}
        events = [dict(e, id=i) for i, e in entries if e.get("record") in mine]
        return {"bridge": bridge, "ticket": ticket, "events": events}

    def find(self, by: str, value: str, limit: int = 100) -> list[dict[str, str]]:
        """Bridges by citizen number, ticket, incident, seat or day, newest first."""
        ids = cast(list[str], self._call(self.client.zrevrange,
                                         self.keys.index(_INDEX[by](value)), 0,
                                         limit - 1))
        return self._summaries(ids)

    def _summaries(self, ids: list[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline()
        for bridge_id in ids:
            pipe.hgetall(self.keys.bridge(bridge_id))
            pipe.hgetall(self.keys.ticket(bridge_id))
        rows = cast(list[dict[str, str]], self._call(pipe.execute))
        out = []
        for bridge, ticket in zip(rows[::2], rows[1::2], strict=True):
            if bridge:
                out.append(bridge | {f"ticket_{k}" if k != "ticket" else k: v
                                     for k, v in ticket.items() if k != "bridge_id"})
        return out

    def overdue(self, now: float) -> list[dict[str, str]]:
        """Bridges whose feedback (110→12345) or response (12345→110) is past due."""
        ids = cast(list[str], self._call(self.client.zrangebyscore,
                                         self.keys.index(IDX_DEADLINE), "-inf", now))
        return self._summaries(ids)

    def day_figures(self, day: str, now: float) -> dict[str, Any]:
        """A day's transfers by outcome and category, 12345 answer times, the share
        answered within 15 s and 20 s, and the 12345 → 110 response rate. Bridges still
        live, recovered ones and those whose outcome is unknown are counted apart."""
        ids = cast(list[str], self._call(self.client.zrange, self.keys.index(idx_day(day)),
                                         0, -1))
        rows = self._summaries(ids)
        ended = [row for row in rows if row.get("state") == "ended"]
        by_outcome = Counter(row.get("outcome") or "?" for row in ended)
        unknown = Counter(row.get("outcome_reason") or "?" for row in ended
                          if row.get("outcome") == "unknown")
        by_category = Counter(row.get("category") or "unspecified" for row in rows)
        waits: list[float] = []
        dialled = 0
        due = responded = 0
        for row in rows:
            # The other line is dialled at the key (requested_at); a leg a refused code
            # cancelled was never the other line's to answer.
            if "dialing_target" in row and row.get("outcome") != "refused":
                dialled += 1
                if "agent_answered_at" in row:
                    waits.append(epoch(row["agent_answered_at"]) - epoch(row["requested_at"]))
            if row.get("direction") == "12345->110" and "response_due_at" in row:
                if row.get("ticket_feedback_at"):
                    due += 1
                    responded += row["ticket_feedback_at"] <= row["response_due_at"]
                elif epoch(row["response_due_at"]) <= now:
                    due += 1
        waits.sort()
        return {
            "day": day, "transfers": len(rows), "ended": len(ended),
            "live": len(rows) - len(ended),  # not ended yet (a call still going on)
            "by_outcome": dict(by_outcome),
            # counted apart: what a gateway adopted after its owner was gone, and what no
            # one could know (with why)
            "recovered": sum(row.get("recovered") == "yes" for row in rows),
            "unknown": sum(unknown.values()), "unknown_reasons": dict(unknown),
            "by_category": dict(by_category), "dialled": dialled, "answered": len(waits),
            "answer_p50_s": round(statistics.median(waits), 2) if waits else None,
            "answer_p90_s": round(_percentile(waits, 0.9), 2) if waits else None,
            "answered_within_15s": _share(sum(w <= 15 for w in waits), dialled),
            "answered_within_20s": _share(sum(w <= 20 for w in waits), dialled),
            "reverse_due": due, "reverse_responded_on_time": responded,
            "response_rate": _share(responded, due),
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(q * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]
