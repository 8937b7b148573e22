"""Recovery: a bridge's truth is read back from Asterisk after nobody watched it.

On start, after every AMI reconnect, and when a gateway adopts the bridge of a gateway
that is gone, the gateway asks Asterisk three things:

1. the dialplan's **journal** of the bridge (AstDB ``linkgw/<bridge id>/<fact>``, written
   as things happen, whoever watched): when the key's feature returned and with which
   code, who joined and left the conference and when, how the other line's legs ended
   (their hangup cause), when the citizen heard the notice;
2. who is in the **conference** now (``ConfbridgeList``);
3. which of the bridge's **channels** still exist (``CoreShowChannels``).

The journal's facts are replayed in time order through the same state table as live
events, with their own times, so a bridge that ended while nobody watched ends with the
outcome and the times the journal supports. What the conference and the channels show
now fills in the rest. A live bridge of which Asterisk holds no trace at all is closed
as ``unknown`` with the reason. Every recovered change says so (``recovered``).

While the journal is replayed, the commands its edges ask for (dial, move, hang up) are
held back; only those that still fit once the replay is done are carried out, so that
nothing is done twice or too late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.ami.codec import AmiMessage
from gateway.schema import iso, joined_at, left_at
from gateway.transfer.correlate import Fact, KeyDoneFact, NoticeFact, PartyGone
from gateway.transfer.events import (
    Abandon,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    DialAgent,
    DirectBridged,
    Joined,
    Left,
    Move,
    Redirected,
    Release,
    ReturnCitizen,
)
from gateway.transfer.legs import Leg, LegState, failure_reason
from gateway.transfer.model import Bridge, Party
from gateway.transfer.phase import Mode, Phase, Role, State
from gateway.transfer.registry import following
from gateway.transfer.services import TransferService

_ROLES = {r.value: r for r in Role}
#: Seconds a leg may take to appear in Asterisk after its Originate was queued.
LEG_GRACE = 2.0


@dataclass(frozen=True)
class JournalFact:
    at: float
    fact: Fact | None = None
    attempt: int = -1  # for a leg's end: which attempt
    cause: str = ""


# What the dialplan writes: ${EPOCH} or an epoch with a fraction, ASCII only (float()
# would also take "1e9", " 7" or a number padded with U+2028).
_STAMP = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def journal_facts(journal: dict[str, str], ring_timeout: float) -> list[JournalFact]:
    """The journal's entries as facts, oldest first. Unknown or broken entries are
    skipped (a hostile or damaged AstDB must not stop a recovery)."""
    out: list[JournalFact] = []
    for key, value in journal.items():
        stamp, _, rest = value.partition("|")
        if _STAMP.fullmatch(stamp) is None:
            continue
        at = float(stamp)
        fact = _fact(key, rest, at, ring_timeout)
        if fact is not None:
            out.append(fact)
    return sorted(out, key=lambda f: f.at)


def _fact(key: str, rest: str, at: float, ring_timeout: float) -> JournalFact | None:
    if key == "key_done":
        return JournalFact(at, KeyDoneFact(rest))
    if key == "notice_played":
        return JournalFact(at, NoticeFact())
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
    """The phase a bridge record stands for (what the table decides on)."""
    state = State(record.get("state", "requested"))
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
                  phase_of(record, retry_delay), dict(record))


@dataclass(frozen=True)
class Snapshot:
    """What Asterisk shows of a bridge now."""

    members: dict[Role, AmiMessage]  # in the conference
    channels: dict[str, AmiMessage]  # every channel Asterisk has, by uniqueid

    def alive(self, uniqueid: str) -> bool:
        return uniqueid in self.channels


class Recovery:
    def __init__(self, service: TransferService, log: Any) -> None:
        self.service = service
        self.log = log

    async def adopt(self, record: dict[str, str], why: str) -> Bridge | None:
        """Take over a live bridge from its record (its owner is gone) and settle it."""
        service = self.service
        if record.get("bridge_id", "") in service.registry or not record.get("bridge_id"):
            return None
        bridge = bridge_of(record, service.config.retry_delay)
        if not following(bridge):
            return None
        service.registry.add(bridge)
        now = service.clock.seconds()
        service.note(bridge, "bridge_adopted", {
            "owner": service.ownership.instance, "recovered": "yes",
            "recovered_at": iso(now), "recovered_from": why})
        self.log.warning("bridge.adopted", bridge_id=bridge.id, state=bridge.state.value,
                         why=why, previous_owner=record.get("owner", ""))
        await self.reconcile(bridge)
        return bridge

    def close_unserved(self, record: dict[str, str], why: str) -> Bridge | None:
        """Close, as ``unknown``, a live bridge of an Asterisk no gateway serves any more.
        Nothing is asked of or done in Asterisk (this gateway's is another one)."""
        service = self.service
        if record.get("bridge_id", "") in service.registry or not record.get("bridge_id"):
            return None
        bridge = bridge_of(record, service.config.retry_delay)
        if not following(bridge):
            return None
        service.registry.add(bridge)
        now = service.clock.seconds()
        data = {"recovered": "yes", "recovered_at": iso(now), "recovered_from": "nothing"}
        service.note(bridge, "bridge_adopted", data | {"owner": service.ownership.instance})
        self.log.warning("bridge.closed_unserved", bridge_id=bridge.id, why=why,
                         asterisk=record.get("asterisk", ""))
        service.hold([])  # its commands are for another Asterisk: dropped
        try:
            service.step(bridge, Abandon(now, why), data)
            service.citizen_gone(bridge, now, data)  # when is not known: said so
        finally:
            service.hold(None)
        return bridge

    async def reconcile(self, bridge: Bridge) -> None:
        """Bring a bridge this gateway runs up to what Asterisk holds."""
        service = self.service
        journal = await service.effects.journal(bridge.id)
        members = await service.effects.members(bridge.conference)
        channels = await service.effects.channels()
        snapshot = Snapshot(
            {role: m for m in members if (role := bridge.role_of(m.get("Uniqueid")))},
            {c.get("Uniqueid"): c for c in channels})
        self._learn_leg(bridge, snapshot)
        facts = journal_facts(journal, service.config.ring_timeout)
        if not facts and self._traceless(bridge, snapshot):
            now, data = service.clock.seconds(), {"recovered": "yes",
                                                  "recovered_from": "nothing"}
            service.step(bridge, Abandon(now, (
                "ended while no gateway watched, and Asterisk holds no trace of how")), data)
            service.citizen_gone(bridge, now, data)
            return
        held: list[Command] = []
        service.hold(held)
        try:
            self._replay(bridge, facts)
            dialing = any(isinstance(c, DialAgent) and c.attempt == bridge.phase.attempt
                          for c in held)
            self._now(bridge, snapshot, dialing)
        finally:
            service.hold(None)
        for command in self._still_fitting(bridge, held, snapshot):
            service.run(bridge, command, at_once=True)

    def _replay(self, bridge: Bridge, facts: list[JournalFact]) -> None:
        data = {"recovered": "yes", "recovered_from": "journal"}
        for item in facts:
            if item.fact is None:
                continue
            if isinstance(item.fact, AgentFailed):
                if item.attempt != bridge.phase.attempt or Role.AGENT in bridge.phase.joined:
                    continue  # an earlier attempt, or the leg that took the call ending
            if isinstance(item.fact, KeyDoneFact) and bridge.phase.key_done:
                continue
            if isinstance(item.fact, Redirected) and "redirected_at" in bridge.fields:
                continue  # one Redirect moves both: the first arrival dates it
            self.service.apply(bridge, item.fact, item.at, data)

    def _now(self, bridge: Bridge, snapshot: Snapshot, dialing: bool) -> None:
        """What Asterisk shows now and the journal did not say. ``dialing``: a held
        command is about to dial the current attempt (its leg cannot exist yet)."""
        service, now = self.service, self.service.clock.seconds()
        data = {"recovered": "yes", "recovered_from": "conference"}
        for role, member in snapshot.members.items():
            if role not in bridge.phase.joined:
                service.step(bridge, Joined(now, role, member.get("Channel"),
                                            member.get("Linkedid")), data)
        self._learn_leg(bridge, snapshot)  # a leg that joined while nobody watched
        data = {"recovered": "yes", "recovered_from": "channels"}
        for role, party in ((Role.CITIZEN, bridge.citizen), (Role.SEAT, bridge.seat)):
            if role not in bridge.phase.gone and not snapshot.alive(party.uniqueid):
                service.apply(bridge, PartyGone(role), now, data)
        if not snapshot.alive(bridge.citizen.uniqueid):
            service.citizen_gone(bridge, now, data)  # after the conference, unseen
        if bridge.state in (State.REQUESTED, State.DIALING) and not dialing \
                and self._leg_lost(bridge, snapshot, now):
            service.step(bridge, AgentFailed(
                now, "unknown: the leg ended while no gateway watched"), data)
        if bridge.state is not State.ENDED and self._traceless(bridge, snapshot):
            service.step(bridge, Abandon(now, "ended while no gateway watched, and "
                                              "Asterisk holds no trace of how"), data)

    @staticmethod
    def _traceless(bridge: Bridge, snapshot: Snapshot) -> bool:
        """Nobody of the bridge is in its conference or has a channel any more."""
        return not snapshot.members and not any(
            snapshot.alive(uid) for uid in (bridge.citizen.uniqueid, bridge.seat.uniqueid,
                                            bridge.agent_id()))

    def _leg_lost(self, bridge: Bridge, snapshot: Snapshot, now: float) -> bool:
        """The current attempt's leg is gone and its end was not seen."""
        if snapshot.alive(bridge.agent_id()) or Role.AGENT in bridge.phase.joined:
            return False
        leg = self.service.legs.get(bridge.id)
        if leg is None:
            return True  # adopted: the leg was dialled by a gateway that is gone
        if leg.state is not LegState.RINGING:
            return False  # its answer or failure was seen
        return leg.started is not None or now - leg.since > LEG_GRACE

    def _still_fitting(self, bridge: Bridge, held: list[Command], snapshot: Snapshot
                       ) -> list[Command]:
        """The held commands that still make sense for the bridge as it is now."""
        state, out = bridge.state, list[Command]()
        citizen_alive = snapshot.alive(bridge.citizen.uniqueid)
        for command in held:
            match command:
                case DialAgent(attempt=n) if n == bridge.phase.attempt \
                        and state in (State.REQUESTED, State.DIALING) \
                        and not snapshot.alive(bridge.agent_id(n)):
                    out.append(command)
                case Move() if state in (State.REQUESTED, State.ANSWERED) and citizen_alive \
                        and "redirected_at" not in bridge.fields:
                    out.append(command)
                case BridgeDirect() if state in (State.HANDED_OFF, State.RETURNED) \
                        and Role.CITIZEN in snapshot.members:
                    out.append(command)
                case ReturnCitizen() if citizen_alive:
                    out.append(command)
                case CancelAgent() if snapshot.alive(bridge.agent_id()):
                    out.append(command)
                case Release(role=role) if snapshot.alive(
                        bridge.seat.uniqueid if role is Role.SEAT else bridge.citizen.uniqueid):
                    out.append(command)
        return list(dict.fromkeys(out))  # each command once

    def _learn_leg(self, bridge: Bridge, snapshot: Snapshot) -> None:
        """The current attempt's leg, if Asterisk has it: followed from here on (its
        answer or failure), its channel known (so that a cancel reaches it) and on the
        record once it has joined."""
        service = self.service
        leg_id = bridge.agent_id()
        if not snapshot.alive(leg_id):
            return
        channel = snapshot.channels[leg_id].get("Channel")
        leg = service.legs.get(bridge.id)
        if leg is None or leg.uniqueid != leg_id:
            leg = Leg(leg_id, service.config.ring_timeout, since=service.clock.seconds())
            leg.created(channel, service.clock.seconds())
            service.legs[bridge.id] = leg
        elif not leg.channel:
            leg.channel = channel
            service.leg_named(bridge, leg)  # cancelled before this process knew its name
        if Role.AGENT in bridge.phase.joined and not bridge.fields.get("agent_channel"):
            service.note(bridge, "agent_seen", {
                "agent_channel": channel, "agent_uniqueid": leg_id,
                "agent_linkedid": snapshot.channels[leg_id].get("Linkedid")})
