"""The other line declines a consult transfer and says why with a key: its agent, in the
three-party conference, types the decline key and a reason's code (``*92``). Asterisk
notes the reason, the agent hears that it is noted and its leg ends; citizen and
call-taker go on in one plain call, and the record, the feed and the joint meeting's
list hold the reason. On one PBX and over the trunk to 12345's PBX, in both AGI modes.
"""

from __future__ import annotations

import json
import time
from zoneinfo import ZoneInfo

from gateway.lab.lab import CONSULT_KEY, DECLINE_KEY, Lab
from gateway.lab.sipp import SippPhone, answer_scenario, requests_received
from gateway.records.periods import today
from tests.e2e.helpers import (
    answering,
    citizen,
    cli,
    finish,
    mark,
    played,
    settled,
    wait_bridged,
    wait_event,
)
from tests.e2e.test_two_pbx import at_desk, pushed_events, slack

#: code 2 of the shipped reasons (transfer.decline_reasons)
REASON = "情况紧急，须现场处置"


def declined_with_a_reason(lab: Lab, bridge_id: str, agent_channel: str) -> dict[str, str]:
    """What every test of a keyed decline checks once the citizen has hung up: the
    decision, the reason and its code by key, noted before the agent left; the agent
    heard that it was noted. Returns the record."""
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert (record["mode"], record["decision"], record["outcome"]) == \
        ("consult", "kept_by_first_line", "kept_by_first_line")
    assert (record["decline_reason"], record["decline_reason_code"],
            record["decline_reason_via"]) == (REASON, "2", "key")
    assert record["agent_joined_at"] < record["decline_reason_at"] <= record["agent_left_at"]
    kinds = [e["event"] for e in stream]
    # the decline is the decision: citizen and call-taker are moved at once, while the
    # agent still hears that its reason is noted
    assert kinds.count("declined") == 1
    assert kinds.index("declined") < kinds.index("bridged_direct") < kinds.index("left:agent")
    assert record["agent_channel"] == agent_channel
    return record


def declining(lab: Lab, since: int, phone: str, leg: str, ring_ms: int, key_after_ms: int,
              citizen_ms: int) -> tuple[SippPhone, SippPhone, SippPhone, str, str]:
    """The call-taker presses the consult key; the other line's agent (``phone``, whose
    leg at 110 is ``leg``) answers and types *92 ``key_after_ms`` later. Returns the
    three phones, the bridge and the agent's leg, once the agent heard that its reason
    is noted and citizen and call-taker are in one plain call again."""
    agent = lab.phone(phone)
    agent.start(answer_scenario(phone, ring_ms=ring_ms, hold_ms=30000,
                                key=f"{DECLINE_KEY}2", key_after_ms=key_after_ms))
    seat = answering(lab, "seat1", hold_ms=30000, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=citizen_ms)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    wait_event(lab, since, "the citizen joining", Event="ConfbridgeJoin",
               Conference=conference, Channel="PJSIP/citizen")
    joined = wait_event(lab, since, "the agent's leg in the conference",
                        Event="ConfbridgeJoin", Conference=conference, Channel=leg)
    played(lab, since, joined.get("Channel"), lab.transfer.decline_prompt)
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    return agent, seat, caller, bridge_id, joined.get("Channel")


def test_the_12345_agent_declines_with_a_reason_typed_as_a_key(any_lab: Lab) -> None:
    lab = any_lab
    since = mark(lab)
    extra = 4000 if lab.agi == "process" else 0  # process mode moves the citizen later
    agent, seat, caller, bridge_id, channel = declining(
        lab, since, "12345", "PJSIP/12345", ring_ms=200, key_after_ms=5000 + extra,
        citizen_ms=16000 + extra)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    # Asterisk ended the agent's leg (its BYE), long before the agent's 30 s were up
    assert requests_received(agent.received())[-1] == "BYE"
    declined_with_a_reason(lab, bridge_id, channel)
    # the journal in AstDB holds it too (a gateway that takes the bridge over reads it)
    assert lab.asterisk is not None
    journal = lab.asterisk.cli(f"database get linkgw/{bridge_id} agent_a0_declined")
    assert journal.strip().endswith("|2")
    month = today(time.time(), ZoneInfo(lab.config.tickets.time_zone))[:7]
    report = json.loads(cli(lab, "report", "--month", month, "--json").stdout)
    listed = [r for r in report["joint_meeting"] if r["bridge_id"] == bridge_id]
    assert [r["reason"] for r in listed] == [REASON]


def test_110_declines_12345s_consult_with_a_reason_too(any_lab: Lab) -> None:
    """12345 consults 110 (its agent pressed *2): the 110 seat that answers has the same
    keys; its reason is on the 12345 -> 110 record (110's own decision: not on the
    joint meeting's list, which reviews 12345's declines)."""
    lab = any_lab
    since = mark(lab)
    extra = 4000 if lab.agi == "process" else 0
    police = lab.phone("seat2")
    police.start(answer_scenario("seat2", ring_ms=200, hold_ms=30000,
                                 key=f"{DECLINE_KEY}1", key_after_ms=5000 + extra))
    hotline = answering(lab, "12345", hold_ms=30000, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=16000 + extra, dial="12345")
    conference = wait_event(lab, since, "the 12345 agent in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/12345").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    joined = wait_event(lab, since, "seat2 in the conference", Event="ConfbridgeJoin",
                        Conference=conference, Channel="PJSIP/seat2")
    played(lab, since, joined.get("Channel"), lab.transfer.decline_prompt)
    assert finish(caller, hotline, police) == {"citizen": 0, "12345": 0, "seat2": 0}
    assert requests_received(police.received())[-1] == "BYE"
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["direction"], record["decision"], record["decline_reason"],
            record["decline_reason_via"]) == \
        ("12345->110", "kept_by_first_line", "属公安职责，须警方处置", "key")
    month = today(time.time(), ZoneInfo(lab.config.tickets.time_zone))[:7]
    report = json.loads(cli(lab, "report", "--month", month, "--json").stdout)
    assert bridge_id not in [r["bridge_id"] for r in report["joint_meeting"]]


def test_a_code_the_list_lacks_leaves_the_agent_in_the_call(any_lab: Lab) -> None:
    """``*97``: no reason 7 is listed, so the menu has no such key: nothing happens, the
    three stay together until the call-taker leaves and 12345 takes the matter."""
    lab = any_lab
    since = mark(lab)
    extra = 4000 if lab.agi == "process" else 0
    agent = lab.phone("12345")
    agent.start(answer_scenario("12345", ring_ms=200, hold_ms=30000,
                                key=f"{DECLINE_KEY}7", key_after_ms=4500 + extra))
    seat = answering(lab, "seat1", hold_ms=9000 + extra, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=16000 + extra)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, stream = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["agent_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert (record["decision"], record["outcome"]) == ("taken_by_other_line", "handed_off")
    assert "decline_reason" not in record
    assert "declined" not in [e["event"] for e in stream]


def test_a_queue_agent_of_12345s_pbx_declines_with_a_reason_over_the_trunk(
        two_pbx: Lab) -> None:
    """The agent's digits cross 12345's PBX and the trunk (RFC 4733) to 110's
    conference; Asterisk ends the trunk leg, 12345's PBX the agent's call; 12345's system
    across the boundary is told the reason by push."""
    lab = two_pbx
    at_desk(lab, "agent2")
    since = mark(lab)
    extra = 2 * slack(lab)
    agent, seat, caller, bridge_id, channel = declining(
        lab, since, "agent2", "PJSIP/trunk-12345", ring_ms=500, key_after_ms=5500 + extra,
        citizen_ms=17000 + extra)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "agent2": 0}
    assert requests_received(agent.received())[-1] == "BYE"
    declined_with_a_reason(lab, bridge_id, channel)
    pushed = pushed_events(lab, bridge_id, "declined")
    given = [e for e in pushed if e["event"] == "declined"]
    assert [(e["fields"]["decision"], e["fields"]["decline_reason"],
             e["fields"]["decline_reason_code"]) for e in given] == \
        [("kept_by_first_line", REASON, "2")]
