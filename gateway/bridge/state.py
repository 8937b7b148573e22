"""The transfer state machine: pure, no I/O.

``transition(state, event)`` returns a :class:`Transition`: the next state, the record
fields the edge sets, the commands the caller must carry out, and the outcome when the
bridge ends. An edge that is not in the table raises :class:`IllegalTransition`.

States::

    requested ──redirected──▶ dialing_12345 ──agent_answered──▶ three_party
        │                        │   │                              │ seat left
        │ redirect_failed        │   │ agent_failed                 ▼
        ▼                        │   ▼                          handed_off
      ended ◀── citizen left ────┘  returned_to_110                 │
        ▲                                 │                         │
        └──────────── conference_ended / last party left ───────────┘
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar


class State(StrEnum):
    REQUESTED = "requested"  # key pressed: citizen + seat are being moved to the conference
    DIALING = "dialing_12345"  # citizen + seat in the conference, the 12345 leg rings
    THREE_PARTY = "three_party"  # 12345 answered: three parties in one conference
    HANDED_OFF = "handed_off"  # the call-taker left; citizen and 12345 talk on
    RETURNED = "returned_to_110"  # 12345 not reached: citizen and call-taker stay together
    ENDED = "ended"


class Outcome(StrEnum):
    HANDED_OFF = "handed_off"  # 12345 took the call, the call-taker left
    THREE_PARTY_ENDED = "three_party_ended"  # ended with the call-taker still present
    KEPT_BY_110 = "kept_by_110"  # 12345 not reached; 110 keeps it (first-contact duty)
    ABANDONED = "abandoned"  # the citizen hung up before 12345 answered
    FAILED = "failed"  # the call could not be moved into the conference


class Role(StrEnum):
    CITIZEN = "citizen"
    SEAT = "seat"
    AGENT = "agent"


class IllegalTransition(Exception):
    code = "illegal_transition"

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state} on {event.kind}")
        self.state = state
        self.event = event


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
    """Originate the 12345 leg into the conference."""


@dataclass(frozen=True)
class HangupAgent:
    """Release the 12345 leg (it answered into a bridge that had already ended)."""


Command = DialAgent | HangupAgent


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


def transition(state: State, event: Event) -> Transition:
    """The whole table. Reads top to bottom as: in this state, on this event, do this."""
    at = iso(event.at)
    match state, event:
        case State.REQUESTED, Redirected():
            return Transition(State.DIALING, {"conference_at": at}, (DialAgent(),))
        case State.REQUESTED, RedirectFailed(reason=reason):
            return Transition(State.ENDED, {"ended_at": at, "error": reason}, (),
                              Outcome.FAILED)
        case State.DIALING, AgentAnswered(channel=ch, uniqueid=uid):
            return Transition(State.THREE_PARTY, {
                "agent_answered_at": at, "agent_channel": ch,
                "agent_uniqueid": uid})
        case State.DIALING, AgentFailed(reason=reason):
            return Transition(State.RETURNED, {"agent_failed_at": at, "agent_failure": reason})
        case State.DIALING, Left(role=Role.CITIZEN):
            return Transition(State.ENDED, {"citizen_left_at": at, "ended_at": at}, (),
                              Outcome.ABANDONED)
        case State.THREE_PARTY, Left(role=Role.SEAT):
            return Transition(State.HANDED_OFF, {"seat_left_at": at})
        case (State.THREE_PARTY, Left(role=role)) | (State.HANDED_OFF, Left(role=role)):
            outcome = Outcome.HANDED_OFF if state is State.HANDED_OFF else \
                Outcome.THREE_PARTY_ENDED
            return Transition(State.ENDED, {f"{role}_left_at": at, "ended_at": at}, (), outcome)
        case State.RETURNED, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at, "ended_at": at}, (),
                              Outcome.KEPT_BY_110)
        case _, Joined(role=role, linkedid=linkedid) if state in _LIVE:
            fields = {f"{role}_joined_at": at}
            if role is Role.AGENT and linkedid:
                fields["agent_linkedid"] = linkedid  # OriginateResponse does not carry it
            return Transition(state, fields)
        case State.DIALING, Left(role=role):
            return Transition(state, {f"{role}_left_at": at})
        case State.ENDED, AgentAnswered():
            return Transition(State.ENDED, {"agent_answered_at": at}, (HangupAgent(),))
        case State.ENDED, Left(role=role):
            return Transition(State.ENDED, {f"{role}_left_at": at})
        case State.ENDED, AgentFailed() | ConferenceEnded() | Joined():
            return Transition(State.ENDED)
        case _, ConferenceEnded() if state in _LIVE:
            outcome = {
                State.HANDED_OFF: Outcome.HANDED_OFF,
                State.THREE_PARTY: Outcome.THREE_PARTY_ENDED,
                State.RETURNED: Outcome.KEPT_BY_110,
            }.get(state, Outcome.ABANDONED)
            return Transition(State.ENDED, {"ended_at": at}, (), outcome)
    raise IllegalTransition(state, event)
