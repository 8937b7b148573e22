"""What the 12345 system may read, through the real lab: logged in as the shipped
``linkgw-12345`` Redis user, it sees the bridges handed to it in its feed, once each, and
nothing of the calls 110 keeps."""

from __future__ import annotations

import json
import secrets
from typing import cast

import pytest
import redis

from gateway.lab.calls import one_key_call
from gateway.lab.lab import Lab
from gateway.lab.process import wait_until
from gateway.schema import Keys, bridge_record, idx_calls_caller
from tests.e2e.helpers import TIMEOUT, answering, citizen, finish, settled

HIDDEN = {"citizen_channel", "citizen_uniqueid", "seat_channel", "seat_uniqueid",
          "agent_channel", "owner", "asterisk", "conference", "recording", "plan"}


def feed_of_12345(lab: Lab) -> list[dict[str, str]]:
    """The whole feed, read by the 12345 system's own Redis user."""
    twelve = lab.redis_as("linkgw-12345")
    entries = cast(list[tuple[str, dict[str, str]]],
                   twelve.xrange(Keys(lab.config.redis.prefix).feed("12345")))
    return [e for _, e in entries]


def test_a_call_110_keeps_leaves_nothing_12345_can_read(any_lab: Lab) -> None:
    lab = any_lab
    number = "1390" + "".join(secrets.choice("0123456789") for _ in range(7))
    keys = Keys(lab.config.redis.prefix)
    seat = answering(lab, "seat1", hold_ms=15000)
    caller = citizen(lab, hold_ms=2500, number=number, name="李四\u2028")
    assert finish(caller, seat) == {"citizen": 0, "seat1": 0}
    admin = lab.redis_client()
    wait_until(lambda: admin.zcard(keys.index(idx_calls_caller(number))) == 1, TIMEOUT,
               "the call registered")
    [uniqueid] = cast(list[str], admin.zrange(keys.index(idx_calls_caller(number)), 0, -1))
    assert admin.hgetall(keys.call(uniqueid))["name"] == "李四\u2028"  # it is on record
    assert not any(number in json.dumps(e, ensure_ascii=False) for e in feed_of_12345(lab))
    twelve = lab.redis_as("linkgw-12345")
    for forbidden in (lambda: twelve.hgetall(keys.call(uniqueid)),
                      lambda: twelve.xrange(keys.events, count=1),
                      lambda: twelve.zrange(keys.index(idx_calls_caller(number)), 0, -1)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()


def test_a_transferred_call_is_in_12345s_feed_once(any_lab: Lab) -> None:
    lab = any_lab
    number = "1391" + "".join(secrets.choice("0123456789") for _ in range(7))
    seen = one_key_call(lab, number=number, name="张三")
    _, stream = settled(lab, seen.bridge_id, "transfer_requested", "citizen_hangup")
    ours = [e for e in feed_of_12345(lab) if e["record"] == bridge_record(seen.bridge_id)]
    assert [e["event"] for e in ours].count("transfer_requested") == 1
    # every change of the bridge, in order, each once; the full stream has the same
    assert [(e["event"], e["at"]) for e in ours] == [(e["event"], e["at"]) for e in stream]
    first = json.loads(ours[0]["fields"])
    assert (first["citizen_number"], first["citizen_name"], first["direction"]) == \
        (number, "张三", "110->12345")
    shown = set().union(*(json.loads(e["fields"]) for e in ours))
    assert not shown & HIDDEN, shown & HIDDEN
