"""When the duty phone rings for a work order, and which number (pure).

A work order arrives in ``<p>:idx:workorders:duty`` scored by now: its first ring is
due at once. Each ring is claimed by a guarded write on the order's record (its status
still ``received``, its ring count still the one read), so of two gateways only one
rings; the claim scores the next ring ``duty.every`` seconds later. The first number
rings ``duty.rings_per_number`` times, then the next, and so on; the last number goes on
until ``duty.max_rings``. Accepting (or returning) the order takes it off the index:
the phone stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bridge.store import Change, Index
from gateway.config import DutyConfig
from gateway.schema import IDX_DUTY_DUE, iso, workorder_record


@dataclass(frozen=True)
class Ring:
    ticket: str
    number: str  # the dial string rung
    attempt: int  # 1 for the first ring of this order
    change: Change  # the claim: written first, guarded
    say: str = ""  # what the officer hears: a "&" list of prompts


def number_for(attempt: int, config: DutyConfig) -> str:
    """The dial string of the ``attempt``-th ring (1-based)."""
    index = min((attempt - 1) // config.rings_per_number, len(config.numbers) - 1)
    return config.numbers[index]


def plan_ring(ticket: str, order: dict[str, str], config: DutyConfig, now: float,
              say: str = "") -> Ring | None:
    """The next ring of an order whose ring is due; None when it is no longer rung
    (accepted, returned, gone, or no number configured)."""
    if not config.numbers or order.get("status", "") != "received":
        return None
    rang = int(order.get("duty_rings") or 0)
    attempt = rang + 1
    if attempt > config.max_rings:
        return None
    number = number_for(attempt, config)
    last = attempt == config.max_rings
    change = Change(
        workorder_record(ticket), "workorder_duty_rang", now,
        {"duty_rings": str(attempt), "duty_rang_at": iso(now), "duty_number": number},
        # the next ring ``every`` after this one has ended (rung out, or the officer
        # heard the order and did not press 1)
        (Index(IDX_DUTY_DUE, ticket, -1 if last else
               now + config.ring_timeout + config.every),),
        {"via": "duty", "number": number, "attempt": str(attempt)},
        guard=(("status", ("received",)), ("duty_rings", (order.get("duty_rings", ""),))))
    return Ring(ticket, number, attempt, change, say)


def originate(ring: Ring, config: DutyConfig) -> list[tuple[str, str]]:
    """The AMI Originate that rings the duty phone: answered, it runs ``[linkgw-duty]``
    with the order's number, what to say and whether a PIN follows the 1 on the
    channel, so the officer hears the order at once and a 1 pressed early is kept (no
    AGI program runs before the Read that hears it)."""
    return [("Channel", ring.number), ("Context", "linkgw-duty"), ("Exten", "s"),
            ("Priority", "1"), ("Timeout", str(int(config.ring_timeout * 1000))),
            ("CallerID", f'"12345工单" <{config.caller_id}>'),
            ("Variable", f"LINKGW_WORKORDER={ring.ticket}"),
            ("Variable", f"LINKGW_DUTY_SAY={ring.say}"),
            ("Variable", f"LINKGW_DUTY_IDENTITY={config.identity}"),
            ("Variable", f"LINKGW_DUTY_NUMBER={ring.number}"), ("Async", "true")]
