"""Items for the police liaison seat at 12345 (`target: liaison` in categories.yaml):
the call-taker presses the key and types such an item's code (206, a lost identity
card); 12345's queue, dialled at the key, is cancelled and the liaison seat rings and
answers; the citizen, the call-taker and the liaison are in one conference. In both AGI
modes, on one PBX and between the two PBXs (the liaison behind the trunk)."""

from __future__ import annotations

import secrets

from gateway.lab.lab import ONEKEY, TRUNK, Lab
from gateway.lab.peer import AGENTS, LIAISON, LIAISON_NUMBER, QUEUE
from gateway.lab.sipp import (
    SippPhone,
    answer_scenario,
    noanswer_scenario,
    requests_received,
)
from tests.e2e.helpers import (
    answering,
    bridges_of_seat,
    channels,
    citizen,
    finish,
    keeper_running,
    mark,
    new_bridge,
    settled,
    wait_event,
)
from tests.e2e.test_records import http

CODE = "206"  # daily_help.lost_id_card: target liaison


def typing(lab: Lab) -> SippPhone:
    """The call-taker presses the key, then types the code a moment later, as a person
    who looks it up on the card does (a code typed in one go with the key is
    test_races.py's matter, not this one's)."""
    phone = lab.phone("seat1")
    phone.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000,
                                presses=((800, ONEKEY), (700, CODE))))
    return phone


def test_a_liaison_item_rings_the_liaison_seat_instead_of_the_queue(any_lab: Lab) -> None:
    lab = any_lab
    keeper_running(lab)  # process mode: the code typed with the key is kept
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    queue = lab.phone("12345")
    queue.start(noanswer_scenario("12345"))  # rings, nobody takes it before the code
    liaison = answering(lab, "liaison", hold_ms=30000, ring_ms=300)  # the citizen ends it
    seat = typing(lab)
    caller = citizen(lab, hold_ms=12000 + (3000 if lab.agi == "process" else 0))
    bridge_id = new_bridge(lab, "seat1", before)
    joined = wait_event(lab, since, "the liaison in the conference", Event="ConfbridgeJoin",
                        Channel="PJSIP/liaison-")
    assert lab.probe is not None
    members = lab.probe.conference_members(joined.get("Conference"))
    assert "PJSIP/liaison" in channels(members)
    record, stream = settled(lab, bridge_id, "citizen_hangup")
    assert finish(caller, seat, liaison, queue) == {
        "citizen": 0, "seat1": 0, "liaison": 0, "12345": 0}
    assert (record["item"], record["route"], record["route_target"]) == (
        "daily_help.lost_id_card", "liaison", "PJSIP/liaison")
    assert (record["agent_target"], record["outcome"]) == ("PJSIP/liaison", "handed_off")
    assert record["plan"] == "PJSIP/12345,PJSIP/liaison" and "rerouted_at" in record
    # the queue's leg was cancelled by the code: its phone got the INVITE, then CANCEL
    assert requests_received(queue.received())[:2] == ["INVITE", "CANCEL"]
    assert [e["event"] for e in stream].count("agent_dialing") == 2


def test_a_liaison_item_rings_12345s_liaison_seat_over_the_trunk(two_pbx: Lab) -> None:
    """12345's queue rings (its agents at their desks, nobody answers in time); the code
    cancels it over the trunk and 110 dials 12345's liaison number, which 12345's PBX
    rings at its police desk."""
    lab = two_pbx
    keeper_running(lab)
    probe = lab.peer_probe
    assert probe is not None
    for agent in AGENTS:
        probe.action("QueuePause", {"Queue": QUEUE, "Interface": f"PJSIP/{agent}",
                                    "Paused": "false", "Reason": "lab"})
    agents = [lab.phone(a) for a in AGENTS]
    for agent, phone in zip(AGENTS, agents, strict=True):
        phone.start(noanswer_scenario(agent))
    before = bridges_of_seat(lab, "seat1")
    desk = answering(lab, LIAISON, hold_ms=30000, ring_ms=300)  # the citizen ends it
    seat = typing(lab)
    caller = citizen(lab, hold_ms=12000 + (3000 if lab.agi == "process" else 0))
    bridge_id = new_bridge(lab, "seat1", before)
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert finish(caller, seat, desk) == {"citizen": 0, "seat1": 0, LIAISON: 0}
    for phone in agents:
        phone.stop()
    target = f"PJSIP/{LIAISON_NUMBER}@{TRUNK}"
    assert (record["route_target"], record["agent_target"], record["outcome"]) == (
        target, target, "handed_off")
    assert record["plan"] == f"PJSIP/12345@{TRUNK},{target}"
    assert "INVITE" in requests_received(desk.received())


def test_the_liaison_seat_accepts_and_answers_a_police_work_order_with_its_own_token(
        lab: Lab) -> None:
    """Its role works on work orders only: it accepts, assigns and answers them; the
    bridges and the figures are not its own (403)."""
    ticket = "20261203" + f"{secrets.randbelow(10 ** 5):05d}"
    status, _ = http(lab, "POST", "workorders", {
        "ticket": ticket, "category": "daily_help", "summary": "身份证遗失，询问补办地点"},
        lab.role_tokens["12345"], operator="G12345-07")
    assert status == 200
    desk = lab.role_tokens["liaison"]
    for step, extra in (("accepted", {}), ("assigned", {"unit": "城关派出所户籍室"}),
                        ("answered", {"note": "已告知补办地点和材料"})):
        status, got = http(lab, "POST", f"workorders/{ticket}/status",
                           {"status": step} | extra, desk, operator="L1201")
        assert (status, got["status"], got[f"{step}_by"]) == (200, step, "L1201"), got
    assert http(lab, "GET", f"workorders/{ticket}", token=desk)[0] == 200
    for path in ("bridges?day=2026-12-03", "stats", "live", "handover"):
        status, got = http(lab, "GET", path, token=desk)
        assert (status, got["error"]) == (403, "role_forbidden"), path
    status, got = http(lab, "POST", f"workorders/{ticket}/return", {"reason": "x"}, desk,
                       operator="L1201")
    assert (status, got["error"]) == (403, "role_forbidden")  # 110's own decision
