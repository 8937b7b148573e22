"""The transfer service: a key press becomes a bridge; Asterisk's news moves it on.

:meth:`TransferService.step` is the one place an edge is applied: the state table
(:mod:`gateway.bridge.state`) gives the next phase, the fields and the commands; the
service keeps the phase, queues the change (:mod:`gateway.transfer.persist`), logs the
edge and carries out the commands (:mod:`gateway.transfer.effects`). What an AMI event
means for which bridge is :mod:`gateway.transfer.correlate`'s business; the other
line's leg is :class:`gateway.transfer.legs.Leg`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from gateway.ami.codec import AmiMessage
from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout
from gateway.bridge.store import Index
from gateway.catalogue import Catalogue
from gateway.config import TransferConfig
from gateway.outcome import Outcome
from gateway.schema import iso
from gateway.transfer import decide
from gateway.transfer.arrival import Arrivals
from gateway.transfer.correlate import (
    EVENTS,
    Fact,
    FeatureReturned,
    KeyDoneFact,
    LegFact,
    NoticeFact,
    PartyGone,
    correlate,
)
from gateway.transfer.digits import CodeReader
from gateway.transfer.effects import Ami, Effects
from gateway.transfer.events import (
    AgentAnswered,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    DialAgent,
    Event,
    IllegalTransition,
    Joined,
    KeyDone,
    Left,
    Move,
    RecordCallback,
    RecordWorkOrderNeeded,
    Redirected,
    RedirectFailed,
    Release,
    ReturnCitizen,
)
from gateway.transfer.ids import new_bridge_id
from gateway.transfer.legs import CAUSE_WAIT, Leg, LegAnswered, LegFailed, LegNews
from gateway.transfer.model import Bridge, CodeWait, KeyPress, Opened, Party, Refused
from gateway.transfer.persist import Persistor, Sink
from gateway.transfer.phase import Mode, Role, State
from gateway.transfer.registry import Registry
from gateway.transfer.table import transition


class Ownership:
    """Who runs which live bridge when several gateways share an Asterisk: a no-op here;
    :class:`gateway.transfer.cluster.Leases` keeps leases in Redis."""

    instance = "gateway"

    def claim(self, bridge_id: str) -> None:
        """This process opened the bridge: it owns it."""

    def release(self, bridge_id: str) -> None:
        """The bridge ended: nobody needs to own it any more."""


class Meter(Protocol):
    """What the service counts for the metrics (the gateway service's is
    :class:`gateway.metrics.TransferMeter`; process mode counts nothing)."""

    def ended(self, direction: str, outcome: str, recovered: bool) -> None:
        """A bridge ended."""

    def answered(self, direction: str, seconds: float) -> None:
        """The other line answered, ``seconds`` after the key."""


class NoMeter:
    def ended(self, direction: str, outcome: str, recovered: bool) -> None:
        pass

    def answered(self, direction: str, seconds: float) -> None:
        pass


class TransferService:
    #: Seconds an ended bridge stays in memory for late events, and the journal of a
    #: bridge stays in Asterisk after the bridge ended (then it is deleted).
    KEEP_ENDED = 60.0
    KEEP_JOURNAL = 30.0
    #: The move waits for the key's feature to have returned (the citizen's Unhold);
    #: without music on hold for the features there is no Unhold: then this long.
    MOVE_FALLBACK = 0.5

    def __init__(
        self,
        ami: Ami,
        sink: Sink,
        config: TransferConfig,
        *,
        clock: IReactorTime,
        log: Any,
        catalogue: Catalogue | None = None,
        new_id: Callable[[float], str] = new_bridge_id,
        ownership: Ownership | None = None,
        meter: Meter | None = None,
        feedback_hours: float = 72.0,
        ticket_pattern: str = r"^\d{8,20}$",
    ) -> None:
        self.ami = ami
        self.config = config
        self.clock = clock
        self.log = log
        self.catalogue = catalogue or Catalogue(())
        self.new_id = new_id
        self.ownership = ownership or Ownership()
        self.meter: Meter = meter or NoMeter()
        self.effects = Effects(ami, config)
        self.persist = Persistor(sink, config.response_deadline, self._feedback_hours)
        self.feedback_hours = feedback_hours
        self.arrivals = Arrivals(sink.record, clock.seconds, config.response_deadline,
                                 ticket_pattern, lambda code: self.classify(code, "12345")[0],
                                 self.ownership.instance)
        self.registry = Registry()
        self.legs: dict[str, Leg] = {}  # bridge id → the current attempt's leg
        self.asterisk = ""  # the Asterisk's system name, learnt at login
        self._held: list[Command] | None = None
        self._moves: dict[str, IDelayedCall] = {}  # bridge id → its move, waiting
        self.codes = CodeReader(ami.events, clock, config.code_digits, config.code_timeout)
        ami.events.subscribe(self.on_ami_event, EVENTS)

    def reconfigure(self, config: TransferConfig, catalogue: Catalogue) -> None:
        """A reload (SIGHUP): the next key uses the new values; bridges already open
        keep the plan they were given."""
        self.config = self.effects.config = config
        self.catalogue = catalogue
        self.persist.response_deadline = self.arrivals.response_deadline = \
            config.response_deadline
        self.codes.digits, self.codes.timeout = config.code_digits, config.code_timeout

    def _feedback_hours(self, category_id: str) -> float:
        """12345's feedback deadline for a category (categories.yaml), else the site's."""
        category = self.catalogue.category(category_id)
        return category.feedback_hours if category and category.feedback_hours else \
            self.feedback_hours

    def live(self) -> list[dict[str, str]]:
        """The bridges not yet ended, oldest first (for the supervisor's page)."""
        return [dict(b.fields) for b in self.registry.live()]

    # -- calls reaching a line ------------------------------------------------------------
    def register_call(self, citizen: Party, dialed: str, unreadable: str = "") -> None:
        """A citizen's call reached 110 or 12345: record it (never waits on the store)."""
        self.persist.call_registered(citizen, dialed, self.clock.seconds(), unreadable)
        if unreadable:
            self.log.warning("call.callerid_unreadable", uniqueid=citizen.uniqueid,
                             channel=citizen.channel, error=unreadable)
        # debug: the AGI session's own canonical line already says it (script, channel,
        # uniqueid, outcome), and every 110 call passes here
        self.log.debug("call.registered", uniqueid=citizen.uniqueid, channel=citizen.channel,
                       dialed=dialed)

    def flag_emergency(self, citizen: Party, flag: str) -> None:
        """The call-taker pressed the emergency key; the dialplan has already put the
        flag (``<epoch>|<endpoint>``) on the citizen's channel, where every gateway
        reads it. This records it, once per flag."""
        self.persist.emergency(citizen, flag, self.clock.seconds())
        self.log.warning("call.emergency", uniqueid=citizen.uniqueid, flag=flag)

    # -- the key ------------------------------------------------------------------------
    async def open(self, press: KeyPress) -> Opened | Refused:
        """The key was pressed: refuse, or open a bridge and dial the other line now.
        Answers once Asterisk has queued the Originate, so that the dialplan knows."""
        now = self.clock.seconds()
        refusal = decide.refusal_at_key(press, self.config, self.ami.connected)
        if refusal is not None and refusal.reason == "already":
            self.log.info("bridge.key_again", citizen=press.citizen.channel,
                          bridge_id=press.active)
            return refusal
        bridge = self._new(press, now)
        if refusal is not None:
            return self._refused(bridge, refusal, now, press)
        self.registry.add(bridge)
        self.ownership.claim(bridge.id)

        def opened() -> None:
            self.persist.opened(bridge, "transfer_requested", now)
            self.log.info("bridge.requested", bridge_id=bridge.id,
                          citizen=press.citizen.channel, seat=press.seat.channel,
                          direction=bridge.fields["direction"], mode=bridge.mode.value)

        try:
            await self._dial(bridge, 0, first=opened)
        except (AmiNotConnected, AmiTimeout) as exc:
            self.step(bridge, RedirectFailed(self.clock.seconds(), f"AMI: {exc}"))
            return Refused("ami_down", str(exc), bridge_id=bridge.id)
        return Opened(bridge.id)

    def _new(self, press: KeyPress, now: float) -> Bridge:
        return decide.new_bridge(press, self.new_id(now), now, self.config, self.asterisk,
                                 self.ownership.instance)

    def _refused(self, bridge: Bridge, refusal: Refused, now: float, press: KeyPress
                 ) -> Refused:
        """A refusal is on record (for the figures and the joint meetings), never live."""
        self.persist.opened(decide.refused(bridge, refusal, now), "transfer_refused", now)
        if press.emergency:
            self.flag_emergency(press.citizen, press.emergency)
        self.log.warning("bridge.refused", bridge_id=bridge.id, reason=refusal.reason,
                         detail=refusal.detail)
        return Refused(refusal.reason, refusal.detail, refusal.prompt, bridge.id)

    def classify(self, typed: str, side: str) -> tuple[dict[str, str], Refused | None]:
        return decide.classify(typed, self.catalogue, side, self.config)

    # -- the item code, from the digits Asterisk reports ------------------------------
    def collect_code(self, press: KeyPress) -> CodeWait:
        """The digits the key-presser types after the key (see :mod:`.digits`)."""
        key = self.config.consult_key if press.mode is Mode.CONSULT else self.config.onekey
        code = self.codes.collect(key, press.seat.uniqueid)
        return CodeWait(code.called, code)

    # -- what Asterisk reports ----------------------------------------------------------
    def on_ami_event(self, message: AmiMessage) -> None:
        now = self.clock.seconds()
        for bridge, fact in correlate(message, self.registry, now):
            self.apply(bridge, fact, now)

    def apply(self, bridge: Bridge, fact: Fact, at: float,
              data: dict[str, str] | None = None) -> None:
        """One fact about a bridge, live or (``data``: recovered from) the journal."""
        match fact:
            case LegFact():
                self._leg_fact(bridge, fact, at)
            case KeyDoneFact(code=code):
                fields, refusal = self.classify(code, bridge.side)
                self.step(bridge, KeyDone(at, tuple(fields.items()),
                                          refusal.reason if refusal else "",
                                          refusal.detail if refusal else ""), data)
            case FeatureReturned():
                waiting = self._moves.pop(bridge.id, None)
                if waiting is not None and waiting.active():
                    waiting.cancel()
                    self._move(bridge)
            case NoticeFact():
                if "notice_played_at" not in bridge.fields:
                    self.note(bridge, "notice_played", {"notice_played_at": iso(at)}, at=at,
                              data=data)
            case PartyGone(role=role):
                if role is Role.CITIZEN:
                    self.citizen_gone(bridge, at, data)
                self.step(bridge, Left(at, role, ""), data)
            case Joined(role=Role.CITIZEN) if "notice_played_at" not in bridge.fields:
                # the dialplan plays the notice before the citizen joins, but AMI may
                # report the join first (another Stasis topic): the record keeps the order
                self.apply(bridge, NoticeFact(), at, data)
                self.step(bridge, fact, data)
            case _:
                self.step(bridge, fact, data)

    def _leg_fact(self, bridge: Bridge, fact: LegFact, at: float) -> None:
        leg = self.legs.get(bridge.id)
        if leg is None or fact.attempt != bridge.phase.attempt:
            return  # an earlier attempt's leg
        news: LegNews | None = None
        match fact.kind:
            case "created":
                leg.created(fact.channel, at)
                self.leg_named(bridge, leg)
            case "hangup_request" | "hangup":
                news = leg.hangup(fact.cause, fact.kind == "hangup")
            case "response":
                news = leg.responded(fact.success, fact.channel, at)
                if news is None and leg.failing:
                    self.clock.callLater(CAUSE_WAIT, self._leg_news, bridge, leg)
        if news is not None:
            self._leg_report(bridge, leg, news)

    def _leg_news(self, bridge: Bridge, leg: Leg) -> None:
        news = leg.timed_out()
        if news is not None:
            self._leg_report(bridge, leg, news)

    def _leg_report(self, bridge: Bridge, leg: Leg, news: LegNews) -> None:
        if self.legs.get(bridge.id) is not leg:
            return
        if isinstance(news, LegAnswered):
            self.step(bridge, AgentAnswered(self.clock.seconds(), news.channel, news.uniqueid))
        elif isinstance(news, LegFailed):
            self.log.info("bridge.agent_leg_failed", bridge_id=bridge.id, leg=leg.uniqueid,
                          cause=news.cause, rang_for=round(news.rang_for, 3),
                          reason=news.reason)
            self.step(bridge, AgentFailed(news.at, news.reason))

    def _count(self, bridge: Bridge, event: Event, ended: bool, recovered: bool) -> None:
        direction = bridge.fields.get("direction", "")
        if isinstance(event, AgentAnswered) and not recovered:
            requested = bridge.fields.get("requested_at", "")
            try:
                at = datetime.fromisoformat(requested.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return
            self.meter.answered(direction, event.at - at)
        if ended:
            self.meter.ended(direction, bridge.fields.get("outcome", Outcome.UNKNOWN), recovered)

    # -- the one place an edge is applied ------------------------------------------------
    def step(self, bridge: Bridge, event: Event, data: dict[str, str] | None = None) -> None:
        try:
            edge = transition(bridge.phase, event)
        except IllegalTransition as exc:
            self.log.error("bridge.illegal_transition", bridge_id=bridge.id,
                           state=bridge.state.value, bridge_event=event.kind, error_id=exc.code)
            return
        before = bridge.state
        if edge.phase == bridge.phase and not edge.fields and not edge.commands:
            return  # nothing new (a leave counted once, late news of an earlier attempt)
        bridge.phase = edge.phase
        fields = dict(edge.fields) | {"state": edge.state.value}
        if edge.outcome is not None:
            fields["outcome"] = edge.outcome.value
        bridge.fields.update(fields)
        name = f"{event.kind}:{event.role}" if isinstance(event, Joined | Left) else event.kind
        ended = edge.state is State.ENDED and before is not State.ENDED
        self.persist.edge(bridge, name, event.at, fields, ended, data)
        self.log.info("bridge.transition", bridge_id=bridge.id, bridge_event=name,
                      from_state=before.value, to_state=edge.state.value,
                      outcome=edge.outcome.value if edge.outcome else None,
                      recovered=bool(data))
        self._count(bridge, event, ended, bool(data))
        if ended:
            self._ended(bridge)
        for command in edge.commands:
            self.run(bridge, command)

    def note(self, bridge: Bridge, event: str, fields: dict[str, str],
             indexes: tuple[Index, ...] = (), at: float | None = None,
             data: dict[str, str] | None = None) -> None:
        bridge.fields.update(fields)
        self.persist.note(bridge, event, self.clock.seconds() if at is None else at, fields,
                          indexes, data)

    def citizen_gone(self, bridge: Bridge, at: float,
                     data: dict[str, str] | None = None) -> None:
        """The citizen hung up (once per bridge). A bridge that had ended with the
        citizen still on the line is followed no further from here."""
        if "citizen_hangup_at" in bridge.fields:
            return
        bridge.fields["citizen_hangup_at"] = iso(at)
        self.persist.citizen_hangup(bridge, at, data)
        if bridge.state is State.ENDED:
            self._followed(bridge)

    def _ended(self, bridge: Bridge) -> None:
        if Role.CITIZEN not in bridge.phase.gone and self._held is None:
            self.effects.clear_active(bridge).addErrback(lambda _: None)  # may be gone
        if "citizen_hangup_at" in bridge.fields:
            self._followed(bridge)
        # else: the citizen is still on the line (a plain call with the other line, or
        # back with the line they called); the bridge stays followed, leased and live
        # in Redis until their hang-up is on record, whoever watches then

    def _followed(self, bridge: Bridge) -> None:
        """Nothing more to follow: the lease goes, memory and journal soon after."""
        self.ownership.release(bridge.id)
        self.clock.callLater(self.KEEP_JOURNAL, self._forget_journal, bridge.id)
        self.clock.callLater(self.KEEP_ENDED, self._forget, bridge)

    def _forget(self, bridge: Bridge) -> None:
        if self.registry.get(bridge.id) is bridge and bridge.state is State.ENDED:
            self.registry.remove(bridge)
            self.legs.pop(bridge.id, None)

    def _forget_journal(self, bridge_id: str) -> None:
        self.effects.forget_journal(bridge_id).addErrback(
            lambda f: self.log.info("bridge.journal_kept", bridge_id=bridge_id,
                                    error=f.getErrorMessage()))

    # -- commands ----------------------------------------------------------------------
    def hold(self, held: list[Command] | None) -> None:
        """While recovery replays a journal, commands that act on Asterisk are kept in
        ``held`` instead of being carried out; ``None`` carries them out again."""
        self._held = held

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
                    self._command_failed, bridge, "return citizen")
                self.note(bridge, "citizen_returned", {"returned_to": bridge.side})
            case Release(role=role):
                channel = bridge.seat.channel if role is Role.SEAT else bridge.citizen.channel
                self._hangup(bridge, channel)
            case RecordCallback():
                self.persist.callback(bridge, self.clock.seconds())
            case RecordWorkOrderNeeded():
                self.persist.work_order_needed(bridge, self.clock.seconds())

    def _move(self, bridge: Bridge) -> None:
        self._moves.pop(bridge.id, None)
        if bridge.state not in (State.REQUESTED, State.ANSWERED):
            return  # the citizen left, or someone joined them, meanwhile
        if "redirected_at" in bridge.fields:
            return  # moved already (by a gateway that is gone, says the journal)
        d = self.effects.move(bridge)
        d.addCallbacks(lambda _: self.step(bridge, Redirected(self.clock.seconds())),
                       self._move_failed, errbackArgs=(bridge,))

    def _dial(self, bridge: Bridge, attempt: int,
              first: Callable[[], None] | None = None) -> defer.Deferred[Any]:
        """Originate one attempt's leg; a refusal by Asterisk is a failed attempt. The
        action goes to Asterisk before anything is recorded or logged (``first``: what
        is recorded before this attempt's own record): the INVITE waits on nothing the
        gateway keeps for itself. Asterisk's answer is read afterwards, so the records
        keep their order."""
        at = self.clock.seconds()
        self.legs[bridge.id] = Leg(bridge.agent_id(attempt), self.config.ring_timeout,
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
        self._dial(bridge, attempt).addErrback(lambda f: None)

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
            self._hangup(bridge, channel)
        elif leg is not None:
            leg.cancelled = True  # hung up as soon as Asterisk names it

    def leg_named(self, bridge: Bridge, leg: Leg) -> None:
        """Asterisk named the leg's channel (its Newchannel, or a recovery's channel
        list): a leg cancelled while it had no name yet is hung up now."""
        if leg.cancelled and leg.channel:
            leg.cancelled = False
            self._hangup(bridge, leg.channel)

    def _hangup(self, bridge: Bridge, channel: str) -> None:
        self.effects.hangup(channel).addErrback(self._command_failed, bridge, "Hangup")

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
            self._command_failed, bridge, "bridge direct")
        self.note(bridge, "bridged_direct", {"direct_with": role.value})

    def _command_failed(self, failure: Failure, bridge: Bridge, action: str) -> None:
        self.log.error("bridge.command_failed", bridge_id=bridge.id, action=action,
                       error=failure.getErrorMessage())
