"""The edges of a 24-hour service, on the real lab: the gateway killed and restarted, the
AMI link cut, AMI gone at the key, the emergency flag across a restart.

Every record must reach ``ended`` with the outcome that really happened, say when it was
recovered and from what, and no citizen may be dropped (the citizen's phone fails its
scenario on a BYE it did not expect).
"""

from __future__ import annotations

import time

from gateway.lab.lab import EMERGENCY_KEY, ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    citizen,
    events,
    finish,
    mark,
    new_bridge,
    played,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)


def _restart(lab: Lab) -> None:
    lab.gateway.kill()  # SIGKILL: nothing flushed, nothing said
    lab.gateway.start()


def _joined(lab: Lab, since: int, who: str) -> str:
    return wait_event(lab, since, f"{who} in a conference", Event="ConfbridgeJoin",
                      Channel=f"PJSIP/{who}").get("Conference").removeprefix("linkgw-")


def test_gateway_killed_while_12345_rings_then_restarted(lab: Lab) -> None:
    """Killed as the key's feature returns, before anyone is moved, while 12345 rings;
    12345 answers while the gateway starts again. The restarted gateway reads the
    journal (the key is done), moves citizen and call-taker in, sees 12345 there, and
    follows the bridge to its true end."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000, ring_ms=2500)
    seat = answering(lab, "seat1", hold_ms=9000, key=ONEKEY)
    caller = citizen(lab, hold_ms=16000)
    done = wait_event(lab, since, "the key done", Event="UserEvent", UserEvent="LinkgwKeyDone")
    _restart(lab)
    bridge_id = done.get("Bridge")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["outcome"], record["recovered"]) == ("handed_off", "yes")
    assert record["agent_answered_at"] < record["seat_left_at"] < record["ended_at"]
    assert record["conference_at"] > record["key_done_at"]


def test_gateway_killed_in_three_party_then_restarted(lab: Lab) -> None:
    """Killed while three talk; the call-taker leaves while it is down: the journal
    says when, and the record ends handed off with that time."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=6000, key=ONEKEY)
    caller = citizen(lab, hold_ms=16000)
    bridge_id = _joined(lab, since, "citizen")
    wait_until(lambda: redis_hash(lab, redis_keys(lab).bridge(bridge_id)).get("state")
               == "three_party", TIMEOUT, "three parties on record")
    lab.gateway.kill()
    left = wait_event(lab, since, "the call-taker leaving", Event="ConfbridgeLeave",
                      Channel="PJSIP/seat1")
    lab.gateway.start()
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert (record["state"], record["outcome"], record["recovered"]) == \
        ("ended", "handed_off", "yes")
    assert abs(_epoch(record["seat_left_at"]) - float(left.get("Timestamp"))) < 0.5
    assert any(e["event"] == "left:seat" and '"recovered": "yes"' in e["data"]
               for e in stream)


def test_gateway_killed_after_the_call_taker_left_then_restarted(lab: Lab) -> None:
    """Killed once the conference has ended into a plain call of citizen and 12345:
    the bridge has ended, but its citizen is still on the line, so it is still live in
    Redis; the restarted gateway adopts it and records the citizen's hang-up."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=5000, key=ONEKEY)
    caller = citizen(lab, hold_ms=14000)
    bridge_id = _joined(lab, since, "citizen")
    wait_event(lab, since, "the plain call", Event="UserEvent", UserEvent="LinkgwDirect",
               Bridge=bridge_id)
    wait_until(lambda: redis_hash(lab, redis_keys(lab).bridge(bridge_id)).get("state")
               == "ended", TIMEOUT, "ended on record")
    _restart(lab)
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert (record["state"], record["outcome"], record["recovered"]) == \
        ("ended", "handed_off", "yes")
    assert record["ended_at"] < record["citizen_hangup_at"]
    assert [e["event"] for e in stream].count("citizen_hangup") == 1


def test_ami_cut_for_3_seconds_during_three_party(any_lab: Lab) -> None:
    """The AMI link is down for 3 s while three talk and the call-taker leaves then:
    after the reconnect the gateway (or the bridge's follower) reads what it missed and
    ends the record right."""
    lab = any_lab
    assert lab.ami_relay is not None
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=6500, key=ONEKEY)
    caller = citizen(lab, hold_ms=15000)
    bridge_id = _joined(lab, since, "citizen")
    wait_until(lambda: redis_hash(lab, redis_keys(lab).bridge(bridge_id)).get("state")
               == "three_party", TIMEOUT, "three parties on record")
    cut_at = time.monotonic()
    lab.ami_relay.block()
    try:
        wait_event(lab, since, "the call-taker leaving", Event="ConfbridgeLeave",
                   Channel="PJSIP/seat1")
        time.sleep(max(0.0, 3.0 - (time.monotonic() - cut_at)))
    finally:
        lab.ami_relay.unblock()
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["outcome"], record["direct_with"]) == ("handed_off", "agent")
    log = (lab.gateway.log_path if lab.agi == "fastagi" else lab.process_log).read_text()
    assert '"ami.disconnected"' in log


def test_ami_down_at_the_key_is_a_failure_with_the_error_tone(any_lab: Lab) -> None:
    """No AMI at the key: the call-taker hears the error tone, the dialplan gets a
    failure (and falls back to a blind transfer), the record says why; never OK and
    then silence."""
    lab = any_lab
    assert lab.ami_relay is not None
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    lab.ami_relay.block()
    try:
        agent = answering(lab, "12345", hold_ms=30000)
        seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
        caller = citizen(lab, hold_ms=6000)
        played(lab, since, "PJSIP/seat1", lab.transfer.error_tone)
        bridge_id = new_bridge(lab, "seat1", before)
        record, _ = settled(lab, bridge_id, "transfer_refused")
        wait_event(lab, since, "the fallback", Event="Newexten", Context="linkgw-fallback",
                   Channel="PJSIP/citizen")
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    finally:
        lab.ami_relay.unblock()
    assert (record["outcome"], record["refusal"]) == ("failed", "ami_down")
    assert events(lab, since, "Newchannel", Uniqueid=bridge_id) == []


def test_emergency_then_a_restart_then_the_key_is_still_refused(lab: Lab) -> None:
    """The flag is on the citizen's channel, not in a gateway's memory."""
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    seat = lab.phone("seat1")
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=20000,
                               presses=[(800, EMERGENCY_KEY), (9000, ONEKEY)]))
    # the key comes once the restarted gateway is surely ready again (it now waits for
    # AMI, Redis and its listeners before it says so)
    caller = citizen(lab, hold_ms=16000)
    played(lab, since, "PJSIP/seat1", lab.transfer.emergency_prompt)
    _restart(lab)
    played(lab, since, "PJSIP/seat1", lab.transfer.refusal_prompt)
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "transfer_refused")
    assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
    assert (record["outcome"], record["refusal"]) == ("refused", "emergency")
    call = redis_hash(lab, redis_keys(lab).call(record["citizen_uniqueid"]))
    assert call["emergency_by"] == "seat1" and call["emergency_at"] < record["requested_at"]
    assert events(lab, since, "Newchannel", Channel="PJSIP/12345") == []


def _epoch(iso_time: str) -> float:
    from gateway.schema import epoch

    return epoch(iso_time)
