"""A work order through the lab: 12345 dispatches it over the gateway's API, the duty
phone (SIPp's duty1 on the 110 Asterisk) rings, answers, hears the order and presses 1
as RFC 4733. Observed from Redis and from what Asterisk reports running on the duty
phone's channel (``python -m gateway.lab demo --workorder``)."""

from __future__ import annotations

import json
import secrets
import urllib.request
from dataclasses import dataclass, field
from typing import cast

from gateway.ami.codec import AmiMessage
from gateway.lab.lab import Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario
from gateway.schema import IDX_DUTY_DUE, Keys, workorder_record

TIMEOUT = 30.0


@dataclass
class DutySeen:
    ticket: str = ""
    record: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    heard: list[AmiMessage] = field(default_factory=list)  # Read and Playback on duty1
    exit: int = -1


def dispatch(lab: Lab, order: dict[str, str]) -> dict[str, str]:
    """POST /workorders with the 12345 role's token, as 12345's system does."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.http_port}/workorders", method="POST",
        data=json.dumps(order).encode(),
        headers={"Authorization": f"Bearer {lab.role_tokens['12345']}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
        return cast(dict[str, str], json.loads(response.read()))


def duty_call(lab: Lab) -> DutySeen:
    keys = Keys(lab.config.redis.prefix)
    client = lab.redis_client()
    client.delete(keys.index(IDX_DUTY_DUE))  # nothing else waits for the duty phone
    assert lab.probe is not None
    since = lab.probe.mark()
    phone = lab.phone("duty1")
    phone.start(answer_scenario("duty1", ring_ms=500, hold_ms=5000, key="1",
                                key_after_ms=2500))
    seen = DutySeen(ticket="20261203" + f"{secrets.randbelow(10 ** 5):05d}")
    dispatch(lab, {"ticket": seen.ticket, "category": "noise", "operator": "G12345-07",
                   "summary": "广场舞音响扰民，夜间十点后仍在播放", "number": "13900139000"})

    def accepted() -> bool:
        seen.record = cast(dict[str, str],
                           client.hgetall(keys.record(workorder_record(seen.ticket))))
        return seen.record.get("status") == "accepted"

    wait_until(accepted, TIMEOUT, f"work order {seen.ticket} accepted on the duty phone")
    seen.exit = phone.wait(TIMEOUT)
    seen.events = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                      client.xrange(keys.events))
                   if e.get("record") == workorder_record(seen.ticket)]
    seen.heard = [m for m in lab.probe.events[since:]
                  if m.get("Event") == "Newexten" and
                  m.get("Channel", "").startswith("PJSIP/duty1-") and
                  m.get("Application") in ("Read", "Playback")]
    return seen
