"""Look-ups and figures over the records in Redis (blocking client)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import redis

from gateway.outcome import HANDED, Outcome, current
from gateway.records.city_report import by_unit, diverted, joint_meeting
from gateway.records.errors import Malformed, NotFound, Unavailable
from gateway.records.periods import Period, period, shift
from gateway.records.shares import share
from gateway.records.ticket_changes import check_bridge_id
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DEADLINE,
    IDX_PUSH_NEEDED,
    IDX_WORKORDER_DEADLINE,
    IDX_WORKORDERS_OPEN,
    Keys,
    bridge_record,
    call_record,
    callback_record,
    epoch,
    idx_caller,
    idx_calls_day,
    idx_day,
    idx_incident,
    idx_seat,
    idx_ticket,
    idx_workorder_day,
    iso,
    ticket_record,
    workorder_record,
)

FINDERS = ("number", "ticket", "incident", "seat", "day")
#: At most this many rows in one list (the API, the CLI, the handover), oldest first; how
#: many there are in all is given beside it, so a backlog of thousands costs one page.
LIST_CAP = 500
UTC_ZONE = ZoneInfo("UTC")
#: Outcomes in which the other line took the matter (a response to it is then due).
_HANDED = HANDED | {""}  # "": still live
_INDEX = {"number": idx_caller, "ticket": idx_ticket, "incident": idx_incident,
          "seat": idx_seat, "day": idx_day}


#: How many of the newest bridges a look-up reads at most to find those a role sees.
FIND_SCANNED = 5000


class Records:
    """``zone``: the centre's time zone; days, months and years are its own."""

    def __init__(self, client: redis.Redis, prefix: str, zone: ZoneInfo = UTC_ZONE) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.zone = zone

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc

    def bridge(self, bridge_id: str,
               check: Callable[[dict[str, str]], None] | None = None) -> dict[str, Any]:
        """The bridge, its ticket record and its events, oldest first.

        ``check`` (the asker's role rule) sees the bridge's hash before anything else is
        read: a bridge the asker may not see costs one read. The events stream holds
        every bridge's events, so at most :data:`EVENTS_SCANNED` entries from the
        bridge's start are read, a page at a time, and at most :data:`EVENTS_KEPT` of its
        own kept; ``events_complete`` says whether that was all of them."""
        check_bridge_id(bridge_id)
        bridge = cast(dict[str, str], self._call(self.client.hgetall,
                                                 self.keys.bridge(bridge_id)))
        if not bridge:
            raise NotFound(f"no bridge {bridge_id}", "bridge_not_found")
        if check is not None:
            check(bridge)
        ticket = cast(dict[str, str], self._call(self.client.hgetall,
                                                 self.keys.ticket(bridge_id)))
        start = int(epoch(bridge["requested_at"]) * 1000) if "requested_at" in bridge else 0
        mine = {bridge_record(bridge_id), ticket_record(bridge_id), callback_record(bridge_id)}
        events, complete = self._events_of(mine, f"{start}-0")
        return {"bridge": current(bridge), "ticket": ticket, "events": events,
                "events_complete": complete}

    def _events_of(self, records: set[str], start: str) -> tuple[list[dict[str, str]], bool]:
        """The events of ``records`` from ``start``, bounded (see :meth:`bridge`)."""
        events: list[dict[str, str]] = []
        scanned, cursor = 0, start
        while scanned < EVENTS_SCANNED and len(events) < EVENTS_KEPT:
            page = cast(list[tuple[str, dict[str, str]]], self._call(
                self.client.xrange, self.keys.events, cursor, "+",
                min(EVENTS_PAGE, EVENTS_SCANNED - scanned)))
            if not page:
                return events, True
            scanned += len(page)
            events += [dict(e, id=i) for i, e in page if e.get("record") in records]
            cursor = "(" + page[-1][0]  # exclusive: after the last one read
        more = self._call(self.client.xrange, self.keys.events, cursor, "+", 1)
        return events[:EVENTS_KEPT], not more

    def find(self, by: str, value: str, limit: int = 100,
             keep: Callable[[dict[str, str]], bool] | None = None) -> list[dict[str, str]]:
        """Bridges by citizen number, ticket, incident, seat or day (the centre's),
        newest first. ``keep``: only those the asker may see, ``limit`` of them (looked
        for among the newest :data:`FIND_SCANNED`), so that a role that sees few
        bridges is not left with the few of the newest ``limit``."""
        newest: list[str] | None = None
        if by == "day":
            when = period(value, self.zone)
            if when.kind != "day":
                raise Malformed(f"{value[:20]!r} is not YYYY-MM-DD", "day_malformed")
            newest = self._ids_in(when)[::-1]

        def page(start: int) -> list[str]:
            if newest is not None:
                return newest[start:start + limit]
            return cast(list[str], self._call(self.client.zrevrange,
                                              self.keys.index(_INDEX[by](value)), start,
                                              start + limit - 1))

        found: list[dict[str, str]] = []
        for start in range(0, FIND_SCANNED if keep else limit, limit):
            ids = page(start)
            found += [row for row in self._summaries(ids) if keep is None or keep(row)]
            if len(found) >= limit or len(ids) < limit:
                break
        return found[:limit]

    def _ids_in(self, when: Period, index: Callable[[str], str] = idx_day) -> list[str]:
        """The bridges (or, with ``idx_workorder_day``, work orders) of ``when``, oldest
        first, from the UTC day indexes."""
        pipe = self.client.pipeline()
        for utc_day in when.utc_days():
            pipe.zrangebyscore(self.keys.index(index(utc_day)), when.start,
                               f"({when.end}")
        days = cast(list[list[str]], self._call(pipe.execute))
        return [bridge_id for ids in days for bridge_id in ids]

    def _count_in(self, when: Period, index: Callable[[str], str] = idx_day) -> int:
        """How many :meth:`_ids_in` would give, counted by Redis (``ZCOUNT``)."""
        pipe = self.client.pipeline()
        for utc_day in when.utc_days():
            pipe.zcount(self.keys.index(index(utc_day)), when.start, f"({when.end}")
        return sum(int(n) for n in cast(list[int], self._call(pipe.execute)))

    def _summaries(self, ids: list[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline()
        for bridge_id in ids:
            pipe.hgetall(self.keys.bridge(bridge_id))
            pipe.hgetall(self.keys.ticket(bridge_id))
        rows = cast(list[dict[str, str]], self._call(pipe.execute))
        out = []
        for bridge, ticket in zip(rows[::2], rows[1::2], strict=True):
            if bridge:  # read by today's names, whichever version wrote it
                out.append(current(bridge) | {f"ticket_{k}" if k != "ticket" else k: v
                                              for k, v in ticket.items() if k != "bridge_id"})
        return out

    def overdue(self, now: float) -> list[dict[str, str]]:
        """Bridges whose feedback (110→12345) or response (12345→110) is past due (the
        first :data:`LIST_CAP`, longest overdue first)."""
        return self._summaries(self._due(IDX_DEADLINE, now))

    def _due(self, index: str, now: float) -> list[str]:
        # ZRANGEBYSCORE's positional start and count (redis-py: min, max, start, num)
        return cast(list[str], self._call(self.client.zrangebyscore, self.keys.index(index),
                                          "-inf", now, 0, LIST_CAP))

    def _open(self, index: str) -> tuple[list[str], int]:
        """The first :data:`LIST_CAP` ids of an index, and how many it holds: one trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(self.keys.index(index), 0, LIST_CAP - 1)
        pipe.zcard(self.keys.index(index))
        ids, total = cast(list[Any], self._call(pipe.execute))
        return cast(list[str], ids), int(total)

    def totals(self, now: float) -> dict[str, int]:
        """How many there are in each list, however many are shown."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.keys.index(IDX_WORKORDERS_OPEN))
        pipe.zcount(self.keys.index(IDX_WORKORDER_DEADLINE), "-inf", now)
        pipe.zcount(self.keys.index(IDX_DEADLINE), "-inf", now)
        pipe.zcard(self.keys.index(IDX_CALLBACKS_OPEN))
        pipe.zcard(self.keys.index(IDX_PUSH_NEEDED))
        counts = cast(list[int], self._call(pipe.execute))
        return dict(zip(("open_workorders", "overdue_workorders", "overdue_bridges",
                         "callbacks", "push_needed"), map(int, counts), strict=True))

    def overdue_counts(self, now: float) -> tuple[int, int]:
        """How many bridges and how many work orders are past due (for alerts)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(self.keys.index(IDX_DEADLINE), "-inf", now)
        pipe.zcount(self.keys.index(IDX_WORKORDER_DEADLINE), "-inf", now)
        bridges, orders = cast(list[int], self._call(pipe.execute))
        return int(bridges), int(orders)

    # -- the loop without a call ---------------------------------------------------------
    def workorder(self, ticket: str) -> dict[str, str]:
        found = cast(dict[str, str], self._call(self.client.hgetall,
                                                self.keys.record(workorder_record(ticket))))
        if not found:
            raise NotFound(f"no work order {ticket[:40]}", "workorder_not_found")
        return found

    def _hashes(self, names: list[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline()
        for name in names:
            pipe.hgetall(self.keys.record(name))
        return [h for h in cast(list[dict[str, str]], self._call(pipe.execute)) if h]

    def workorders(self, label: str = "") -> list[dict[str, str]]:
        """Work orders not answered yet (oldest first), or those received in a period."""
        return self.workorder_list(label)[0]

    def workorder_list(self, label: str = "") -> tuple[list[dict[str, str]], int]:
        """The first :data:`LIST_CAP` of :meth:`workorders`, and how many there are."""
        if label:
            tickets = self._ids_in(period(label, self.zone), idx_workorder_day)
            total = len(tickets)
        else:
            tickets, total = self._open(IDX_WORKORDERS_OPEN)
        return self._hashes([workorder_record(t) for t in tickets[:LIST_CAP]]), total

    def overdue_workorders(self, now: float) -> list[dict[str, str]]:
        """Work orders past their running deadline: not accepted by their accept
        deadline, or accepted and not answered by their answer deadline."""
        tickets = self._due(IDX_WORKORDER_DEADLINE, now)
        return self._hashes([workorder_record(t) for t in tickets])

    def callbacks(self) -> list[dict[str, str]]:
        """Callback tasks still open, oldest first."""
        return self.callback_list()[0]

    def callback_list(self) -> tuple[list[dict[str, str]], int]:
        """The first :data:`LIST_CAP` of :meth:`callbacks`, and how many there are."""
        ids, total = self._open(IDX_CALLBACKS_OPEN)
        return self._hashes([callback_record(i) for i in ids]), total

    def push_needed(self) -> list[dict[str, str]]:
        """Bridges whose other line was never reached and whose work order is still to be
        pushed to it, oldest first."""
        return self.push_list()[0]

    def push_list(self) -> tuple[list[dict[str, str]], int]:
        """The first :data:`LIST_CAP` of :meth:`push_needed`, and how many there are."""
        ids, total = self._open(IDX_PUSH_NEEDED)
        return self._summaries(ids), total

    def _workorder_figures(self, when: Period, now: float) -> dict[str, Any]:
        """Counted from dispatch: an order is due once it was responded to (answered, or
        returned to 12345) or its running deadline passed (the accept deadline while
        nobody accepted it, then the answer deadline), so an order nobody accepts counts
        against the rate. A reopened order's first response is the one counted."""
        rows = self._hashes([workorder_record(t)
                             for t in self._ids_in(when, idx_workorder_day)])
        due = on_time = accept_due = accepted_on_time = 0
        for row in rows:
            running = row.get("due_at") if row.get("accepted_at") else \
                row.get("accept_due_at")
            if row.get("on_time"):
                due += 1
                on_time += row["on_time"] == "yes"
            elif running and epoch(running) <= now:
                due += 1  # not accepted, or not answered, in time
            if row.get("accepted_at"):
                accept_due += 1
                accepted_on_time += row.get("accepted_on_time", "yes") == "yes"
            elif row.get("returned_at"):  # returned to 12345 at once: that was in time?
                accept_due += 1
                accepted_on_time += row.get("on_time") == "yes"
            elif row.get("accept_due_at") and epoch(row["accept_due_at"]) <= now:
                accept_due += 1  # nobody accepted it in time
        rated = Counter(r["satisfaction"] for r in rows if r.get("satisfaction"))
        return {"received": len(rows),
                "accepted": sum("accepted_at" in r for r in rows),
                "answered": sum("answered_at" in r for r in rows),
                "accept_due": accept_due, "accepted_on_time": accepted_on_time,
                "accept_rate": share(accepted_on_time, accept_due),
                "due": due, "answered_on_time": on_time,
                "response_rate": share(on_time, due),
                "returned": sum("returned_at" in r for r in rows),
                "reassigned": sum("reassigned_at" in r for r in rows),
                # every request and grant, a reopened order's earlier ones too
                "extensions_requested": sum(_count(r, "extension_request_count",
                                                   "extension_requested_at") for r in rows),
                "extensions_granted": sum(_count(r, "extension_granted_count") for r in rows),
                "reopened": sum("reopened_at" in r for r in rows),
                "closed": sum(r.get("status") == "closed" for r in rows),
                "satisfaction": dict(sorted(rated.items())),
                "satisfaction_rate": share(rated["satisfied"] + rated["basically_satisfied"],
                                            sum(rated.values()))}

    def _hour(self, row: dict[str, str]) -> int:
        return datetime.fromtimestamp(epoch(row["requested_at"]), self.zone).hour

    def handover(self, now: float, shifts: tuple[str, ...]) -> dict[str, Any]:
        """What the shift that is on hands over (``linkgw handover``, ``GET /handover``):
        work orders not answered and those overdue, bridges whose feedback is overdue,
        callbacks and pushes owed, and what the shift saw (keys pressed, work orders
        received)."""
        on = shift(now, shifts, self.zone)
        so_far = Period(on.label, on.kind, on.start, min(on.end, now + 0.001))
        return {
            "shift": {"from": iso(on.start), "to": iso(on.end), "label": on.label,
                      "until": datetime.fromtimestamp(on.end, self.zone).strftime(
                          "%Y-%m-%d %H:%M"), "time_zone": self.zone.key},
            "open_workorders": self.workorders(),
            "overdue_workorders": self.overdue_workorders(now),
            "overdue_bridges": self.overdue(now),
            "callbacks": self.callbacks(),
            "push_needed": self.push_needed(),
            "totals": self.totals(now),  # each list shows at most LIST_CAP of these
            "this_shift": {"keys": self._count_in(so_far),
                           "workorders_received": self._count_in(so_far,
                                                                 idx_workorder_day)},
        }

    def report(self, label: str, now: float) -> dict[str, Any]:
        """A period's figures and its transfers by item (refused, declined, not reached)."""
        when = period(label, self.zone)
        rows = self._summaries(self._ids_in(when))
        orders = self._hashes([workorder_record(t)
                               for t in self._ids_in(when, idx_workorder_day)])
        return {"figures": self.figures(label, now),
                "diverted": diverted(rows, self._calls_to(when, "110")),
                "by_unit": by_unit(orders), "joint_meeting": joint_meeting(rows),
                "items": item_rows(rows)}

    def _calls_to(self, when: Period, dialed: str, chunk: int = 1000) -> int:
        """Calls registered in ``when`` that dialled ``dialed`` (a year of a busy centre
        is millions: read in chunks of ``chunk``)."""
        ids = self._ids_in(when, idx_calls_day)
        count = 0
        for start in range(0, len(ids), chunk):
            pipe = self.client.pipeline()
            for uniqueid in ids[start:start + chunk]:
                pipe.hget(self.keys.record(call_record(uniqueid)), "dialed")
            count += sum(d == dialed for d in cast(list[str | None],
                                                   self._call(pipe.execute)))
        return count

    def day_figures(self, day: str, now: float) -> dict[str, Any]:
        return self.figures(day, now)

    def figures(self, label: str, now: float) -> dict[str, Any]:
        """A day's, month's or year's (``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY``, in the
        centre's time) transfers by outcome, direction and category, 12345 answer
        times, the share answered within 15 s and 20 s, and the 12345 → 110 response
        rate. Bridges still live, recovered ones and those whose outcome is unknown are
        counted apart."""
        when = period(label, self.zone)
        rows = self._summaries(self._ids_in(when))
        ended = [row for row in rows if row.get("state") == "ended"]
        by_outcome = Counter(row.get("outcome") or "?" for row in ended)
        unknown = Counter(row.get("outcome_reason") or "?" for row in ended
                          if row.get("outcome") == Outcome.UNKNOWN)
        by_category = Counter(row.get("category") or "unspecified" for row in rows)
        waits: list[float] = []
        queued: list[float] = []  # in the other line's queue: its answering attempt only
        dialled = 0
        due = responded = 0
        for row in rows:
            # The other line is dialled at the key (requested_at); a leg a refused code
            # cancelled was never the other line's to answer.
            if "dialing_target" in row and row.get("outcome") != Outcome.REFUSED:
                dialled += 1
                if "agent_answered_at" in row:
                    answered = epoch(row["agent_answered_at"])
                    waits.append(answered - epoch(row["requested_at"]))
                    queued.append(answered - epoch(row.get("dialing_at")
                                                   or row["requested_at"]))
            # due only when 110 took the matter: a press refused, abandoned or kept by
            # 12345 handed nothing over
            if row.get("direction") == "12345->110" and "response_due_at" in row \
                    and row.get("outcome", "") in _HANDED:
                if row.get("ticket_feedback_at"):
                    due += 1
                    responded += row["ticket_feedback_at"] <= row["response_due_at"]
                elif epoch(row["response_due_at"]) <= now:
                    due += 1
        waits.sort()
        by_hour = Counter(self._hour(row) for row in rows if row.get("requested_at"))
        by_direction: dict[str, Counter[str]] = {}
        for row in ended:
            by_direction.setdefault(row.get("direction") or "?", Counter())[
                row.get("outcome") or "?"] += 1
        return {
            when.kind: when.label, "time_zone": self.zone.key, "transfers": len(rows),
            "ended": len(ended),
            "live": len(rows) - len(ended),  # not ended yet (a call still going on)
            "by_outcome": dict(by_outcome),
            "by_direction": {d: dict(c) for d, c in sorted(by_direction.items())},
            # counted apart: what a gateway adopted after its owner was gone, and what no
            # one could know (with why)
            "recovered": sum(row.get("recovered") == "yes" for row in rows),
            # keys with no item code typed and none defaulted (refused ones included)
            "unclassified": sum(row.get("code_given") == "no" and not row.get("code")
                                for row in rows),
            "unknown": sum(unknown.values()), "unknown_reasons": dict(unknown),
            "by_category": dict(by_category),
            # the centre's hours (00–23) the keys were pressed in, every hour present
            "by_hour": {f"{h:02d}": by_hour.get(h, 0) for h in range(24)},
            # seconds from the key to the other line's answer, in bands
            "answer_bands": _bands(waits),
            "dialled": dialled, "answered": len(waits),
            "answer_p50_s": round(statistics.median(waits), 2) if waits else None,
            "answer_p90_s": round(_percentile(waits, 0.9), 2) if waits else None,
            "answered_within_15s": share(sum(w <= 15 for w in waits), dialled),
            "answered_within_20s": share(sum(w <= 20 for w in waits), dialled),
            # seconds a person of the other line took from the INVITE of the attempt
            # they answered (its queue), against emergency centres' answering standard:
            # 90 % within 15 s, 95 % within 20 s
            "queue_p50_s": round(statistics.median(queued), 2) if queued else None,
            "queue_within_15s": share(sum(w <= 15 for w in queued), len(queued)),
            "queue_within_20s": share(sum(w <= 20 for w in queued), len(queued)),
            "queue_standard": {"within_15s": 0.9, "within_20s": 0.95},
            "reverse_due": due, "reverse_responded_on_time": responded,
            "response_rate": share(responded, due),
            # 12345 -> police work orders without a call, counted from their acceptance
            "workorders": self._workorder_figures(when, now),
        }


REPORT_COLUMNS = ("item", "item_name", "category", "code", "transfers", "refused",
                  "refusal_reasons", "declined", "not_reached")


def item_rows(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per item (as typed after the key): how often it was handed over, refused (and
    why), declined by the other line (consult) or not reached: what the two centres'
    joint meetings review. Most disputed first."""
    items: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row.get("item") or "(no code)"
        item = items.setdefault(key, {
            "item": key, "item_name": row.get("item_name", ""),
            "category": row.get("category", ""), "code": row.get("code", ""),
            "transfers": 0, "refused": 0, "refusal_reasons": Counter(), "declined": 0,
            "not_reached": 0})
        item["transfers"] += 1
        if row.get("outcome") == Outcome.REFUSED:
            item["refused"] += 1
            item["refusal_reasons"][row.get("refusal") or "?"] += 1
        elif row.get("decision") == "kept_by_first_line":
            item["declined"] += 1
        elif row.get("outcome") == Outcome.KEPT_BY_FIRST_LINE:
            item["not_reached"] += 1
    out = sorted(items.values(), key=lambda i: (-(i["refused"] + i["declined"]), i["item"]))
    for item in out:
        item["refusal_reasons"] = dict(item["refusal_reasons"])
    return out


ANSWER_BANDS = ((0, 5), (5, 10), (10, 15), (15, 20), (20, 30), (30, None))
#: A bridge's events: at most this many entries of the shared stream read per look-up,
#: a page at a time, and at most this many of the bridge's own kept.
EVENTS_SCANNED = 20_000
EVENTS_PAGE = 1_000
EVENTS_KEPT = 1_000


def _bands(waits: list[float]) -> dict[str, int]:
    """How many answers fell in each band of seconds ("15-20": over 15, up to 20)."""
    out = {}
    for low, high in ANSWER_BANDS:
        name = f"{low}-{high}" if high is not None else f"{low}+"
        out[name] = sum(low < w <= high if high is not None else w > low for w in waits) \
            if low else sum(w <= (high or 0) for w in waits)
    return out


def _count(row: dict[str, str], field: str, before: str = "") -> int:
    """A running count on the record (an order of an earlier release: 1 when it has
    ``before``, the field that marked it then)."""
    value = row.get(field, "")
    if value.isdigit():
        return int(value)
    return 1 if before and row.get(before) else 0


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(q * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]
