"""The records of the transfer feature: every change the feature writes, built here.

Bridges, registered calls, emergency flags and callback tasks become
:class:`~gateway.bridge.change.Change` values (with their indexes, :mod:`gateway.schema`)
queued on the bridge log, which never makes a call wait. Every change has an id of its
own, so several processes may write one record and a replay is harmless.
"""

from __future__ import annotations

from typing import Protocol

from gateway.bridge.change import Change, Index
from gateway.outcome import HANDED
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DEADLINE,
    IDX_LIVE,
    IDX_PUSH_NEEDED,
    bridge_record,
    call_record,
    callback_record,
    epoch,
    idx_caller,
    idx_calls_caller,
    idx_calls_day,
    idx_day,
    idx_seat,
    iso,
)
from gateway.transfer.model import DIRECTIONS, Bridge, Party
from gateway.transfer.phase import State


class Sink(Protocol):
    """Where changes go: the bridge log (or, in a process-mode AGI, a list)."""

    def record(self, change: Change) -> None: ...


class Persistor:
    """Builds and records the changes; it decides nothing (the table and the stepper
    set every field, the deadlines included)."""

    def __init__(self, sink: Sink, response_deadline: float) -> None:
        self.sink = sink
        self.response_deadline = response_deadline

    def _bridge(self, bridge: Bridge, event: str, at: float, fields: dict[str, str],
                indexes: tuple[Index, ...] = (), data: dict[str, str] | None = None,
                feed: bool = True) -> None:
        self.sink.record(Change(bridge_record(bridge.id), event, at, fields, indexes,
                                {"state": bridge.state.value} | (data or {}),
                                feed=bridge.handed_to if feed else ""))

    def opened(self, bridge: Bridge, event: str, at: float) -> None:
        """The bridge's first change: all its fields and its indexes. A bridge that is
        over as it opens (refused) is on record for the figures, never live."""
        indexes: tuple[Index, ...] = (Index(idx_caller(bridge.citizen.number), bridge.id, at),
                   Index(idx_seat(bridge.seat.endpoint), bridge.id, at),
                   Index(idx_day(iso(at)[:10]), bridge.id, at))
        if bridge.state is not State.ENDED:
            indexes += (Index(IDX_LIVE, bridge.id, at),)
            if bridge.side == "12345":  # every 12345 work order to the police is answered
                indexes += (Index(IDX_DEADLINE, bridge.id, at + self.response_deadline),)
        self._bridge(bridge, event, at, dict(bridge.fields), indexes,
                     feed=bridge.state is not State.ENDED)  # refused at the key: no feed

    def edge(self, bridge: Bridge, event: str, at: float, fields: dict[str, str],
             ended: bool, data: dict[str, str] | None = None) -> None:
        """One edge of the state table (``ended``: this edge ended the bridge). A bridge
        stays live in Redis while it is followed: until it has ended and its citizen has
        hung up (:meth:`citizen_hangup`), so a restarted gateway adopts it."""
        followed_out = ended and "citizen_hangup_at" in bridge.fields
        indexes: tuple[Index, ...] = (Index(IDX_LIVE, bridge.id, -1),) if followed_out \
            else ()
        handed = bridge.fields.get("outcome") in HANDED
        if ended and bridge.side == "12345" and not handed:
            # nothing was handed to 110 (refused, abandoned, kept by 12345): no answer due
            indexes += (Index(IDX_DEADLINE, bridge.id, -1),)
        if ended and "feedback_due_at" in fields:  # the other line took the matter
            indexes += (Index(IDX_DEADLINE, bridge.id, epoch(fields["feedback_due_at"])),)
        if "rerouted_at" in fields and "direction" in fields:  # before this edge's event
            self._moved_line(bridge, at, fields, data)
        self._bridge(bridge, event, at, fields, indexes, data)

    def _moved_line(self, bridge: Bridge, at: float, fields: dict[str, str],
                    data: dict[str, str] | None) -> None:
        """The item typed is a further line's. The line that rang first is told, on its
        feed, that the bridge went there (it hears nothing more of it); the line it goes
        to gets the whole bridge as its first event (who called, from which seat, when),
        as a bridge opened by its own key begins."""
        first = DIRECTIONS[bridge.side].partition("->")[2]
        told: dict[str, str] = {k: fields[k] for k in ("direction", "route", "rerouted_at")
                                if k in fields}
        meta = {"state": bridge.state.value} | (data or {})
        self.sink.record(Change(bridge_record(bridge.id), "rerouted", at, told, (), meta,
                                feed=first))
        self.sink.record(Change(bridge_record(bridge.id), "transfer_requested", at,
                                dict(bridge.fields), (), meta | {"rerouted_from": first},
                                feed=bridge.handed_to))

    def note(self, bridge: Bridge, event: str, at: float, fields: dict[str, str],
             indexes: tuple[Index, ...] = (), data: dict[str, str] | None = None) -> None:
        """A change of the record that is not a state change (it still gets its event)."""
        self._bridge(bridge, event, at, fields, indexes, data)

    def citizen_hangup(self, bridge: Bridge, at: float,
                       data: dict[str, str] | None = None) -> None:
        """The citizen hung up: on an ended bridge, the end of following it."""
        ended = bridge.state is State.ENDED
        self.note(bridge, "citizen_hangup", at, {"citizen_hangup_at": iso(at)},
                  (Index(IDX_LIVE, bridge.id, -1),) if ended else (), data)

    def work_order_needed(self, bridge: Bridge, at: float) -> None:
        self.note(bridge, "work_order_push_needed", at, {
            "work_order_push_needed": "yes",
            "work_order_reason": bridge.fields.get("agent_failure", "")},
            (Index(IDX_PUSH_NEEDED, bridge.id, at),))

    def callback(self, bridge: Bridge, at: float) -> None:
        """Someone must call the citizen back: on the bridge and as a task of its own."""
        self.note(bridge, "callback_needed", at, {"callback_needed": "yes"})
        self.sink.record(Change(callback_record(bridge.id), "callback_needed", at, {
            "bridge_id": bridge.id, "number": bridge.citizen.number,
            "name": bridge.citizen.name, "seat": bridge.seat.endpoint,
            "direction": bridge.fields.get("direction", ""), "at": iso(at),
            "status": "open"}, (Index(IDX_CALLBACKS_OPEN, bridge.id, at),),
            feed=bridge.handed_to))

    def call_registered(self, citizen: Party, dialed: str, at: float,
                        unreadable: str = "", late: bool = False) -> None:
        """``unreadable``: why the caller ID could not be read (it is then not set);
        ``late``: registered after the call, from what the dialplan kept (no gateway
        answered it)."""
        fields = {"uniqueid": citizen.uniqueid, "linkedid": citizen.linkedid,
                  "channel": citizen.channel, "number": citizen.number, "name": citizen.name,
                  "dialed": dialed, "registered_at": iso(at)}
        if unreadable:
            fields["callerid_unreadable"] = unreadable
        if late:
            fields["registered_late"] = "yes"
        indexes: tuple[Index, ...] = (Index(idx_calls_day(iso(at)[:10]), citizen.uniqueid, at),)
        if citizen.number:
            indexes += (Index(idx_calls_caller(citizen.number), citizen.uniqueid, at),)
        self.sink.record(Change(call_record(citizen.uniqueid), "call_registered", at, fields,
                                indexes, id=f"registered:{citizen.uniqueid}"))

    def emergency(self, citizen: Party, flag: str, now: float) -> None:
        """The citizen's emergency flag (``<epoch>|<endpoint>``, as the dialplan put it
        on the channel), on the call's record, once per flag whoever writes it."""
        at, _, by = flag.partition("|")
        try:
            when = float(at)
        except ValueError:
            when = now
        self.sink.record(Change(call_record(citizen.uniqueid), "emergency_flagged", when,
                                {"emergency_at": iso(when), "emergency_by": by},
                                id=f"emergency:{citizen.uniqueid}:{flag}"))
