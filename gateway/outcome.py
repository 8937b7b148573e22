"""How a bridge ended: the record's ``outcome`` field. The transfer table writes it, the
records count it; both import it from here."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    HANDED_OFF = "handed_off"  # the other line took the call, the key-presser left
    THREE_PARTY_ENDED = "three_party_ended"  # ended with the key-presser still present
    KEPT_BY_110 = "kept_by_110"  # not reached / declined: the first line keeps it
    ABANDONED = "abandoned"  # the citizen hung up before the other line answered
    FAILED = "failed"  # the call could not be moved into the conference
    REFUSED = "refused"  # never-transfer item, emergency, unknown code: no transfer
    UNKNOWN = "unknown"  # it ended while no gateway watched and nothing tells how


#: Outcomes in which the other line took the matter (a response to it is then due).
HANDED: frozenset[str] = frozenset({Outcome.HANDED_OFF, Outcome.THREE_PARTY_ENDED})
