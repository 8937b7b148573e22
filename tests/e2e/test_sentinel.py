"""Redis Sentinel failover on the real lab: the master is killed while transfers run;
every change of every bridge is in Redis exactly once, in order, and the day's chain
holds. A ticket the API said was attached survives the master killed right after."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

from gateway.lab.calls import one_key_call, read_bridge
from gateway.lab.lab import Lab
from gateway.lab.process import LabError, wait_until
from gateway.lab.sipp import answer_scenario, citizen_scenario
from gateway.records.chain import verify_day
from gateway.schema import Keys
from tests.e2e.helpers import finish, mark, settled, wait_event
from tests.e2e.test_records import http


def test_master_killed_during_transfers_every_change_lands_once(sentinel_lab: Lab) -> None:
    lab = sentinel_lab
    assert lab.sentinels is not None
    before = one_key_call(lab, number="13700000001").bridge_id
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(answer_scenario("12345", ring_ms=300, hold_ms=30000))
    seat = lab.phone("seat1")
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=8000, key="*1",
                               key_after_ms=800))
    caller = lab.phone("citizen")
    caller.start(citizen_scenario("citizen", "13700000002", "110", hold_ms=13000))
    during = wait_event(lab, since, "the citizen in a conference", Event="ConfbridgeJoin",
                        Channel="PJSIP/citizen").get("Conference").removeprefix("linkgw-")
    killed_at = time.time()
    old = lab.sentinels.kill_master()  # mid-call: the gateway's writes fail over
    assert lab.sentinels.master_port() != old.port
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    lab.sentinels.restart(old)  # back as a replica
    after = one_key_call(lab, number="13700000003").bridge_id
    for bridge_id in (before, during, after):
        record, events = settled(lab, bridge_id, "citizen_hangup")
        assert record["outcome"] == "handed_off", record
        ids = [e["id"] for e in events]
        assert Counter(ids).most_common(1)[0][1] == 1, "a change written twice"
        assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
        assert record["seq"] == str(len(events))
        if bridge_id == during:  # the call's later changes went to the new master
            assert [e["event"] for e in events if float(e["at"]) > killed_at], events
    record, _ = read_bridge(lab, during)
    day = record["requested_at"][:10]
    report = verify_day(lab.redis_client(), "linkgw", day)
    assert report.ok, report


def test_a_ticket_attached_just_before_the_master_is_killed_is_still_there(
        sentinel_lab: Lab) -> None:
    """The ticket desk answers 200 only once a replica has the change (``WAIT``), as
    transfer changes do. With both replicas frozen it answers 503 (try again), though the
    master has the change; the retry, with the replicas back, is 200; the master
    SIGKILLed right after that answer loses nothing."""
    lab = sentinel_lab
    assert lab.sentinels is not None
    assert lab.config.redis.min_replicas == 1  # what makes the 200 mean "on a replica"
    bridge_id = one_key_call(lab, number="13700000004").bridge_id
    as_12345 = lab.role_tokens["12345"]
    replicas = [s for s in lab.sentinels.servers if s.port != lab.sentinels.master_port()]
    frozen = [s.proc for s in replicas if s.proc is not None]
    assert len(frozen) == 2
    for proc in frozen:
        os.kill(proc.pid, signal.SIGSTOP)  # our own children, by pid
    try:
        status, body = http(lab, "PUT", f"bridges/{bridge_id}/ticket",
                            {"ticket": "2026120300042"}, as_12345)
    finally:
        for proc in frozen:
            os.kill(proc.pid, signal.SIGCONT)
    assert (status, body["error"]) == (503, "store_unavailable"), body
    assert "reached 0 of 1 replicas" in body["message"]
    wait_until(lambda: http(lab, "PUT", f"bridges/{bridge_id}/ticket",
                            {"ticket": "2026120300042"}, as_12345)[0] == 200,
               30, "the retry confirmed by a replica")
    old = lab.sentinels.kill_master()  # at once: nothing else was written meanwhile
    try:
        ticket = lab.redis_client().hgetall(Keys(lab.config.redis.prefix).ticket(bridge_id))
        assert (ticket.get("ticket"), ticket.get("status")) == ("2026120300042", "attached")
        # the API reads it back from the new master too, once its client has found it
        answers: list[tuple[int, Any]] = []

        def read() -> bool:
            answers.append(http(lab, "GET", f"bridges/{bridge_id}", token=as_12345))
            return answers[-1][0] == 200

        try:
            wait_until(read, 30, "the API reading from the new master")
        except LabError as exc:
            raise AssertionError(f"{exc}; its last answers: {answers[-3:]}") from None
        shown = answers[-1][1]
        assert shown["ticket"]["ticket"] == "2026120300042", shown
        assert "ticket_attached" in [e["event"] for e in shown["events"]], shown["events"]
    finally:
        lab.sentinels.restart(old)  # back as a replica, for the tests after this one
