"""Several gateways on one Asterisk, on the real lab: each live bridge has one owner (a
lease in Redis); when the owner dies another adopts its bridges and ends them right;
new calls reach the gateway that is alive (the dialplan asks the second)."""

from __future__ import annotations

from gateway.lab.calls import one_key_call
from gateway.lab.lab import LEASE_TTL, ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.schema import epoch
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    finish,
    mark,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)


def test_the_owner_dies_and_the_other_gateway_finishes_its_bridge(two_gateways: Lab) -> None:
    lab = two_gateways
    first, second = lab.gateways
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=9000, key=ONEKEY)
    caller = citizen(lab, hold_ms=18000)
    bridge_id = wait_event(lab, since, "the citizen in a conference", Event="ConfbridgeJoin",
                           Channel="PJSIP/citizen").get("Conference").removeprefix("linkgw-")
    owner = redis_hash(lab, redis_keys(lab).bridge(bridge_id))["owner"]
    assert owner.startswith("lab-gw1/")
    assert lab.redis_client().get(redis_keys(lab).lease(bridge_id)) == owner
    first.kill()
    try:
        wait_until(lambda: str(lab.redis_client().get(redis_keys(lab).lease(bridge_id)) or "")
                   .startswith("lab-gw2/"), LEASE_TTL + TIMEOUT, "the second gateway's lease")
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
        record, _ = settled(lab, bridge_id, "citizen_hangup")
        assert (record["outcome"], record["recovered"], record["recovered_from"]) == \
            ("handed_off", "yes", "owner gone")
        assert record["owner"].startswith("lab-gw2/")
        assert '"bridge.adopted"' in second.log_path.read_text()
        # a new call while the first gateway is down: the dialplan asks the second
        seen = one_key_call(lab, number="13800138009")
        assert seen.record["outcome"] == "handed_off"
        assert seen.record["owner"].startswith("lab-gw2/")
    finally:
        first.start()
    assert lab.redis_client().get(redis_keys(lab).lease(bridge_id)) is None  # released at end


def test_a_killed_process_mode_follower_is_replaced_by_the_next_one(process_lab: Lab) -> None:
    """Process mode has no service: the follower that owns a bridge is killed during the
    three-party call, and the call then ends while nobody watches. The follower of the
    next call sweeps, adopts the orphan and closes it from Asterisk's journal with the
    outcome and the times that really happened."""
    import json
    import os
    import signal

    lab = process_lab
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=40000)
    seat = answering(lab, "seat1", hold_ms=7000, key=ONEKEY)
    caller = citizen(lab, hold_ms=12000)
    bridge_id = wait_event(lab, since, "the citizen in a conference", Event="ConfbridgeJoin",
                           Channel="PJSIP/citizen").get("Conference").removeprefix("linkgw-")
    follower = 0

    def found() -> bool:
        nonlocal follower
        for line in lab.process_log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("bridge_id") == bridge_id and entry.get("follower"):
                follower = int(entry["follower"])
        return bool(follower)

    wait_until(found, TIMEOUT, f"the follower of {bridge_id}")
    os.kill(follower, signal.SIGKILL)
    seat_left = wait_event(lab, since, "the call-taker leaving", Event="ConfbridgeLeave",
                           Channel="PJSIP/seat1")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    stranded = redis_hash(lab, redis_keys(lab).bridge(bridge_id))
    assert stranded["state"] != "ended"  # nobody watched its end
    second = one_key_call(lab, number="13800138010")  # its follower adopts the orphan
    assert second.record["outcome"] == "handed_off"
    record, _ = settled(lab, bridge_id)
    assert (record["outcome"], record["recovered"]) == ("handed_off", "yes")
    assert abs(epoch(record["seat_left_at"]) - float(seat_left.get("Timestamp"))) < 0.5
    assert record["owner"] == second.record["owner"]
