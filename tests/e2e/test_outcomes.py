"""Every transfer outcome, on the real lab: what Asterisk reports and what Redis holds.

The lab's policy (gateway/lab/lab.py): 12345 is tried twice (ring timeout 4 s, 0.5 s
apart), then the alternate PJSIP/liaison; 12345 → 110 goes to PJSIP/seat2. Unless a test
says otherwise the citizen must hang up itself: a BYE to the citizen fails its SIPp
scenario, so "the gateway never drops the citizen" is checked in every such test.
"""

from __future__ import annotations

from pathlib import Path

from gateway.lab.lab import CONSULT_KEY, EMERGENCY_KEY, ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, noanswer_scenario, refuse_scenario
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    channels,
    citizen,
    events,
    finish,
    live_channels,
    logged,
    mark,
    new_bridge,
    redis_hash,
    wait_bridged,
    wait_event,
)


def test_busy_then_alternate_busy_returns_the_call_to_the_call_taker(lab: Lab) -> None:
    """486 from 12345 twice and from the liaison: citizen and call-taker end up in one
    plain call again; a work order must be pushed; the citizen is never dropped."""
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(refuse_scenario(486, "Busy Here"), calls=2)
    liaison = lab.phone("liaison")
    liaison.start(refuse_scenario(486, "Busy Here"))
    seat = answering(lab, "seat1", hold_ms=30000, key=ONEKEY)
    caller = citizen(lab, hold_ms=9000)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, stream = logged(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    assert lab.probe is not None
    assert lab.probe.conference_members(conference) == []
    assert finish(caller, seat, agent, liaison) == {
        "citizen": 0, "seat1": 0, "12345": 0, "liaison": 0}
    record, stream = logged(lab, bridge_id, "citizen_hangup")
    assert record["state"] == "ended" and record["outcome"] == "kept_by_110"
    assert [record[f"attempt_{n}_failure"] for n in (1, 2, 3)] == ["busy"] * 3
    assert record["plan"] == "PJSIP/12345,PJSIP/12345,PJSIP/liaison"
    assert record["work_order_push_needed"] == "yes"
    assert record["direct_with"] == "seat"
    kinds = [e["event"] for e in stream]
    assert kinds.count("agent_dialing") == 3 and kinds.count("agent_failed") == 3
    assert kinds.index("work_order_push_needed") < kinds.index("bridged_direct")
    originates = events(lab, since, "Newchannel", Uniqueid=bridge_id)
    assert [e.get("Uniqueid") for e in originates] == [f"{bridge_id}-a{n}" for n in range(3)]


def test_no_answer_twice_then_the_alternate_answers(lab: Lab) -> None:
    """12345 rings out twice (ring timeout); the liaison seat answers; the call-taker
    leaves; citizen and liaison talk on."""
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"), calls=2)
    liaison = answering(lab, "liaison", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=14000, key=ONEKEY)
    caller = citizen(lab, hold_ms=18000)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    wait_event(lab, since, "the liaison joining", Event="ConfbridgeJoin",
               Conference=conference, Channel="PJSIP/liaison")
    assert lab.probe is not None
    assert channels(lab.probe.conference_members(conference)) == [
        "PJSIP/citizen", "PJSIP/liaison", "PJSIP/seat1"]
    assert finish(caller, seat, agent, liaison) == {
        "citizen": 0, "seat1": 0, "12345": 0, "liaison": 0}
    record, _ = logged(lab, conference.removeprefix("linkgw-"), "conference_ended")
    assert record["outcome"] == "handed_off"
    assert record["attempt_1_failure"] == record["attempt_2_failure"] == "no answer"
    assert record["agent_target"] == "PJSIP/liaison" and record["attempts"] == "3"


def test_unreachable_twice_and_alternate_down_returns_to_the_call_taker(lab: Lab) -> None:
    """503 from 12345 twice, the liaison phone is not running: back to the call-taker,
    who then hangs up (the citizen is released by Asterisk as in any call)."""
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(refuse_scenario(503, "Service Unavailable"), calls=2)
    seat = answering(lab, "seat1", hold_ms=9000, key=ONEKEY)
    caller = citizen(lab, hold_ms=20000, released_ok=True)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, _ = logged(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, bridge_id, "citizen_hangup")
    assert record["outcome"] == "kept_by_110"
    assert record["attempt_1_failure"] == record["attempt_2_failure"] == "unreachable"
    assert record["attempt_3_failure"] in ("no answer", "unreachable")


def test_citizen_hangs_up_while_12345_rings(lab: Lab) -> None:
    """The 12345 leg is cancelled at once (long before its ring timeout), the bridge ends
    abandoned and a callback task is recorded."""
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"))
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
    caller = citizen(lab, hold_ms=3500)
    ringing = wait_event(lab, since, "the 12345 leg", Event="Newchannel",
                         Channel="PJSIP/12345")
    bridge_id = ringing.get("Uniqueid").rsplit("-a", 1)[0]
    gone = wait_event(lab, since, "the 12345 leg hung up", Event="Hangup",
                      Uniqueid=ringing.get("Uniqueid"))
    rang_for = float(gone.get("Timestamp")) - float(ringing.get("Timestamp"))
    assert rang_for < 3.0, rang_for  # the lab's ring timeout is 4 s
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, bridge_id, "callback_needed")
    assert (record["state"], record["outcome"]) == ("ended", "abandoned")
    callback = redis_hash(lab, f"linkgw:callback:{bridge_id}")
    assert callback["number"] == "13800138000" and callback["seat"] == "seat1"
    assert callback["status"] == "open"
    assert lab.redis_client().zscore("linkgw:idx:callbacks:open", bridge_id) is not None


def test_never_transfer_item_is_refused_with_a_prompt(lab: Lab) -> None:
    """Key + item 104 (car blocking a fire lane: never transferred): no conference, the
    call-taker hears the refusal prompt, the refusal is on record, the call goes on."""
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY + "104")
    caller = citizen(lab, hold_ms=5000)
    played = wait_event(lab, since, "the refusal prompt", Event="Newexten",
                        Channel="PJSIP/seat1", Application="Playback")
    assert played.get("AppData") == "feature-not-avail-line"
    bridge_id = new_bridge(lab, "seat1", before)
    record, stream = logged(lab, bridge_id, "transfer_refused")
    assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
    assert (record["outcome"], record["refusal"]) == ("refused", "never_transfer")
    assert (record["code"], record["item"], record["category"]) == \
        ("104", "vehicle.fire_lane", "vehicle")
    assert [e["event"] for e in stream] == ["transfer_refused"]
    assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/seat1") == []


def test_emergency_key_then_the_one_key_is_refused(lab: Lab) -> None:
    """The call-taker flags an emergency (police dispatch first), then presses the one
    key: no transfer, the refusal prompt, both on record; the call goes on."""
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    seat = lab.phone("seat1")
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=20000,
                               presses=[(800, EMERGENCY_KEY), (1500, ONEKEY)]))
    caller = citizen(lab, hold_ms=8000)
    wait_event(lab, since, "the emergency confirmation", Event="Newexten",
               Channel="PJSIP/seat1", Application="Playback", AppData="beep")
    wait_event(lab, since, "the refusal prompt", Event="Newexten", Channel="PJSIP/seat1",
               Application="Playback", AppData="feature-not-avail-line")
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = logged(lab, bridge_id, "transfer_refused")
    assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
    assert (record["outcome"], record["refusal"]) == ("refused", "emergency")
    call = redis_hash(lab, f"linkgw:call:{record['citizen_uniqueid']}")
    assert call["emergency_by"] == "seat1"
    assert call["registered_at"] < call["emergency_at"] < record["requested_at"]
    assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/seat1") == []


def test_consult_12345_declines_so_110_keeps_it(lab: Lab) -> None:
    """Consult key: three parties; 12345 leaves; citizen and call-taker go on in one
    plain call; outcome kept by 110 under first-contact duty."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=2500)
    seat = answering(lab, "seat1", hold_ms=30000, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=9000)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    wait_event(lab, since, "12345 joining", Event="ConfbridgeJoin", Conference=conference,
               Channel="PJSIP/12345")
    record, _ = logged(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, bridge_id, "citizen_hangup")
    assert (record["mode"], record["decision"], record["outcome"]) == \
        ("consult", "kept_by_first_line", "kept_by_110")


def test_consult_12345_takes_it_when_the_call_taker_leaves(lab: Lab) -> None:
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=3500, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=9000)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, _ = logged(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["agent_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, bridge_id, "citizen_hangup")
    assert (record["decision"], record["outcome"]) == ("taken_by_other_line", "handed_off")


def test_reverse_12345_hands_a_police_matter_to_110(lab: Lab) -> None:
    """A citizen calls 12345; the agent presses the key; the 110 seat (seat2) answers;
    the agent leaves; the record runs 12345->110 with a response deadline."""
    since = mark(lab)
    police = answering(lab, "seat2", hold_ms=30000)
    hotline = answering(lab, "12345", hold_ms=3500, key=ONEKEY)
    caller = citizen(lab, hold_ms=9000, dial="12345")
    conference = wait_event(lab, since, "the 12345 agent in a conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/12345").get("Conference")
    wait_event(lab, since, "seat2 joining", Event="ConfbridgeJoin", Conference=conference,
               Channel="PJSIP/seat2")
    assert finish(caller, hotline, police) == {"citizen": 0, "12345": 0, "seat2": 0}
    record, _ = logged(lab, conference.removeprefix("linkgw-"), "conference_ended")
    assert record["direction"] == "12345->110"
    assert (record["seat"], record["agent_target"]) == ("12345", "PJSIP/seat2")
    assert record["outcome"] == "handed_off"
    from datetime import datetime

    due = datetime.fromisoformat(record["response_due_at"].replace("Z", "+00:00"))
    asked = datetime.fromisoformat(record["requested_at"].replace("Z", "+00:00"))
    assert (due - asked).total_seconds() == 1800


def test_handoff_is_recorded(lab: Lab) -> None:
    """The three-party segment is recorded by ConfBridge; the path is on the record."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=3000, key=ONEKEY)
    caller = citizen(lab, hold_ms=6000)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, conference.removeprefix("linkgw-"), "conference_ended")
    assert lab.asterisk is not None
    path = Path(str(lab.asterisk.root) + record["recording"])
    wait_until(path.exists, TIMEOUT, f"the recording {path}")
    assert path.stat().st_size > 44  # more than a bare WAV header
    assert live_channels(lab) == []
