"""A bridge read back from what Asterisk and Redis keep, pure: the dialplan's journal as
facts in time order (:func:`journal_facts`), the record as a bridge (:func:`bridge_of`)
and the channels that still exist (:class:`Snapshot`). :mod:`gateway.transfer.recovery`
replays them."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ami.codec import AmiMessage
from gateway.outcome import current
from gateway.schema import joined_at, left_at
from gateway.transfer.correlate import DeclineKeyed, Fact, KeyDoneFact, NoticeFact, PartyGone
from gateway.transfer.events import AgentFailed, DirectBridged, Joined, Left, Redirected
from gateway.transfer.legs import failure_reason
from gateway.transfer.model import Bridge, Party, dialplan_time
from gateway.transfer.phase import Mode, Phase, Role, State

_ROLES = {r.value: r for r in Role}
#: Seconds a leg may take to appear in Asterisk after its Originate was queued.
LEG_GRACE = 2.0


@dataclass(frozen=True)
class JournalFact:
    at: float
    fact: Fact | None = None
    attempt: int = -1  # for a leg's end: which attempt
    cause: str = ""




def journal_facts(journal: dict[str, str], ring_timeout: float) -> list[JournalFact]:
    """The journal's entries as facts, oldest first. Unknown or broken entries are
    skipped (a hostile or damaged AstDB must not stop a recovery)."""
    out: list[JournalFact] = []
    for key, value in journal.items():
        stamp, _, rest = value.partition("|")
        at = dialplan_time(stamp)
        if at is None:
            continue
        fact = _fact(key, rest, at, ring_timeout)
        if fact is not None:
            out.append(fact)
    return sorted(out, key=lambda f: f.at)


def _fact(key: str, rest: str, at: float, ring_timeout: float) -> JournalFact | None:
    if key == "key_done":
        return JournalFact(at, KeyDoneFact(rest))
    if key == "notice_played":
        return JournalFact(at, NoticeFact())
    if key.startswith("agent_a") and key.endswith("_declined"):
        attempt = key[len("agent_a"):-len("_declined")]
        if attempt.isascii() and attempt.isdigit() and len(attempt) < 4:
            return JournalFact(at, DeclineKeyed(rest, int(attempt)), int(attempt))
        return None
    if key.startswith("agent_a") and key.endswith("_gone"):
        attempt = key[len("agent_a"):-len("_gone")]
        if attempt.isascii() and attempt.isdigit():
            reason = failure_reason(rest, 0.0, ring_timeout)
            return JournalFact(at, AgentFailed(at, reason), int(attempt), rest)
        return None
    role_name, _, what = key.partition("_")
    role = _ROLES.get(role_name)
    if role is None:
        return None
    if what == "arrived":  # moved by the Redirect (the other line's leg is dialled)
        return JournalFact(at, Redirected(at)) if role is not Role.AGENT else None
    if what == "joined":
        return JournalFact(at, Joined(at, role))
    if what in ("left", "returned"):
        return JournalFact(at, Left(at, role))
    if what == "gone":
        return JournalFact(at, PartyGone(role) if role is not Role.AGENT else Left(at, role))
    if what == "direct":
        return JournalFact(at, DirectBridged(at, role) if role is Role.CITIZEN
                           else Left(at, role))
    return None


def phase_of(record: dict[str, str], retry_delay: float) -> Phase:
    """The phase a bridge record stands for (what the table decides on); a record of an
    earlier version is read by today's names (:func:`gateway.outcome.current`)."""
    state = State(current(record).get("state", "requested"))
    joined = frozenset(r for r in Role if joined_at(r) in record)
    gone = frozenset(r for r in Role if left_at(r) in record)
    attempt = int(record.get("attempt", "1") or "1") - 1
    return Phase(state=state, mode=Mode(record.get("mode", "transfer")),
                 plan=tuple(record.get("plan", "").split(",")), retry_delay=retry_delay,
                 attempt=max(attempt, 0), key_done="key_done_at" in record, joined=joined,
                 gone=gone, directed="direct_with" in record or "returned_to" in record)


def bridge_of(record: dict[str, str], retry_delay: float) -> Bridge:
    """A live bridge rebuilt from its record."""
    def party(role: str) -> Party:
        return Party(record.get(f"{role}_channel", ""), record.get(f"{role}_uniqueid", ""),
                     record.get(f"{role}_linkedid", ""),
                     record.get("citizen_number", "") if role == "citizen" else "",
                     record.get("citizen_name", "") if role == "citizen" else "",
                     record.get("seat", "") if role == "seat" else "")

    side = "12345" if record.get("direction") == "12345->110" else "110"
    return Bridge(record["bridge_id"], party("citizen"), party("seat"), side,
                  phase_of(record, retry_delay), dict(current(record)))


@dataclass(frozen=True)
class Snapshot:
    """What Asterisk shows of a bridge now."""

    members: dict[Role, AmiMessage]  # in the conference
    channels: dict[str, AmiMessage]  # every channel Asterisk has, by uniqueid

    def alive(self, uniqueid: str) -> bool:
        return uniqueid in self.channels
