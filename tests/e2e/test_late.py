"""Calls that arrive while no gateway answers are registered once one is back.

The gateway is killed; a citizen's call still rings the seats (the dialplan goes on
without it) and the dialplan keeps what the gateway would have registered in AstDB
(``linkgw-late``). The gateway starts again and registers it with the time of the call,
then deletes what it kept. FastAGI mode: the service does it (a process-mode site runs
no service; docs/not-built-yet.md). On one PBX (a call to 110) and between two PBXs (a
12345 agent's hand-over over the trunk, taken by 110's liaison seat).
"""

from __future__ import annotations

import time
from datetime import datetime

from gateway.lab.lab import Lab
from gateway.lab.peer import QUEUE_NUMBER, RESIDENT
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, citizen_scenario
from gateway.schema import idx_calls_caller
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    citizen,
    finish,
    mark,
    new_bridge,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)
from tests.e2e.test_two_pbx import agent2_hands_over, at_desk, peer_mark


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def kept(lab: Lab) -> str:
    """What Asterisk keeps of calls no gateway answered."""
    assert lab.asterisk is not None
    return lab.asterisk.cli("database show linkgw-late")


def test_a_call_to_110_while_the_gateway_is_down_is_registered_when_it_is_back(
        lab: Lab) -> None:
    number, name = "13700137999", "王\u2028五"  # a line separator in the name, kept exact
    lab.gateway.kill()
    try:
        since = mark(lab)
        seat = answering(lab, "seat1", hold_ms=2500)
        caller = citizen(lab, hold_ms=6000, number=number, name=name, released_ok=True)
        wait_event(lab, since, "seat1 answering", Event="DialEnd", DialStatus="ANSWER")
        called = time.time()
        assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
        assert "/linkgw-late/" in kept(lab) and "/incoming" in kept(lab)
        restarted = time.time()
    finally:
        lab.gateway.start()
    calls = redis_keys(lab).index(idx_calls_caller(number))
    client = lab.redis_client()
    wait_until(lambda: client.zcard(calls) > 0, TIMEOUT, "the call registered late")
    uniqueid = client.zrange(calls, -1, -1)[0]
    call = redis_hash(lab, redis_keys(lab).call(str(uniqueid)))
    assert (call["number"], call["name"], call["dialed"], call["registered_late"]) == \
        (number, name, "110", "yes")
    assert called - 5 < epoch(call["registered_at"]) < restarted  # the call's, not now's
    wait_until(lambda: "/linkgw-late/" not in kept(lab), TIMEOUT, "AstDB emptied")


def test_a_handover_over_the_trunk_while_the_gateway_is_down_is_registered_later(
        two_pbx_lab: Lab) -> None:
    """agent2 at 12345 hands the resident to 110 with a work order while 110's gateway
    is down; 110's liaison (seat2) takes the call. Back up, the gateway registers the
    12345 → 110 bridge with the ticket and the deadline from the arrival's time, taken
    by seat2."""
    lab = two_pbx_lab
    at_desk(lab, "agent2")
    ticket = "2026120400077"
    before = bridges_of_seat(lab, "12345:agent2")
    lab.gateway.kill()
    try:
        since, peer_since = mark(lab), peer_mark(lab)
        agent = lab.phone("agent2")
        agent.start(answer_scenario("agent2", ring_ms=300, hold_ms=30000))
        liaison_110 = answering(lab, "seat2", ring_ms=800, hold_ms=3000)
        resident = lab.phone(RESIDENT)
        resident.start(citizen_scenario(RESIDENT, "13900139777", QUEUE_NUMBER,
                                        hold_ms=12000, caller_name="李四", released_ok=True))
        agent2_hands_over(lab, peer_since, ticket)
        wait_event(lab, since, "110's liaison answering", Event="DialEnd",
                   DestChannel="PJSIP/seat2", DialStatus="ANSWER")
        arrived = time.time()
        assert finish(resident, agent, liaison_110) == {RESIDENT: 0, "agent2": 0, "seat2": 0}
        assert "/handed" in kept(lab) and "/taken" in kept(lab)
        restarted = time.time()
    finally:
        lab.gateway.start()
    bridge_id = new_bridge(lab, "12345:agent2", before)
    record, events = settled(lab, bridge_id, "handover_taken")
    assert (record["direction"], record["mode"], record["outcome"], record["agent"]) == \
        ("12345->110", "trunk", "handed_off", "seat2")
    assert (record["citizen_number"], record["citizen_name"]) == ("13900139777", "李四")
    assert arrived - 5 < epoch(record["requested_at"]) < epoch(record["agent_answered_at"]) \
        < restarted
    assert epoch(record["response_due_at"]) - epoch(record["requested_at"]) == \
        lab.transfer.response_deadline
    assert [e["event"] for e in events] == ["handover_arrived", "handover_taken"]
    assert redis_hash(lab, redis_keys(lab).ticket(bridge_id))["ticket"] == ticket
    wait_until(lambda: "/linkgw-late/" not in kept(lab), TIMEOUT, "AstDB emptied")
