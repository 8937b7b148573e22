"""The loop without a call: 12345 → police work orders, callbacks, pushes owed.

The steps of a work order past its arrival, and which may follow which, are one table
(:mod:`gateway.records.workorder_life`); this desk reads the record, asks the table and
writes the change, guarded by the record's revision.

A **work order** (``workorder:<ticket>``) is a matter 12345 dispatches to the police
that never was a call: it arrives by API or on the inbound stream with its 12345 ticket
number, a category and a summary; 110's duty person accepts it (受理), assigns it to a
named unit (交办) and answers it (反馈), each once and in that order. It must be
accepted within ``tickets.workorder_accept_minutes`` of its dispatch (``accept_due_at``),
then answered within the category's ``response_hours`` (``categories.yaml``, else
``tickets.workorder_response_hours``) counted from its acceptance (``due_at``). The
deadline index holds whichever deadline is running, so an order nobody accepts is
overdue too. It was responded to on time (``on_time``) when it was accepted and answered
each by its deadline; the figures' response rate counts every order whose deadline has
passed, accepted or not. 12345 sees each change in its feed.

A **callback task** (``callback:<bridge id>``, a citizen who hung up before the
hand-over) and a **push owed** (a bridge whose other line was never reached:
``work_order_push_needed``) are listed and closed here, each once.

Every write goes through the bridge log's Lua script (one event on the stream, in the
chain) with a guard, so two writers never both move a record.
"""

from __future__ import annotations

import re
from typing import Any, cast

import redis

from gateway.bridge.store import Change, Index
from gateway.records.actor import Actor
from gateway.records.desk import Desk
from gateway.records.errors import Conflict, Malformed, NotFound, Unavailable
from gateway.records.ticket_changes import check_bridge_id
from gateway.records.workorder_life import ACTIONS, STEP_ACTIONS, Context, plan, text
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DUTY_DUE,
    IDX_PUSH_NEEDED,
    IDX_WORKORDER_DEADLINE,
    IDX_WORKORDERS_OPEN,
    Keys,
    bridge_record,
    callback_record,
    idx_workorder_day,
    iso,
    workorder_record,
)

#: 受理 → 交办 → 反馈 of a work order without a call.
STEPS = tuple(STEP_ACTIONS)


class WorkOrderDesk(Desk):
    def _ticket(self, ticket: Any) -> str:
        if not isinstance(ticket, str) or \
                not re.fullmatch(self.config.pattern, ticket, re.ASCII):
            raise Malformed(f"ticket {str(ticket)[:40]!r} does not match "
                            f"{self.config.pattern}", "ticket_malformed")
        return ticket

    # -- work orders -------------------------------------------------------------------
    def receive(self, fields: dict[str, Any], actor: Actor) -> dict[str, str]:
        """A work order from 12345 (idempotent: the same ticket again changes nothing)."""
        ticket = self._ticket(fields.get("ticket"))
        category = text(fields.get("category"), "category", required=True)
        # a police matter names the order best (what 110 keeps is what 12345 sends it)
        if self.catalogue.category(category) is None and \
                self.catalogue.police_matter(category) is None:
            raise Malformed(f"unknown category {category[:40]!r}", "category_unknown")
        summary = text(fields.get("summary"), "summary", required=True)
        number = text(fields.get("number"), "number")
        current = self._hash(workorder_record(ticket))
        if current:
            return self._confirmed(current)
        now = self.clock()
        accept_due = now + self.config.workorder_accept_minutes * 60
        record = {"ticket": ticket, "category": category, "summary": summary,
                  "received_at": iso(now), **actor.fields("received"), "status": "received",
                  "accept_due_at": iso(accept_due)}
        if number:
            record["number"] = number
        change = Change(workorder_record(ticket), "workorder_received", now, record,
                        (Index(idx_workorder_day(iso(now)[:10]), ticket, now),
                         Index(IDX_WORKORDERS_OPEN, ticket, now),
                         Index(IDX_WORKORDER_DEADLINE, ticket, accept_due),
                         Index(IDX_DUTY_DUE, ticket, now)),  # the duty phone rings now
                        actor.data, guard=(("status", ("",)),), feed="12345")
        self._apply(change)  # a writer that was first wrote the same ticket
        return self._hash(workorder_record(ticket))

    def step(self, ticket: str, status: str, fields: dict[str, Any], actor: Actor
             ) -> dict[str, str]:
        """accepted → assigned (``unit`` named) → answered (``note``), each once, in
        order (``POST /workorders/<ticket>/status``); repeating the current step changes
        nothing."""
        if status not in STEP_ACTIONS:
            raise Malformed(f"status must be one of {', '.join(STEP_ACTIONS)}",
                            "status_malformed")
        return self.act(ticket, STEP_ACTIONS[status], fields, actor)

    def act(self, ticket: str, action: str, fields: dict[str, Any], actor: Actor
            ) -> dict[str, str]:
        """One step of the order's life (:data:`~gateway.records.workorder_life.ACTIONS`),
        guarded by the record's revision: a writer that was first wins, the other is
        told (or, when it made the same change, confirmed)."""
        self._ticket(ticket)
        if action not in ACTIONS:
            raise Malformed(f"action must be one of {', '.join(ACTIONS)}", "action_malformed")
        current = self._hash(workorder_record(ticket))
        if not current:
            raise NotFound(f"no work order {ticket}", "workorder_not_found")
        now = self.clock()
        context = Context(ticket, now, self.deadlines, self.config.extension_max_days)
        change = plan(action, current, fields, context)
        if change is None:
            return self._confirmed(current)
        ok = self._apply(Change(
            workorder_record(ticket), change.event, now,
            change.fields | {f"{change.stamp}_at": iso(now), **actor.fields(change.stamp)},
            change.indexes, actor.data, guard=(("revision", (current.get("revision", ""),)),),
            feed="12345"))
        if not ok:  # another writer moved it first: as if asked now
            moved = self._hash(workorder_record(ticket))
            if plan(action, moved, fields, context) is not None:
                raise Conflict(f"work order {ticket} changed meanwhile "
                               f"({moved.get('status')}): ask again", "loop_changed")
            return self._confirmed(moved)
        return self._hash(workorder_record(ticket))

    # -- the duty phone (gateway/duty/) -----------------------------------------------
    def order(self, ticket: str) -> dict[str, str]:
        """The work order's record ({} when there is none)."""
        return self._hash(workorder_record(self._ticket(ticket)))

    def rings_due(self, now: float, limit: int = 20) -> list[str]:
        """Orders whose duty phone ring is due, the longest waiting first."""
        try:
            return cast(list[str], self.client.zrangebyscore(
                Keys(self.prefix).index(IDX_DUTY_DUE), "-inf", now, start=0, num=limit))
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc

    def stop_ringing(self, ticket: str) -> None:
        """An order found no longer waiting (accepted by an older release, say)."""
        try:
            self.client.zrem(Keys(self.prefix).index(IDX_DUTY_DUE), ticket)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc

    def write(self, change: Change) -> bool:
        """A guarded change planned elsewhere (a ring's claim); False: another was first."""
        return self._apply(change)

    # -- callbacks and pushes owed -----------------------------------------------------
    def callback_done(self, bridge_id: str, note: Any, actor: Actor) -> dict[str, str]:
        """The citizen was called back: the task leaves the open list (once)."""
        check_bridge_id(bridge_id)
        current = self._hash(callback_record(bridge_id))
        if not current:
            raise NotFound(f"no callback task for {bridge_id}", "callback_not_found")
        if current.get("status") == "done":
            return self._confirmed(current)
        now = self.clock()
        record = {"status": "done", "done_at": iso(now), **actor.fields("done")}
        written = text(note, "note")
        if written:
            record["done_note"] = written
        self._apply(Change(callback_record(bridge_id), "callback_done", now, record,
                           (Index(IDX_CALLBACKS_OPEN, bridge_id, -1),), actor.data,
                           guard=(("status", ("open",)),),
                           feed=_feed_of(current.get("direction", ""))))
        return self._hash(callback_record(bridge_id))

    def push_done(self, bridge_id: str, ticket: Any, note: Any, actor: Actor
                  ) -> dict[str, str]:
        """The work order the other line was never reached for has been pushed to it
        (``ticket``: its number there, optional): off the push-needed list (once)."""
        check_bridge_id(bridge_id)
        bridge = self._hash(bridge_record(bridge_id))
        if not bridge:
            raise NotFound(f"no bridge {bridge_id}", "bridge_not_found")
        if bridge.get("work_order_push_needed") != "yes":
            raise Conflict(f"bridge {bridge_id} owes no push", "no_push_needed")
        if bridge.get("work_order_pushed_at"):
            return bridge
        now = self.clock()
        record = {"work_order_pushed_at": iso(now), **actor.fields("work_order_pushed")}
        if ticket not in (None, ""):
            record["work_order_pushed_ref"] = self._ticket(ticket)
        written = text(note, "note")
        if written:
            record["work_order_pushed_note"] = written
        self._apply(Change(bridge_record(bridge_id), "work_order_pushed", now, record,
                           (Index(IDX_PUSH_NEEDED, bridge_id, -1),), actor.data,
                           guard=(("work_order_pushed_at", ("",)),),
                           feed=_feed_of(bridge.get("direction", ""))))
        return self._hash(bridge_record(bridge_id))


def _feed_of(direction: str) -> str:
    return {"110->12345": "12345", "12345->110": "110"}.get(direction, "")
