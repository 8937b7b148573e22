"""Ticket correlation and the closed loop: 受理 accepted → 交办 assigned → 反馈 feedback.

The :class:`TicketDesk` writes the record ``ticket:<bridge_id>`` (the 12345 work order,
the 110 incident number, the loop's times) through the same Lua script as the bridge
log, so every step is an event on the stream and in the hash chain. Attaching the same
ticket twice, or repeating the current status, changes nothing; anything else that
would rewrite the record is refused with a clear error and changes nothing either.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.bridge.store import Change, Index
from gateway.config import line_named
from gateway.records.actor import Actor
from gateway.records.desk import Desk
from gateway.records.errors import Conflict, Malformed, NotFound
from gateway.records.ticket_changes import attached_change, check_bridge_id, feed_of
from gateway.schema import (
    IDX_DEADLINE,
    IDX_FEEDBACK,
    bridge_record,
    epoch,
    idx_incident,
    iso,
    ticket_record,
)

LOOP = ("accepted", "assigned", "feedback")  # 受理 → 交办 → 反馈
MAX_REASON = 500  # characters of a decline's reason
#: Control characters but tab, CR and LF (a spreadsheet cannot hold them; the report is one)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INCIDENT = re.compile(r"[0-9A-Za-z-]{1,40}\Z")


class TicketDesk(Desk):
    def bridge(self, bridge_id: str) -> dict[str, str]:
        """The bridge's record; NotFound when there is none."""
        return self._bridge(bridge_id)

    def _bridge(self, bridge_id: str) -> dict[str, str]:
        check_bridge_id(bridge_id)
        bridge = self._hash(bridge_record(bridge_id))
        if not bridge:
            raise NotFound(f"no bridge {bridge_id}", "bridge_not_found")
        return bridge

    def _current(self, bridge_id: str, field: str, value: str) -> dict[str, str] | None:
        """The ticket record when ``field`` already holds ``value`` (nothing to do);
        None when ``field`` is free; Conflict when it holds something else."""
        current = self._hash(ticket_record(bridge_id))
        if current.get(field) == value:
            return current
        if current.get(field):
            # not its value: the asker may not be the one who set it (an incident
            # number is 110's; the 12345 side reads this message on its errors stream)
            raise Conflict(f"bridge {bridge_id} already has another {field}",
                           f"{field}_conflict")
        return None

    def _deadline(self, bridge: dict[str, str], now: float) -> float:
        to = bridge.get("direction", "").partition("->")[2]
        return self.deadlines.feedback(bridge.get("category", ""), now,
                                       line_named(self.lines, to)).at

    def attach(self, bridge_id: str, ticket: str, actor: Actor) -> dict[str, str]:
        """Attach a 12345 work-order number (idempotent for the same number)."""
        # the whole value, ASCII digits only: "$" alone lets a trailing LF through, and
        # "\d" alone full-width digits
        if not isinstance(ticket, str) or \
                not re.fullmatch(self.config.pattern, ticket, re.ASCII):
            raise Malformed(f"ticket {str(ticket)[:40]!r} does not match "
                            f"{self.config.pattern}", "ticket_malformed")
        bridge = self._bridge(bridge_id)
        current = self._current(bridge_id, "ticket", ticket)
        if current is not None:
            return self._confirmed(current)
        now = self.clock()
        direction = bridge.get("direction", "")
        if direction.startswith("110->"):  # to 12345 or a further line
            # from the hand-off when the call handed it over (set as the bridge ended)
            deadline = bridge["feedback_due_at"] if bridge.get("feedback_due_at") \
                else iso(self._deadline(bridge, now))
        else:
            deadline = bridge.get("response_due_at", "")
        change = attached_change(bridge_id, ticket, direction, deadline, now, actor)
        return self._write_once(change, bridge_id, "ticket", ticket)

    def _write_once(self, change: Change, bridge_id: str, field: str, value: str
                    ) -> dict[str, str]:
        """Apply a change that sets a write-once field; when another writer set it first
        (the guard refused), the same value is no change and another is a conflict."""
        if not self._apply(change):
            current = self._current(bridge_id, field, value)
            assert current is not None  # the guard saw the field set
            return self._confirmed(current)
        return self._hash(ticket_record(bridge_id))

    def status(self, bridge_id: str, status: str, note: str, actor: Actor
               ) -> dict[str, str]:
        """Move the loop on: accepted → assigned → feedback, each once, in order."""
        if status not in LOOP:
            raise Malformed(f"status must be one of {', '.join(LOOP)}", "status_malformed")
        self._bridge(bridge_id)
        current = self._hash(ticket_record(bridge_id))
        if not current.get("ticket"):
            raise Conflict(f"bridge {bridge_id} has no ticket yet", "no_ticket")
        done = current.get("status", "attached")
        position = LOOP.index(done) if done in LOOP else -1
        if status == done:
            return self._confirmed(current)
        if LOOP.index(status) != position + 1:
            raise Conflict(f"ticket is {done}: cannot go to {status}", "loop_order")
        now = self.clock()
        fields = {"status": status, f"{status}_at": iso(now), **actor.fields(status)}
        indexes: tuple[Index, ...] = ()
        if note:
            fields[f"{status}_note"] = note
        if status == "feedback":
            due = current.get("deadline_at")
            fields["on_time"] = "yes" if not due or now <= epoch(due) else "no"
            indexes = (Index(IDX_DEADLINE, bridge_id, -1), Index(IDX_FEEDBACK, bridge_id, now))
        change = Change(ticket_record(bridge_id), f"ticket_{status}", now, fields, indexes,
                        actor.data, guard=(("status", (current.get("status", ""),)),),
                        feed=feed_of(current.get("direction", "")))
        if not self._apply(change):  # another writer moved the loop meanwhile
            moved = self._hash(ticket_record(bridge_id))
            if moved.get("status") != status:
                raise Conflict(f"ticket is {moved.get('status')}: cannot go to {status}",
                               "loop_order")
            return self._confirmed(moved)
        return self._hash(ticket_record(bridge_id))

    def incident(self, bridge_id: str, incident: str, actor: Actor) -> dict[str, str]:
        """Attach the 110 incident number (idempotent for the same number)."""
        if not isinstance(incident, str) or not _INCIDENT.match(incident):
            raise Malformed(f"incident {str(incident)[:40]!r} is not 1-40 letters, digits "
                            "or -", "incident_malformed")
        self._bridge(bridge_id)
        current = self._current(bridge_id, "incident", incident)
        if current is not None:
            return self._confirmed(current)
        now = self.clock()
        change = Change(ticket_record(bridge_id), "incident_attached", now,
                        {"bridge_id": bridge_id, "incident": incident,
                         "incident_at": iso(now), **actor.fields("incident")},
                        (Index(idx_incident(incident), bridge_id, now),), actor.data,
                        guard=(("incident", ("",)),))
        return self._write_once(change, bridge_id, "incident", incident)

    def decline_reason(self, bridge_id: str, reason: Any, actor: Actor) -> dict[str, str]:
        """Why the other line declined a consult transfer (the joint meeting reviews
        it): only on a bridge it declined, once (the same reason again changes
        nothing)."""
        bridge = self._bridge(bridge_id)
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON \
                or _CONTROL.search(reason):
            raise Malformed(f"reason: 1 to {MAX_REASON} characters of text (line breaks "
                            "allowed, no other control characters)", "reason_malformed")
        if bridge.get("decision") != "kept_by_first_line" or \
                bridge.get("direction") != "110->12345":
            raise Conflict(f"bridge {bridge_id} was not a transfer 12345 declined",
                           "not_declined")
        if bridge.get("decline_reason") == reason:
            return self._confirmed(bridge)
        if bridge.get("decline_reason"):
            raise Conflict(f"bridge {bridge_id} already has a decline reason",
                           "decline_reason_conflict")
        now = self.clock()
        change = Change(bridge_record(bridge_id), "decline_reason_given", now,
                        {"decline_reason": reason, "decline_reason_at": iso(now),
                         **actor.fields("decline_reason")}, (), actor.data,
                        guard=(("decline_reason", ("",)),),
                        feed=feed_of(bridge.get("direction", "")))
        if not self._apply(change):
            return self.decline_reason(bridge_id, reason, actor)  # told above which
        return self._hash(bridge_record(bridge_id))

    def apply_message(self, fields: dict[str, Any], actor: Actor) -> dict[str, str]:
        """One message from the 12345 side's stream: bridge_id + ticket / incident /
        status (+ note) / decline_reason, in that order when several are given."""
        bridge_id = str(fields.get("bridge_id", ""))
        result: dict[str, str] = {}
        if not any(k in fields for k in ("ticket", "incident", "status", "decline_reason")):
            raise Malformed("a message needs ticket, incident, status or decline_reason",
                            "message_empty")
        if "ticket" in fields:
            result = self.attach(bridge_id, str(fields["ticket"]), actor)
        if "incident" in fields:
            result = self.incident(bridge_id, str(fields["incident"]), actor)
        if "status" in fields:
            result = self.status(bridge_id, str(fields["status"]),
                                 str(fields.get("note", "")), actor)
        if "decline_reason" in fields:
            result = self.decline_reason(bridge_id, fields["decline_reason"], actor)
        return result
