"""A 12345 agent's hand-over arriving over the trunk (12345 → 110), as pure functions.

Between two centres, a 12345 agent hands a police matter to 110 with their own PBX's
transfer, to 110's number for hand-overs. The INVITE carries the 12345 work order in
``X-Linkgw-Ticket``, and may carry the agent (``X-Linkgw-Agent``) and an item code
(``X-Linkgw-Code``). 110's dialplan (``[linkgw-from-12345]``) has the gateway register it
(the ``handed`` script): a bridge ``12345->110`` in mode ``trunk``, the ticket attached,
110's response deadline running. Then it rings 110's liaison (``transfer.reverse_target``)
and, when nobody there answers, every seat; the seat that answers takes the matter
(``taken``), or the citizen hangs up first (``handed_end``).

Every value here is decided from what Asterisk holds (the arriving channel's uniqueid,
its headers) and the config, so a second gateway, or a process-mode AGI program asked
the same, writes the same record; each change has a fixed id, so a replay is harmless.
Such a bridge is never in the live index: Asterisk's dialplan rings the seats on its own
and no gateway has anything to do with the call until a seat answers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.bridge.change import Change, Index
from gateway.outcome import Outcome
from gateway.records.actor import Actor
from gateway.records.ticket_changes import attached_change
from gateway.schema import IDX_DEADLINE, bridge_record, idx_caller, idx_day, idx_seat, iso
from gateway.transfer.decide import code_digits
from gateway.transfer.model import DIRECTIONS, Party
from gateway.transfer.phase import State

#: The headers a hand-over's INVITE may carry, in the order the script reads them.
HEADERS = ("X-Linkgw-Ticket", "X-Linkgw-Agent", "X-Linkgw-Code")
MODE = "trunk"
_AGENT = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")
#: The feed of every change of such a bridge: 12345 handed it, and learns what became of
#: it (taken by a seat, abandoned) and, on the ticket, 110's answer.
FEED = "12345"


@dataclass(frozen=True)
class Handover:
    """What the INVITE said, checked. ``problems``: the values refused (never stored raw)."""

    ticket: str = ""
    agent: str = ""
    code: str = ""
    problems: tuple[str, ...] = ()


def read_handover(values: Sequence[str], ticket_pattern: str) -> Handover:
    """The headers' values (as :data:`HEADERS`, decoded) checked: the ticket must match
    the site's pattern in full (ASCII), the agent is a short name, the code digits."""
    ticket, agent, code = [*values, "", "", ""][:3]
    problems = []
    if ticket and not re.fullmatch(ticket_pattern, ticket, re.ASCII):
        problems.append(f"X-Linkgw-Ticket of {len(ticket)} characters does not match "
                        f"{ticket_pattern}")
        ticket = ""
    if agent and not _AGENT.fullmatch(agent):
        problems.append("X-Linkgw-Agent is not a short name (A-Z a-z 0-9 _ . : + -)")
        agent = ""
    if code and code_digits(code) != code:
        problems.append("X-Linkgw-Code is not digits")
        code = ""
    return Handover(ticket, agent, code, tuple(problems))


def arrival_id(uniqueid: str, channel: str) -> str:
    """The bridge id of the call ``uniqueid``: the time Asterisk made the channel (its
    uniqueid is ``[system-]<epoch>.<n>``) and 6 hex digits of its hash. Every process
    asked about one call decides the same id."""
    epoch = uniqueid.rpartition("-")[2]
    try:
        at = float(epoch)
    except ValueError:
        at = 0.0
    digest = hashlib.sha256(f"{uniqueid}|{channel}".encode()).hexdigest()[:6]
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H%M%S") + digest


def arrived(bridge_id: str, citizen: Party, handover: Handover, dialed: str, at: float,
            response_deadline: float, classified: Mapping[str, str], owner: str
            ) -> list[Change]:
    """The bridge's first record (and the ticket's, when the INVITE carried one).
    ``classified``: the record fields of the item code (code, category, item)."""
    due = at + response_deadline
    seat = f"12345:{handover.agent}" if handover.agent else "12345"
    fields = {
        "bridge_id": bridge_id, "owner": owner, "direction": DIRECTIONS["12345"],
        "mode": MODE, "state": State.REQUESTED.value, "requested_at": iso(at),
        "citizen_number": citizen.number, "citizen_name": citizen.name,
        "citizen_channel": citizen.channel, "citizen_uniqueid": citizen.uniqueid,
        "citizen_linkedid": citizen.linkedid, "seat": seat, "dialed": dialed,
        "response_due_at": iso(due),
    }
    if handover.code:
        fields |= classified
    data = {"problems": "; ".join(handover.problems)} if handover.problems else {}
    changes = [Change(bridge_record(bridge_id), "handover_arrived", at, fields, (
        Index(idx_caller(citizen.number), bridge_id, at), Index(idx_seat(seat), bridge_id, at),
        Index(idx_day(iso(at)[:10]), bridge_id, at), Index(IDX_DEADLINE, bridge_id, due)),
        data, id=f"arrived:{bridge_id}", guard=(("state", ("",)),), feed=FEED)]
    if handover.ticket:
        changes.append(attached_change(bridge_id, handover.ticket, DIRECTIONS["12345"],
                                       iso(due), at, Actor.system("trunk"),
                                       id=f"ticket:{bridge_id}"))
    return changes


def taken(bridge_id: str, endpoint: str, at: float) -> Change:
    """A 110 seat answered: the matter is 110's (ends the bridge; the deadline runs on
    until 110 answers the ticket)."""
    return Change(bridge_record(bridge_id), "handover_taken", at, {
        "state": State.ENDED.value, "outcome": Outcome.HANDED_OFF.value, "agent": endpoint,
        "agent_answered_at": iso(at), "ended_at": iso(at)}, (),
        id=f"taken:{bridge_id}", guard=(("state", (State.REQUESTED.value,)),), feed=FEED)


#: What Dial's DIALSTATUS says of a hand-over nobody at 110 took.
_ENDS = {"CANCEL": "the citizen hung up while 110 rang",
         "": "the citizen hung up while 110 rang"}


def ended(bridge_id: str, status: str, at: float) -> Change:
    """Nobody at 110 took the call (the citizen hung up, or every seat failed): nothing
    was handed over, so no answer is due."""
    detail = _ENDS.get(status, f"no 110 seat took the call ({status[:20]})")
    return Change(bridge_record(bridge_id), "handover_ended", at, {
        "state": State.ENDED.value, "outcome": Outcome.ABANDONED.value, "ended_at": iso(at),
        "agent_failure": detail}, (Index(IDX_DEADLINE, bridge_id, -1),),
        id=f"ended:{bridge_id}", guard=(("state", (State.REQUESTED.value,)),), feed=FEED)


class Arrivals:
    """The records of hand-overs, written through ``record`` (the bridge log, or a
    process-mode program's list) at ``clock``'s time; ``classify``: an item code's record
    fields (the desk's, for the 12345 side)."""

    def __init__(self, record: Callable[[Change], None], clock: Callable[[], float],
                 response_deadline: float, ticket_pattern: str,
                 classify: Callable[[str], Mapping[str, str]], owner: str) -> None:
        self.record = record
        self.clock = clock
        self.response_deadline = response_deadline
        self.ticket_pattern = ticket_pattern
        self.classify = classify
        self.owner = owner

    def arrived(self, citizen: Party, headers: Sequence[str], dialed: str,
                at: float | None = None) -> tuple[str, Handover]:
        """Register the call: its bridge id (:func:`arrival_id`) and the hand-over as
        read. ``at``: when it arrived, for one registered late (else now)."""
        handover = read_handover(headers, self.ticket_pattern)
        bridge_id = arrival_id(citizen.uniqueid, citizen.channel)
        classified = self.classify(handover.code) if handover.code else {}
        for change in arrived(bridge_id, citizen, handover, dialed,
                              self.clock() if at is None else at,
                              self.response_deadline, classified, self.owner):
            self.record(change)
        return bridge_id, handover

    def taken(self, bridge_id: str, endpoint: str, at: float | None = None) -> None:
        self.record(taken(bridge_id, endpoint, self.clock() if at is None else at))

    def ended(self, bridge_id: str, status: str, at: float | None = None) -> None:
        self.record(ended(bridge_id, status, self.clock() if at is None else at))
