"""The transfer state machine: pure, no I/O.

``transition(state, event, ctx)`` returns a :class:`Transition`: the next state, the record
fields the edge sets, the commands the caller must carry out, and the outcome when the
bridge ends. An edge that is not in the table raises :class:`IllegalTransition`.
``ctx`` (:class:`Context`) holds what the edges decide on: the mode (transfer or consult),
the dial plan of targets and which attempt is ringing, whether the call-taker is still in
the conference.

States::

    requested ──redirected──▶ dialing ──agent answered──▶ three_party ──seat left──▶ handed_off
        │                     │  ▲ │                           │ (consult) agent left     │
        │ citizen left /      │  └─┘ agent failed,             ▼                          │
        │ redirect failed     │      attempts left        returned_to_110                 │
        ▼                     │ agent failed, none left ──────▲   │                       │
      ended ◀─────────────────┴── citizen left / conference ended / last party left ──────┘

Roles: ``citizen``; ``seat`` is whoever pressed the key (a 110 call-taker, or a 12345
agent in the reverse direction); ``agent`` is the line being dialled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar


class State(StrEnum):
    REQUESTED = "requested"  # key pressed: citizen + seat are being moved to the conference
    DIALING = "dialing"  # citizen (+ seat) in the conference, the other line rings
    THREE_PARTY = "three_party"  # the other line answered: three in one conference
    HANDED_OFF = "handed_off"  # the call-taker left; citizen and the other line talk on
    RETURNED = "returned_to_110"  # the other line not reached, or declined in consult mode
    ENDED = "ended"


class Outcome(StrEnum):
    HANDED_OFF = "handed_off"  # the other line took the call, the call-taker left
    THREE_PARTY_ENDED = "three_party_ended"  # ended with the call-taker still present
    KEPT_BY_110 = "kept_by_110"  # not reached / declined: the first line keeps it
    ABANDONED = "abandoned"  # the citizen hung up before the other line answered
    FAILED = "failed"  # the call could not be moved into the conference
    REFUSED = "refused"  # never-transfer item or emergency: no transfer


class Role(StrEnum):
    CITIZEN = "citizen"
    SEAT = "seat"
    AGENT = "agent"


class Mode(StrEnum):
    TRANSFER = "transfer"  # one key: the call-taker may leave once the other line answers
    CONSULT = "consult"  # the call-taker stays until one side takes the matter


class IllegalTransition(Exception):
    code = "illegal_transition"

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state} on {event.kind}")
        self.state = state
        self.event = event


@dataclass(frozen=True)
class Context:
    """What the table decides on besides state and event."""

    mode: Mode = Mode.TRANSFER
    plan: tuple[str, ...] = ("PJSIP/12345",)  # dial strings, one per attempt, in order
    attempt: int = 0  # index into plan of the leg ringing (or answered)
    seat_present: bool = True
    retry_delay: float = 0.0


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    at: float  # epoch seconds, from the injected clock
    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class Redirected(Event):
    kind = "redirected"


@dataclass(frozen=True)
class RedirectFailed(Event):
    reason: str = ""
    kind = "redirect_failed"


@dataclass(frozen=True)
class AgentAnswered(Event):
    channel: str = ""
    uniqueid: str = ""
    kind = "agent_answered"


@dataclass(frozen=True)
class AgentFailed(Event):
    reason: str = ""
    kind = "agent_failed"


@dataclass(frozen=True)
class Joined(Event):
    role: Role = Role.CITIZEN
    channel: str = ""
    linkedid: str = ""
    kind = "joined"


@dataclass(frozen=True)
class Left(Event):
    role: Role = Role.CITIZEN
    channel: str = ""
    kind = "left"


@dataclass(frozen=True)
class ConferenceEnded(Event):
    kind = "conference_ended"


# -- commands ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DialAgent:
    """Originate ``plan[attempt]`` into the conference, after ``delay`` seconds."""

    attempt: int
    delay: float = 0.0


@dataclass(frozen=True)
class CancelAgent:
    """Hang up the other line's leg (still ringing, or answered into an ended bridge)."""


@dataclass(frozen=True)
class ReturnCitizen:
    """The call-taker is gone and nobody took the call: ring the first line again."""


@dataclass(frozen=True)
class RecordCallback:
    """The citizen hung up before the hand-over: someone must call back."""


@dataclass(frozen=True)
class RecordWorkOrderNeeded:
    """The other line was not reached: its side must push a work order itself."""


@dataclass(frozen=True)
class BridgeDirect:
    """Two parties are left with the matter: take the citizen and ``role`` out of the
    conference into a plain two-party call, where either hanging up ends it as usual."""

    role: Role


Command = DialAgent | CancelAgent | ReturnCitizen | RecordCallback | RecordWorkOrderNeeded \
    | BridgeDirect


@dataclass(frozen=True)
class Transition:
    state: State
    fields: dict[str, str] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()
    outcome: Outcome | None = None


def iso(at: float) -> str:
    """Epoch seconds → ``2026-11-28T19:45:12.345Z`` (sorts as text)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_LIVE = (State.REQUESTED, State.DIALING, State.THREE_PARTY, State.HANDED_OFF, State.RETURNED)


def _agent_failed(event: AgentFailed, ctx: Context, at: str) -> Transition:
    n = ctx.attempt + 1
    fields = {f"attempt_{n}_failure": event.reason, f"attempt_{n}_failed_at": at,
              "agent_failure": event.reason}
    if n < len(ctx.plan):
        return Transition(State.DIALING, fields, (DialAgent(n, ctx.retry_delay),))
    fields["agent_failed_at"] = at
    back: Command = BridgeDirect(Role.SEAT) if ctx.seat_present else ReturnCitizen()
    return Transition(State.RETURNED, fields, (RecordWorkOrderNeeded(), back))


def _ended(state: State) -> Outcome:
    if state is State.HANDED_OFF:
        return Outcome.HANDED_OFF
    if state is State.THREE_PARTY:
        return Outcome.THREE_PARTY_ENDED
    if state is State.RETURNED:
        return Outcome.KEPT_BY_110
    return Outcome.ABANDONED


def transition(state: State, event: Event, ctx: Context | None = None) -> Transition:
    """The whole table. Reads top to bottom as: in this state, on this event, do this."""
    ctx = ctx or Context()
    at = iso(event.at)
    consult = ctx.mode is Mode.CONSULT
    match state, event:
        # -- moving the call into the conference
        case State.REQUESTED, Redirected():
            return Transition(State.DIALING, {"conference_at": at}, (DialAgent(0),))
        case State.REQUESTED, RedirectFailed(reason=reason):
            return Transition(State.ENDED, {"ended_at": at, "error": reason}, (),
                              Outcome.FAILED)
        case State.REQUESTED, Left(role=Role.CITIZEN):
            return Transition(State.ENDED, {"citizen_left_at": at, "ended_at": at},
                              (RecordCallback(),), Outcome.ABANDONED)
        # -- the other line rings
        case State.DIALING, AgentAnswered(channel=ch, uniqueid=uid):
            return Transition(State.THREE_PARTY, {
                "agent_answered_at": at, "agent_channel": ch, "agent_uniqueid": uid,
                "agent_target": ctx.plan[ctx.attempt], "attempts": str(ctx.attempt + 1)})
        case State.DIALING, AgentFailed() as failed:
            return _agent_failed(failed, ctx, at)
        case State.DIALING, Left(role=Role.CITIZEN):
            return Transition(State.ENDED, {"citizen_left_at": at, "ended_at": at},
                              (CancelAgent(), RecordCallback()), Outcome.ABANDONED)
        case State.DIALING, Left(role=role):
            return Transition(state, {f"{role}_left_at": at})
        # -- three parties
        case State.THREE_PARTY, Left(role=Role.SEAT) if consult:
            return Transition(State.HANDED_OFF, {"seat_left_at": at,
                                                 "decision": "taken_by_other_line"},
                              (BridgeDirect(Role.AGENT),))
        case State.THREE_PARTY, Left(role=Role.SEAT):
            return Transition(State.HANDED_OFF, {"seat_left_at": at})
        case State.THREE_PARTY, Left(role=Role.AGENT) if consult:
            return Transition(State.RETURNED, {"agent_left_at": at,
                                               "decision": "kept_by_first_line"},
                              (BridgeDirect(Role.SEAT),))
        case State.THREE_PARTY, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at, "ended_at": at}, (),
                              Outcome.THREE_PARTY_ENDED)
        case State.HANDED_OFF, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at, "ended_at": at}, (),
                              Outcome.HANDED_OFF)
        # -- back with the first line
        case State.RETURNED, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at, "ended_at": at}, (),
                              Outcome.KEPT_BY_110)
        case _, Joined(role=role, linkedid=linkedid) if state in _LIVE:
            fields = {f"{role}_joined_at": at}
            if role is Role.AGENT and linkedid:
                fields["agent_linkedid"] = linkedid  # OriginateResponse does not carry it
            return Transition(state, fields)
        case _, ConferenceEnded() if state in _LIVE:
            return Transition(State.ENDED, {"ended_at": at}, (), _ended(state))
        # -- late news about a bridge that has ended
        case State.ENDED, AgentAnswered(channel=ch):
            return Transition(State.ENDED, {"late_agent_channel": ch}, (CancelAgent(),))
        case State.ENDED, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at})
        case State.ENDED, AgentFailed() | ConferenceEnded() | Joined() | RedirectFailed() \
                | Redirected():
            return Transition(State.ENDED)
    raise IllegalTransition(state, event)
