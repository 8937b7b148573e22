"""The bridge log on the real lab: tickets over the API and the stream, the closed loop,
the CLI, and a Redis outage in the middle of calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, cast
from zoneinfo import ZoneInfo

from gateway.lab.calls import one_key_call
from gateway.lab.lab import ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.records.periods import today
from gateway.schema import epoch, workorder_record
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    cli,
    finish,
    mark,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)


def http(lab: Lab, method: str, path: str, body: object = None,
         token: str | None = None, operator: str | None = "J4201") -> tuple[int, Any]:
    """One request to the gateway's API on loopback; a change (a dict body) names who
    acts (``operator``) unless it is None."""
    if isinstance(body, dict) and operator is not None:
        body = {"operator": operator} | body
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.http_port}/{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None)
    if token != "":
        request.add_header("Authorization", f"Bearer {token or lab.api_token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def reverse_call(lab: Lab) -> str:
    """A citizen calls 12345; the agent hands the police matter to 110 (seat2)."""
    since = mark(lab)
    police = answering(lab, "seat2", hold_ms=30000)
    hotline = answering(lab, "12345", hold_ms=7500, key=ONEKEY)
    caller = citizen(lab, hold_ms=12000, dial="12345", number="13900139000")
    conference = wait_event(lab, since, "the 12345 agent in a conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/12345").get("Conference")
    assert finish(caller, hotline, police) == {"citizen": 0, "12345": 0, "seat2": 0}
    bridge_id = conference.removeprefix("linkgw-")
    settled(lab, bridge_id)
    return bridge_id


def test_tickets_over_api_and_stream_through_the_loop_and_the_cli(lab: Lab) -> None:
    forward = one_key_call(lab, number="13700137000").bridge_id
    backward = reverse_call(lab)
    requested = redis_hash(lab, redis_keys(lab).bridge(forward))["requested_at"]
    day = requested[:10]  # the UTC day: the hash chain's
    local = today(epoch(requested), ZoneInfo(lab.config.tickets.time_zone))  # the figures'

    # 110 -> 12345: the 12345 system attaches its work order over the API, with its role
    as_12345 = lab.role_tokens["12345"]
    status, ticket = http(lab, "PUT", f"bridges/{forward}/ticket", {"ticket": "2026112800017"},
                          as_12345)
    assert (status, ticket["ticket"], ticket["status"]) == (200, "2026112800017", "attached")
    assert (ticket["attached_via"], ticket["attached_by"]) == ("api", "J4201")  # who did it
    assert http(lab, "PUT", f"bridges/{forward}/ticket", {"ticket": "2026112800017"},
                as_12345) == (200, ticket)  # idempotent
    assert http(lab, "POST", f"bridges/{forward}/status", {"status": "accepted"}, as_12345,
                operator=None)[1]["error"] == "operator_missing"  # nobody: refused
    assert http(lab, "PUT", f"bridges/{forward}/incident", {"incident": "110-0042"},
                as_12345)[1]["error"] == "role_forbidden"  # 110's number: the admin's
    status, _ = http(lab, "PUT", f"bridges/{forward}/incident", {"incident": "110-0042"})
    assert status == 200
    # 12345 -> 110: the ticket and the loop arrive over the Redis stream, written by the
    # 12345 system's own Redis user
    r = lab.redis_as("linkgw-12345")
    stream = redis_keys(lab).inbound(lab.config.tickets.inbound_stream)
    r.xadd(stream, {"operator": "G12345-07", "bridge_id": backward, "ticket": "2026112800018",
                    "status": "accepted"})
    wait_until(lambda: redis_hash(lab, redis_keys(lab).ticket(backward)).get("status")
               == "accepted", TIMEOUT, "the stream's ticket applied")
    for step in ("assigned", "feedback"):
        r.xadd(stream, {"operator": "G12345-07", "bridge_id": backward, "status": step,
                        "note": "民警已到场处置" if step == "feedback" else ""})
    wait_until(lambda: redis_hash(lab, redis_keys(lab).ticket(backward)).get("status")
               == "feedback", TIMEOUT, "feedback from the stream")
    for step in ("accepted", "assigned"):
        assert http(lab, "POST", f"bridges/{forward}/status", {"status": step})[0] == 200
    back = redis_hash(lab, redis_keys(lab).ticket(backward))
    assert (back["attached_via"], back["on_time"], back["feedback_note"]) == \
        ("stream", "yes", "民警已到场处置")
    assert back["accepted_at"] <= back["assigned_at"] <= back["feedback_at"]

    shown = cli(lab, "show", forward)
    assert shown.returncode == 0, shown.stderr
    assert "ticket_attached" in shown.stdout and "incident_attached" in shown.stdout
    assert "2026112800017" in shown.stdout and "handed_off" in shown.stdout
    found = cli(lab, "find", "--ticket", "2026112800018")
    assert backward in found.stdout and "12345->110" in found.stdout
    assert forward in cli(lab, "find", "--incident", "110-0042").stdout
    assert forward in cli(lab, "find", "--number", "13700137000").stdout
    figures = json.loads(cli(lab, "today", "--day", local, "--json").stdout)
    assert figures["by_outcome"]["handed_off"] >= 2
    assert figures["reverse_responded_on_time"] >= 1 and figures["response_rate"] is not None
    assert figures["answer_p50_s"] is not None and figures["answered_within_15s"] > 0
    overdue = cli(lab, "overdue", "--json")
    assert backward not in overdue.stdout  # answered: off the deadline list
    chain = cli(lab, "verify-chain", "--day", day)
    assert chain.returncode == 0 and "intact" in chain.stdout
    status, api_stats = http(lab, "GET", f"stats?day={local}")
    assert status == 200 and api_stats["transfers"] == figures["transfers"]
    report = json.loads(cli(lab, "report", "--month", local[:7], "--json").stdout)
    assert report["figures"]["time_zone"] == "Asia/Shanghai"
    assert report["figures"]["transfers"] >= figures["transfers"] >= 2
    assert sum(i["transfers"] for i in report["items"]) == report["figures"]["transfers"]
    assert http(lab, "GET", f"stats?month={local[:7]}",
                token=lab.role_tokens["supervisor"])[1]["transfers"] == \
        report["figures"]["transfers"]


def test_api_refusals_change_nothing(lab: Lab) -> None:
    bridge_id = one_key_call(lab).bridge_id
    before = lab.redis_client().xlen(redis_keys(lab).events)
    assert http(lab, "PUT", f"bridges/{bridge_id}/ticket", {"ticket": "2026112800099"},
                token="")[0] == 401
    assert http(lab, "PUT", f"bridges/{bridge_id}/ticket", {"ticket": "2026112800099"},
                token="wrong")[0] == 403
    assert http(lab, "PUT", f"bridges/{bridge_id}/ticket", {"ticket": "12345#1"}) == \
        (400, {"error": "ticket_malformed",
               "message": "ticket '12345#1' does not match ^\\d{8,20}$"})
    status, body = http(lab, "PUT", "bridges/20991231000000abcdef/ticket",
                        {"ticket": "2026112800099"})
    assert (status, body["error"]) == (404, "bridge_not_found")
    assert lab.redis_client().xlen(redis_keys(lab).events) == before
    assert not lab.redis_client().exists(redis_keys(lab).ticket(bridge_id))


def test_calls_flow_while_redis_is_down_and_nothing_is_lost(lab: Lab) -> None:
    """Redis is killed (SIGKILL) and restarted around two transfers: both complete with
    Redis down, the gateway reports the outage, and afterwards each bridge is in Redis
    exactly once with its events in order and the day's chain intact. The citizens'
    names hold Unicode line separators (U+2028, U+0085), which once split spool lines
    on replay and lost changes."""
    names = ["张\u2028三", "Li\u0085Si"]
    lab.redis.kill()
    try:
        during = [one_key_call(lab, number=f"1360013600{n}", name=names[n],
                               wait_logged=False).bridge_id for n in range(2)]
        status, health = http(lab, "GET", "health")
        assert (status, health["redis"]) == (200, "down") and health["spooled"] > 0
    finally:
        lab.redis.start()
    for bridge_id, name in zip(during, names, strict=True):
        record, events = settled(lab, bridge_id)
        assert (record["outcome"], record["citizen_name"]) == ("handed_off", name)
        assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
        assert record["seq"] == str(len(events))
    wait_until(lambda: http(lab, "GET", "health")[1]["spooled"] == 0, TIMEOUT,
               "the spool replayed")
    log = lab.gateway.log_path.read_text()
    assert '"bridge_log.store_unavailable"' in log and '"bridge_log.store_back"' in log
    day = redis_hash(lab, redis_keys(lab).bridge(during[0]))["requested_at"][:10]
    assert cli(lab, "verify-chain", "--day", day).returncode == 0


def test_supervisor_sees_the_live_bridge_during_the_call(lab: Lab) -> None:
    """While a call is three-party, /live shows it as Asterisk has it; the page that
    polls it is served at /."""
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=6000, key=ONEKEY)
    caller = citizen(lab, hold_ms=9000, number="13500135000")
    conference = wait_event(lab, since, "12345 joining", Event="ConfbridgeJoin",
                            Channel="PJSIP/12345").get("Conference")
    bridge_id = conference.removeprefix("linkgw-")

    def shown() -> list[dict[str, str]]:
        return [b for b in http(lab, "GET", "live")[1]["bridges"]
                if b["bridge_id"] == bridge_id]

    wait_until(lambda: bool(shown()) and shown()[0]["state"] == "three_party", TIMEOUT,
               "the bridge on /live in three_party")
    row = shown()[0]
    assert (row["citizen_number"], row["seat"], row["direction"]) == \
        ("13500135000", "seat1", "110->12345")
    _, masked = http(lab, "GET", "live", token=lab.role_tokens["supervisor"])
    assert [b["citizen_number"] for b in masked["bridges"] if b["bridge_id"] == bridge_id] \
        == ["135****5000"]
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    settled(lab, bridge_id)
    assert shown() == []
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.http_port}/", timeout=10) as page:
        html = page.read().decode()
    assert "110 ⇄ 12345 实时转接" in html and 'get("live")' in html and "Bearer" in html
    metrics: list[str] = []

    def counted() -> bool:  # -1 while unknown: an earlier test of this lab stopped Redis
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.http_port}/metrics",
                                    timeout=10) as answer:  # no token: asked from loopback
            metrics[:] = answer.read().decode().splitlines()
        return "linkgw_workorders_overdue -1.0" not in metrics

    wait_until(counted, TIMEOUT, "the overdue work orders counted in Redis")
    assert "# TYPE linkgw_bridges_ended_total counter" in metrics
    assert any(line.startswith('linkgw_bridges_ended_total{direction="110->12345"')
               for line in metrics)
    assert any(line.startswith('linkgw_key_to_answer_seconds_count{direction="110->12345"}')
               for line in metrics)
    assert "# HELP linkgw_feed_12345_lag Entries of 12345's feed its consumer group has " \
           "not read (-1: unknown)" in metrics
    overdue = [line for line in metrics if line.startswith("linkgw_workorders_overdue ")]
    assert len(overdue) == 1 and float(overdue[0].split()[1]) >= 0  # counted in Redis
    assert http(lab, "GET", "live", token="")[0] == 401


def test_a_work_order_without_a_call_goes_round_the_loop_on_the_running_gateway(
        lab: Lab) -> None:
    """12345 dispatches a matter by API and one by its stream; 110 accepts, assigns to a
    unit and answers; 12345 reads every step in its feed as its own Redis user."""
    ticket, streamed = "2026112960001", "2026112960002"
    as_12345 = lab.role_tokens["12345"]
    status, got = http(lab, "POST", "workorders", {
        "ticket": ticket, "category": "noise", "summary": "施工噪声\u2028夜间", "number":
        "13600136000"}, as_12345)
    assert (status, got["status"]) == (200, "received")
    keys = redis_keys(lab)
    lab.redis_as("linkgw-12345").xadd(keys.inbound(lab.config.tickets.inbound_stream), {
        "type": "workorder", "ticket": streamed, "category": "vehicle", "summary": "挪车",
        "operator": "G12345-07"})
    wait_until(lambda: http(lab, "GET", f"workorders/{streamed}")[0] == 200, TIMEOUT,
               "the streamed work order received")
    for step, extra in (("accepted", {}), ("assigned", {"unit": "城关派出所一中队"}),
                        ("answered", {"note": "已处置"})):
        assert http(lab, "POST", f"workorders/{ticket}/status",
                    {"status": step} | extra)[1]["status"] == step
    done = http(lab, "GET", f"workorders/{ticket}", token=as_12345)[1]
    assert (done["unit"], done["on_time"], done["summary"]) == \
        ("城关派出所一中队", "yes", "施工噪声\u2028夜间")
    feed = lab.redis_as("linkgw-12345").xrange(keys.feed("12345"))
    mine = [e["event"] for _, e in cast(list[tuple[str, dict[str, str]]], feed)
            if e["record"] == workorder_record(ticket)]
    assert mine == ["workorder_received", "workorder_accepted", "workorder_assigned",
                    "workorder_answered"]
