"""A bridge's phase: everything the transfer table (:mod:`gateway.transfer.table`)
decides on, and the names of its states, roles and modes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    REQUESTED = "requested"  # the other line rings; citizen + key-presser in their call
    ANSWERED = "answered"  # the other line answered and waits in the conference
    DIALING = "dialing"  # the citizen is in the conference, the other line rings
    THREE_PARTY = "three_party"  # citizen, key-presser and the other line together
    HANDED_OFF = "handed_off"  # the key-presser left; citizen and the other line talk on
    RETURNED = "returned_to_first_line"  # the other line not reached, or declined in
    # consult mode: the citizen is back with the line that pressed the key
    ENDED = "ended"


class Role(StrEnum):
    CITIZEN = "citizen"
    SEAT = "seat"
    AGENT = "agent"


class Mode(StrEnum):
    TRANSFER = "transfer"  # one key: the key-presser may leave once the other line answers
    CONSULT = "consult"  # the key-presser stays until one side takes the matter


@dataclass(frozen=True)
class Phase:
    """Everything the table decides on; only :func:`transition` makes a new one."""

    state: State = State.REQUESTED
    mode: Mode = Mode.TRANSFER
    plan: tuple[str, ...] = ("PJSIP/12345",)  # dial strings, one per attempt, in order
    retry_delay: float = 0.0
    attempt: int = 0  # index into plan of the leg ringing (or answered)
    key_done: bool = False  # the key's feature has returned (the code is known)
    joined: frozenset[Role] = frozenset()  # who has been in the conference
    gone: frozenset[Role] = frozenset()  # who has left (the conference or the call)
    directed: bool = False  # the citizen was sent into a plain call (or back)

    @property
    def seat_present(self) -> bool:
        return Role.SEAT not in self.gone


LIVE = frozenset(State) - {State.ENDED}
