"""Calls played through the lab, observed from Asterisk (AMI) and Redis.

The demo prints what these return; the end-to-end tests assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from gateway.ami.codec import AmiMessage
from gateway.lab.lab import ONEKEY, Lab
from gateway.lab.process import LabError, wait_until
from gateway.lab.sipp import answer_scenario, citizen_scenario


@dataclass
class Observed:
    """What Asterisk and Redis showed during one one-key call."""

    conference: str = ""
    bridge_id: str = ""
    three_party: list[AmiMessage] = field(default_factory=list)
    after_seat_left: list[AmiMessage] = field(default_factory=list)
    record: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    exits: dict[str, int] = field(default_factory=dict)


def _starts(channel: str, endpoint: str) -> bool:
    return channel.startswith(f"PJSIP/{endpoint}-")


def read_bridge(lab: Lab, bridge_id: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The bridge hash and its stream entries, oldest first."""
    r = lab.redis_client()
    prefix = lab.config.redis.prefix
    record = cast(dict[str, str], r.hgetall(f"{prefix}:bridge:{bridge_id}"))
    entries = cast(list[tuple[str, dict[str, str]]], r.xrange(f"{prefix}:events"))
    events = [dict(e, id=i) for i, e in entries if e.get("record") == f"bridge:{bridge_id}"]
    return record, events


def one_key_call(lab: Lab, number: str = "13800138000", name: str = "Zhang San",
                 timeout: float = 30.0, wait_logged: bool = True) -> Observed:
    """Citizen → 110 → seat1 answers, presses the key → 12345 answers → seat1 leaves →
    citizen and 12345 talk on → the citizen hangs up."""
    probe = lab.probe
    assert probe is not None
    seen = Observed()
    since = probe.mark()
    agent = lab.phone("12345")
    agent.start(answer_scenario("12345", ring_ms=300, hold_ms=30000))
    seat = lab.phone("seat1")
    # process-mode AGI starts a Python program at the key: give the call more time
    slack = 3000 if lab.agi == "process" else 0
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000 + slack, key=ONEKEY,
                               key_after_ms=800))
    citizen = lab.phone("citizen")
    citizen.start(citizen_scenario("citizen", number, "110", hold_ms=10000 + 2 * slack,
                                   caller_name=name))

    def joined() -> list[AmiMessage]:
        return [e for e in probe.events[since:] if e.event == "ConfbridgeJoin"
                and e.get("Conference").startswith("linkgw-")]

    first = probe.wait_event(lambda e: e.event == "ConfbridgeJoin"
                             and e.get("Conference").startswith("linkgw-"), timeout,
                             "the first party in a linkgw conference", since)
    seen.conference = first.get("Conference")
    seen.bridge_id = seen.conference.removeprefix("linkgw-")
    wait_until(lambda: len([e for e in joined()
                            if e.get("Conference") == seen.conference]) >= 3,
               timeout, "three parties in the conference")
    seen.three_party = probe.conference_members(seen.conference)
    probe.wait_event(lambda e: e.event == "ConfbridgeLeave"
                     and e.get("Conference") == seen.conference
                     and _starts(e.get("Channel"), "seat1"), timeout, "the call-taker leaving",
                     since)
    seen.after_seat_left = probe.conference_members(seen.conference)
    probe.wait_event(lambda e: e.event == "ConfbridgeEnd"
                     and e.get("Conference") == seen.conference, timeout,
                     "the end of the conference", since)
    for phone in (citizen, seat, agent):
        seen.exits[phone.name.rsplit("-", 1)[0]] = phone.wait(timeout)
    if not wait_logged:  # Redis may be down: what Asterisk showed is all there is yet
        return seen

    def logged() -> bool:  # the gateway has logged the conference's and the call's end
        seen.record, seen.events = read_bridge(lab, seen.bridge_id)
        kinds = {e["event"] for e in seen.events}
        return {"conference_ended", "citizen_hangup"} <= kinds

    try:
        wait_until(logged, timeout, f"bridge {seen.bridge_id} fully logged in Redis")
    except LabError as exc:
        raise LabError(f"{exc}; record: {seen.record}") from exc
    return seen
