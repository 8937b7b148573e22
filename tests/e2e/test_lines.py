"""A further line, by config alone: the lab's config adds 122 (traffic police) with its
own key (``transfer.lines``), and ``linkgw dialplan`` arms that key on the seats. A
call-taker presses it: 122 rings (not 12345), the citizen hears 122's own notice, the
three meet in a conference, the call-taker leaves; the record says ``110->122``, the
figures count it under that direction, 122's feed has it while 12345's has not, and
122's system reads it over the API with a token of its own."""

from __future__ import annotations

import json
from typing import Any, cast
from zoneinfo import ZoneInfo

from gateway.lab.lab import ONEKEY, TRAFFIC_ITEM, TRAFFIC_KEY, TRUNK, Lab
from gateway.lab.peer import TRAFFIC
from gateway.lab.process import wait_until
from gateway.lab.services import PushProcess, ReceiverProcess
from gateway.lab.sipp import (
    answer_scenario,
    noanswer_scenario,
    received_invite,
    requests_received,
)
from gateway.records.periods import today
from gateway.schema import IDX_DEADLINE, Keys, epoch
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    bridges_of_seat,
    citizen,
    cli,
    events,
    finish,
    keeper_running,
    mark,
    new_bridge,
    settled,
    wait_event,
)
from tests.e2e.test_records import http


def _feed(lab: Lab, line: str, bridge_id: str) -> list[str]:
    """The events of one bridge in a line's feed, in order."""
    entries = cast(list[tuple[str, dict[str, str]]],
                   lab.redis_client().xrange(Keys(lab.config.redis.prefix).feed(line)))
    return [e["event"] for _, e in entries if e.get("record", "").endswith(bridge_id)]


def test_a_third_line_by_config_takes_the_citizen_with_its_own_key(any_lab: Lab) -> None:
    lab = any_lab
    since = mark(lab)
    traffic = answering(lab, "122", hold_ms=9000)
    seat = answering(lab, "seat1", hold_ms=7000, key=TRAFFIC_KEY)
    caller = citizen(lab, hold_ms=12000, released_ok=True)  # 122 hangs up first
    conference = wait_event(lab, since, "the citizen in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/citizen").get("Conference")
    wait_event(lab, since, "122 in the conference", Event="ConfbridgeJoin",
               Conference=conference, Channel="PJSIP/122")
    hold = wait_event(lab, since, "the key's hold", Event="MusicOnHoldStart",
                      Channel="PJSIP/citizen")
    assert hold.get("Class") == "linkgw_notice_122"
    assert finish(caller, seat, traffic) == {"citizen": 0, "seat1": 0, "122": 0}
    assert not events(lab, since, "Newchannel", Channel="PJSIP/12345"), "12345 never rang"
    bridge_id = conference.removeprefix("linkgw-")
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert (record["direction"], record["outcome"], record["agent_target"]) == \
        ("110->122", "handed_off", "PJSIP/122")
    assert record["plan"] == "PJSIP/122,PJSIP/122"  # 122 has no alternate in the lab
    # 122's own term (feedback_hours: 8 in the lab), from the hand-off
    assert epoch(record["feedback_due_at"]) == epoch(record["ended_at"]) + 8 * 3600

    feed = _feed(lab, "122", bridge_id)
    assert feed[0] == "transfer_requested" and "citizen_hangup" in feed
    assert _feed(lab, "12345", bridge_id) == []

    local = today(epoch(record["requested_at"]), ZoneInfo(lab.config.tickets.time_zone))
    figures = json.loads(cli(lab, "today", "--day", local, "--json").stdout)
    assert figures["by_direction"]["110->122"]["handed_off"] >= 1
    if lab.agi == "fastagi":  # the API is the gateway service's (process mode has none)
        token = lab.role_tokens["122"]
        status, seen = http(lab, "GET", f"bridges/{bridge_id}", token=token)
        assert status == 200 and seen["bridge"]["direction"] == "110->122"
        assert "citizen_channel" not in seen["bridge"]  # as its feed shows it
        assert http(lab, "GET", f"bridges/{bridge_id}", token=lab.role_tokens["12345"]
                    )[0] == 404  # not 12345's
        assert http(lab, "GET", "workorders", token=token)[0] == 403
        # … and runs the loop of its bridge: its own work order, to feedback in time
        status, ticket = http(lab, "PUT", f"bridges/{bridge_id}/ticket",
                              {"ticket": "1220000017"}, token=token)
        assert status == 200 and ticket["deadline_at"] == record["feedback_due_at"]
        for step in ("accepted", "assigned", "feedback"):
            status, ticket = http(lab, "POST", f"bridges/{bridge_id}/status",
                                  {"status": step}, token=token)
            assert status == 200, ticket
        assert (ticket["status"], ticket["on_time"]) == ("feedback", "yes")
        keys = Keys(lab.config.redis.prefix)
        assert lab.redis_client().zscore(keys.index(IDX_DEADLINE), bridge_id) is None


def _pusher_of_122(lab: Lab) -> tuple[PushProcess, ReceiverProcess]:
    """122's own receiver (another HTTPS endpoint, its certificate from the lab's CA) and
    a second ``linkgw push`` whose config says ``push.feed: "122"``: how a site tells a
    further line's system of its bridges, with no access to 110's Redis."""
    assert lab.tls is not None and lab.receiver is not None
    receiver = ReceiverProcess(lab.slot.take(), lab.workdir / "received-122.jsonl",
                               lab.push_secret, lab.log_dir, lab.tls.cert, lab.tls.key)
    config = lab.config_path.read_text(encoding="utf-8").replace(
        f"  url: {json.dumps(lab.receiver.url)}\n",
        f"  url: {json.dumps(receiver.url)}\n  feed: \"122\"\n")
    path = lab.workdir / "gateway-push-122.yaml"
    path.write_text(config, encoding="utf-8")
    receiver.start()
    return PushProcess(path, lab.secrets_env, lab.log_dir / "push-122.log"), receiver


def test_122_over_the_trunk_reads_its_invite_and_is_told_by_its_own_push(
        two_pbx: Lab) -> None:
    """The two-PBX lab: 122 is dialled over the trunk (``PJSIP/122@trunk-12345``; the
    lab's 12345 PBX stands in for 122's, a third PBX), its officer's phone receives the
    110 context on the INVITE, and 122's system hears of every change of the bridge by
    its own signed push, in order, while 12345's receiver hears nothing of it."""
    lab = two_pbx
    pusher, receiver = _pusher_of_122(lab)
    pusher.start()
    try:
        since = mark(lab)
        officer = answering(lab, TRAFFIC, hold_ms=9000)
        seat = answering(lab, "seat1", hold_ms=7000, key=TRAFFIC_KEY)
        caller = citizen(lab, hold_ms=12000, released_ok=True)
        conference = wait_event(lab, since, "the citizen in a conference",
                                Event="ConfbridgeJoin", Channel="PJSIP/citizen"
                                ).get("Conference")
        wait_event(lab, since, "the trunk in the conference", Event="ConfbridgeJoin",
                   Conference=conference, Channel=f"PJSIP/{TRUNK}")
        assert finish(caller, seat, officer) == {"citizen": 0, "seat1": 0, TRAFFIC: 0}
        bridge_id = conference.removeprefix("linkgw-")
        record, _ = settled(lab, bridge_id, "citizen_hangup")
        assert (record["direction"], record["outcome"], record["agent_target"]) == \
            ("110->122", "handed_off", f"PJSIP/122@{TRUNK}")
        invite = received_invite(officer.received())
        assert (invite["x-linkgw-bridge"], invite["x-linkgw-direction"]) == \
            (bridge_id, "110->122")
        assert invite["from"].startswith('"110转 Zhang San" <sip:13800138000@')

        got: list[dict[str, Any]] = []

        def pushed() -> bool:
            got[:] = [e for e in receiver.events() if e.get("bridge_id") == bridge_id]
            return any(e["event"] == "citizen_hangup" for e in got)

        wait_until(pushed, TIMEOUT, "citizen_hangup at 122's receiver")
        assert [e["event"] for e in got][:2] == ["transfer_requested", "agent_dialing"]
        assert len(got) == len(_feed(lab, "122", bridge_id))
        twelve = lab.receiver
        assert twelve is not None
        assert [e for e in twelve.events() if e.get("bridge_id") == bridge_id] == []
    finally:
        pusher.stop()
        receiver.stop()


def test_an_item_of_a_further_line_typed_after_the_one_key_goes_there(any_lab: Lab) -> None:
    """The one key dials 12345 at once; the code typed is 103 (an abandoned car: 122's
    in the lab's catalogue, ``target: "122"``): 12345's leg is cancelled, 122 is dialled
    and takes the citizen. The record's direction becomes 110->122; 12345's feed ends
    with ``rerouted``, and 122's feed has the rest."""
    lab = any_lab
    keeper_running(lab)  # process mode: the code is kept from the moment it is typed
    since = mark(lab)
    before = bridges_of_seat(lab, "seat1")
    queue = lab.phone("12345")
    queue.start(noanswer_scenario("12345"))  # rings, nobody takes it before the code
    traffic = answering(lab, "122", hold_ms=30000, ring_ms=300)  # the citizen ends it
    seat = lab.phone("seat1")
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000,
                               presses=((800, ONEKEY), (700, TRAFFIC_ITEM))))
    caller = citizen(lab, hold_ms=12000 + (3000 if lab.agi == "process" else 0))
    bridge_id = new_bridge(lab, "seat1", before)
    wait_event(lab, since, "122 in the conference", Event="ConfbridgeJoin",
               Conference=f"linkgw-{bridge_id}", Channel="PJSIP/122")
    record, _ = settled(lab, bridge_id, "citizen_hangup")
    assert finish(caller, seat, traffic, queue) == {
        "citizen": 0, "seat1": 0, "122": 0, "12345": 0}
    assert (record["item"], record["route"], record["direction"]) == \
        ("vehicle.abandoned", "122", "110->122")
    assert (record["agent_target"], record["outcome"]) == ("PJSIP/122", "handed_off")
    assert requests_received(queue.received())[:2] == ["INVITE", "CANCEL"]
    twelve = _feed(lab, "12345", bridge_id)
    assert twelve[:2] == ["transfer_requested", "agent_dialing"] and twelve[-1] == "rerouted"
    traffic_feed = _feed(lab, "122", bridge_id)
    assert traffic_feed[0] == "transfer_requested" and "citizen_hangup" in traffic_feed
    entries = cast(list[tuple[str, dict[str, str]]], lab.redis_client().xrange(
        Keys(lab.config.redis.prefix).feed("122")))
    first = next(e for _, e in entries if e.get("record", "").endswith(bridge_id))
    assert json.loads(first["fields"])["citizen_number"] == "13800138000"  # who called
    assert json.loads(first["data"])["rerouted_from"] == "12345"
