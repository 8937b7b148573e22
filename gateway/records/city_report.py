"""What the report to the city government adds to the figures (pure: rows in, dicts out).

- ``diverted``: the 110 → 12345 transfers counted apart: attempted (the other line was
  dialled), handed off, refused at the key, abandoned by the citizen, declined by 12345
  (consult), not reached; and the share of non-police calls among all registered 110
  calls (those attempted, over the calls the gateway registered as dialled to 110).
- ``by_unit``: the work orders of the period per handling unit: assigned, answered,
  answered on time.
- ``joint_meeting``: what the two centres' joint meeting reviews: each consult transfer
  110 made that 12345 declined, with 12345's reason (``PUT /bridges/<id>/decline-reason``),
  oldest first. (A 12345 → 110 consult that 110 declined is 110's own decision: not on
  this list.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.outcome import HANDED, Outcome
from gateway.records.shares import share


def diverted(bridges: list[dict[str, str]], calls_110: int) -> dict[str, Any]:
    """110 → 12345 transfers counted apart, and the share of non-police calls."""
    out = [b for b in bridges if b.get("direction") == "110->12345"]
    refused = sum(b.get("outcome") == Outcome.REFUSED for b in out)
    attempted = len(out) - refused
    return {
        "keys": len(out), "attempted": attempted,
        "handed_off": sum(b.get("outcome") in HANDED for b in out),
        "refused": refused,
        "abandoned": sum(b.get("outcome") == Outcome.ABANDONED for b in out),
        "declined": sum(b.get("decision") == "kept_by_first_line" for b in out),
        "not_reached": sum(b.get("outcome") == Outcome.KEPT_BY_FIRST_LINE and
                           b.get("decision") != "kept_by_first_line" for b in out),
        "calls_110": calls_110,
        "non_police_share": share(attempted, calls_110),
    }


def by_unit(orders: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per handling unit (the unit an order was last assigned to): assigned, answered,
    answered on time; the busiest first."""
    units: dict[str, Counter[str]] = {}
    for order in orders:
        unit = order.get("unit") or order.get("unit_returned_from") or ""
        if not unit:
            continue
        counts = units.setdefault(unit, Counter())
        counts["assigned"] += 1
        counts["answered"] += bool(order.get("answered_at"))
        counts["answered_on_time"] += order.get("on_time") == "yes" and \
            bool(order.get("answered_at"))
    rows = [{"unit": unit, "assigned": c["assigned"], "answered": c["answered"],
             "answered_on_time": c["answered_on_time"],
             "response_rate": share(c["answered_on_time"], c["answered"])}
            for unit, c in units.items()]
    return sorted(rows, key=lambda r: (-r["assigned"], r["unit"]))


def joint_meeting(bridges: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each transfer the other line declined in consult mode, with its reason."""
    declined = [b for b in bridges if b.get("decision") == "kept_by_first_line" and
                b.get("direction") == "110->12345"]
    return [{"bridge_id": b.get("bridge_id", ""), "requested_at": b.get("requested_at", ""),
             "direction": b.get("direction", ""), "item": b.get("item", ""),
             "item_name": b.get("item_name", ""), "category": b.get("category", ""),
             "reason": b.get("decline_reason", "")}  # "": none given yet (the meeting asks)
            for b in sorted(declined, key=lambda b: b.get("requested_at", ""))]
