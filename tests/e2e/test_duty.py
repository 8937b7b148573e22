"""The 24-hour duty phone, on the lab: a work order arrives from 12345, the gateway rings
110's duty phone (a SIPp phone on the 110 Asterisk), the officer hears the order's
number and category and presses 1 (RFC 4733 in the phone's RTP), and the order is
accepted on record by that extension; a phone that never answers is rung again, then
the second number. In both AGI modes: the gateway service rings and answers in FastAGI
mode; ``linkgw duty`` rings and Asterisk's AGI programs answer in process mode."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

import redis

from gateway.ami.codec import AmiMessage
from gateway.lab.lab import DUTY_EVERY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import (
    SippPhone,
    answer_scenario,
    noanswer_scenario,
    received_invite,
    requests_received,
)
from gateway.records.actor import Actor
from gateway.schema import IDX_DUTY_DUE, Keys, workorder_record
from tests.e2e.helpers import TIMEOUT, mark, wait_event
from tests.e2e.test_records import http

SOUNDS = "linkgw/zh"


def quiet(lab: Lab) -> redis.Redis:
    """No other test's order waits for the duty phone (it would ring first)."""
    client = lab.redis_client()
    client.delete(Keys(lab.config.redis.prefix).index(IDX_DUTY_DUE))
    return client


def dispatch(lab: Lab, ticket: str, category: str) -> None:
    """12345 dispatches a work order: over the API where the gateway service runs; in
    process mode (no service, no API) written by the same desk the API uses."""
    order = {"ticket": ticket, "category": category, "summary": "夜间施工噪声\u2028扰民"}
    if lab.agi == "fastagi":
        status, got = http(lab, "POST", "workorders", order, lab.role_tokens["12345"],
                           operator="G12345-07")
        assert (status, got["status"]) == (200, "received"), got
        return
    from gateway.app import build_records, load_catalogue

    parts = build_records(lab.config, time.time, load_catalogue(lab.config))
    parts.workorders.receive(order, Actor("api", "G12345-07"))


def order_of(lab: Lab, client: redis.Redis, ticket: str) -> dict[str, str]:
    key = Keys(lab.config.redis.prefix).record(workorder_record(ticket))
    return cast(dict[str, str], client.hgetall(key))


def accepted(lab: Lab, client: redis.Redis, ticket: str) -> dict[str, str]:
    got: list[dict[str, str]] = []

    def done() -> bool:
        got[:] = [order_of(lab, client, ticket)]
        return got[0].get("status") == "accepted"

    wait_until(done, TIMEOUT, f"work order {ticket} accepted ({got[:1]})")
    return got[0]


def new_ticket() -> str:
    return "20261203" + f"{secrets.randbelow(10 ** 5):05d}"


def heard(lab: Lab, since: int, phone: str, app: str, data: str) -> AmiMessage:
    """Asterisk ran ``app(data)`` on the duty phone's channel."""
    found = wait_event(lab, since, f"{app}({data}) on {phone}", Event="Newexten",
                       Channel=f"PJSIP/{phone}-", Application=app, AppData=data)
    assert found.get("AppData") == data  # the whole of it
    return found


def officer_pressing_1(lab: Lab, phone: str) -> SippPhone:
    """A duty phone whose officer answers and presses 1 while the order is still being
    said; it stays on until the gateway hangs up (it hears "accepted" first)."""
    duty = lab.phone(phone)
    duty.start(answer_scenario(phone, ring_ms=300, hold_ms=20000, key="1",
                               key_after_ms=2500))
    return duty


def announcement(ticket: str, category: str) -> str:
    """What the officer hears, written out: a new work order, the number digit by digit,
    the category; then press 1 (Read's prompt, so 1 works at any moment of it)."""
    return "&".join([f"{SOUNDS}/duty_new_order", *(f"{SOUNDS}/digit_{d}" for d in ticket),
                     f"{SOUNDS}/duty_category", f"{SOUNDS}/cat_{category}",
                     f"{SOUNDS}/duty_press1"])


def test_a_new_work_order_rings_the_duty_phone_and_pressing_1_accepts_it(
        any_lab: Lab) -> None:
    lab = any_lab
    client = quiet(lab)
    since = mark(lab)
    duty = officer_pressing_1(lab, "duty1")
    ticket = new_ticket()
    dispatch(lab, ticket, "noise")
    order = accepted(lab, client, ticket)
    assert (order["accepted_via"], order["accepted_by"], order["accepted_note"],
            order["duty_rings"], order["duty_number"]) == (
        "duty", "duty1", "值班电话 duty1", "1", "PJSIP/duty1")
    # what Asterisk played to the officer: the order, then that it is accepted
    heard(lab, since, "duty1", "Read", f"LINKGW_KEY,{announcement(ticket, 'noise')},1,,1,8")
    heard(lab, since, "duty1", "Playback", f"{SOUNDS}/duty_accepted")
    assert duty.wait(TIMEOUT) == 0, duty.errors()
    # the phone shows who calls: 12345's work orders
    assert received_invite(duty.received())["from"].startswith('"12345工单" <sip:12345@')
    # accepted: off the duty phone's list, never rung again
    assert client.zscore(Keys(lab.config.redis.prefix).index(IDX_DUTY_DUE), ticket) is None


def test_a_duty_phone_that_never_answers_is_rung_again_then_the_second_number(
        any_lab: Lab) -> None:
    """duty.rings_per_number 2, every 6 s: duty1 rings twice, nobody answers; then
    duty2 rings, and its officer presses 1."""
    lab = any_lab
    client = quiet(lab)
    first = lab.phone("duty1")
    first.start(noanswer_scenario("duty1"), calls=2)
    second = officer_pressing_1(lab, "duty2")
    ticket = new_ticket()
    started = time.monotonic()
    dispatch(lab, ticket, "vehicle")
    order = accepted(lab, client, ticket)
    took = time.monotonic() - started
    assert (order["accepted_by"], order["duty_rings"], order["duty_number"]) == (
        "duty2", "3", "PJSIP/duty2")
    assert took > 2 * DUTY_EVERY  # the third ring came after two waits
    assert first.wait(TIMEOUT) == 0, first.errors()
    assert requests_received(first.received()).count("INVITE") == 2
    assert second.wait(TIMEOUT) == 0, second.errors()
    events = [e for _, e in cast(list[tuple[str, dict[str, Any]]], client.xrange(
        Keys(lab.config.redis.prefix).events, "-", "+"))
        if e.get("record") == workorder_record(ticket)]
    assert [e["event"] for e in events] == [
        "workorder_received", "workorder_duty_rang", "workorder_duty_rang",
        "workorder_duty_rang", "workorder_accepted"]


def test_an_order_from_12345s_system_rings_110s_duty_phone_and_12345_is_told_by_push(
        two_pbx: Lab) -> None:
    """Two centres: 12345's system dispatches the order to 110 (its API role); 110's duty
    phone, a phone of 110's PBX, rings; the officer presses 1; 12345's system across the
    boundary learns each step by signed push, the acceptance with who accepted."""
    lab = two_pbx
    assert lab.receiver is not None
    client = quiet(lab)
    since = mark(lab)
    duty = officer_pressing_1(lab, "duty1")
    ticket = new_ticket()
    dispatch(lab, ticket, "utilities")
    order = accepted(lab, client, ticket)
    assert (order["accepted_via"], order["accepted_by"], order["duty_number"]) == \
        ("duty", "duty1", "PJSIP/duty1")
    heard(lab, since, "duty1", "Read",
          f"LINKGW_KEY,{announcement(ticket, 'utilities')},1,,1,8")
    assert duty.wait(TIMEOUT) == 0, duty.errors()
    receiver = lab.receiver
    got: list[dict[str, Any]] = []

    def told() -> bool:
        got[:] = [e for e in receiver.events() if e.get("ticket") == ticket]
        return any(e["event"] == "workorder_accepted" for e in got)

    wait_until(told, TIMEOUT, f"the acceptance of {ticket} at 12345's receiver")
    # the rings are 110's own business: 12345 sees the order received, then accepted
    assert [e["event"] for e in got] == ["workorder_received", "workorder_accepted"]
    assert got[-1]["fields"]["accepted_by"] == "duty1"
    assert got[-1]["fields"]["accepted_via"] == "duty"
