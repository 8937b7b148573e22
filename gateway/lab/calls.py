"""Calls played through the lab, observed from Asterisk (AMI) and Redis.

The demo prints what these return; the end-to-end tests assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from gateway.ami.codec import AmiMessage
from gateway.lab.lab import ONEKEY, Lab
from gateway.lab.peer import AGENTS, QUEUE
from gateway.lab.process import LabError, wait_until
from gateway.lab.sipp import SippPhone, answer_scenario, citizen_scenario, received_invite
from gateway.schema import Keys, bridge_record


@dataclass
class Observed:
    """What Asterisk and Redis showed during one one-key call."""

    conference: str = ""
    bridge_id: str = ""
    three_party: list[AmiMessage] = field(default_factory=list)
    plain_call: list[AmiMessage] = field(default_factory=list)  # after the seat left
    plain_technology: str = ""  # the bridge technology of that call (not softmix)
    record: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    exits: dict[str, int] = field(default_factory=dict)
    agent_invite: dict[str, str] = field(default_factory=dict)  # as the agent's phone got it


def _starts(channel: str, endpoint: str) -> bool:
    return channel.startswith(f"PJSIP/{endpoint}-")


def read_bridge(lab: Lab, bridge_id: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The bridge hash and its stream entries, oldest first, as one moment saw them.
    Each change writes both in one step, but they are two reads: a change landing
    between them would show its event without its fields, or its fields without its
    event. So the two are read again until the hash's ``seq`` (Redis's count of the
    changes applied) equals the events read."""
    r = lab.redis_client()
    keys = Keys(lab.config.redis.prefix)
    for _ in range(50):
        entries = cast(list[tuple[str, dict[str, str]]], r.xrange(keys.events))
        record = cast(dict[str, str], r.hgetall(keys.bridge(bridge_id)))
        events = [dict(e, id=i) for i, e in entries
                  if e.get("record") == bridge_record(bridge_id)]
        if record.get("seq", "0") == str(len(events)):
            break
    return record, events


def plain_call_of(lab: Lab, channel: str) -> tuple[list[AmiMessage], str]:
    """The channels Asterisk has in the same bridge as ``channel`` (CoreShowChannels)
    and that bridge's technology (BridgeList): a conference is ``softmix``."""
    assert lab.probe is not None
    _, rows = lab.probe.action("CoreShowChannels")
    ours = next((r for r in rows if r.get("Channel") == channel), None)
    if ours is None or not ours.get("BridgeId"):
        return [], ""
    _, bridges = lab.probe.action("BridgeList")
    technology = next((b.get("BridgeTechnology") for b in bridges
                       if b.get("BridgeUniqueid") == ours.get("BridgeId")), "")
    return [r for r in rows if r.get("BridgeId") == ours.get("BridgeId")], technology


def _agent(lab: Lab) -> SippPhone:
    """Who answers for 12345: its phone on 110's PBX, or, in the two-PBX lab, agent2 of
    12345's queue after 2 s (agent1 and agent3 on a break)."""
    if not lab.two_pbx:
        agent = lab.phone("12345")
        agent.start(answer_scenario("12345", ring_ms=300, hold_ms=30000))
        return agent
    assert lab.peer_probe is not None
    for member in AGENTS:
        lab.peer_probe.action("QueuePause", {
            "Queue": QUEUE, "Interface": f"PJSIP/{member}",
            "Paused": "false" if member == "agent2" else "true", "Reason": "lab"})
    agent = lab.phone("agent2")
    agent.start(answer_scenario("agent2", ring_ms=2000, hold_ms=30000))
    return agent


def one_key_call(lab: Lab, number: str = "13800138000", name: str = "Zhang San",
                 timeout: float = 30.0, wait_logged: bool = True) -> Observed:
    """Citizen → 110 → seat1 answers, presses the key → 12345 answers → three parties →
    seat1 leaves → citizen and 12345 talk on in a plain call → the citizen hangs up."""
    probe = lab.probe
    assert probe is not None
    seen = Observed()
    since = probe.mark()
    agent = _agent(lab)
    seat = lab.phone("seat1")
    # process-mode AGI starts a Python program at the key: give the call more time
    slack = 3000 if lab.agi == "process" else 0
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=8000 + slack, key=ONEKEY,
                               key_after_ms=800))
    citizen = lab.phone("citizen")
    citizen.start(citizen_scenario("citizen", number, "110", hold_ms=13000 + 2 * slack,
                                   caller_name=name))

    def joined() -> list[AmiMessage]:
        return [e for e in probe.events[since:] if e.event == "ConfbridgeJoin"
                and e.get("Conference") == seen.conference]

    first = probe.wait_event(lambda e: e.event == "ConfbridgeJoin"
                             and e.get("Conference").startswith("linkgw-"), timeout,
                             "the first party in a linkgw conference", since)
    seen.conference = first.get("Conference")
    seen.bridge_id = seen.conference.removeprefix("linkgw-")
    wait_until(lambda: len(joined()) >= 3, timeout, "three parties in the conference")
    seen.three_party = probe.conference_members(seen.conference)
    left = probe.wait_event(lambda e: e.event == "ConfbridgeLeave"
                            and e.get("Conference") == seen.conference
                            and _starts(e.get("Channel"), "seat1"), timeout,
                            "the call-taker leaving", since)
    citizen_channel = next(e.get("Channel") for e in joined()
                           if _starts(e.get("Channel"), "citizen"))

    def plain() -> bool:
        seen.plain_call, seen.plain_technology = plain_call_of(lab, citizen_channel)
        return len(seen.plain_call) == 2 and seen.plain_technology not in ("", "softmix")

    wait_until(plain, timeout, f"the citizen in a plain call after {left.get('Channel')} left")
    for phone in (citizen, seat, agent):
        seen.exits[phone.name.rsplit("-", 1)[0]] = phone.wait(timeout)
    seen.agent_invite = received_invite(agent.received())
    if not wait_logged:  # Redis may be down: what Asterisk showed is all there is yet
        return seen

    def logged() -> bool:  # the gateway has logged the bridge's and the call's end
        seen.record, seen.events = read_bridge(lab, seen.bridge_id)
        kinds = {e["event"] for e in seen.events}
        return seen.record.get("state") == "ended" and "citizen_hangup" in kinds

    try:
        wait_until(logged, timeout, f"bridge {seen.bridge_id} fully logged in Redis")
    except LabError as exc:
        raise LabError(f"{exc}; record: {seen.record}") from exc
    return seen
