"""The transfer service: turns a key press into a three-party conference and follows it.

It owns the live bridges of this gateway process. Each bridge moves only through
:func:`gateway.bridge.state.transition`; :meth:`TransferService._step` is the one place
that applies an edge: it updates the record, logs the edge, queues the change for the
bridge log and carries out the commands (AMI actions) the edge asks for.

AMI tells it what Asterisk did: the Redirect's response; ``Newchannel`` and
``OriginateResponse`` for the other line's leg (matched by the ``ChannelId`` the gateway
gave it); ``ConfbridgeJoin`` / ``ConfbridgeLeave`` / ``ConfbridgeEnd`` for who is in the
conference; ``Hangup`` for a citizen who leaves before reaching the conference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gateway.ami.client import AmiResult, EventBus
from gateway.ami.codec import AmiMessage, HeaderItems
from gateway.ami.errors import AmiActionError
from gateway.bridge.log import BridgeLog
from gateway.bridge.state import (
    AgentAnswered,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    ConferenceEnded,
    Context,
    DialAgent,
    Event,
    IllegalTransition,
    Joined,
    Left,
    Mode,
    Outcome,
    RecordCallback,
    RecordWorkOrderNeeded,
    Redirected,
    RedirectFailed,
    ReturnCitizen,
    Role,
    State,
    iso,
    transition,
)
from gateway.bridge.store import Change, Index
from gateway.config import TransferConfig
from gateway.transfer.categories import Catalogue, Category, Item
from gateway.transfer.ids import new_bridge_id

CONFERENCE_PREFIX = "linkgw-"
JOIN_CONTEXT = {Mode.TRANSFER: "linkgw-join-{role}", Mode.CONSULT: "linkgw-consult-{role}"}

#: Q.850 hangup causes of the other line's leg, in the words of the record. Asterisk 22's
#: OriginateResponse says ``Reason: 0`` for a busy or refused leg (3 at the ring
#: timeout); the leg's HangupRequest/Hangup, just before or after it, carries the cause.
FAILURE_CAUSES = {"17": "busy", "18": "no answer", "19": "no answer", "21": "rejected"}


def failure_reason(cause: str, rang_for: float, ring_timeout: float) -> str:
    """Busy / no answer / rejected / unreachable from a hangup cause and the ring time."""
    if cause in FAILURE_CAUSES:
        return FAILURE_CAUSES[cause]
    if cause in ("", "0", "16") and rang_for >= ring_timeout - 0.5:
        return "no answer"  # Asterisk gave up at the ring timeout
    return "unreachable"


#: The two lines: who the key-presser works for → where the matter goes.
DIRECTIONS = {"110": "110->12345", "12345": "12345->110"}


class Ami(Protocol):
    events: EventBus

    def action(
        self, action: str, headers: HeaderItems = (), timeout: float = 5.0
    ) -> defer.Deferred[AmiResult]: ...


@dataclass(frozen=True)
class Party:
    """One leg as Asterisk names it; ``number``/``name`` exactly as received."""

    channel: str
    uniqueid: str
    linkedid: str = ""
    number: str = ""
    name: str = ""
    endpoint: str = ""


@dataclass
class Bridge:
    id: str
    citizen: Party
    seat: Party
    side: str  # the line the key-presser works for: "110" or "12345"
    mode: Mode
    plan: tuple[str, ...]
    state: State = State.REQUESTED
    seq: int = 0
    attempt: int = 0
    seat_present: bool = True
    fields: dict[str, str] = field(default_factory=dict)
    agent_channels: dict[str, str] = field(default_factory=dict)  # ChannelId → channel
    agent_started: dict[str, float] = field(default_factory=dict)  # ChannelId → time
    agent_causes: dict[str, str] = field(default_factory=dict)  # ChannelId → Q.850 cause
    agent_failed: dict[str, float] = field(default_factory=dict)  # ChannelId → when
    agent_gone: set[str] = field(default_factory=set)  # ChannelIds whose Hangup came

    @property
    def conference(self) -> str:
        return CONFERENCE_PREFIX + self.id

    def agent_id(self, attempt: int | None = None) -> str:
        """The ChannelId given to the other line's leg of one attempt."""
        return f"{self.id}-a{self.attempt if attempt is None else attempt}"

    def role_of(self, uniqueid: str) -> Role | None:
        if uniqueid == self.citizen.uniqueid:
            return Role.CITIZEN
        if uniqueid == self.seat.uniqueid:
            return Role.SEAT
        if uniqueid == self.agent_id():
            return Role.AGENT
        return None


class TransferRefused(Exception):
    """No transfer; ``reason`` is a stable word, ``prompt`` what the key-presser hears."""

    code = "transfer_refused"

    def __init__(self, reason: str, detail: str, prompt: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.prompt = prompt


class TransferService:
    #: Seconds an ended bridge (or a call's record counter) stays in memory for late
    #: events, and an emergency flag for its call: nothing here grows without end.
    KEEP_ENDED = 3600.0
    KEEP_EMERGENCY = 12 * 3600.0

    def __init__(
        self,
        ami: Ami,
        bridge_log: BridgeLog,
        config: TransferConfig,
        *,
        clock: IReactorTime,
        log: Any,
        catalogue: Catalogue | None = None,
        new_id: Callable[[float], str] = new_bridge_id,
    ) -> None:
        self.ami = ami
        self.bridge_log = bridge_log
        self.config = config
        self.clock = clock
        self.log = log
        self.catalogue = catalogue or Catalogue(())
        self.new_id = new_id
        self.bridges: dict[str, Bridge] = {}
        self._by_citizen: dict[str, str] = {}
        self._by_citizen_uid: dict[str, str] = {}
        self._seq: dict[str, int] = {}
        self.emergencies: set[str] = set()  # citizen uniqueids flagged by a call-taker
        ami.events.subscribe(self.on_ami_event, [
            "ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd", "OriginateResponse",
            "Newchannel", "HangupRequest", "Hangup"])

    def live(self) -> list[dict[str, str]]:
        """The bridges not yet ended, oldest first (for the supervisor's page)."""
        return [dict(b.fields) for b in self.bridges.values() if b.state is not State.ENDED]

    # -- calls reaching a line ----------------------------------------------------------
    def register_call(self, citizen: Party, dialed: str) -> None:
        """A citizen's call reached 110 or 12345: record it (never waits on the store)."""
        now = self.clock.seconds()
        self._record(f"call:{citizen.uniqueid}", "call_registered", now, {
            "uniqueid": citizen.uniqueid, "linkedid": citizen.linkedid,
            "channel": citizen.channel, "number": citizen.number, "name": citizen.name,
            "dialed": dialed, "registered_at": iso(now),
        }, (Index(f"calls:caller:{citizen.number}", citizen.uniqueid, now),))
        self.log.info("call.registered", uniqueid=citizen.uniqueid, channel=citizen.channel,
                      dialed=dialed)

    def flag_emergency(self, citizen: Party, seat: Party) -> None:
        """The call-taker pressed the emergency key: this call is never transferred."""
        now = self.clock.seconds()
        if citizen.uniqueid not in self.emergencies:
            self.emergencies.add(citizen.uniqueid)
            self.clock.callLater(self.KEEP_EMERGENCY, self.emergencies.discard,
                                 citizen.uniqueid)
        self._record(f"call:{citizen.uniqueid}", "emergency_flagged", now, {
            "emergency_at": iso(now), "emergency_by": seat.endpoint})
        self.log.warning("call.emergency", uniqueid=citizen.uniqueid, seat=seat.channel)

    def _record(self, record: str, event: str, at: float, fields: dict[str, str],
                indexes: tuple[Index, ...] = ()) -> None:
        seq = self._seq.get(record, 0) + 1
        if seq == 1:  # calls and callbacks are written for minutes, not forever
            self.clock.callLater(self.KEEP_ENDED, self._seq.pop, record, None)
        self._seq[record] = seq
        self.bridge_log.record(Change(record, seq, event, at, fields, indexes))

    # -- the key ------------------------------------------------------------------------
    def classify(self, code: str) -> Category | Item | None:
        return self.catalogue.lookup(code) if code else None

    def request(self, citizen: Party, seat: Party, *, side: str = "110",
                mode: Mode = Mode.TRANSFER, code: str = "") -> Bridge:
        """The key was pressed: open a bridge, or raise TransferRefused (recorded)."""
        active = self._by_citizen.get(citizen.channel)
        if active is not None:
            raise TransferRefused("already", f"transfer {active} already running")
        now = self.clock.seconds()
        what = self.classify(code)
        bridge = Bridge(self.new_id(now), citizen, seat, side, mode, self._plan(side))
        bridge.fields = self._opening_fields(bridge, now, code, what)
        refusal = self._refusal(citizen, side, code, what)
        if refusal is not None:
            self._open_ended(bridge, "transfer_refused", now, Outcome.REFUSED, {
                "refusal": refusal.reason, "refusal_detail": refusal.detail})
            self.log.warning("bridge.refused", bridge_id=bridge.id, reason=refusal.reason,
                             detail=refusal.detail)
            raise refusal
        self.bridges[bridge.id] = bridge
        self._by_citizen[citizen.channel] = bridge.id
        self._by_citizen_uid[citizen.uniqueid] = bridge.id
        self._open(bridge, "transfer_requested", now)
        self.log.info("bridge.requested", bridge_id=bridge.id, citizen=citizen.channel,
                      seat=seat.channel, direction=bridge.fields["direction"],
                      mode=mode.value, code=code)
        return bridge

    def ended_at_the_key(self, citizen: Party, seat: Party, side: str = "110") -> None:
        """The call ended while the key-presser was typing the item code: no transfer
        was opened, but someone meant to hand this citizen over: record an abandoned
        bridge and a callback task."""
        now = self.clock.seconds()
        bridge = Bridge(self.new_id(now), citizen, seat, side, Mode.TRANSFER, self._plan(side))
        bridge.fields = self._opening_fields(bridge, now, "", None)
        self._open_ended(bridge, "transfer_abandoned", now, Outcome.ABANDONED, {
            "error": "the call ended while the key was being used"})
        self._callback(bridge)
        self.log.warning("bridge.abandoned_at_key", bridge_id=bridge.id,
                         citizen=citizen.channel)

    def _open_ended(self, bridge: Bridge, event: str, now: float, outcome: Outcome,
                    fields: dict[str, str]) -> None:
        """A bridge that is over as it opens (refused, or the call ended at the key): on
        record for the figures, never in the live set."""
        bridge.state = State.ENDED
        bridge.fields |= {"state": State.ENDED.value, "outcome": outcome.value,
                          "ended_at": iso(now)} | fields
        self._open(bridge, event, now)

    def _plan(self, side: str) -> tuple[str, ...]:
        c = self.config
        target, alternate = (c.target, c.alternate) if side == "110" else \
            (c.reverse_target, c.reverse_alternate)
        return (target,) * c.attempts + ((alternate,) if alternate else ())

    def _refusal(self, citizen: Party, side: str, code: str,
                 what: Category | Item | None) -> TransferRefused | None:
        prompt = self.config.refusal_prompt
        if citizen.uniqueid in self.emergencies:
            return TransferRefused("emergency", "the call-taker flagged an emergency", prompt)
        if side == "110" and isinstance(what, Item) and what.never_transfer:
            return TransferRefused("never_transfer", f"{what.id} stays with 110", prompt)
        if code and what is None:
            return TransferRefused("unknown_code", f"no category or item has code {code}",
                                   prompt)
        return None

    def _opening_fields(self, bridge: Bridge, now: float, code: str,
                        what: Category | Item | None) -> dict[str, str]:
        c, s = bridge.citizen, bridge.seat
        fields = {
            "bridge_id": bridge.id, "direction": DIRECTIONS[bridge.side],
            "mode": bridge.mode.value, "state": bridge.state.value,
            "conference": bridge.conference, "requested_at": iso(now),
            "citizen_number": c.number, "citizen_name": c.name, "citizen_channel": c.channel,
            "citizen_uniqueid": c.uniqueid, "citizen_linkedid": c.linkedid,
            "seat": s.endpoint, "seat_channel": s.channel, "seat_uniqueid": s.uniqueid,
            "seat_linkedid": s.linkedid, "target": bridge.plan[0],
            "plan": ",".join(bridge.plan), "code": code,
            "recording": f"{self.config.recording_dir}/linkgw-{bridge.id}.wav",
        }
        if isinstance(what, Item):
            fields |= {"category": what.category, "item": what.id, "item_name": what.name_zh}
        elif isinstance(what, Category):
            fields |= {"category": what.id}
        if bridge.side == "12345":
            fields["response_due_at"] = iso(now + self.config.response_deadline)
        return fields

    def _open(self, bridge: Bridge, event: str, now: float) -> None:
        day = iso(now)[:10]
        indexes: tuple[Index, ...] = (
            Index(f"caller:{bridge.citizen.number}", bridge.id, now),
            Index(f"seat:{bridge.seat.endpoint}", bridge.id, now),
            Index(f"day:{day}", bridge.id, now))
        if bridge.side == "12345" and bridge.state is not State.ENDED:
            # every 12345 work order handed to the police must be answered in time
            indexes += (Index("deadline", bridge.id, now + self.config.response_deadline),)
        self._persist(bridge, event, now, dict(bridge.fields), indexes)

    def start(self, bridge_id: str) -> None:
        """Move citizen + seat into the conference with one dual Redirect."""
        bridge = self.bridges[bridge_id]
        if bridge.state is not State.REQUESTED:
            return  # the citizen left before the move
        context = JOIN_CONTEXT[bridge.mode]
        d = self.ami.action("Redirect", [
            ("Channel", bridge.citizen.channel),
            ("ExtraChannel", bridge.seat.channel),
            ("Context", context.format(role=Role.CITIZEN)),
            ("Exten", bridge.id), ("Priority", "1"),
            ("ExtraContext", context.format(role=Role.SEAT)),
            ("ExtraExten", bridge.id), ("ExtraPriority", "1"),
        ])
        d.addCallbacks(lambda _: self._step(bridge, Redirected(self.clock.seconds())),
                       self._redirect_failed, errbackArgs=(bridge,))

    def _redirect_failed(self, failure: Failure, bridge: Bridge) -> None:
        """Asterisk names the first channel (the citizen) when it is gone: "Channel does
        not exist: …" or "Redirect failed, channel not up." That is the citizen hanging
        up at the key, not a failure of the gateway."""
        now, reason = self.clock.seconds(), failure.getErrorMessage()
        message = failure.value.response.get("Message") \
            if isinstance(failure.value, AmiActionError) else ""
        if message.startswith("Channel does not exist") or \
                message == "Redirect failed, channel not up.":
            self._step(bridge, Left(now, Role.CITIZEN, bridge.citizen.channel))
        else:
            self._step(bridge, RedirectFailed(now, reason))

    # -- what Asterisk reports ----------------------------------------------------------
    def on_ami_event(self, message: AmiMessage) -> None:
        now = self.clock.seconds()
        name = message.event
        if name in ("OriginateResponse", "Newchannel", "HangupRequest"):
            self._agent_leg_event(message, now)
            return
        if name == "Hangup":
            self._agent_leg_event(message, now)
            self._citizen_hangup(message, now)
            return
        conference = message.get("Conference")
        if not conference.startswith(CONFERENCE_PREFIX):
            return
        bridge = self.bridges.get(conference[len(CONFERENCE_PREFIX):])
        if bridge is None:
            return
        if name == "ConfbridgeEnd":
            self._step(bridge, ConferenceEnded(now))
            return
        role = bridge.role_of(message.get("Uniqueid"))
        if role is None:
            self.log.warning("bridge.unknown_party", bridge_id=bridge.id,
                             channel=message.get("Channel"))
            return
        channel = message.get("Channel")
        if name == "ConfbridgeJoin":
            self._step(bridge, Joined(now, role, channel, message.get("Linkedid")))
        else:
            self._step(bridge, Left(now, role, channel))

    def _agent_leg_event(self, message: AmiMessage, now: float) -> None:
        uniqueid = message.get("Uniqueid")
        bridge = self.bridges.get(uniqueid.rsplit("-a", 1)[0]) if "-a" in uniqueid else None
        if bridge is None:
            return
        if message.event == "Newchannel":
            bridge.agent_channels[uniqueid] = message.get("Channel")
            bridge.agent_started[uniqueid] = now
            return
        if message.event in ("HangupRequest", "Hangup"):
            cause = message.get("Cause")
            if cause not in ("", "0") or uniqueid not in bridge.agent_causes:
                bridge.agent_causes[uniqueid] = cause  # a real cause beats an early 0
            if message.event == "Hangup":
                bridge.agent_gone.add(uniqueid)
            if uniqueid in bridge.agent_failed and self._cause_known(bridge, uniqueid):
                self._agent_failed(bridge, uniqueid)
            return
        if uniqueid != bridge.agent_id():
            return  # a response about an earlier attempt
        if message.get("Response") == "Success":
            self._step(bridge, AgentAnswered(now, message.get("Channel"), uniqueid))
            return
        # Failure. The cause comes with the leg's HangupRequest/Hangup, which Asterisk
        # sends just before or just after this response: wait for it (1 s at most).
        bridge.agent_failed[uniqueid] = now
        if self._cause_known(bridge, uniqueid):
            self._agent_failed(bridge, uniqueid)
        else:
            self.clock.callLater(1.0, self._agent_failed, bridge, uniqueid)

    @staticmethod
    def _cause_known(bridge: Bridge, uniqueid: str) -> bool:
        """No leg was made, the leg is gone (Hangup has the last word), or a HangupRequest
        already gave a real (non-zero) cause."""
        return uniqueid not in bridge.agent_started or uniqueid in bridge.agent_gone or \
            bridge.agent_causes.get(uniqueid, "") not in ("", "0")

    def _agent_failed(self, bridge: Bridge, uniqueid: str) -> None:
        """Report one attempt's failure once, with the best reason known."""
        failed_at = bridge.agent_failed.pop(uniqueid, None)
        if failed_at is None or uniqueid != bridge.agent_id():
            return
        rang_for = failed_at - bridge.agent_started.get(uniqueid, failed_at)
        cause = bridge.agent_causes.get(uniqueid, "")
        reason = failure_reason(cause, rang_for, self.config.ring_timeout)
        self.log.info("bridge.agent_leg_failed", bridge_id=bridge.id, leg=uniqueid,
                      cause=cause, rang_for=round(rang_for, 3), reason=reason)
        self._step(bridge, AgentFailed(failed_at, reason))

    def _citizen_hangup(self, message: AmiMessage, now: float) -> None:
        """The citizen's channel is gone. Before the conference this is how the gateway
        learns it; afterwards it is the true end of the citizen's call (which may go on
        in a plain two-party call after the conference)."""
        bridge = self.bridges.get(self._by_citizen_uid.get(message.get("Uniqueid"), ""))
        if bridge is None:
            return
        if bridge.state is State.REQUESTED:
            self._step(bridge, Left(now, Role.CITIZEN, message.get("Channel")))
        elif "citizen_hangup_at" not in bridge.fields:
            self._note(bridge, "citizen_hangup", {"citizen_hangup_at": iso(now)})

    # -- the one place an edge is applied ------------------------------------------------
    def _context(self, bridge: Bridge) -> Context:
        return Context(bridge.mode, bridge.plan, bridge.attempt, bridge.seat_present,
                       self.config.retry_delay)

    def _step(self, bridge: Bridge, event: Event) -> None:
        try:
            edge = transition(bridge.state, event, self._context(bridge))
        except IllegalTransition as exc:
            self.log.error("bridge.illegal_transition", bridge_id=bridge.id,
                           state=bridge.state.value, bridge_event=event.kind, error_id=exc.code)
            return
        if isinstance(event, Left) and event.role is Role.SEAT:
            bridge.seat_present = False
        before = bridge.state
        bridge.state = edge.state
        fields = dict(edge.fields)
        fields["state"] = edge.state.value
        if edge.outcome is not None:
            fields["outcome"] = edge.outcome.value
        bridge.fields.update(fields)
        name = f"{event.kind}:{event.role}" if isinstance(event, Joined | Left) else event.kind
        self._persist(bridge, name, event.at, fields)
        self.log.info("bridge.transition", bridge_id=bridge.id, bridge_event=name,
                      from_state=before.value, to_state=edge.state.value,
                      outcome=edge.outcome.value if edge.outcome else None)
        if edge.state is State.ENDED and before is not State.ENDED:
            self._by_citizen.pop(bridge.citizen.channel, None)
            self.clock.callLater(self.KEEP_ENDED, self._forget, bridge)
        for command in edge.commands:
            self._run(bridge, command)

    def _forget(self, bridge: Bridge) -> None:
        self.bridges.pop(bridge.id, None)
        self._by_citizen_uid.pop(bridge.citizen.uniqueid, None)

    def _persist(self, bridge: Bridge, event: str, at: float, fields: dict[str, str],
                 indexes: tuple[Index, ...] = ()) -> None:
        bridge.seq += 1
        self.bridge_log.record(Change(f"bridge:{bridge.id}", bridge.seq, event, at, fields,
                                      indexes, {"state": bridge.state.value}))

    # -- commands ----------------------------------------------------------------------
    def _run(self, bridge: Bridge, command: Command) -> None:
        match command:
            case DialAgent(attempt=attempt, delay=delay):
                if delay > 0:
                    self.clock.callLater(delay, self._dial, bridge, attempt)
                else:
                    self._dial(bridge, attempt)
            case CancelAgent():
                channel = bridge.agent_channels.get(bridge.agent_id()) or \
                    bridge.fields.get("late_agent_channel", "")
                if channel:
                    self._action(bridge, "Hangup", [("Channel", channel)])
            case ReturnCitizen():
                self._action(bridge, "Redirect", [
                    ("Channel", bridge.citizen.channel), ("Context", "linkgw-return"),
                    ("Exten", bridge.side), ("Priority", "1")])
                self._note(bridge, "citizen_returned", {"returned_to": bridge.side})
            case BridgeDirect(role=role):
                self._bridge_direct(bridge, role)
            case RecordCallback():
                self._callback(bridge)
            case RecordWorkOrderNeeded():
                self._note(bridge, "work_order_push_needed", {
                    "work_order_push_needed": "yes",
                    "work_order_reason": bridge.fields.get("agent_failure", "")},
                    (Index("workorders:push_needed", bridge.id, self.clock.seconds()),))

    def _bridge_direct(self, bridge: Bridge, role: Role) -> None:
        """Citizen + ``role`` out of the conference into a plain call (see the dialplan's
        [linkgw-direct]): tell the citizen's channel who its peer is, then one dual
        Redirect. The AMI Bridge action cannot do it: ConfBridge's bridge will not let
        its channels be moved."""
        other = bridge.seat.channel if role is Role.SEAT else \
            bridge.fields.get("agent_channel", "")
        citizen = bridge.citizen.channel

        def setvar(name: str, value: str) -> defer.Deferred[AmiResult]:
            return self.ami.action("Setvar", [("Channel", citizen), ("Variable", name),
                                              ("Value", value)])

        d = setvar("LINKGW_PEER", other)
        d.addCallback(lambda _: setvar("LINKGW_RETURN", bridge.side))
        d.addCallback(lambda _: self.ami.action("Redirect", [
            ("Channel", citizen), ("ExtraChannel", other),
            ("Context", "linkgw-direct"), ("Exten", bridge.id), ("Priority", "1"),
            ("ExtraContext", "linkgw-direct-wait"), ("ExtraExten", bridge.id),
            ("ExtraPriority", "1")]))
        d.addErrback(self._command_failed, bridge, "bridge direct")
        self._note(bridge, "bridged_direct", {"direct_with": role.value})

    def _dial(self, bridge: Bridge, attempt: int) -> None:
        if bridge.state is not State.DIALING:
            return  # the citizen left while the retry waited
        bridge.attempt = attempt
        target = bridge.plan[attempt]
        self._note(bridge, "agent_dialing", {"attempt": str(attempt + 1),
                                             "dialing_target": target})
        d = self.ami.action("Originate", [
            ("Channel", target),
            ("Context", JOIN_CONTEXT[bridge.mode].format(role=Role.AGENT)),
            ("Exten", bridge.id), ("Priority", "1"),
            ("Timeout", str(int(self.config.ring_timeout * 1000))),
            ("CallerID", _safe_callerid(bridge.citizen)),
            ("ChannelId", bridge.agent_id(attempt)),
            ("Variable", f"LINKGW_BRIDGE={bridge.id}"),
            ("Async", "true"),
        ])
        d.addErrback(self._agent_not_dialed, bridge, attempt)

    def _agent_not_dialed(self, failure: Failure, bridge: Bridge, attempt: int) -> None:
        if bridge.attempt == attempt:
            self._step(bridge, AgentFailed(self.clock.seconds(),
                                           f"originate refused: {failure.getErrorMessage()}"))

    def _note(self, bridge: Bridge, event: str, fields: dict[str, str],
              indexes: tuple[Index, ...] = ()) -> None:
        """A change of the record that is not a state change (it still gets its event)."""
        bridge.fields.update(fields)
        self._persist(bridge, event, self.clock.seconds(), fields, indexes)

    def _callback(self, bridge: Bridge) -> None:
        now = self.clock.seconds()
        self._note(bridge, "callback_needed", {"callback_needed": "yes"})
        self._record(f"callback:{bridge.id}", "callback_needed", now, {
            "bridge_id": bridge.id, "number": bridge.citizen.number,
            "name": bridge.citizen.name, "seat": bridge.seat.endpoint,
            "direction": bridge.fields["direction"], "at": iso(now), "status": "open",
        }, (Index("callbacks:open", bridge.id, now),))

    def _action(self, bridge: Bridge, action: str, headers: list[tuple[str, str]]) -> None:
        self.ami.action(action, headers).addErrback(self._command_failed, bridge, action)

    def _command_failed(self, failure: Failure, bridge: Bridge, action: str) -> None:
        self.log.error("bridge.command_failed", bridge_id=bridge.id, action=action,
                       error=failure.getErrorMessage())


def _safe_callerid(party: Party) -> str:
    """Caller ID shown to the other line: digits and + only; the exact value stays on
    the record."""
    number = "".join(c for c in party.number if c.isdigit() or c == "+")[:32]
    return f"<{number}>" if number else "<>"
