"""110 and 12345 as two PBXs: 110's Asterisk reaches 12345's own Asterisk over a SIP
trunk and lands in its queue of three agents (gateway/lab/peer.py), in both AGI modes.

The lab's policy: 12345's queue (``PJSIP/12345@trunk-12345``) is tried twice, ring
timeout 4 s, then 12345's police liaison seat (``PJSIP/1234501@trunk-12345``). 12345's
PBX answers the trunk only when an agent answers, and answers 486 when no agent can be
rung. Each test says which agents are at their desks (the others are paused), checks
what both Asterisks report, what the agents' phones received, and what Redis holds.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, cast

from gateway.catalogue import Catalogue
from gateway.lab.lab import ONEKEY, TRUNK, Lab
from gateway.lab.peer import (
    AGENTS,
    HANDOVER_CONTEXT,
    HANDOVER_PREFIX,
    LIAISON,
    QUEUE,
    QUEUE_NUMBER,
    RESIDENT,
)
from gateway.lab.process import wait_until
from gateway.lab.sipp import (
    SippPhone,
    answer_scenario,
    citizen_scenario,
    noanswer_scenario,
    received_invite,
    refuse_scenario,
    requests_received,
)
from gateway.records.actor import Actor
from gateway.records.tickets import TicketDesk
from gateway.schema import bridge_record
from gateway.transfer.invite import parse_uui
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    channels,
    citizen,
    finish,
    mark,
    new_bridge,
    played,
    redis_hash,
    redis_keys,
    settled,
    wait_bridged,
    wait_event,
)

#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")


def at_desk(lab: Lab, *present: str) -> None:
    """Agents ``present`` take calls; the others of the queue are paused (on a break)."""
    probe = lab.peer_probe
    assert probe is not None
    for agent in AGENTS:
        probe.action("QueuePause", {"Queue": QUEUE, "Interface": f"PJSIP/{agent}",
                                    "Paused": "false" if agent in present else "true",
                                    "Reason": "lab"})


def peer_mark(lab: Lab) -> int:
    assert lab.peer_probe is not None
    return lab.peer_probe.mark()


def peer_event(lab: Lab, since: int, what: str, event: str, **headers: str):  # type: ignore[no-untyped-def]
    assert lab.peer_probe is not None
    return lab.peer_probe.wait_event(
        lambda e: e.event == event and all(e.get(k).startswith(v) for k, v in headers.items()),
        TIMEOUT, what, since)


def pushed_events(lab: Lab, bridge_id: str, last: str) -> list[dict[str, Any]]:
    """What the lab's 12345 receiver kept of a bridge, once ``last`` arrived."""
    assert lab.receiver is not None
    receiver = lab.receiver
    got: list[dict[str, Any]] = []

    def arrived() -> bool:
        got[:] = [e for e in receiver.events() if e.get("bridge_id") == bridge_id]
        return any(e["event"] == last for e in got)

    wait_until(arrived, TIMEOUT, f"{last} of {bridge_id} at 12345's receiver")
    return got


def feed_events(lab: Lab, bridge_id: str) -> list[dict[str, str]]:
    entries = cast(list[tuple[str, dict[str, str]]],
                   lab.redis_client().xrange(redis_keys(lab).feed("12345")))
    return [e for _, e in entries if e.get("record") == bridge_record(bridge_id)]


def back_with_the_call_taker(lab: Lab, since: int, bridge_id: str) -> None:
    """12345 was not reached: Asterisk shows citizen and call-taker in one plain call
    again, the call-taker having heard the failure tone first."""
    record, _ = settled(lab, bridge_id, "bridged_direct")
    wait_bridged(lab, record["citizen_channel"], record["seat_channel"])
    played(lab, since, record["seat_channel"], lab.transfer.failed_prompt)


def slack(lab: Lab) -> int:
    """Process mode starts a Python program at the key: calls need longer."""
    return 3000 if lab.agi == "process" else 0


def iso_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_queue_agent_answers_after_seconds_and_sees_the_bridge_on_the_invite(
        two_pbx: Lab) -> None:
    """agent1 rings and is cancelled, agent2 answers after 2.5 s, agent3 is on a break.
    12345's PBX answers the trunk only then: ``agent_answered_at`` is agent2's answer
    (12345's own AgentConnect), ``dialing_at`` → answer is the time in 12345's queue.
    agent2's INVITE carries User-to-User, X-Linkgw-* and Call-Info equal to the record,
    and the display name ``110转 <name>``. Three parties on 110's side (the trunk leg
    the third), then citizen and agent2 talk on."""
    lab = two_pbx
    at_desk(lab, "agent1", "agent2")
    since, peer_since = mark(lab), peer_mark(lab)
    before = bridges_of_seat(lab, "seat1")
    ringing = lab.phone("agent1")
    ringing.start(noanswer_scenario("agent1"))
    agent = lab.phone("agent2")
    agent.start(answer_scenario("agent2", ring_ms=2500, hold_ms=30000))
    seat = answering(lab, "seat1", hold_ms=9000 + slack(lab), key=ONEKEY)
    caller = citizen(lab, hold_ms=15000 + 2 * slack(lab))
    bridge_id = new_bridge(lab, "seat1", before)
    conference = f"linkgw-{bridge_id}"
    wait_event(lab, since, "the trunk leg in the conference", Event="ConfbridgeJoin",
               Conference=conference, Channel=f"PJSIP/{TRUNK}")
    wait_event(lab, since, "the citizen in the conference", Event="ConfbridgeJoin",
               Conference=conference, Channel="PJSIP/citizen")
    assert lab.probe is not None
    assert channels(lab.probe.conference_members(conference)) == [
        "PJSIP/citizen", "PJSIP/seat1", f"PJSIP/{TRUNK}"]
    connect = peer_event(lab, peer_since, "agent2 taking the call", "AgentConnect",
                         Queue=QUEUE, Interface="PJSIP/agent2")
    assert int(connect.get("HoldTime")) >= 2
    assert finish(caller, seat, ringing, agent) == {
        "citizen": 0, "seat1": 0, "agent1": 0, "agent2": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["outcome"], record["direct_with"]) == ("handed_off", "agent")
    assert record["agent_target"] == f"PJSIP/12345@{TRUNK}"
    assert record["agent_channel"].startswith(f"PJSIP/{TRUNK}-")
    # answered when a person answered, not when 12345's PBX got the call
    answered = iso_epoch(record["agent_answered_at"])
    assert abs(answered - float(connect.get("Timestamp"))) < 0.5
    assert answered - iso_epoch(record["dialing_at"]) >= 2.4
    invite = received_invite(agent.received())
    assert invite["x-linkgw-bridge"] == record["bridge_id"]
    assert invite["x-linkgw-seat"] == record["seat"] == "seat1"
    assert invite["x-linkgw-direction"] == record["direction"] == "110->12345"
    assert invite["x-linkgw-centre"] == "110-lab"
    assert invite["x-linkgw-caller"] == record["citizen_number"]
    assert parse_uui(invite["user-to-user"]) == {
        "bridge": record["bridge_id"], "seat": "seat1", "direction": "110->12345",
        "centre": "110-lab", "caller": record["citizen_number"]}
    assert invite["call-info"] == \
        f"<https://110-gateway.lab/bridges/{bridge_id}>;purpose=info"
    assert invite["from"].startswith('"110转 Zhang San" <sip:13800138000@')
    # ... and the 12345 system was told, across the boundary: every change of the bridge
    # on 12345's feed reached its receiver over HTTPS, signed, in order
    pushed = pushed_events(lab, bridge_id, "citizen_hangup")
    feed = feed_events(lab, bridge_id)
    assert [e["id"] for e in pushed] == [e["id"] for e in feed]
    assert [e["event"] for e in pushed][:2] == ["transfer_requested", "agent_dialing"]
    assert pushed[0]["fields"]["citizen_number"] == "13800138000"
    assert "citizen_channel" not in pushed[0]["fields"]  # no 110 internals


def test_no_agent_at_12345_is_busy_then_the_liaison_is_busy_so_110_keeps_it(
        two_pbx: Lab) -> None:
    """Every agent on a break: 12345's PBX answers 486 at once (the caller cannot join
    an empty queue), twice; its police liaison seat is busy too. The citizen and the
    call-taker go on in a plain call, the call-taker hears the failure tone first, and a
    work order is owed."""
    lab = two_pbx
    at_desk(lab)
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    liaison = lab.phone(LIAISON)
    liaison.start(refuse_scenario(486, "Busy Here"))
    seat = answering(lab, "seat1", hold_ms=30000, key=ONEKEY)
    caller = citizen(lab, hold_ms=9000 + slack(lab))
    bridge_id = new_bridge(lab, "seat1", before)
    back_with_the_call_taker(lab, since, bridge_id)
    assert finish(caller, seat, liaison) == {"citizen": 0, "seat1": 0, LIAISON: 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["state"], record["outcome"]) == ("ended", "kept_by_first_line")
    assert [record[f"attempt_{n}_failure"] for n in (1, 2, 3)] == ["busy"] * 3
    assert record["plan"] == \
        f"PJSIP/12345@{TRUNK},PJSIP/12345@{TRUNK},PJSIP/1234501@{TRUNK}"
    assert record["work_order_push_needed"] == "yes"
    assert "agent_answered_at" not in record


def test_the_trunk_down_returns_the_call_to_the_call_taker(two_pbx: Lab) -> None:
    """12345's PBX is stopped: nothing answers on the trunk. Every attempt fails, the
    citizen and the call-taker go on in a plain call, nobody is dropped; 12345's PBX
    is started again afterwards."""
    lab = two_pbx
    lab.stop_peer()
    try:
        since = mark(lab)
        before = bridges_of_seat(lab, "seat1")
        seat = answering(lab, "seat1", hold_ms=40000, key=ONEKEY)
        caller = citizen(lab, hold_ms=24000 + slack(lab))
        bridge_id = new_bridge(lab, "seat1", before)
        back_with_the_call_taker(lab, since, bridge_id)
        assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
        record, _ = settled(lab, bridge_id, "citizen_hangup")
        assert (record["outcome"], record["direct_with"]) == ("kept_by_first_line", "seat")
        failures = [record[f"attempt_{n}_failure"] for n in (1, 2, 3)]
        assert set(failures) <= {"unreachable", "no answer"}, failures
        assert record["work_order_push_needed"] == "yes"
    finally:
        lab.start_peer()


def test_the_citizen_hangs_up_while_queued_at_12345(two_pbx: Lab) -> None:
    """agent1 rings in 12345's queue; the citizen hangs up: 110 cancels the trunk leg,
    12345's PBX sees its caller abandon the queue and stops ringing agent1; the bridge
    ends abandoned with a callback task."""
    lab = two_pbx
    at_desk(lab, "agent1")
    since, peer_since = mark(lab), peer_mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = lab.phone("agent1")
    agent.start(noanswer_scenario("agent1"))
    seat = answering(lab, "seat1", hold_ms=20000, key=ONEKEY)
    # 3 s after its answer, in both modes (as the one-PBX test): the key has dialled
    # 12345 by then, and its 4 s ring timeout is still far
    caller = citizen(lab, hold_ms=3000)
    bridge_id = new_bridge(lab, "seat1", before)
    peer_event(lab, peer_since, "the call in 12345's queue", "QueueCallerJoin", Queue=QUEUE)
    abandon = peer_event(lab, peer_since, "the caller leaving 12345's queue",
                         "QueueCallerAbandon", Queue=QUEUE)
    assert finish(caller, agent) == {"citizen": 0, "agent1": 0}
    seat.wait(TIMEOUT)
    record, _ = settled(lab, bridge_id, "callback_needed")
    assert (record["state"], record["outcome"]) == ("ended", "abandoned")
    assert "agent_answered_at" not in record
    leg_gone = wait_event(lab, since, "the trunk leg hung up", Event="Hangup",
                          Uniqueid=f"{bridge_id}-a0")
    # the trunk leg was cancelled by 110, not rung out to its 4 s ring timeout
    assert float(leg_gone.get("Timestamp")) - iso_epoch(record["dialing_at"]) < 3.9
    assert float(abandon.get("Timestamp")) >= float(leg_gone.get("Timestamp")) - 0.5


def agent2_hands_over(lab: Lab, peer_since: int, ticket: str) -> None:
    """agent2 takes the resident's call at 12345 and, once both are in the bridge, hands
    it to 110 with 12345's own blind transfer (AMI BlindTransfer, as an agent desktop
    does) to the hand-over number + the work order's."""
    connect = peer_event(lab, peer_since, "agent2 taking the resident's call",
                         "AgentConnect", Queue=QUEUE, Interface="PJSIP/agent2")
    assert lab.peer_probe is not None
    # AgentConnect comes before both are in the bridge; a transfer needs them there
    pair = (connect.get("Channel"), connect.get("DestChannel"))
    lab.peer_probe.wait_event(
        lambda e: e.event == "BridgeEnter" and e.get("BridgeNumChannels") == "2"
        and e.get("Channel") in pair, TIMEOUT, "resident and agent2 bridged", peer_since)
    reply, _ = lab.peer_probe.action("BlindTransfer", {
        "Channel": connect.get("DestChannel"), "Context": HANDOVER_CONTEXT,
        "Exten": f"{HANDOVER_PREFIX}{ticket}"})
    assert reply.get("Response") == "Success", reply


def test_the_12345_agent_hangs_up_after_the_hand_off(two_pbx: Lab) -> None:
    """agent3 answers, the call-taker leaves, then agent3 hangs up first: the citizen's
    call ends as a call does (Asterisk releases the citizen); the record is complete."""
    lab = two_pbx
    at_desk(lab, "agent3")
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    agent = lab.phone("agent3")
    agent.start(answer_scenario("agent3", ring_ms=500, hold_ms=11000 + 2 * slack(lab)))
    seat = answering(lab, "seat1", hold_ms=7000 + slack(lab), key=ONEKEY)
    caller: SippPhone = citizen(lab, hold_ms=40000, released_ok=True)
    bridge_id = new_bridge(lab, "seat1", before)
    wait_event(lab, since, "the seat leaving", Event="ConfbridgeLeave",
               Conference=f"linkgw-{bridge_id}", Channel="PJSIP/seat1")
    assert finish(agent, seat, caller) == {"agent3": 0, "seat1": 0, "citizen": 0}
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["outcome"], record["direct_with"]) == ("handed_off", "agent")
    # agent3 sent its BYE (it hung up first); Asterisk then released the citizen
    assert "BYE" not in requests_received(agent.received())
    assert requests_received(caller.received())[-1] == "BYE"
    assert record["seat_left_at"] < record["ended_at"] <= record["citizen_hangup_at"]


def test_a_12345_agent_hands_a_matter_to_110_over_the_trunk_and_hears_110s_answer(
        two_pbx: Lab) -> None:
    """The reverse flow between two centres. A resident calls 12345; agent2 answers and
    hands the matter to 110 with 12345's own blind transfer (AMI BlindTransfer, as an
    agent desktop does) to 8110 + the work order's number. 12345's PBX sends it over
    the trunk with X-Linkgw-Ticket and X-Linkgw-Agent; 110 registers a 12345→110 bridge
    (mode trunk) with the ticket attached and 110's response deadline, rings its liaison
    (seat2), which takes it: citizen and seat2 talk. 110 then answers the work order
    (accepted → feedback), and every step reaches 12345's receiver, signed, in order."""
    lab = two_pbx
    at_desk(lab, "agent2")
    since, peer_since = mark(lab), peer_mark(lab)
    ticket = "2026120300042"
    before = bridges_of_seat(lab, "12345:agent2")
    agent = lab.phone("agent2")
    agent.start(answer_scenario("agent2", ring_ms=300, hold_ms=30000))
    liaison_110 = answering(lab, "seat2", ring_ms=1200, hold_ms=4000)
    resident = lab.phone(RESIDENT)
    resident.start(citizen_scenario(RESIDENT, "13900139000", QUEUE_NUMBER,
                                    hold_ms=30000, caller_name="李四", released_ok=True))
    agent2_hands_over(lab, peer_since, ticket)
    bridge_id = new_bridge(lab, "12345:agent2", before)
    answered = wait_event(lab, since, "110's liaison seat answering", Event="DialEnd",
                          DestChannel="PJSIP/seat2", DialStatus="ANSWER")
    record, events = settled(lab, bridge_id, "handover_taken")
    wait_bridged(lab, record["citizen_channel"], answered.get("DestChannel"))
    assert record["citizen_channel"].startswith(f"PJSIP/{TRUNK}-")
    assert (record["direction"], record["mode"], record["outcome"]) == \
        ("12345->110", "trunk", "handed_off")
    assert (record["citizen_number"], record["citizen_name"]) == ("13900139000", "李四")
    assert (record["seat"], record["agent"], record["dialed"]) == \
        ("12345:agent2", "seat2", "110")
    assert iso_epoch(record["response_due_at"]) - iso_epoch(record["requested_at"]) == \
        lab.transfer.response_deadline
    assert iso_epoch(record["agent_answered_at"]) - iso_epoch(record["requested_at"]) >= 1.1
    assert [e["event"] for e in events] == ["handover_arrived", "handover_taken"]
    order = redis_hash(lab, redis_keys(lab).ticket(bridge_id))
    assert (order["ticket"], order["attached_via"], order["deadline_at"]) == \
        (ticket, "trunk", record["response_due_at"])
    assert finish(resident, agent, liaison_110) == {RESIDENT: 0, "agent2": 0, "seat2": 0}
    # 110 answers the work order (its own system, through the records desk)
    desk = TicketDesk(lab.redis_client(), lab.config.redis.prefix, lab.config.tickets,
                      Catalogue(()), time.time)
    desk.status(bridge_id, "accepted", "", API)
    desk.status(bridge_id, "assigned", "派出所", API)
    assert desk.status(bridge_id, "feedback", "已出警处理", API)["on_time"] == "yes"
    pushed = pushed_events(lab, bridge_id, "ticket_feedback")
    assert [e["event"] for e in pushed] == [
        "handover_arrived", "ticket_attached", "handover_taken", "ticket_accepted",
        "ticket_assigned", "ticket_feedback"]
    assert pushed[1]["fields"]["ticket"] == ticket
    assert pushed[-1]["fields"]["feedback_note"] == "已出警处理"
    assert "citizen_channel" not in pushed[0]["fields"]  # no 110 internals


def test_a_call_from_110_waits_ahead_of_12345s_own_callers_in_its_queue(
        two_pbx: Lab) -> None:
    """agent1 alone at the desk, talking with a resident; a second resident waits in
    12345's queue. A transfer from 110 arrives over the trunk: 12345's PBX queues it at
    ``QUEUE_PRIO=10`` (the reference dialplan), so it joins ahead of the resident who
    was already waiting: position 1 of 2."""
    lab = two_pbx
    at_desk(lab, "agent1")
    peer_since = peer_mark(lab)
    agent = lab.phone("agent1")
    agent.start(answer_scenario("agent1", ring_ms=200, hold_ms=60000), calls=3)
    residents = lab.phone(RESIDENT)
    residents.start(citizen_scenario(RESIDENT, "13900139000", QUEUE_NUMBER, hold_ms=8000,
                                     caller_name="李四", released_ok=True),
                    calls=2, limit=2)
    peer_event(lab, peer_since, "agent1 talking with a resident", "AgentConnect",
               Queue=QUEUE, Interface="PJSIP/agent1")
    assert lab.peer_probe is not None
    probe = lab.peer_probe

    def joins(channel: str) -> list[Any]:
        return [e for e in probe.events[peer_since:] if e.event == "QueueCallerJoin"
                and e.get("Queue") == QUEUE and e.get("Channel").startswith(channel)]

    wait_until(lambda: len(joins(f"PJSIP/{RESIDENT}")) == 2, TIMEOUT,
               "a second resident waiting")
    seat = answering(lab, "seat1", hold_ms=6000 + slack(lab), key=ONEKEY)
    caller = citizen(lab, hold_ms=14000 + 2 * slack(lab), released_ok=True)
    wait_until(lambda: bool(joins("PJSIP/trunk-110")), TIMEOUT,
               "the call from 110 in the queue")
    first = joins("PJSIP/trunk-110")[0]
    assert (first.get("Position"), first.get("Count")) == ("1", "2")
    assert finish(caller, seat, residents) == {"citizen": 0, "seat1": 0, RESIDENT: 0}
    lab.stop_phones()  # agent1, waiting for a third call that may not come
    peers = [p for p in (lab.probe, lab.peer_probe) if p is not None]
    wait_until(lambda: not any(p.action("CoreShowChannels")[1] for p in peers), TIMEOUT,
               "every call over on both PBXs")
