"""How a bridge ended: the record's ``outcome`` field. The transfer table writes it, the
records count it; both import it from here."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    HANDED_OFF = "handed_off"  # the other line took the call, the key-presser left
    THREE_PARTY_ENDED = "three_party_ended"  # ended with the key-presser still present
    KEPT_BY_FIRST_LINE = "kept_by_first_line"  # not reached / declined: the line that
    # pressed the key keeps the citizen (110 for 110->12345, 12345 for 12345->110)
    ABANDONED = "abandoned"  # the citizen hung up before the other line answered
    FAILED = "failed"  # the call could not be moved into the conference
    REFUSED = "refused"  # never-transfer item, emergency, unknown code: no transfer
    UNKNOWN = "unknown"  # it ended while no gateway watched and nothing tells how


#: Outcomes in which the other line took the matter (a response to it is then due).
HANDED: frozenset[str] = frozenset({Outcome.HANDED_OFF, Outcome.THREE_PARTY_ENDED})


#: Names records written before lines had neutral names still hold, by their names now:
#: every reader of ``outcome`` and ``state`` goes through :func:`current`.
LEGACY_NAMES: dict[str, str] = {"kept_by_110": "kept_by_first_line",
                                "returned_to_110": "returned_to_first_line"}


def current(row: dict[str, str]) -> dict[str, str]:
    """A record as this version names it (its ``outcome`` and ``state``); the same
    dict when nothing in it is an older name."""
    old = {k: row[k] for k in ("outcome", "state") if row.get(k) in LEGACY_NAMES}
    return row | {k: LEGACY_NAMES[v] for k, v in old.items()} if old else row
