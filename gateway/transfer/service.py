"""The transfer service: turns a key press into a three-party conference and follows it.

It owns the live bridges of this gateway process. Each bridge moves only through
:func:`gateway.bridge.state.transition`; :meth:`TransferService._step` is the one place
that applies an edge: it updates the record, logs the edge, queues the change for the
bridge log and carries out the commands (AMI actions) the edge asks for.

AMI tells it what Asterisk did: the Redirect's response, ``OriginateResponse`` for the
12345 leg (matched by the ``ChannelId`` we gave it), and ``ConfbridgeJoin`` /
``ConfbridgeLeave`` / ``ConfbridgeEnd`` for who is in the conference.
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
from gateway.bridge.log import BridgeLog
from gateway.bridge.state import (
    AgentAnswered,
    AgentFailed,
    Command,
    ConferenceEnded,
    DialAgent,
    Event,
    HangupAgent,
    IllegalTransition,
    Joined,
    Left,
    Redirected,
    RedirectFailed,
    Role,
    State,
    iso,
    transition,
)
from gateway.bridge.store import Change, Index
from gateway.config import TransferConfig
from gateway.transfer.ids import new_bridge_id

CONFERENCE_PREFIX = "linkgw-"
JOIN_CONTEXT = "linkgw-join-{role}"

#: OriginateResponse ``Reason`` codes (Asterisk's AST_CONTROL_* values) in plain words.
ORIGINATE_REASONS = {
    "0": "failed",
    "1": "hung up",
    "3": "no answer",
    "5": "busy",
    "8": "congestion",
}


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
    target: str
    state: State = State.REQUESTED
    seq: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def conference(self) -> str:
        return CONFERENCE_PREFIX + self.id

    @property
    def agent_uniqueid(self) -> str:
        return f"{self.id}-agent"

    def role_of(self, uniqueid: str) -> Role | None:
        if uniqueid == self.citizen.uniqueid:
            return Role.CITIZEN
        if uniqueid == self.seat.uniqueid:
            return Role.SEAT
        if uniqueid == self.agent_uniqueid:
            return Role.AGENT
        return None


class TransferRefused(Exception):
    code = "transfer_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransferService:
    def __init__(
        self,
        ami: Ami,
        bridge_log: BridgeLog,
        config: TransferConfig,
        *,
        clock: IReactorTime,
        log: Any,
        new_id: Callable[[float], str] = new_bridge_id,
    ) -> None:
        self.ami = ami
        self.bridge_log = bridge_log
        self.config = config
        self.clock = clock
        self.log = log
        self.new_id = new_id
        self.bridges: dict[str, Bridge] = {}
        self._by_citizen: dict[str, str] = {}
        self._call_seq: dict[str, int] = {}
        ami.events.subscribe(
            self.on_ami_event,
            ["ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd", "OriginateResponse"],
        )

    # -- calls reaching 110 -----------------------------------------------------------
    def register_call(self, citizen: Party, dialed: str) -> None:
        """A citizen's call reached 110: record it (never waits on the store)."""
        now = self.clock.seconds()
        seq = self._call_seq.get(citizen.uniqueid, 0) + 1
        self._call_seq[citizen.uniqueid] = seq
        self.bridge_log.record(Change(
            record=f"call:{citizen.uniqueid}", seq=seq, event="call_registered", at=now,
            fields={
                "uniqueid": citizen.uniqueid, "linkedid": citizen.linkedid,
                "channel": citizen.channel, "number": citizen.number, "name": citizen.name,
                "dialed": dialed, "registered_at": iso(now),
            },
            indexes=(Index(f"calls:caller:{citizen.number}", citizen.uniqueid, now),),
        ))
        self.log.info("call.registered", uniqueid=citizen.uniqueid, channel=citizen.channel)

    # -- the key --------------------------------------------------------------------
    def request(self, citizen: Party, seat: Party) -> Bridge:
        """The seat pressed the key: open a bridge (raises TransferRefused)."""
        active = self._by_citizen.get(citizen.channel)
        if active is not None:
            raise TransferRefused(f"transfer {active} already running for this call")
        now = self.clock.seconds()
        bridge = Bridge(self.new_id(now), citizen, seat, self.config.target)
        self.bridges[bridge.id] = bridge
        self._by_citizen[citizen.channel] = bridge.id
        day = iso(now)[:10]
        bridge.fields = {
            "bridge_id": bridge.id, "direction": "110->12345", "state": bridge.state.value,
            "conference": bridge.conference, "requested_at": iso(now),
            "citizen_number": citizen.number, "citizen_name": citizen.name,
            "citizen_channel": citizen.channel, "citizen_uniqueid": citizen.uniqueid,
            "citizen_linkedid": citizen.linkedid,
            "seat": seat.endpoint, "seat_channel": seat.channel,
            "seat_uniqueid": seat.uniqueid, "seat_linkedid": seat.linkedid,
            "target": bridge.target, "agent_uniqueid": bridge.agent_uniqueid,
        }
        self._persist(bridge, "transfer_requested", now, dict(bridge.fields), (
            Index(f"caller:{citizen.number}", bridge.id, now),
            Index(f"seat:{seat.endpoint}", bridge.id, now),
            Index(f"day:{day}", bridge.id, now),
        ))
        self.log.info("bridge.requested", bridge_id=bridge.id, citizen=citizen.channel,
                      seat=seat.channel)
        return bridge

    def start(self, bridge_id: str) -> None:
        """Move citizen + seat into the conference with one dual Redirect."""
        bridge = self.bridges[bridge_id]
        d = self.ami.action("Redirect", [
            ("Channel", bridge.citizen.channel),
            ("ExtraChannel", bridge.seat.channel),
            ("Context", JOIN_CONTEXT.format(role=Role.CITIZEN)),
            ("Exten", bridge.id), ("Priority", "1"),
            ("ExtraContext", JOIN_CONTEXT.format(role=Role.SEAT)),
            ("ExtraExten", bridge.id), ("ExtraPriority", "1"),
        ])
        d.addCallbacks(
            lambda _: self._step(bridge, Redirected(self.clock.seconds())),
            lambda f: self._step(bridge, RedirectFailed(self.clock.seconds(),
                                                        f.getErrorMessage())),
        )

    # -- what Asterisk reports -------------------------------------------------------
    def on_ami_event(self, message: AmiMessage) -> None:
        now = self.clock.seconds()
        if message.event == "OriginateResponse":
            self._originate_response(message, now)
            return
        conference = message.get("Conference")
        if not conference.startswith(CONFERENCE_PREFIX):
            return
        bridge = self.bridges.get(conference[len(CONFERENCE_PREFIX):])
        if bridge is None:
            return
        if message.event == "ConfbridgeEnd":
            self._step(bridge, ConferenceEnded(now))
            return
        role = bridge.role_of(message.get("Uniqueid"))
        if role is None:
            self.log.warning("bridge.unknown_party", bridge_id=bridge.id,
                             channel=message.get("Channel"))
            return
        channel = message.get("Channel")
        if message.event == "ConfbridgeJoin":
            self._step(bridge, Joined(now, role, channel, message.get("Linkedid")))
        else:
            self._step(bridge, Left(now, role, channel))

    def _originate_response(self, message: AmiMessage, now: float) -> None:
        uniqueid = message.get("Uniqueid")
        bridge = self.bridges.get(uniqueid.removesuffix("-agent"))
        if bridge is None or uniqueid != bridge.agent_uniqueid:
            return
        if message.get("Response") == "Success":
            self._step(bridge, AgentAnswered(now, message.get("Channel"), uniqueid))
        else:
            reason = message.get("Reason")
            self._step(bridge, AgentFailed(now, ORIGINATE_REASONS.get(reason, reason)))

    # -- the one place an edge is applied ---------------------------------------------
    def _step(self, bridge: Bridge, event: Event) -> None:
        try:
            edge = transition(bridge.state, event)
        except IllegalTransition as exc:
            self.log.error("bridge.illegal_transition", bridge_id=bridge.id,
                           state=bridge.state.value, bridge_event=event.kind, error_id=exc.code)
            return
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
        for command in edge.commands:
            self._run(bridge, command)

    def _persist(self, bridge: Bridge, event: str, at: float, fields: dict[str, str],
                 indexes: tuple[Index, ...] = ()) -> None:
        bridge.seq += 1
        self.bridge_log.record(Change(f"bridge:{bridge.id}", bridge.seq, event, at, fields,
                                      indexes, {"state": bridge.state.value}))

    def _run(self, bridge: Bridge, command: Command) -> None:
        if isinstance(command, DialAgent):
            d = self.ami.action("Originate", [
                ("Channel", bridge.target),
                ("Context", JOIN_CONTEXT.format(role=Role.AGENT)),
                ("Exten", bridge.id), ("Priority", "1"),
                ("Timeout", str(int(self.config.ring_timeout * 1000))),
                ("CallerID", _safe_callerid(bridge.citizen)),
                ("ChannelId", bridge.agent_uniqueid),
                ("Variable", f"LINKGW_BRIDGE={bridge.id}"),
                ("Async", "true"),
            ])
            d.addErrback(self._agent_not_dialed, bridge)
        elif isinstance(command, HangupAgent):
            channel = bridge.fields.get("agent_channel", "")
            self.ami.action("Hangup", [("Channel", channel)]).addErrback(
                self._command_failed, bridge, "Hangup")

    def _agent_not_dialed(self, failure: Failure, bridge: Bridge) -> None:
        self._step(bridge, AgentFailed(self.clock.seconds(),
                                       f"originate refused: {failure.getErrorMessage()}"))

    def _command_failed(self, failure: Failure, bridge: Bridge, action: str) -> None:
        self.log.error("bridge.command_failed", bridge_id=bridge.id, action=action,
                       error=failure.getErrorMessage())


def _safe_callerid(party: Party) -> str:
    """Caller ID shown to 12345: digits and + only; the exact value stays on the record."""
    number = "".join(c for c in party.number if c.isdigit() or c == "+")[:32]
    return f"<{number}>" if number else "<>"
