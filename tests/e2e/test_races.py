"""Races people will hit, on the real lab, in both AGI modes where they apply."""

from __future__ import annotations

from gateway.lab.lab import ONEKEY, RING_TIMEOUT, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, noanswer_scenario
from gateway.process.keeper_client import KeeperFeed
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    citizen,
    events,
    finish,
    keeper_running,
    live_channels,
    mark,
    new_bridge,
    settled,
    wait_bridged,
    wait_event,
)


def test_key_pressed_twice_makes_one_transfer(any_lab: Lab) -> None:
    """*1*1 in one go, and *1 again from inside the conference: one bridge, one 12345
    leg (the second press is the key again, not a code)."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = answering(lab, "12345", hold_ms=30000)
    seat = lab.phone("seat1")
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000,
                               presses=[(800, ONEKEY + ONEKEY), (2500, ONEKEY)]))
    caller = citizen(lab, hold_ms=13000)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id)
    assert record["outcome"] == "handed_off" and record["code_given"] == "no"
    legs = events(lab, since, "Newchannel", Channel="PJSIP/12345")
    assert [e.get("Uniqueid") for e in legs] == [f"{bridge_id}-a0"]
    conferences = {e.get("Conference") for e in events(lab, since, "ConfbridgeJoin")}
    assert conferences == {f"linkgw-{bridge_id}"}


def test_the_item_code_typed_in_one_go_with_the_key(any_lab: Lab) -> None:
    """*1101 typed at once, as RFC 4733 events in the phone's RTP (the digits Asterisk
    would not hand to an application in the feature's first half second): code 101 on
    the record, and 12345 was dialled at the key, before the code was handed over.

    The resident gateway dials while the code is still being typed. A process-mode
    program may start after the last digit on a loaded machine (the digit keeper has
    the digits; the slow-start test below makes that case on purpose), so there the
    order is the one the program makes: the dial, then the code."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=5000, key=ONEKEY + "101")
    caller = citizen(lab, hold_ms=12000)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    bridge_id = new_bridge(lab, "seat1", before)
    dialled, last_digit = _code_101_on_record(lab, since, bridge_id)
    code_done = events(lab, since, "UserEvent", UserEvent="LinkgwKeyDone", Bridge=bridge_id)
    assert [e.get("Code") for e in code_done] == ["101"]
    assert dialled < float(code_done[0].get("Timestamp"))
    if lab.agi == "fastagi":
        assert dialled < last_digit


def _code_101_on_record(lab: Lab, since: int, bridge_id: str) -> tuple[float, float]:
    """Code 101 is on the bridge's record; when (Asterisk's time) its 12345 leg was
    created and the seat's last digit ended."""
    record, _ = settled(lab, bridge_id)
    got = {k: record.get(k) for k in ("code", "code_given", "item", "category")}
    assert got == {"code": "101", "code_given": "yes", "item": "vehicle.driveway",
                   "category": "vehicle"}, (got, record)  # what was typed, whole
    leg = events(lab, since, "Newchannel", Uniqueid=f"{bridge_id}-a0")[0]
    last_digit = events(lab, since, "DTMFEnd", Channel="PJSIP/seat1")[-1]
    return float(leg.get("Timestamp")), float(last_digit.get("Timestamp"))


def test_a_code_typed_before_a_slow_program_could_listen_is_kept(process_lab: Lab) -> None:
    """Process mode on a loaded machine: every AGI program starts 0.6 s late, so the
    whole of *1101 has been typed (and dropped by res_agi) before the key's program runs.
    The digit keeper, started by the detached process of an earlier program, had every
    digit: code 101 on the record."""
    lab = process_lab
    keeper_running(lab)  # the premise: a keeper started by an earlier program
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    lab.slow_program_start(0.6)
    try:
        agent = answering(lab, "12345", hold_ms=30000)
        seat = answering(lab, "seat1", hold_ms=6000, key=ONEKEY + "101")
        caller = citizen(lab, hold_ms=13000)
        bridge_id = wait_event(lab, since, "the key done", Event="UserEvent",
                               UserEvent="LinkgwKeyDone").get("Bridge")
    finally:
        lab.slow_program_start(0)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    assert bridge_id == new_bridge(lab, "seat1", before)
    dialled, last_digit = _code_101_on_record(lab, since, bridge_id)
    assert last_digit < dialled  # all typed before the program could dial, or listen


def test_citizen_hangs_up_within_a_second_of_the_key(any_lab: Lab) -> None:
    """12345 was dialled at the key; the citizen is gone half a second later: the leg is
    cancelled at once, nobody is moved, and the intent is on record as abandoned with
    a callback task."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"))
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
    caller = citizen(lab, hold_ms=1500)
    assert caller.wait(TIMEOUT) == 0
    seat.wait(TIMEOUT)
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "callback_needed")
    assert (record["state"], record["outcome"]) == ("ended", "abandoned")
    assert events(lab, since, "ConfbridgeJoin", Channel="PJSIP/citizen") == []
    wait_until(lambda: live_channels(lab) == [], TIMEOUT, "no channel left")
    legs = events(lab, since, "Hangup", Uniqueid=f"{bridge_id}-a0")
    if legs or lab.agi == "fastagi":
        assert legs and legs[0].get("Cause") != "19"  # cancelled, not rung out
        assert agent.wait(TIMEOUT) == 0  # it rang, and was cancelled
    else:
        # process mode on a loaded machine: the key's program started after the
        # citizen had gone, and dialled nobody (the next test proves that case alone)
        assert events(lab, since, "Newchannel", Uniqueid=f"{bridge_id}-a0") == []
        agent.stop()


def test_12345_answers_just_as_the_ring_timeout_fires(any_lab: Lab) -> None:
    """Whichever wins, the bridge ends consistent, no leg is left behind, and the
    citizen is never dropped (it hangs up itself)."""
    lab = any_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = answering(lab, "12345", hold_ms=30000, ring_ms=int(RING_TIMEOUT * 1000) - 30,
                      calls=2)
    seat = answering(lab, "seat1", hold_ms=25000, key=ONEKEY)
    caller = citizen(lab, hold_ms=14000)
    assert caller.wait(TIMEOUT) == 0
    assert seat.wait(TIMEOUT) == 0
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    agent.stop()  # its scenario may have lost the race; Asterisk is what counts
    wait_until(lambda: live_channels(lab) == [], TIMEOUT, "no channel left")
    if "agent_answered_at" in record:
        assert record["outcome"] in ("handed_off", "three_party_ended")
        assert record["agent_answered_at"] < record["ended_at"]
    else:
        assert record["attempt_1_failure"] == "no answer"
        assert record["outcome"] == "kept_by_first_line"
    assert len(events(lab, since, "ConfbridgeJoin", Channel="PJSIP/12345")) <= 1


def test_gateway_down_the_call_still_rings_and_the_key_falls_back(lab: Lab) -> None:
    """With the gateway stopped: the 110 call still reaches a seat (AGISTATUS fallback);
    the key plays the error tone to the call-taker, then the dialplan's fallback
    blind-transfers the citizen to 12345 (no three-party call, nothing recorded); the
    citizen is never dropped. The gateway then comes back. (FastAGI only: in process
    mode there is no gateway to stop.)"""
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    lab.gateway.stop()
    try:
        agent = answering(lab, "12345", hold_ms=30000)
        seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
        caller = citizen(lab, hold_ms=6000)
        wait_event(lab, since, "the AGI failing", Event="VarSet", Channel="PJSIP/seat1",
                   Variable="AGISTATUS", Value="FAILURE")
        wait_event(lab, since, "the error tone", Event="Newexten", Channel="PJSIP/seat1",
                   Application="Playback", AppData=lab.transfer.error_tone)
        leg = wait_event(lab, since, "the fallback dialling 12345", Event="Newchannel",
                         Channel="PJSIP/12345")
        ringing = wait_event(lab, since, "the citizen in the fallback", Event="Newexten",
                             Context="linkgw-fallback", Channel="PJSIP/citizen")
        wait_bridged(lab, ringing.get("Channel"), leg.get("Channel"))
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    finally:
        lab.gateway.start()
    assert bridges_of_seat(lab, "seat1") == before
    assert events(lab, since, "ConfbridgeJoin") == []


def test_the_keeper_holds_the_seats_digits_and_never_the_citizens(process_lab: Lab) -> None:
    """The digit keeper of process mode keeps what linkgw's armed channels type: the
    seat's key and code, not the number a citizen typed into the call (Asterisk saw
    both). Asked over its own socket, as the key's program asks it."""
    lab = process_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=6000, key=ONEKEY + "101")
    caller = citizen(lab, hold_ms=13000, keys="4711")
    bridge_id = new_bridge(lab, "seat1", before)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id)
    typed = {who: "".join(e.get("Digit") for e in events(
        lab, since, "DTMFEnd", Uniqueid=record[f"{who}_uniqueid"], Direction="Received"))
        for who in ("citizen", "seat")}
    assert typed == {"citizen": "4711", "seat": "*1101"}
    spool = str(lab.asterisk_base() / "gw/spool")
    held = {}
    for who in ("citizen", "seat"):
        feed = KeeperFeed.ask(spool, record[f"{who}_uniqueid"])
        assert feed is not None, "no keeper answered"
        held[who] = "".join(digit for digit, _ in feed.history)
        feed.close()
    assert held == {"citizen": "", "seat": "*1101"}


def test_a_slow_keys_program_dials_nobody_once_the_citizen_is_gone(process_lab: Lab) -> None:
    """Process mode on a loaded machine: the key's program starts 1.5 s late, after the
    citizen has hung up. It dials nobody (12345 never rings), and the intent is on
    record as abandoned with a callback task."""
    lab = process_lab
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    lab.slow_program_start(1.5)
    try:
        seat = answering(lab, "seat1", hold_ms=8000, key=ONEKEY)
        caller = citizen(lab, hold_ms=1500)
        assert caller.wait(TIMEOUT) == 0
        bridge_id = new_bridge(lab, "seat1", before)
    finally:
        lab.slow_program_start(0)
    record, _ = settled(lab, bridge_id, "callback_needed")
    assert (record["state"], record["outcome"]) == ("ended", "abandoned")
    assert seat.wait(TIMEOUT) == 0
    wait_until(lambda: live_channels(lab) == [], TIMEOUT, "no channel left")
    assert events(lab, since, "Newchannel", Uniqueid=f"{bridge_id}-a0") == []
    assert events(lab, since, "Newchannel", Channel="PJSIP/12345") == []
