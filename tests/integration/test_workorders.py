"""The loop without a call, on a real redis-server: 12345 → police work orders (API and
stream), accepted → assigned to a unit → answered within the category's hours; callback
tasks and pushes owed listed and closed; each role doing only its part."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from typing import Any, cast
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import pytest
import redis
from twisted.internet import defer

from gateway.bridge.redis_store import apply_sync
from gateway.bridge.store import Change, Index
from gateway.config import TicketConfig
from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.records import queries
from gateway.records.actor import Actor
from gateway.records.cli import handover_text, run_loop
from gateway.records.cli import run as run_record_command
from gateway.records.errors import Conflict, Malformed, NotFound
from gateway.records.http import ApiResource
from gateway.records.inbound import GROUP, InboundTickets
from gateway.records.periods import shift
from gateway.records.queries import Records
from gateway.records.roles import ApiRole
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_PUSH_NEEDED,
    bridge_record,
    callback_record,
    idx_day,
    iso,
)
from tests.integration.test_records import (
    CATALOGUE,
    INBOUND,
    KEYS,
    LIFE_BODIES,
    T0,
    TOKENS,
    Clock,
    P,
    call,
)

B1, B2 = "20261128195037aaaaaa", "20261128195100bbbbbb"
ORDER = {"ticket": "2026112900001", "category": "noise", "summary": "广场舞音响扰民\u2028深夜",
         "number": "13900139000"}


#: The figures of the rest of an order's life, when none of it happened.
NOTHING_ELSE = {"returned": 0, "reassigned": 0, "extensions_requested": 0,
                "extensions_granted": 0, "reopened": 0, "closed": 0, "satisfaction": {},
                "satisfaction_rate": None}

#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    c.flushdb()
    yield c


@pytest.fixture
def desk(client: redis.Redis) -> tuple[WorkOrderDesk, Clock]:
    clock = Clock()
    return WorkOrderDesk(client, P, TicketConfig(workorder_response_hours=24), CATALOGUE,
                         clock), clock


def api(client: redis.Redis, desk: WorkOrderDesk) -> ApiResource:
    tickets = TicketDesk(client, P, TicketConfig(), CATALOGUE, desk.clock)
    return ApiResource(tickets, Records(client, P), TOKENS, defer.maybeDeferred,
                       dict, str, desk.clock, null_log(), workorders=desk)


def test_a_work_order_goes_round_the_loop_once_each_step_in_order(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, clock = desk
    received = d.receive(dict(ORDER), API)
    assert (received["status"], received["summary"]) == ("received", ORDER["summary"])
    assert d.receive(dict(ORDER, summary="other"), API) == received  # idempotent
    with pytest.raises(Conflict):
        d.step(ORDER["ticket"], "answered", {}, API)  # not accepted yet
    accepted = d.step(ORDER["ticket"], "accepted", {}, API)
    assert accepted["due_at"] == "2026-11-28T22:00:37.000Z"  # noise: 2 h from acceptance
    for unit in (None, "", "一中队\r\nX", "x" * 81):
        with pytest.raises(Malformed):
            d.step(ORDER["ticket"], "assigned", {"unit": unit}, API)
    clock.now += 600
    assigned = d.step(ORDER["ticket"], "assigned", {"unit": "城关派出所一中队"}, API)
    assert (assigned["status"], assigned["unit"]) == ("assigned", "城关派出所一中队")
    assert d.step(ORDER["ticket"], "assigned", {"unit": "城关派出所一中队"}, API) == \
        assigned  # the current step again (a retry) changes nothing
    with pytest.raises(Conflict, match="assigned to 城关派出所一中队 already: reassign"):
        d.step(ORDER["ticket"], "assigned", {"unit": "另一队"}, API)  # never kept silently
    answered = d.step(ORDER["ticket"], "answered", {"note": "已劝离"}, API)
    assert (answered["on_time"], answered["answered_note"]) == ("yes", "已劝离")
    records = Records(client, P)
    assert records.workorders() == []  # none open
    feed = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                               client.xrange(KEYS.feed("12345")))]
    assert [e["event"] for e in feed] == ["workorder_received", "workorder_accepted",
                                          "workorder_assigned", "workorder_answered"]
    # who did each step: on the record and on every event
    assert [json.loads(e["data"]) for e in feed] == [{"via": "api", "operator": "J4201"}] * 4
    assert (answered["received_by"], answered["accepted_by"], answered["answered_by"]) == \
        ("J4201",) * 3


def test_a_work_order_may_name_a_police_matter_and_takes_its_categorys_deadline(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    """12345 dispatches what 110 keeps: the police matters classify its orders too."""
    d, clock = desk
    order = dict(ORDER, ticket="2026112900002", category="vehicle.fire_lane")
    assert d.receive(order, API)["category"] == "vehicle.fire_lane"
    accepted = d.step(order["ticket"], "accepted", {}, API)
    # near vehicle, whose response_hours is 1
    assert accepted["due_at"] == iso(clock.now + 3600)


def test_refused_input_writes_nothing(client: redis.Redis,
                                      desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, _ = desk
    for bad in ({"ticket": "12\n345678"}, {"category": "weather"}, {"summary": ""},
                {"summary": "长" * 2001}, {"number": 13900139000}):
        with pytest.raises(Malformed):
            d.receive(dict(ORDER) | bad, API)
    with pytest.raises(NotFound):
        d.step("2026112900009", "accepted", {}, API)
    assert client.dbsize() == 0


def test_late_answers_count_against_the_response_rate(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, clock = desk
    d.receive(dict(ORDER), API)
    d.receive(dict(ORDER, ticket="2026112900002", category="vehicle"), API)
    for ticket in (ORDER["ticket"], "2026112900002"):
        d.step(ticket, "accepted", {}, API)
    d.step(ORDER["ticket"], "assigned", {"unit": "一中队"}, API)
    d.step(ORDER["ticket"], "answered", {}, API)
    clock.now += 2 * 3600  # the vehicle order (1 h) is now late, unanswered
    records = Records(client, P)
    assert [r["ticket"] for r in records.overdue_workorders(clock.now)] == ["2026112900002"]
    figures = records.figures("2026-11-28", clock.now)["workorders"]
    assert figures == {"received": 2, "accepted": 2, "answered": 1, "accept_due": 2,
                       "accepted_on_time": 2, "accept_rate": 1.0, "due": 2,
                       "answered_on_time": 1, "response_rate": 0.5} | NOTHING_ELSE


def test_the_response_rate_counts_from_dispatch_and_an_order_nobody_accepts_is_late(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    """The golden case (noise: 2 h to answer; 60 min to accept). At t0 + 3 h:
    - on time: accepted after 10 min, answered after 1 h;
    - accepted late (90 min), then answered within its 2 h: not on time;
    - never accepted: overdue since t0 + 60 min, and counted as not on time;
    - dispatched 10 min ago: its accept deadline has not passed, so not counted yet.
    A centre that ignores every order no longer reports 100 %."""
    d, clock = desk
    t0 = clock.now
    on_time, late, ignored, fresh = ("2026112900011", "2026112900012", "2026112900013",
                                     "2026112900014")
    for ticket in (on_time, late, ignored):
        d.receive(dict(ORDER, ticket=ticket), API)
    clock.now = t0 + 600
    assert d.step(on_time, "accepted", {}, API)["accepted_on_time"] == "yes"
    d.step(on_time, "assigned", {"unit": "一中队"}, API)
    clock.now = t0 + 3600
    assert d.step(on_time, "answered", {}, API)["on_time"] == "yes"
    clock.now = t0 + 5400
    assert d.step(late, "accepted", {}, API)["accepted_on_time"] == "no"
    d.step(late, "assigned", {"unit": "二中队"}, API)
    clock.now = t0 + 7200
    assert d.step(late, "answered", {}, API)["on_time"] == "no"
    clock.now = t0 + 3 * 3600 - 600
    d.receive(dict(ORDER, ticket=fresh), API)
    clock.now = t0 + 3 * 3600
    records = Records(client, P)
    assert [r["ticket"] for r in records.overdue_workorders(clock.now)] == [ignored]
    assert records.workorder(ignored)["accept_due_at"] == "2026-11-28T21:00:37.000Z"
    assert records.figures("2026-11-28", clock.now)["workorders"] == {
        "received": 4, "accepted": 2, "answered": 2,
        "accept_due": 3, "accepted_on_time": 1, "accept_rate": 0.3333,
        "due": 3, "answered_on_time": 1, "response_rate": 0.3333} | NOTHING_ELSE


CHANGES = [  # every route that changes a record, with a body that is good but for who acts
    ("PUT", f"bridges/{B1}/ticket", {"ticket": "20261128000001"}),
    ("PUT", f"bridges/{B1}/incident", {"incident": "110-2026-000123"}),
    ("PUT", f"bridges/{B1}/decline-reason", {"reason": "需现场处置"}),
    ("POST", f"bridges/{B1}/status", {"status": "accepted"}),
    ("POST", "workorders", ORDER),
    ("POST", f"workorders/{ORDER['ticket']}/status", {"status": "accepted"}),
    ("POST", f"callbacks/{B1}/done", {"note": "已回访"}),
    *[("POST", f"workorders/{ORDER['ticket']}/{segment}", body)
      for segment, body in LIFE_BODIES.items()],
    ("POST", f"push-needed/{B2}/done", {"ticket": "2026112900003"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
@pytest.mark.parametrize(("operator", "code"), [
    (None, "operator_missing"), ("J42\r\n01", "operator_malformed"),
    ("警号4201", "operator_malformed")])
def test_every_change_route_refuses_a_change_without_who_and_writes_nothing(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock], method: str, path: str,
        body: dict[str, str], operator: str | None, code: str) -> None:
    d, _ = desk
    resource = api(client, d)
    wanted = body if operator is None else {"operator": operator} | body
    assert call(resource, method, path, wanted, operator=None) == (
        400, {"error": code, "message": ANY})
    assert client.dbsize() == 0  # nothing read as done, nothing written


@pytest.mark.parametrize("command", [
    {"command": "workorder", "ticket": ORDER["ticket"], "step": "accept", "unit": None},
    {"command": "callback-done", "bridge_id": B1},
    {"command": "push-done", "bridge_id": B2, "ticket": None}])
def test_every_cli_change_refuses_without_who_and_writes_nothing(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock], command: dict[str, Any]
        ) -> None:
    d, _ = desk
    args = argparse.Namespace(**command, note=None, json=False, operator=None)
    with pytest.raises(Malformed, match="operator missing"):
        run_loop(args, Records(client, P), d)
    assert client.dbsize() == 0


def test_12345_dispatches_and_reads_110_moves_the_loop(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, _ = desk
    resource = api(client, d)
    twelve, supervisor = TOKENS[ApiRole.LINE_12345], TOKENS[ApiRole.SUPERVISOR]
    status, got = call(resource, "POST", "workorders", ORDER, twelve)
    assert (status, got["status"]) == (200, "received")
    assert call(resource, "POST", f"workorders/{ORDER['ticket']}/status",
                {"status": "accepted"}, twelve)[1]["error"] == "role_forbidden"
    assert call(resource, "POST", f"workorders/{ORDER['ticket']}/status",
                {"status": "accepted"})[1]["status"] == "accepted"
    assert call(resource, "GET", f"workorders/{ORDER['ticket']}",
                token=twelve)[1]["number"] == "13900139000"
    assert call(resource, "GET", f"workorders/{ORDER['ticket']}",
                token=supervisor)[1]["number"] == "139****9000"
    _, listed = call(resource, "GET", "workorders", token=supervisor)
    assert [w["ticket"] for w in listed["workorders"]] == [ORDER["ticket"]]
    assert call(resource, "POST", "workorders", dict(ORDER, category="x"), twelve)[1][
        "error"] == "category_unknown"


def test_a_work_order_arrives_on_the_stream(client: redis.Redis,
                                            desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, _ = desk
    tickets = TicketDesk(client, P, TicketConfig(), CATALOGUE, d.clock)
    inbound = InboundTickets(client, tickets, INBOUND, "c1", null_log(),
                             workorders=d)
    inbound.ensure_groups()
    entry: dict[Any, Any] = dict(ORDER, type="workorder")
    client.xadd(INBOUND, entry)  # nobody named: refused, as over HTTP
    client.xadd(INBOUND, cast(Any, dict(entry, ticket="2026112900007", operator="G12345-07")))
    client.xadd(INBOUND, cast(Any, dict(entry, ticket="2026112900008", operator="G1\r\nX")))
    got = cast(Any, client.xreadgroup(GROUP, "c1", {INBOUND: ">"}))
    for entry_id, fields in got[0][1]:
        inbound.handle(entry_id, fields)
    records = Records(client, P)
    named = records.workorder("2026112900007")  # who dispatched it, kept
    assert (named["received_via"], named["received_by"]) == ("stream", "G12345-07")
    errors = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                 client.xrange(f"{INBOUND}:errors"))]
    assert [e["error"] for e in errors] == ["operator_missing", "operator_malformed"]
    with pytest.raises(NotFound):
        records.workorder(ORDER["ticket"])
    with pytest.raises(NotFound):
        records.workorder("2026112900008")


def _bridge(client: redis.Redis, bridge_id: str, **fields: str) -> None:
    apply_sync(client, P, Change(bridge_record(bridge_id), "transfer_requested", T0,
                                 {"bridge_id": bridge_id, "direction": "110->12345",
                                  "state": "ended"} | fields,
                                 (Index(IDX_PUSH_NEEDED, bridge_id, T0),)
                                 if fields.get("work_order_push_needed") else ()))


def test_callbacks_and_pushes_owed_are_listed_and_closed_once(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    d, _ = desk
    _bridge(client, B1, outcome="abandoned", callback_needed="yes")
    apply_sync(client, P, Change(callback_record(B1), "callback_needed", T0, {
        "bridge_id": B1, "number": "13800138000", "seat": "seat1", "status": "open",
        "direction": "110->12345"}, (Index(IDX_CALLBACKS_OPEN, B1, T0),)))
    _bridge(client, B2, outcome="kept_by_110", work_order_push_needed="yes")
    records = Records(client, P)
    assert [c["bridge_id"] for c in records.callbacks()] == [B1]
    assert [p["bridge_id"] for p in records.push_needed()] == [B2]
    args = argparse.Namespace(command="callback-done", bridge_id=B1, note="已回访",
                              json=True, operator=None)
    with pytest.raises(Malformed, match="operator missing"):  # the CLI names who acts
        run_loop(args, records, d)
    assert [c["bridge_id"] for c in records.callbacks()] == [B1]  # nothing changed
    code, text = run_loop(argparse.Namespace(**{**vars(args), "operator": "110-4201"}),
                          records, d)
    done = json.loads(text)
    assert code == 0 and (done["status"], done["done_via"], done["done_by"]) == \
        ("done", "cli", "110-4201")
    assert d.callback_done(B1, "again", API)["done_note"] == "已回访"  # once
    assert records.callbacks() == []
    with pytest.raises(NotFound):
        d.callback_done(B2, "", API)
    pushed = d.push_done(B2, "2026112900003", None, API)
    assert pushed["work_order_pushed_ref"] == "2026112900003"
    assert records.push_needed() == []
    with pytest.raises(Conflict):
        d.push_done(B1, None, None, API)  # it owed no push


def test_the_handover_lists_what_the_shift_leaves_and_counts_what_it_saw(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock]) -> None:
    """At 05:50 Beijing time the night shift (20:00–08:00) hands over: the order nobody
    accepted (overdue too), not the one answered; both were received in this shift."""
    d, clock = desk
    d.receive(dict(ORDER), API)  # 03:50 Beijing
    done = dict(ORDER, ticket="2026112900002")
    d.receive(done, API)
    d.step(done["ticket"], "accepted", {}, API)
    d.step(done["ticket"], "assigned", {"unit": "城关派出所一中队"}, API)
    d.step(done["ticket"], "answered", {"note": "已处理"}, API)
    clock.now = T0 + 2 * 3600
    # a key pressed in this shift, and one the day before (counted by ZCOUNT, per UTC day)
    for bridge_id, at in ((B1, T0 + 3600), (B2, T0 - 86400)):
        apply_sync(client, P, Change(bridge_record(bridge_id), "transfer_requested", at,
                                     {"bridge_id": bridge_id},
                                     (Index(idx_day(iso(at)[:10]), bridge_id, at),)))
    records = Records(client, P, ZoneInfo("Asia/Shanghai"))
    got = records.handover(clock.now, ("08:00", "20:00"))
    assert got["shift"] == {"from": "2026-11-28T12:00:00.000Z",
                            "to": "2026-11-29T00:00:00.000Z", "label": "2026-11-28 20:00",
                            "until": "2026-11-29 08:00", "time_zone": "Asia/Shanghai"}
    assert [w["ticket"] for w in got["open_workorders"]] == [ORDER["ticket"]]
    assert [w["ticket"] for w in got["overdue_workorders"]] == [ORDER["ticket"]]
    assert (got["overdue_bridges"], got["callbacks"], got["push_needed"]) == ([], [], [])
    assert got["this_shift"] == {"keys": 1, "workorders_received": 2}
    text = handover_text(got).splitlines()
    assert text[0] == ("shift 2026-11-28 20:00 until 2026-11-29 08:00 (Asia/Shanghai): "
                       "1 key(s) pressed, 2 work order(s) received")
    assert [line for line in text if re.fullmatch(r"[a-z ]+ \([0-9]+\)", line)] == [
        "work orders open (1)", "work orders overdue (1)", "feedback overdue (0)",
        "callbacks owed (0)", "pushes owed (0)"]
    code, shown = run_record_command(argparse.Namespace(command="handover", json=True),
                                     records, shifts=("08:00", "20:00"))
    assert code == 0 and json.loads(shown)["shift"]["label"] == \
        shift(time.time(), ("08:00", "20:00"), ZoneInfo("Asia/Shanghai")).label
    clock.now = T0 + 5 * 3600  # 08:50: the day shift saw nothing yet
    assert records.handover(clock.now, ("08:00", "20:00"))["this_shift"] == \
        {"keys": 0, "workorders_received": 0}


def test_every_list_shows_at_most_its_cap_oldest_first_and_says_how_many_there_are(
        client: redis.Redis, desk: tuple[WorkOrderDesk, Clock],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog of thousands costs one page: each list reads at most LIST_CAP rows (here
    2 of 3), the oldest first, and says how many there are in all."""
    monkeypatch.setattr(queries, "LIST_CAP", 2)
    d, clock = desk
    for n in range(3):
        d.receive(dict(ORDER, ticket=f"202611290000{n + 1}"), API)
        clock.now += 60
        bridge_id = f"2026112819503{n}aaaaaa"
        apply_sync(client, P, Change(callback_record(bridge_id), "callback_needed", T0 + n,
                                     {"bridge_id": bridge_id, "status": "open"},
                                     (Index(IDX_CALLBACKS_OPEN, bridge_id, T0 + n),)))
    records = Records(client, P)
    rows, total = records.workorder_list()
    assert ([r["ticket"] for r in rows], total) == (["2026112900001", "2026112900002"], 3)
    assert [c["bridge_id"] for c in records.callbacks()] == \
        ["20261128195030aaaaaa", "20261128195031aaaaaa"]
    status, listed = call(api(client, d), "GET", "callbacks")
    assert (status, len(listed["callbacks"]), listed["total"]) == (200, 2, 3)
    assert call(api(client, d), "GET", "workorders")[1]["total"] == 3
    code, text = run_loop(argparse.Namespace(command="callbacks", json=False), records, d)
    assert (code, text.splitlines()[-1]) == (0, "… the first 2 of 3 shown, oldest first")
    got = records.handover(clock.now, ("08:00", "20:00"))
    assert (len(got["open_workorders"]), got["totals"]["open_workorders"],
            got["totals"]["callbacks"]) == (2, 3, 3)
    assert "work orders open (3)" in handover_text(got)
