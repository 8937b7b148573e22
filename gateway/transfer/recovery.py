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

from typing import Any

from gateway.schema import iso
from gateway.transfer.correlate import DeclineKeyed, KeyDoneFact, PartyGone
from gateway.transfer.events import (
    Abandon,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    DialAgent,
    Joined,
    Move,
    Redirected,
    Release,
    ReturnCitizen,
)
from gateway.transfer.journal import LEG_GRACE, JournalFact, Snapshot, bridge_of, journal_facts
from gateway.transfer.legs import Leg, LegState
from gateway.transfer.model import Bridge
from gateway.transfer.phase import Role, State
from gateway.transfer.registry import following
from gateway.transfer.services import TransferService


class Recovery:
    def __init__(self, service: TransferService, log: Any) -> None:
        self.service = service
        self.log = log

    async def adopt(self, record: dict[str, str], why: str) -> Bridge | None:
        """Take over a live bridge from its record (its owner is gone) and settle it."""
        service = self.service
        if service.knows(record.get("bridge_id", "")) or not record.get("bridge_id"):
            return None
        bridge = bridge_of(record, service.config.retry_delay)
        if not following(bridge):
            return None
        service.adopt(bridge)
        now = service.clock.seconds()
        service.note(bridge, "bridge_adopted", {
            "owner": service.instance, "recovered": "yes",
            "recovered_at": iso(now), "recovered_from": why})
        self.log.warning("bridge.adopted", bridge_id=bridge.id, state=bridge.state.value,
                         why=why, previous_owner=record.get("owner", ""))
        await self.reconcile(bridge)
        return bridge

    def close_unserved(self, record: dict[str, str], why: str) -> Bridge | None:
        """Close, as ``unknown``, a live bridge of an Asterisk no gateway serves any more.
        Nothing is asked of or done in Asterisk (this gateway's is another one)."""
        service = self.service
        if service.knows(record.get("bridge_id", "")) or not record.get("bridge_id"):
            return None
        bridge = bridge_of(record, service.config.retry_delay)
        if not following(bridge):
            return None
        service.adopt(bridge)
        now = service.clock.seconds()
        data = {"recovered": "yes", "recovered_at": iso(now), "recovered_from": "nothing"}
        service.note(bridge, "bridge_adopted", data | {"owner": service.instance})
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
        journal = await service.telephony.journal(bridge.id)
        members = await service.telephony.members(bridge.conference)
        channels = await service.telephony.channels()
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
            if isinstance(item.fact, DeclineKeyed) and item.attempt != bridge.phase.attempt:
                continue  # an earlier attempt's agent
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
        leg = self.service.leg(bridge.id)
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
        leg = service.leg(bridge.id)
        if leg is None or leg.uniqueid != leg_id:
            leg = Leg(leg_id, service.config.ring_timeout, since=service.clock.seconds())
            leg.created(channel, service.clock.seconds())
            service.track(bridge.id, leg)
        elif not leg.channel:
            leg.channel = channel
            service.leg_named(bridge, leg)  # cancelled before this process knew its name
        if Role.AGENT in bridge.phase.joined and not bridge.fields.get("agent_channel"):
            service.note(bridge, "agent_seen", {
                "agent_channel": channel, "agent_uniqueid": leg_id,
                "agent_linkedid": snapshot.channels[leg_id].get("Linkedid")})
