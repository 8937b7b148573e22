"""The values of the transfer feature: parties, a key press, a live bridge (pure)."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass, field

from gateway.transfer.events import Transition
from gateway.transfer.phase import Mode, Phase, Role, State

CONFERENCE_PREFIX = "linkgw-"

_LINE_NUMBER = re.compile(r"[0-9]{3,6}")
#: The two lines: who the key-presser works for → where the matter goes.
DIRECTIONS = {"110": "110->12345", "12345": "12345->110"}


def direction(side: str, line: str = "") -> str:
    """A bridge's two lines, ``<from>-><to>``: the key-presser's, and the one the citizen
    is handed to (``line``: a further line's own key, 110's only)."""
    return f"{side}->{line}" if line and side == "110" else DIRECTIONS[side]


@dataclass(frozen=True)
class Party:
    """One leg as Asterisk names it; ``number``/``name`` exactly as received."""

    channel: str
    uniqueid: str
    linkedid: str = ""
    number: str = ""
    name: str = ""
    endpoint: str = ""


@dataclass(frozen=True)
class KeyPress:
    """What the key's AGI read from Asterisk in its one round trip."""

    citizen: Party
    seat: Party
    side: str = "110"  # the line the key-presser works for
    mode: Mode = Mode.TRANSFER
    emergency: str = ""  # the citizen's emergency flag ("<epoch>|<endpoint>"), if set
    active: str = ""  # the bridge already running for this citizen, if any
    parent: str = ""  # the bridge this citizen came from (a hand-back), if any
    line: str = ""  # a further line's own key was pressed (transfer.lines): its number
    # when the key's feature began (the dialplan's LINKGW_KEY_AT, epoch; 0: unknown)
    key_at: float = 0.0


@dataclass(frozen=True)
class CodeWait:
    """The code window, opened. ``complete``: the whole code was typed before it opened
    (with the key, in one go): nobody needs to be asked for it. Await ``code``."""

    complete: bool
    code: Awaitable[str]


@dataclass(frozen=True)
class Opened:
    """The key opened a bridge; the other line is being dialled."""

    bridge_id: str


@dataclass(frozen=True)
class Refused:
    """No transfer. ``reason`` is a stable word (the dialplan sees it upper-case);
    ``prompt`` is what the key-presser hears (empty: the error tone)."""

    reason: str
    detail: str = ""
    prompt: str = ""
    bridge_id: str = ""  # the refusal's own record, when one was written


@dataclass
class Bridge:
    """A live bridge run by this process. ``phase`` changes only through the state
    table; ``fields`` mirrors what the record holds."""

    id: str
    citizen: Party
    seat: Party
    side: str
    phase: Phase
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.phase.state

    @property
    def mode(self) -> Mode:
        return self.phase.mode

    @property
    def handed_to(self) -> str:
        """The line the citizen is handed to, whose feed sees the bridge (its phone rings
        from the key on): the far end of the record's direction. A direction read back
        from Redis that names no line (not 3 to 6 ASCII digits) counts as the other of 110
        and 12345: no feed or key is ever built from it."""
        to = self.fields.get("direction", "").partition("->")[2]
        return to if _LINE_NUMBER.fullmatch(to) else DIRECTIONS[self.side].partition("->")[2]

    @property
    def conference(self) -> str:
        return CONFERENCE_PREFIX + self.id

    def take(self, edge: Transition) -> dict[str, str]:
        """An edge of the table, kept: the new phase, and the fields it sets with the
        state and (when it ends the bridge) the outcome. Returns those fields."""
        self.phase = edge.phase
        fields = dict(edge.fields) | {"state": edge.state.value}
        if edge.outcome is not None:
            fields["outcome"] = edge.outcome.value
        self.fields.update(fields)
        return fields

    def agent_id(self, attempt: int | None = None) -> str:
        """The ChannelId (uniqueid) given to the other line's leg of one attempt."""
        return f"{self.id}-a{self.phase.attempt if attempt is None else attempt}"

    def role_of(self, uniqueid: str) -> Role | None:
        if uniqueid == self.citizen.uniqueid:
            return Role.CITIZEN
        if uniqueid == self.seat.uniqueid:
            return Role.SEAT
        if uniqueid == self.agent_id():
            return Role.AGENT
        return None


def agent_leg(uniqueid: str) -> tuple[str, int] | None:
    """``<bridge id>-a<n>`` → (bridge id, n); None for any other uniqueid."""
    bridge_id, sep, attempt = uniqueid.rpartition("-a")
    if not sep or not attempt.isascii() or not attempt.isdigit() or len(attempt) > 3 \
            or not bridge_id:
        return None
    return bridge_id, int(attempt)


#: A time as the dialplan writes it (``${STRFTIME(,,%s.%3q)}``, ``${EPOCH}``): ASCII only
#: (``float()`` would also take "1e9", " 7" or a number padded with U+2028).
_DIALPLAN_TIME = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def dialplan_time(value: str) -> float | None:
    """An epoch the dialplan wrote, or None for anything else."""
    return float(value) if _DIALPLAN_TIME.fullmatch(value) else None
