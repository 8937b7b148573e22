"""A further line, by config alone: the lab's config adds 122 (traffic police) with its
own key (``transfer.lines``), and ``linkgw dialplan`` arms that key on the seats. A
call-taker presses it: 122 rings (not 12345), the citizen hears 122's own notice, the
three meet in a conference, the call-taker leaves; the record says ``110->122``, the
figures count it under that direction, and 122's feed has it while 12345's has not."""

from __future__ import annotations

import json
from typing import Any, cast
from zoneinfo import ZoneInfo

from gateway.lab.lab import TRAFFIC_KEY, TRUNK, Lab
from gateway.lab.peer import TRAFFIC
from gateway.lab.process import wait_until
from gateway.lab.services import PushProcess, ReceiverProcess
from gateway.lab.sipp import received_invite
from gateway.records.periods import today
from gateway.schema import Keys, epoch
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    events,
    finish,
    mark,
    settled,
    wait_event,
)
from tests.e2e.test_records import cli


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

    feed = _feed(lab, "122", bridge_id)
    assert feed[0] == "transfer_requested" and "citizen_hangup" in feed
    assert _feed(lab, "12345", bridge_id) == []

    local = today(epoch(record["requested_at"]), ZoneInfo(lab.config.tickets.time_zone))
    figures = json.loads(cli(lab, "today", "--day", local, "--json").stdout)
    assert figures["by_direction"]["110->122"]["handed_off"] >= 1


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
