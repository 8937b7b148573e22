"""Every transfer outcome, on the real lab, in both AGI modes (FastAGI and process mode):
what Asterisk reports, what each person hears, and what Redis holds.

The lab's policy (gateway/lab/lab.py): 12345 is tried twice (ring timeout 4 s, 0.5 s
apart), then the alternate PJSIP/liaison; 12345 → 110 goes to PJSIP/seat2; the item code
may be typed for 1.5 s after the key (12345 rings meanwhile). Unless a test says
otherwise the citizen must hang up itself: a BYE to the citizen fails its SIPp scenario,
so "the gateway never drops the citizen" is checked in every such test.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from gateway.lab.lab import CONSULT_KEY, EMERGENCY_KEY, ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, noanswer_scenario, refuse_scenario
from gateway.schema import IDX_CALLBACKS_OPEN
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    channels,
    citizen,
    events,
    finish,
    live_channels,
    mark,
    new_bridge,
    played,
    redis_hash,
    redis_keys,
    settled,
    wait_bridged,
    wait_event,
)


def test_busy_everywhere_returns_the_call_to_the_call_taker_with_a_tone(
        any_lab: Lab) -> None:
    """486 from 12345 twice and from the liaison (all before the key's feature returned):
    citizen and call-taker go on in one plain call, the call-taker first hears the
    failure tone; a work order must be pushed; the citizen is never dropped."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = lab.phone("12345")
    agent.start(refuse_scenario(486, "Busy Here"), calls=2)
    liaison = lab.phone("liaison")
    liaison.start(refuse_scenario(486, "Busy Here"))
    seat = answering(lab, "seat1", hold_ms=30000, key=ONEKEY)
    caller = citizen(lab, hold_ms=9000)
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    played(lab, since, record["seat_channel"], lab.transfer.failed_prompt)
    assert finish(caller, seat, agent, liaison) == {
        "citizen": 0, "seat1": 0, "12345": 0, "liaison": 0}
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert (record["state"], record["outcome"]) == ("ended", "kept_by_first_line")
    assert [record[f"attempt_{n}_failure"] for n in (1, 2, 3)] == ["busy"] * 3
    assert record["plan"] == "PJSIP/12345,PJSIP/12345,PJSIP/liaison"
    assert record["work_order_push_needed"] == "yes"
    assert record["direct_with"] == "seat"
    kinds = [e["event"] for e in stream]
    assert kinds.count("agent_dialing") == 3 and kinds.count("agent_failed") == 3
    assert kinds.index("work_order_push_needed") < kinds.index("bridged_direct")
    originates = events(lab, since, "Newchannel", Uniqueid=bridge_id)
    assert [e.get("Uniqueid") for e in originates] == [f"{bridge_id}-a{n}" for n in range(3)]
    if lab.agi == "fastagi":
        # all three failed while the key's feature ran (it lasts until the notice is
        # over), so nobody was moved. A process-mode program dials once; its detached
        # follower makes the retries after the program ended, and they may outlast the
        # notice: then citizen and call-taker wait in the conference first
        assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/citizen") == []


def test_no_answer_twice_then_the_alternate_answers(any_lab: Lab) -> None:
    """12345 rings out twice (ring timeout); the liaison seat answers; the call-taker
    leaves; citizen and liaison talk on in a plain call."""
    lab = any_lab
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
    record, _ = settled(lab, conference.removeprefix("linkgw-"))
    assert record["outcome"] == "handed_off"
    assert record["attempt_1_failure"] == record["attempt_2_failure"] == "no answer"
    assert record["agent_target"] == "PJSIP/liaison" and record["attempts"] == "3"


def test_unreachable_twice_and_alternate_down_returns_to_the_call_taker(
        any_lab: Lab) -> None:
    """503 from 12345 twice, the liaison phone is not running: out of the conference
    into a plain call with the call-taker, who then hangs up (the citizen is released
    by Asterisk as in any call)."""
    lab = any_lab
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(refuse_scenario(503, "Service Unavailable"), calls=2)
    seat = answering(lab, "seat1", hold_ms=12000, key=ONEKEY)
    caller = citizen(lab, hold_ms=25000, released_ok=True)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert record["outcome"] == "kept_by_first_line"
    assert record["attempt_1_failure"] == record["attempt_2_failure"] == "unreachable"
    assert record["attempt_3_failure"] in ("no answer", "unreachable")


def test_citizen_hangs_up_while_12345_rings(any_lab: Lab) -> None:
    """The 12345 leg (dialled at the key) is cancelled at once, long before its ring
    timeout; the bridge ends abandoned, a callback task is recorded, and the call-taker
    is not left waiting in an empty conference."""
    lab = any_lab
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"))
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
    caller = citizen(lab, hold_ms=3000)
    ringing = wait_event(lab, since, "the 12345 leg", Event="Newchannel",
                         Channel="PJSIP/12345")
    bridge_id = ringing.get("Uniqueid").rsplit("-a", 1)[0]
    gone = wait_event(lab, since, "the 12345 leg hung up", Event="Hangup",
                      Uniqueid=ringing.get("Uniqueid"))
    rang_for = float(gone.get("Timestamp")) - float(ringing.get("Timestamp"))
    assert rang_for < 3.5, rang_for  # the lab's ring timeout is 4 s
    assert finish(caller, agent) == {"citizen": 0, "12345": 0}
    seat.wait(TIMEOUT)  # released by Asterisk, or hung up itself: not left waiting
    record, _ = settled(lab, bridge_id, "callback_needed")
    assert (record["state"], record["outcome"]) == ("ended", "abandoned")
    callback = redis_hash(lab, redis_keys(lab).callback(bridge_id))
    assert callback["number"] == "13800138000" and callback["seat"] == "seat1"
    assert callback["status"] == "open"
    open_callbacks = redis_keys(lab).index(IDX_CALLBACKS_OPEN)
    assert lab.redis_client().zscore(open_callbacks, bridge_id) is not None
    wait_until(lambda: live_channels(lab) == [], TIMEOUT, "no channel left")


def test_never_transfer_item_cancels_the_ringing_leg_and_refuses(any_lab: Lab) -> None:
    """Key + item 104 (car blocking a fire lane: never transferred). 12345 was dialled
    at the key; the code cancels it at once; the call-taker hears the refusal prompt;
    the refusal is on record and the call goes on between citizen and call-taker."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"))
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY + "104")
    caller = citizen(lab, hold_ms=6000)
    played(lab, since, "PJSIP/seat1", lab.transfer.refusal_prompt)
    bridge_id = new_bridge(lab, "seat1", before)
    record, stream = settled(lab, bridge_id, "key_done")
    leg = wait_event(lab, since, "the cancelled 12345 leg", Event="Hangup",
                     Uniqueid=f"{bridge_id}-a0")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    assert (record["outcome"], record["refusal"]) == ("refused", "never_transfer")
    assert (record["code"], record["item"], record["category"]) == \
        ("104", "vehicle.fire_lane", "vehicle")
    # cancelled by the code, not rung out: gone before its ring timeout would end it
    dialled = events(lab, since, "Newchannel", Uniqueid=f"{bridge_id}-a0")[0]
    assert float(leg.get("Timestamp")) - float(dialled.get("Timestamp")) < \
        lab.transfer.ring_timeout
    assert [e["event"] for e in stream][:2] == ["transfer_requested", "agent_dialing"]
    assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/seat1") == []


def test_a_key_without_a_code_is_refused_where_the_site_requires_one(any_lab: Lab) -> None:
    """transfer.require_code: refuse, set while the lab runs (the gateway reloads it;
    process mode reads it at each key). *1 and no code: 12345, dialled at the key, is
    cancelled once the code window closes empty; the call-taker hears the refusal; the
    record says why; nobody is moved and the call goes on."""
    lab = any_lab
    lab.edit_config("  code_digits: 3\n", "  code_digits: 3\n  require_code: refuse\n")
    try:
        if lab.agi == "fastagi":
            assert lab.gateway.reload() == "ready; config reloaded (1 values changed)"
        since = mark(lab)
        before = bridges_of_seat(lab, "seat1")
        agent = lab.phone("12345")
        agent.start(noanswer_scenario("12345"))
        seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
        caller = citizen(lab, hold_ms=8000)
        played(lab, since, "PJSIP/seat1", lab.transfer.refusal_prompt)
        bridge_id = new_bridge(lab, "seat1", before)
        record, _ = settled(lab, bridge_id, "key_done")
        wait_event(lab, since, "the cancelled 12345 leg", Event="Hangup",
                   Uniqueid=f"{bridge_id}-a0")
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
        assert (record["outcome"], record["refusal"], record["code_given"]) == \
            ("refused", "code_required", "no")
        assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/seat1") == []
    finally:
        lab.edit_config("  require_code: refuse\n", "")
        if lab.agi == "fastagi":
            lab.gateway.reload()


def test_emergency_key_then_the_one_key_is_refused(any_lab: Lab) -> None:
    """The call-taker flags an emergency (police dispatch first), then presses the one
    key: no 12345 leg, the refusal prompt, both on record; the call goes on."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    seat = lab.phone("seat1")
    # the one key after the emergency prompt (1.5 s) is over, as a call-taker waits for
    # it: a key pressed while a feature still runs is not a feature
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=20000,
                               presses=[(800, EMERGENCY_KEY), (4500, ONEKEY)]))
    caller = citizen(lab, hold_ms=11000)
    played(lab, since, "PJSIP/seat1", lab.transfer.emergency_prompt)
    played(lab, since, "PJSIP/seat1", lab.transfer.refusal_prompt)
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "transfer_refused")
    assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
    assert (record["outcome"], record["refusal"]) == ("refused", "emergency")
    call = redis_hash(lab, redis_keys(lab).call(record["citizen_uniqueid"]))
    assert call["emergency_by"] == "seat1"
    assert call["registered_at"] < call["emergency_at"] < record["requested_at"]
    assert events(lab, since, "Newchannel", Channel="PJSIP/12345") == []


def test_consult_12345_declines_so_110_keeps_it(any_lab: Lab) -> None:
    """Consult key: three parties; 12345 leaves; citizen and call-taker go on in one
    plain call; outcome kept by 110 under first-contact duty."""
    lab = any_lab
    since = mark(lab)
    # 12345 leaves once the three are together: process mode moves the citizen in
    # seconds later on a loaded machine (a program starts at the key), so it stays longer
    slack = 4000 if lab.agi == "process" else 0
    agent = answering(lab, "12345", hold_ms=7500 + slack)
    seat = answering(lab, "seat1", hold_ms=30000, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=14000 + slack)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    wait_event(lab, since, "the citizen joining", Event="ConfbridgeJoin",
               Conference=conference, Channel="PJSIP/citizen")
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["mode"], record["decision"], record["outcome"]) == \
        ("consult", "kept_by_first_line", "kept_by_first_line")


def test_consult_12345_takes_it_when_the_call_taker_leaves(any_lab: Lab) -> None:
    lab = any_lab
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=7500, key=CONSULT_KEY)
    caller = citizen(lab, hold_ms=14000)
    conference = wait_event(lab, since, "seat1 in a consult conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/seat1").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["agent_channel"])
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["decision"], record["outcome"]) == ("taken_by_other_line", "handed_off")


def test_reverse_12345_hands_a_police_matter_to_110(any_lab: Lab) -> None:
    """A citizen calls 12345; the agent presses the key; the 110 seat (seat2) answers;
    the agent leaves; the record runs 12345->110 with a response deadline."""
    lab = any_lab
    since = mark(lab)
    police = answering(lab, "seat2", hold_ms=30000)
    hotline = answering(lab, "12345", hold_ms=7500, key=ONEKEY)
    caller = citizen(lab, hold_ms=14000, dial="12345")
    conference = wait_event(lab, since, "the 12345 agent in a conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/12345").get("Conference")
    wait_event(lab, since, "seat2 joining", Event="ConfbridgeJoin", Conference=conference,
               Channel="PJSIP/seat2")
    assert finish(caller, hotline, police) == {"citizen": 0, "12345": 0, "seat2": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"))
    assert record["direction"] == "12345->110"
    assert (record["seat"], record["agent_target"]) == ("12345", "PJSIP/seat2")
    assert record["outcome"] == "handed_off"
    due = datetime.fromisoformat(record["response_due_at"].replace("Z", "+00:00"))
    asked = datetime.fromisoformat(record["requested_at"].replace("Z", "+00:00"))
    assert (due - asked).total_seconds() == 1800


def test_handoff_is_recorded_with_the_notice(any_lab: Lab) -> None:
    """The citizen hears the notice (the one key's hold begins with it; the record says
    when it was over), and the citizen's side is recorded from the join on; the path is
    on the record."""
    lab = any_lab
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=7500, key=ONEKEY)
    caller = citizen(lab, hold_ms=10000)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    hold = wait_event(lab, since, "the key's hold", Event="MusicOnHoldStart",
                      Channel="PJSIP/citizen")
    assert hold.get("Class") == "linkgw_notice"
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"), "notice_played")
    assert "notice_played_at" in record
    assert lab.asterisk is not None
    path = Path(str(lab.asterisk.root) + record["recording"])
    wait_until(path.exists, TIMEOUT, f"the recording {path}")
    assert path.stat().st_size > 44  # more than a bare WAV header
    wait_until(lambda: live_channels(lab) == [], TIMEOUT, "no channel left")
