"""The ticket record's changes and the checks they need, pure and light: the call path
(process-mode AGI programs included) builds them without loading a Redis client."""

from __future__ import annotations

import re

from gateway.bridge.change import Change, Index
from gateway.records.actor import Actor
from gateway.records.errors import Malformed
from gateway.schema import IDX_DEADLINE, epoch, idx_ticket, iso, ticket_record

_BRIDGE_ID = re.compile(r"\d{14}[0-9a-f]{6}\Z")


def check_bridge_id(bridge_id: str) -> None:
    if not _BRIDGE_ID.match(bridge_id):
        raise Malformed(f"not a bridge id: {bridge_id[:40]!r}", "bridge_id_malformed")


def feed_of(direction: str) -> str:
    """The feed a ticket's changes go to: 12345's for a matter 12345 handed to 110 (110's
    answer is what 12345 waits for); none for 110 → 12345 (12345 made them itself)."""
    return "12345" if direction == "12345->110" else ""


def attached_change(bridge_id: str, ticket: str, direction: str, deadline: str, at: float,
                    actor: Actor, id: str = "") -> Change:
    """The ticket record's first change: the work order attached to the bridge, with the
    deadline of its loop (110 → 12345: 12345's feedback; 12345 → 110: 110's response)."""
    fields = {"bridge_id": bridge_id, "ticket": ticket, "attached_at": iso(at),
              **actor.fields("attached"), "status": "attached", "direction": direction}
    indexes = [Index(idx_ticket(ticket), bridge_id, at)]
    if deadline:
        fields["deadline_at"] = deadline
        if direction.startswith("110->"):  # the other line's feedback, 12345's or 122's
            indexes.append(Index(IDX_DEADLINE, bridge_id, epoch(deadline)))
    extra = {"id": id} if id else {}
    return Change(ticket_record(bridge_id), "ticket_attached", at, fields, tuple(indexes),
                  actor.data, guard=(("ticket", ("",)),), feed=feed_of(direction),
                  **extra)
