"""The gateway under a service manager, on the real lab: it says ``READY=1`` on the
notify socket only once AMI, Redis and its listeners are up (every lab start waits for
it, ``gateway.lab.services.GatewayProcess``), ``STOPPING=1`` when it stops, and a reload
during a live three-party call changes the next key's code window without touching the
call."""

from __future__ import annotations

import socket

from gateway.lab.lab import CODE_TIMEOUT, ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    events,
    finish,
    mark,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)
from tests.e2e.test_records import http

LONGER = CODE_TIMEOUT + 3.0


def test_ready_is_said_only_once_ami_redis_and_the_listeners_are_up(lab: Lab) -> None:
    """Started while AMI cannot be reached, the gateway says what it waits for and not
    that it is ready; once AMI is back it says READY=1, and at that moment /health and
    the FastAGI port answer."""
    assert lab.ami_relay is not None
    gateway = lab.gateway
    gateway.stop()
    assert "STOPPING=1" in gateway.read_notices()
    lab.ami_relay.block()
    try:
        gateway.start(wait=False)
        gateway.wait_for_notice("STATUS=starting, waiting for: AMI", TIMEOUT,
                                "the gateway waiting for AMI only")
        assert "READY=1" not in gateway.read_notices()
    finally:
        lab.ami_relay.unblock()
    gateway.wait_for_notice("READY=1", TIMEOUT, "the gateway ready once AMI is back")
    status, health = http(lab, "GET", "health")
    assert (status, health["ami"], health["redis"], health["inbound"]) == \
        (200, "connected", "up", "up")
    with socket.create_connection(("127.0.0.1", lab.fastagi_port), timeout=5):
        pass
    notices = gateway.read_notices()
    assert notices[notices.index("READY=1") + 1] == \
        "STATUS=ready: AMI, Redis and the listeners are up"


def test_a_reload_during_a_live_call_changes_the_code_window_of_the_next_key(
        any_lab: Lab) -> None:
    """A three-party call is live when the config's code_timeout grows: the gateway
    reloads (SIGHUP) without touching the call, which ends handed off with a complete
    record; the next key's code, typed after the old window had closed, is on its
    record. Process mode needs no reload: each key's program reads the file."""
    lab = any_lab
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=7000, key=ONEKEY)
    caller = citizen(lab, hold_ms=12000)
    live = wait_event(lab, since, "the citizen in a conference", Event="ConfbridgeJoin",
                      Channel="PJSIP/citizen").get("Conference").removeprefix("linkgw-")
    wait_until(lambda: redis_hash(lab, redis_keys(lab).bridge(live)).get("state")
               == "three_party", TIMEOUT, "three parties on record")
    lab.edit_config(f"code_timeout: {CODE_TIMEOUT}", f"code_timeout: {LONGER}")
    try:
        if lab.agi == "fastagi":
            assert lab.gateway.reload() == "ready; config reloaded (1 values changed)"
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
        record, _ = settled(lab, live, "citizen_hangup")
        assert (record["outcome"], record["direct_with"]) == ("handed_off", "agent")
        assert record["agent_answered_at"] < record["seat_left_at"] < record["ended_at"]

        since = mark(lab)
        agent = answering(lab, "12345", hold_ms=30000)
        seat = lab.phone("seat1")
        seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=3000,
                                   presses=[(800, ONEKEY), (int(CODE_TIMEOUT * 1000) + 700,
                                                            "101")]))
        caller = citizen(lab, hold_ms=10000)
        done = wait_event(lab, since, "the key done", Event="UserEvent",
                          UserEvent="LinkgwKeyDone")
        typed = events(lab, since, "DTMFEnd", Channel="PJSIP/seat1", Direction="Received")
        assert [e.get("Digit") for e in typed[:5]] == ["*", "1", "1", "0", "1"]
        gap = float(typed[2].get("Timestamp")) - float(typed[1].get("Timestamp"))
        assert CODE_TIMEOUT < gap < LONGER - 0.6, "typed after the old window, in the new"
        assert done.get("Code") == "101"
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
        record, _ = settled(lab, done.get("Bridge"), "citizen_hangup")
        assert (record["code"], record["code_given"], record["item"]) == \
            ("101", "yes", "vehicle.driveway")
    finally:
        lab.edit_config(f"code_timeout: {LONGER}", f"code_timeout: {CODE_TIMEOUT}")
        if lab.agi == "fastagi":
            lab.gateway.reload()
