"""The command runner: what the state table asks for, carried out on Asterisk.

The table (:mod:`gateway.transfer.table`) answers an event with commands; this runs each
one through :class:`~gateway.transfer.effects.Effects` (AMI today) and turns what
Asterisk answers into the next event (a refused ``Originate`` is a failed attempt, a
refused move names who left). It never changes a phase itself: it hands events back to
the stepper (``step``) and notes to the record (``note``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout
from gateway.schema import iso
from gateway.transfer.effects import Effects
from gateway.transfer.events import (
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    DialAgent,
    Event,
    Left,
    Move,
    RecordCallback,
    RecordWorkOrderNeeded,
    Redirected,
    RedirectFailed,
    Release,
    ReturnCitizen,
)
from gateway.transfer.legs import Leg
from gateway.transfer.model import Bridge
from gateway.transfer.persist import Persistor
from gateway.transfer.phase import Role, State

Step = Callable[[Bridge, Event], None]
Note = Callable[[Bridge, str, dict[str, str]], None]


class Commands:
    #: The move waits for the key's feature to have returned (the citizen's Unhold);
    #: without music on hold for the features there is no Unhold: then this long.
    MOVE_FALLBACK = 0.5

    def __init__(self, effects: Effects, persist: Persistor, legs: dict[str, Leg], *,
                 clock: IReactorTime, log: Any, step: Step, note: Note) -> None:
        self.effects = effects
        self.persist = persist
        self.legs = legs  # bridge id → the current attempt's leg (shared with the service)
        self.clock = clock
        self.log = log
        self.step = step
        self.note = note
        self._held: list[Command] | None = None
        self._moves: dict[str, IDelayedCall] = {}  # bridge id → its move, waiting

    # -- holding, while recovery replays a journal ---------------------------------------
    def hold(self, held: list[Command] | None) -> None:
        """While recovery replays a journal, commands that act on Asterisk are kept in
        ``held`` instead of being carried out; ``None`` carries them out again."""
        self._held = held

    @property
    def holding(self) -> bool:
        return self._held is not None

    # -- one command -----------------------------------------------------------------------
    def run(self, bridge: Bridge, command: Command, at_once: bool = False) -> None:
        """Carry out one command. ``at_once``: no waiting for the key's feature to return
        (recovery: it returned long ago)."""
        if self._held is not None and not isinstance(
                command, RecordCallback | RecordWorkOrderNeeded):
            self._held.append(command)
            return
        match command:
            case DialAgent(attempt=attempt, delay=delay):
                self.clock.callLater(delay, self._dial_later, bridge, attempt)
            case CancelAgent():
                self._cancel_agent(bridge)
            case Move():
                # Redirected while the key's Gosub still runs, the key-presser would be
                # lost: the move waits for the feature to have returned.
                if at_once:
                    self._move(bridge)
                else:
                    self._moves[bridge.id] = self.clock.callLater(
                        self.MOVE_FALLBACK, self._move, bridge)
            case BridgeDirect(role=role):
                self._direct(bridge, role)
            case ReturnCitizen():
                self.effects.return_citizen(bridge).addErrback(
                    self._failed, bridge, "return citizen")
                self.note(bridge, "citizen_returned", {"returned_to": bridge.side})
            case Release(role=role):
                channel = bridge.seat.channel if role is Role.SEAT else bridge.citizen.channel
                self.hangup(bridge, channel)
            case RecordCallback():
                self.persist.callback(bridge, self.clock.seconds())
            case RecordWorkOrderNeeded():
                self.persist.work_order_needed(bridge, self.clock.seconds())

    def feature_returned(self, bridge: Bridge) -> None:
        """The key's feature returned: a move waiting for it goes now."""
        waiting = self._moves.pop(bridge.id, None)
        if waiting is not None and waiting.active():
            waiting.cancel()
            self._move(bridge)

    # -- the other line's leg ----------------------------------------------------------------
    def dial(self, bridge: Bridge, attempt: int,
             first: Callable[[], None] | None = None) -> defer.Deferred[Any]:
        """Originate one attempt's leg; a refusal by Asterisk is a failed attempt. The
        action goes to Asterisk before anything is recorded or logged (``first``: what
        is recorded before this attempt's own record): the INVITE waits on nothing the
        gateway keeps for itself. Asterisk's answer is read afterwards, so the records
        keep their order."""
        at = self.clock.seconds()
        self.legs[bridge.id] = Leg(bridge.agent_id(attempt), self.effects.config.ring_timeout,
                                   since=at)
        d = self.effects.originate(bridge, attempt)
        if first is not None:
            first()
        self.note(bridge, "agent_dialing", {"attempt": str(attempt + 1),
                                            "dialing_target": bridge.phase.plan[attempt],
                                            "dialing_at": iso(at)})
        d.addErrback(self._not_dialed, bridge, attempt)
        return d

    def _dial_later(self, bridge: Bridge, attempt: int) -> None:
        if bridge.phase.attempt != attempt or bridge.state not in (
                State.REQUESTED, State.DIALING):
            return  # the citizen left, or someone answered, while the retry waited
        self.dial(bridge, attempt).addErrback(lambda f: None)

    def _not_dialed(self, failure: Failure, bridge: Bridge, attempt: int) -> Failure | None:
        if bridge.phase.attempt == attempt and bridge.state is not State.ENDED:
            if failure.check(AmiActionError):
                self.step(bridge, AgentFailed(self.clock.seconds(),
                                              f"originate refused: {failure.getErrorMessage()}"))
                return None
            if attempt > 0 or not failure.check(AmiNotConnected, AmiTimeout):
                self.step(bridge, AgentFailed(self.clock.seconds(),
                                              f"AMI: {failure.getErrorMessage()}"))
                return None
        return failure  # at the key with AMI down: open() answers the dialplan

    def _cancel_agent(self, bridge: Bridge) -> None:
        leg = self.legs.get(bridge.id)
        channel = (leg.channel if leg else "") or bridge.fields.get("late_agent_channel", "")
        if channel:
            self.hangup(bridge, channel)
        elif leg is not None:
            leg.cancelled = True  # hung up as soon as Asterisk names it

    def leg_named(self, bridge: Bridge, leg: Leg) -> None:
        """Asterisk named the leg's channel (its Newchannel, or a recovery's channel
        list): a leg cancelled while it had no name yet is hung up now."""
        if leg.cancelled and leg.channel:
            leg.cancelled = False
            self.hangup(bridge, leg.channel)

    def hangup(self, bridge: Bridge, channel: str) -> None:
        self.effects.hangup(channel).addErrback(self._failed, bridge, "Hangup")

    # -- moving the parties ------------------------------------------------------------------
    def _move(self, bridge: Bridge) -> None:
        self._moves.pop(bridge.id, None)
        if bridge.state not in (State.REQUESTED, State.ANSWERED):
            return  # the citizen left, or someone joined them, meanwhile
        if "redirected_at" in bridge.fields:
            return  # moved already (by a gateway that is gone, says the journal)
        d = self.effects.move(bridge)
        d.addCallbacks(lambda _: self.step(bridge, Redirected(self.clock.seconds())),
                       self._move_failed, errbackArgs=(bridge,))

    def _move_failed(self, failure: Failure, bridge: Bridge) -> None:
        """Asterisk names the channel that is gone: the citizen hanging up at the key is
        the citizen leaving, the key-presser hanging up is the key-presser leaving (the
        citizen then goes into the conference on their own, by the dialplan)."""
        now = self.clock.seconds()
        message = failure.value.response.get("Message") \
            if isinstance(failure.value, AmiActionError) else ""
        if message.startswith("ExtraChannel does not exist"):
            self.step(bridge, Left(now, Role.SEAT, bridge.seat.channel))
        elif message.startswith("Channel does not exist") or \
                message == "Redirect failed, channel not up.":
            self.step(bridge, Left(now, Role.CITIZEN, bridge.citizen.channel))
        else:
            self.step(bridge, RedirectFailed(now, failure.getErrorMessage()))

    def _direct(self, bridge: Bridge, role: Role) -> None:
        other = bridge.seat.channel if role is Role.SEAT else \
            bridge.fields.get("agent_channel", "")
        if role is Role.AGENT:
            why = "handoff"
        elif "agent_answered_at" in bridge.fields:
            why = "declined"
        else:
            why = "failed"
        self.effects.direct(bridge, other, why).addErrback(
            self._failed, bridge, "bridge direct")
        self.note(bridge, "bridged_direct", {"direct_with": role.value})

    def _failed(self, failure: Failure, bridge: Bridge, action: str) -> None:
        self.log.error("bridge.command_failed", bridge_id=bridge.id, action=action,
                       error=failure.getErrorMessage())
