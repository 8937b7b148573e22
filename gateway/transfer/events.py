"""What the transfer table (:mod:`gateway.transfer.table`) takes and gives: the events
that happen to a bridge, the commands an edge asks for, and the transition itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from gateway.outcome import Outcome
from gateway.transfer.phase import Phase, Role, State


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    at: float  # epoch seconds, from the injected clock (or the journal, when recovered)
    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class KeyDone(Event):
    """The key's feature returned: the code typed (``fields``: code, category, item…)
    and, when the code is refused, why (``refusal``)."""

    fields: tuple[tuple[str, str], ...] = ()
    refusal: str = ""
    detail: str = ""
    kind = "key_done"


@dataclass(frozen=True)
class Redirected(Event):
    """Asterisk accepted the move into the conference."""

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
    """A party left the conference, or its channel is gone (whichever came first)."""

    role: Role = Role.CITIZEN
    channel: str = ""
    kind = "left"


@dataclass(frozen=True)
class DirectBridged(Event):
    """The citizen is in a plain two-party call again (the dialplan's [linkgw-direct])."""

    role: Role = Role.SEAT
    kind = "direct_bridged"


@dataclass(frozen=True)
class Declined(Event):
    """Consult: the other line's agent, the three together, typed the decline key and a
    reason's code (``reason``: its text); the dialplan ends the agent's leg next."""

    code: str = ""
    reason: str = ""
    kind = "declined"


@dataclass(frozen=True)
class ConferenceEnded(Event):
    kind = "conference_ended"


@dataclass(frozen=True)
class RefusedAtKey(Event):
    """The key was refused as it was pressed (never-transfer item, emergency, AMI down…):
    the bridge ends as it opens, on record for the figures and the joint meetings."""

    reason: str = ""
    detail: str = ""
    kind = "refused_at_key"


@dataclass(frozen=True)
class Abandon(Event):
    """Close a bridge nobody can follow any more (recovery found no trace of it)."""

    reason: str = ""
    kind = "closed_unknown"


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
class Move:
    """Citizen and key-presser into the conference (one dual Redirect)."""


@dataclass(frozen=True)
class Release:
    """Hang up ``role``'s channel: it waits in a conference nobody else will join."""

    role: Role


@dataclass(frozen=True)
class ReturnCitizen:
    """The key-presser is gone and nobody took the call: ring the first line again."""


@dataclass(frozen=True)
class RecordCallback:
    """The citizen hung up before the hand-over: someone must call back."""


@dataclass(frozen=True)
class RecordWorkOrderNeeded:
    """The other line was not reached: its side must push a work order itself."""


@dataclass(frozen=True)
class BridgeDirect:
    """Two parties are left with the matter: take the citizen and ``role`` into a plain
    two-party call (out of the conference, or out of their first call to hear a tone),
    where either hanging up ends it as usual and the keys work again."""

    role: Role


Command = DialAgent | CancelAgent | Move | ReturnCitizen | RecordCallback \
    | RecordWorkOrderNeeded | BridgeDirect | Release


@dataclass(frozen=True)
class Transition:
    phase: Phase
    fields: dict[str, str] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()
    outcome: Outcome | None = None

    @property
    def state(self) -> State:
        return self.phase.state


class IllegalTransition(Exception):
    code = "illegal_transition"

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state} on {event.kind}")
        self.state = state
        self.event = event
