"""What is stored, in one place: record names, index names, Redis keys, field names.

Writers (the transfer feature, the ticket desk), readers (queries, the CLI, the page) and
the tests build every name here, so a key is spelt once.

Names come in two layers. A *record* (``bridge:<id>``) or *index* (``caller:<number>``)
name is what a :class:`~gateway.bridge.store.Change` carries; :class:`Keys` turns it into
the Redis key by adding the configured prefix (``linkgw:bridge:<id>``,
``linkgw:idx:caller:<number>``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

#: The version of what this release writes. A record carries the version that created it
#: (``schema``; none: written before versions, read as 0) and every event the version of
#: its writer. Version 1 added the field itself: the fields of 0 and 1 are the same.
#: ``linkgw check-records`` reports what this release cannot read.
SCHEMA_VERSION: Final = 1
READABLE_VERSIONS: Final = frozenset({0, 1})

# -- times ------------------------------------------------------------------------------
# Every ``*_at`` field is written by :func:`iso` and read back by :func:`epoch`.


def iso(at: float) -> str:
    """Epoch seconds → ``2026-11-28T19:45:12.345Z`` (sorts as text)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] \
        .replace(" ", "T") + "Z"


def epoch(text: str) -> float:
    """An ``*_at`` field → epoch seconds (:class:`ValueError` when it is not one)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- records ------------------------------------------------------------------------------


def bridge_record(bridge_id: str) -> str:
    """One transfer (hash)."""
    return f"bridge:{bridge_id}"


def call_record(uniqueid: str) -> str:
    """A citizen's call as it reached 110 or 12345 (hash)."""
    return f"call:{uniqueid}"


def callback_record(bridge_id: str) -> str:
    """A callback task for a citizen who hung up before the hand-over (hash)."""
    return f"callback:{bridge_id}"


def ticket_record(bridge_id: str) -> str:
    """The 12345 work order, the 110 incident and the closed loop of a bridge (hash)."""
    return f"ticket:{bridge_id}"


def workorder_record(ticket: str) -> str:
    """A 12345 → police work order that never was a call, by its 12345 ticket (hash)."""
    return f"workorder:{ticket}"


# -- indexes (sorted sets of ids, scored by epoch seconds) --------------------------------


def idx_caller(number: str) -> str:
    return f"caller:{number}"


def idx_seat(endpoint: str) -> str:
    return f"seat:{endpoint}"


def idx_day(day: str) -> str:
    return f"day:{day}"


def idx_calls_caller(number: str) -> str:
    return f"calls:caller:{number}"


def idx_calls_day(day: str) -> str:
    """Calls registered on a UTC day (retention finds them here)."""
    return f"calls:day:{day}"


def idx_ticket(ticket: str) -> str:
    return f"ticket:{ticket}"


def idx_incident(incident: str) -> str:
    return f"incident:{incident}"


IDX_LIVE: Final = "live"  # bridges not yet ended (recovery and adoption read it)
IDX_CALLBACKS_OPEN: Final = "callbacks:open"
IDX_PUSH_NEEDED: Final = "workorders:push_needed"
IDX_DEADLINE: Final = "deadline"  # scored by the deadline
IDX_FEEDBACK: Final = "feedback"
IDX_WORKORDERS_OPEN: Final = "workorders:open"  # work orders not answered yet
IDX_WORKORDER_DEADLINE: Final = "workorders:deadline"  # scored by the answer's deadline
IDX_DUTY_DUE: Final = "workorders:duty"  # orders nobody accepted, scored by the next ring


def idx_workorder_day(day: str) -> str:
    """Work orders received on a UTC day."""
    return f"workorders:day:{day}"


@dataclass(frozen=True)
class Keys:
    """Redis keys under one prefix."""

    prefix: str = "linkgw"

    def record(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def bridge(self, bridge_id: str) -> str:
        return self.record(bridge_record(bridge_id))

    def call(self, uniqueid: str) -> str:
        return self.record(call_record(uniqueid))

    def callback(self, bridge_id: str) -> str:
        return self.record(callback_record(bridge_id))

    def ticket(self, bridge_id: str) -> str:
        return self.record(ticket_record(bridge_id))

    def index(self, name: str) -> str:
        return f"{self.prefix}:idx:{name}"

    @property
    def events(self) -> str:
        """The stream of every change, hash-chained per day."""
        return f"{self.prefix}:events"

    def chain(self, day: str) -> str:
        """The last hash of a day's chain."""
        return f"{self.prefix}:chain:{day}"

    def checkpoint(self, day: str) -> str:
        """Where a day's chain stood when its oldest entries were trimmed (hash)."""
        return f"{self.prefix}:checkpoint:{day}"

    def seal(self, day: str) -> str:
        """A keyed seal of a day's chain (HMAC with a key kept outside Redis; hash)."""
        return f"{self.prefix}:seal:{day}"

    def exported(self, day: str) -> str:
        """That a UTC day's records were exported, to which file, with which digest."""
        return f"{self.prefix}:exported:{day}"

    def applied(self, record: str) -> str:
        """The ids of the changes already applied to a record (replays are skipped)."""
        return f"{self.prefix}:applied:{record}"

    def lease(self, bridge_id: str) -> str:
        """Which gateway owns a live bridge (a string with an expiry)."""
        return f"{self.prefix}:lease:{bridge_id}"

    def inbound(self, stream: str) -> str:
        return f"{self.prefix}:{stream}"

    def feed(self, audience: str) -> str:
        """What was handed to one line (``12345`` or ``110``), for that line's own
        system: a stream of the changes of its bridges, with :data:`FEED_FIELDS` only."""
        return f"{self.prefix}:feed:{audience}"

    def push(self, name: str, feed: str = "12345") -> str:
        """The push to the other line's system: ``lease`` (which gateway pushes),
        ``dead`` (events given up on, a stream), ``retry`` (dead ones sent again). Each
        further line's pushed feed has its own; 12345's and 110's keep the names they
        had before lines (one lease for both, as before)."""
        return f"{self.prefix}:push:{name}" if feed in ("12345", "110") else \
            f"{self.prefix}:push:{feed}:{name}"


# -- fields of a bridge record whose names depend on a role or an attempt -------------------


def joined_at(role: str) -> str:
    return f"{role}_joined_at"


def left_at(role: str) -> str:
    return f"{role}_left_at"


def attempt_failure(n: int) -> str:
    """Why attempt ``n`` (1-based) failed: busy, no answer, unreachable, …"""
    return f"attempt_{n}_failure"


def attempt_failed_at(n: int) -> str:
    return f"attempt_{n}_failed_at"


#: Every field a bridge record may hold, with what it means (the README's table is this).
BRIDGE_FIELDS: Final = {
    "bridge_id": "time-sortable id: 14 digits of UTC time + 6 hex digits",
    "schema": "the schema version that created the record (none: before versions, 0)",
    "asterisk": "the Asterisk server the bridge runs on (its system name)",
    "owner": "the gateway instance that runs the bridge now",
    "direction": "110->12345 or 12345->110, or 110-><line> for a further line's key "
                 "(transfer.lines: 110->122)",
    "mode": "transfer (one key), consult, or trunk (a 12345 agent's hand-over arriving "
            "over the trunk)",
    "state": "requested, answered, dialing, three_party, handed_off, returned_to_first_line "
             "(returned_to_110 before 2026-12), ended",
    "outcome": "handed_off, three_party_ended, kept_by_first_line (kept_by_110 before "
               "2026-12), abandoned, failed, refused, "
               "unknown",
    "outcome_reason": "why the outcome is unknown, when it is",
    "decision": "consult: taken_by_other_line or kept_by_first_line",
    "conference": "the ConfBridge room: linkgw-<bridge id>",
    "recording": "path of the recording of the citizen's side (MixMonitor)",
    "code": "the item code typed after the key (empty: none given)",
    "code_given": "yes when a code was typed, no when none was",
    "category": "category id of the code",
    "item": "item id of the code",
    "item_name": "the item's Chinese name",
    "plan": "dial strings of the attempts, in order",
    "target": "the first dial string",
    "attempt": "the attempt being dialled now (1-based)",
    "dialing_target": "the dial string of the attempt being dialled now",
    "dialing_at": "when the attempt being dialled now was dialled: from then to "
                  "agent_answered_at is the time in the other line's queue",
    "late_agent_channel": "a leg of the other line that answered after the bridge had "
                          "moved on (it is hung up)",
    "redirected_at": "when citizen and call-taker were moved towards the conference",
    "parent_bridge": "the bridge this one continues (a 12345 agent handing back)",
    "citizen_number": "caller number exactly as received",
    "citizen_name": "caller name exactly as received",
    "citizen_channel": "", "citizen_uniqueid": "", "citizen_linkedid": "",
    "seat": "endpoint of whoever pressed the key (trunk: 12345:<the agent who handed it>)",
    "dialed": "trunk: the 110 number the hand-over dialled",
    "seat_channel": "", "seat_uniqueid": "", "seat_linkedid": "",
    "agent_channel": "", "agent_uniqueid": "<bridge id>-a<attempt>", "agent_linkedid": "",
    "agent_target": "the dial string that answered",
    "agent": "trunk: the 110 seat that took the hand-over",
    "attempts": "how many attempts it took to reach the other line",
    "agent_failure": "reason of the last failed attempt",
    "agent_failed_at": "when the last attempt failed",
    "work_order_push_needed": "yes: the other line was not reached",
    "work_order_reason": "",
    "work_order_pushed_at": "when the owed work order was pushed to the other line",
    "work_order_pushed_via": "api or cli",
    "work_order_pushed_by": "the staff or police number of who marked it pushed",
    "work_order_pushed_ref": "its number there",
    "work_order_pushed_note": "",
    "route": "liaison: the item typed is the police liaison seat's; or a further line's "
             "number (122): that line's (categories.yaml target)",
    "route_target": "the liaison seat's or the further line's dial string (transfer.liaison, "
                    "transfer.lines)",
    "rerouted_at": "the other line's queue was ringing when the code named a liaison or a "
                   "further line's item: that leg was cancelled and theirs dialled next (a "
                   "further line's: the direction becomes 110-><line>, and 12345's feed gets "
                   "a last event, rerouted)",
    "decline_reason": "consult mode, declined by the other line: why (its agent types "
                      "transfer.decline_key and a reason's code in the conference, or its "
                      "system says by API or stream); the joint meeting's list shows it",
    "decline_reason_code": "the code its agent typed (transfer.decline_reasons)",
    "decline_reason_at": "when it was given",
    "decline_reason_via": "key, api or stream",
    "decline_reason_by": "the staff number of who gave it",
    "callback_needed": "yes: the citizen hung up before the hand-over",
    "refusal": "emergency, never_transfer, unknown_code, code_required, already, ami_down, "
               "unknown_line (a further line's key whose line the config no longer has)",
    "unclassified": "yes: no item code typed (transfer.require_code: flag)",
    "refusal_detail": "",
    "response_due_at": "12345->110: when 110 must have answered",
    "feedback_due_at": "110->12345 (or 110-><line>) handed over: when that line's feedback "
                       "is due (from the end of the call, ticket or not; a further line's "
                       "own term when it has one)",
    "error": "what failed, in words",
    "direct_with": "seat or agent: the plain two-party call the citizen went on in",
    "returned_to": "the line the citizen was sent back to",
    "notice_played_at": "when the citizen heard the transfer notice",
    "requested_at": "", "key_done_at": "when the key-presser's feature returned",
    "conference_at": "when the citizen was in the conference",
    "agent_answered_at": "", "ended_at": "",
    "citizen_hangup_at": "when the citizen hung up (recovered: when a gateway found them "
                         "gone); a bridge stays live in Redis, for a restarted gateway to "
                         "adopt, until then, also after it ended",
    "recovered": "yes when a gateway adopted the bridge after its owner was gone",
    "recovered_at": "", "recovered_from": "what the adoption read: journal, conference, "
                                          "channels",
    "seq": "how many changes were applied (counted by Redis)",
}

_ROLE_FIELDS: Final = re.compile(r"(citizen|seat|agent)_(joined_at|left_at)")
_ATTEMPT_FIELDS: Final = re.compile(r"attempt_[1-9][0-9]*_(failure|failed_at)")


def known_field(name: str) -> bool:
    """A bridge record field this project writes (the tests check every record)."""
    return name in BRIDGE_FIELDS or bool(_ROLE_FIELDS.fullmatch(name)
                                         or _ATTEMPT_FIELDS.fullmatch(name))


def fields_markdown() -> str:
    """The README's table of bridge record fields."""
    rows = ["| field | what |", "| --- | --- |"]
    rows += [f"| `{name}` | {what} |" for name, what in BRIDGE_FIELDS.items()]
    rows += ["| `<role>_joined_at`, `<role>_left_at` | when citizen, seat or agent joined "
             "and left the conference |",
             "| `attempt_<n>_failure`, `attempt_<n>_failed_at` | why and when attempt n "
             "failed (busy, no answer, unreachable, rejected, …) |"]
    return "\n".join(rows) + "\n"


# -- what the line a bridge was handed to sees of it ------------------------------------

#: Fields of a bridge's changes that go to the feed of the line it was handed to: what
#: that line needs to take the matter on (who called, about what, what happened to the
#: call), never the other centre's internals (channels, which gateway, recordings).
_FEED_HIDDEN: Final = re.compile(
    r"(citizen|seat|agent|late_agent)_(channel|uniqueid|linkedid)|asterisk|owner|conference"
    r"|recording|plan|target|dialing_target|route_target|recovered_from|error")


def feed_fields(fields: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if _FEED_HIDDEN.fullmatch(k) is None}

