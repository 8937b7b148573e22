"""A further line, by config alone: the lab's config adds 122 (traffic police) with its
own key (``transfer.lines``), and ``linkgw dialplan`` arms that key on the seats. A
call-taker presses it: 122 rings (not 12345), the citizen hears 122's own notice, the
three meet in a conference, the call-taker leaves; the record says ``110->122``, the
figures count it under that direction, and 122's feed has it while 12345's has not."""

from __future__ import annotations

import json
from typing import cast
from zoneinfo import ZoneInfo

from gateway.lab.lab import TRAFFIC_KEY, Lab
from gateway.records.periods import today
from gateway.schema import Keys, epoch
from tests.e2e.helpers import (
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
