"""A work order's whole life on a real redis-server: returned to 12345, handed back to
110 by a unit, reassigned, given more time over a holiday, closed with a result, rated
by the citizen, reopened; each step once, with who, when and why on the record and on
12345's feed, and counted in the figures."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis

from gateway.config import DutyConfig, TicketConfig
from gateway.duty.ringer import claim_due
from gateway.duty.schedule import plan_ring
from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.cli import run_loop
from gateway.records.errors import Conflict, Malformed
from gateway.records.inbound import GROUP, InboundTickets
from gateway.records.queries import Records
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import IDX_WORKORDER_DEADLINE, IDX_WORKORDERS_OPEN, epoch, iso
from tests.integration.test_records import CATALOGUE, INBOUND, KEYS, Clock, P

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICE = Actor("api", "J4201")  # a police number at 110
AT_12345 = Actor("api", "G12345-07")  # a staff number at 12345
ORDER = {"ticket": "2026093000001", "category": "noise", "summary": "夜间施工\u2028扰民",
         "number": "13900139000"}
T = ORDER["ticket"]


def beijing(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp()


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    c = redis_server.client()
    c.flushdb()
    return c


def desk_on(client: redis.Redis, when: str, **tickets: Any) -> tuple[WorkOrderDesk, Clock]:
    clock = Clock()
    clock.now = beijing(when)
    return WorkOrderDesk(client, P, TicketConfig(**tickets), CATALOGUE, clock), clock


def feed(client: redis.Redis) -> list[dict[str, str]]:
    return [e for _, e in cast(list[tuple[str, dict[str, str]]],
                               client.xrange(KEYS.feed("12345")))]


def running(client: redis.Redis) -> dict[str, float]:
    """The orders whose deadline runs, and when."""
    return dict(cast(list[tuple[str, float]], client.zrange(
        KEYS.index(IDX_WORKORDER_DEADLINE), 0, -1, withscores=True)))


def is_open(client: redis.Redis) -> bool:
    return client.zscore(KEYS.index(IDX_WORKORDERS_OPEN), T) is not None


def test_110_returns_an_order_to_12345_with_a_reason_and_that_is_its_response(
        client: redis.Redis) -> None:
    d, clock = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    clock.now += 20 * 60
    with pytest.raises(Malformed, match="reason is required"):
        d.act(T, "return", {}, POLICE)
    returned = d.act(T, "return", {"reason": "民事纠纷，非警务事项\r\n请转区信访"}, POLICE)
    assert {k: returned[k] for k in ("status", "returned_reason", "returned_by",
                                     "returned_via", "on_time", "returned_at")} == {
        "status": "returned", "returned_reason": "民事纠纷，非警务事项\r\n请转区信访",
        "returned_by": "J4201", "returned_via": "api", "on_time": "yes",
        "returned_at": iso(clock.now)}
    assert (is_open(client), running(client)) == (False, {})  # nothing more is 110's
    assert d.act(T, "return", {"reason": "again"}, POLICE) == returned  # a retry
    with pytest.raises(Conflict, match="work order is returned: cannot accept"):
        d.step(T, "accepted", {}, POLICE)
    events = feed(client)
    assert [e["event"] for e in events] == ["workorder_received", "workorder_returned"]
    assert json.loads(events[1]["data"]) == {"via": "api", "operator": "J4201"}
    figures = Records(client, P).figures("2026-11", clock.now)["workorders"]
    assert (figures["returned"], figures["due"], figures["response_rate"]) == (1, 1, 1.0)


def test_a_unit_hands_an_order_back_to_110_which_assigns_it_again(
        client: redis.Redis) -> None:
    d, clock = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    accepted = d.act(T, "accept", {}, POLICE)
    d.act(T, "assign", {"unit": "城关派出所"}, POLICE)
    clock.now += 600
    with pytest.raises(Conflict, match="assigned to 城关派出所, not 东关派出所"):
        d.act(T, "unit_return", {"unit": "东关派出所", "reason": "x"}, POLICE)
    back = d.act(T, "unit_return", {"unit": "城关派出所", "reason": "不属本辖区"},
                 Actor("api", "P0771"))
    assert (back["status"], back["unit"], back["unit_returned_from"],
            back["unit_returned_reason"], back["unit_returned_by"]) == (
        "accepted", "", "城关派出所", "不属本辖区", "P0771")
    assert running(client) == {T: epoch(accepted["due_at"])}  # its deadline still runs
    assert d.act(T, "unit_return", {"unit": "城关派出所", "reason": "不属本辖区"},
                 POLICE) == back  # a retry
    with pytest.raises(Conflict, match="cannot unit return"):
        d.act(T, "unit_return", {"unit": "城关派出所", "reason": "another"}, POLICE)
    again = d.act(T, "assign", {"unit": "东关派出所"}, POLICE)
    assert (again["status"], again["unit"]) == ("assigned", "东关派出所")
    # the first unit's hand-back, retried late, hands back nothing of the second's
    with pytest.raises(Conflict, match="not 城关派出所") as late:
        d.act(T, "unit_return", {"unit": "城关派出所", "reason": "不属本辖区"}, POLICE)
    assert late.value.code == "not_its_unit"
    assert d.act(T, "answer", {"note": "已处理"}, POLICE)["status"] == "answered"
    assert [e["event"] for e in feed(client)] == [
        "workorder_received", "workorder_accepted", "workorder_assigned",
        "workorder_unit_returned", "workorder_assigned", "workorder_answered"]


def test_an_order_is_reassigned_to_another_unit_with_a_reason(client: redis.Redis) -> None:
    d, _ = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    d.act(T, "accept", {}, POLICE)
    with pytest.raises(Conflict, match="work order is accepted: cannot reassign"):
        d.act(T, "reassign", {"unit": "二中队", "reason": "x"}, POLICE)
    d.act(T, "assign", {"unit": "一中队"}, POLICE)
    for bad in ({"unit": "二中队"}, {"unit": "二中队\u2028", "reason": "x"},
                {"unit": "二中队", "reason": "长" * 2001}):
        with pytest.raises(Malformed):
            d.act(T, "reassign", bad, POLICE)
    moved = d.act(T, "reassign", {"unit": "二中队", "reason": "辖区调整"}, POLICE)
    assert (moved["unit"], moved["reassigned_from"], moved["reassigned_reason"],
            moved["reassign_count"], moved["status"]) == (
        "二中队", "一中队", "辖区调整", "1", "assigned")
    assert d.act(T, "reassign", {"unit": "二中队", "reason": "辖区调整"}, POLICE) == moved
    twice = d.act(T, "reassign", {"unit": "三中队", "reason": "警力调配"}, POLICE)
    assert (twice["reassigned_from"], twice["reassign_count"]) == ("二中队", "2")


def test_an_extension_granted_moves_the_deadline_and_a_holiday_moves_it_further(
        client: redis.Redis) -> None:
    """Accepted on 30 September (noise: 2 h to answer); one working day more is granted:
    National Day is no working day, so it is due at the end of 8 October."""
    d, clock = desk_on(client, "2026-09-30 10:00")
    d.receive(dict(ORDER), AT_12345)
    accepted = d.act(T, "accept", {}, POLICE)
    assert (accepted["due_at"], accepted["due_calendar"]) == (
        iso(beijing("2026-09-30 12:00")), "hours")
    with pytest.raises(Conflict, match="no extension is requested"):
        d.act(T, "extension_decision", {"decision": "granted"}, AT_12345)
    for bad in ({"reason": "x"}, {"reason": "x", "days": "1", "hours": "4"},
                {"reason": "x", "days": "31"}, {"reason": "x", "days": "1.5"},
                {"reason": "x", "hours": "0"}, {"days": "1"}):
        with pytest.raises(Malformed):
            d.act(T, "extension", bad, POLICE)
    asked = d.act(T, "extension", {"reason": "需调取沿街监控", "days": "1"}, POLICE)
    assert (asked["extension"], asked["extension_days"], asked["extension_requested_by"]) \
        == ("requested", "1", "J4201")
    with pytest.raises(Conflict, match="already requested"):
        d.act(T, "extension", {"reason": "another", "hours": "4"}, POLICE)
    clock.now += 1800
    granted = d.act(T, "extension_decision", {"decision": "granted", "note": "同意"},
                    AT_12345)
    assert (granted["extension"], granted["due_before_extension"], granted["due_at"],
            granted["due_calendar"], granted["extension_decided_by"]) == (
        "granted", accepted["due_at"], iso(beijing("2026-10-09 00:00")), "official",
        "G12345-07")
    assert running(client) == {T: beijing("2026-10-09 00:00")}
    assert Records(client, P).overdue_workorders(beijing("2026-10-05 09:00")) == []
    with pytest.raises(Conflict, match="already granted"):
        d.act(T, "extension_decision", {"decision": "refused"}, AT_12345)
    # a second one may be asked; refused, the deadline stays
    d.act(T, "extension", {"reason": "鉴定未出", "hours": "12"}, POLICE)
    refused = d.act(T, "extension_decision", {"decision": "refused"}, AT_12345)
    assert (refused["extension"], refused["due_at"]) == ("refused", granted["due_at"])


def test_working_days_granted_on_a_working_day_deadline_count_from_its_last_day(
        client: redis.Redis) -> None:
    """Due at the end of Tuesday 1 December (1 working day from Monday): one working
    day more ends Wednesday, not Thursday."""
    d, _ = desk_on(client, "2026-11-30 10:00", workorder_response_days=1)
    d.receive(dict(ORDER, category="environment"), AT_12345)
    accepted = d.act(T, "accept", {}, POLICE)
    assert accepted["due_at"] == iso(beijing("2026-12-02 00:00"))
    d.act(T, "extension", {"reason": "取证", "days": "1"}, POLICE)
    granted = d.act(T, "extension_decision", {"decision": "granted"}, AT_12345)
    assert (granted["due_at"], granted["extension_granted_count"]) == (
        iso(beijing("2026-12-03 00:00")), "1")


def test_a_deadline_in_working_days_skips_the_national_day_holiday(
        client: redis.Redis) -> None:
    """A site whose work orders are answered within 2 working days (the category sets
    no hours of its own): accepted on 30 September, due at the end of 9 October."""
    d, _ = desk_on(client, "2026-09-30 10:00", workorder_response_days=2)
    d.receive(dict(ORDER, category="environment"), AT_12345)
    accepted = d.act(T, "accept", {}, POLICE)
    assert (accepted["due_at"], accepted["due_calendar"]) == (
        iso(beijing("2026-10-10 00:00")), "official")


def test_12345_closes_rates_and_reopens_an_answered_order(client: redis.Redis) -> None:
    d, clock = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    for action, given in (("accept", {}), ("assign", {"unit": "一中队"}),
                          ("answer", {"note": "已责令停工"})):
        d.act(T, action, given, POLICE)
    with pytest.raises(Conflict, match="cannot satisfaction"):
        d.act(T, "satisfaction", {"satisfaction": "satisfied"}, AT_12345)
    with pytest.raises(Malformed, match="result must be one of"):
        d.act(T, "close", {"result": "done"}, AT_12345)
    closed = d.act(T, "close", {"result": "resolved", "note": "已办结"}, AT_12345)
    assert (closed["status"], closed["result"], closed["closed_by"], closed["closed_note"]) \
        == ("closed", "resolved", "G12345-07", "已办结")
    assert d.act(T, "close", {"result": "resolved"}, AT_12345) == closed
    with pytest.raises(Conflict, match="result is already resolved"):
        d.act(T, "close", {"result": "unresolved"}, AT_12345)
    rated = d.act(T, "satisfaction", {"satisfaction": "dissatisfied", "note": "仍有噪声"},
                  AT_12345)
    assert (rated["satisfaction"], rated["satisfaction_note"]) == ("dissatisfied", "仍有噪声")
    clock.now += 3600
    reopened = d.act(T, "reopen", {"reason": "回访不满意，夜间仍施工"}, AT_12345)
    assert (reopened["status"], reopened["result"], reopened["satisfaction"],
            reopened["reopen_count"], reopened["due_at"]) == (
        "reopened", "", "", "1", iso(clock.now + 2 * 3600))  # noise: 2 h again
    assert (is_open(client), running(client)) == (True, {T: clock.now + 2 * 3600})
    clock.now += 3 * 3600  # answered late this time: the first answer is the one counted
    again = d.act(T, "answer", {"note": "已联合城管查处"}, POLICE)
    assert (again["status"], again["on_time"], again["answered_note"]) == (
        "answered", "yes", "已联合城管查处")
    d.act(T, "close", {"result": "resolved"}, AT_12345)
    d.act(T, "satisfaction", {"satisfaction": "satisfied"}, AT_12345)
    figures = Records(client, P).figures("2026-11", clock.now)["workorders"]
    assert {k: figures[k] for k in ("reopened", "closed", "satisfaction",
                                    "satisfaction_rate", "response_rate")} == {
        "reopened": 1, "closed": 1, "satisfaction": {"satisfied": 1},
        "satisfaction_rate": 1.0, "response_rate": 1.0}
    assert [e["event"] for e in feed(client)][-6:] == [
        "workorder_closed", "workorder_satisfaction", "workorder_reopened",
        "workorder_answered", "workorder_closed", "workorder_satisfaction"]


def test_the_life_in_the_figures(client: redis.Redis) -> None:
    """The golden case, one order for each way a life goes (noise: 60 min to accept, 2 h
    to answer), read at 13:00 on the day:
    - 1 returned within its accept deadline: a response on time (and in time for the
      accept rate, though nobody accepted it);
    - 2 returned after its answer deadline passed: a late response;
    - 3 reassigned, given more time (granted), answered in it: on time; closed, rated
      basically satisfied;
    - 4 asked more time, refused, answered late; closed, rated dissatisfied, reopened;
    - 5 never accepted: late, not responded to."""
    d, clock = desk_on(client, "2026-11-30 09:00")
    orders = [f"20261130000{n}" for n in range(1, 6)]
    for ticket in orders:
        d.receive(dict(ORDER, ticket=ticket), AT_12345)
    o1, o2, o3, o4, _ = orders
    d.act(o1, "return", {"reason": "非警务"}, POLICE)
    for ticket in (o2, o3, o4):
        d.act(ticket, "accept", {}, POLICE)
        d.act(ticket, "assign", {"unit": "一中队"}, POLICE)
    d.act(o3, "reassign", {"unit": "二中队", "reason": "辖区"}, POLICE)
    d.act(o3, "extension", {"reason": "取证", "hours": "4"}, POLICE)
    d.act(o3, "extension_decision", {"decision": "granted"}, AT_12345)
    d.act(o4, "extension", {"reason": "取证", "hours": "4"}, POLICE)
    d.act(o4, "extension_decision", {"decision": "refused"}, AT_12345)
    clock.now = beijing("2026-11-30 12:00")  # the 2 h have passed at 11:00
    d.act(o2, "return", {"reason": "管辖争议"}, POLICE)
    d.act(o3, "answer", {}, POLICE)
    d.act(o4, "answer", {}, POLICE)
    for ticket, rating in ((o3, "basically_satisfied"), (o4, "dissatisfied")):
        d.act(ticket, "close", {"result": "resolved"}, AT_12345)
        d.act(ticket, "satisfaction", {"satisfaction": rating}, AT_12345)
    d.act(o4, "reopen", {"reason": "不满意"}, AT_12345)
    figures = Records(client, P).figures("2026-11", beijing("2026-11-30 13:00"))
    assert figures["workorders"] == {
        "received": 5, "accepted": 3, "answered": 2,
        "accept_due": 5, "accepted_on_time": 4, "accept_rate": 0.8,
        "due": 5, "answered_on_time": 2, "response_rate": 0.4,
        "returned": 2, "reassigned": 1, "extensions_requested": 2, "extensions_granted": 1,
        "reopened": 1, "closed": 1, "satisfaction": {"basically_satisfied": 1},
        "satisfaction_rate": 1.0}


def test_two_writers_at_once_one_moves_the_order_the_other_is_told(
        client: redis.Redis) -> None:
    """Two duty officers reassign the same order in the same moment: the revision guard
    lets the first through and tells the second, who saw it before it moved."""
    d, _ = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    d.act(T, "accept", {}, POLICE)
    d.act(T, "assign", {"unit": "一中队"}, POLICE)
    first = WorkOrderDesk(client, P, d.config, CATALOGUE, d.clock)

    class Slow(WorkOrderDesk):
        def _apply(self, change: Any) -> bool:  # the other officer is first
            first.act(T, "reassign", {"unit": "二中队", "reason": "甲"}, POLICE)
            return super()._apply(change)

    second = Slow(client, P, d.config, CATALOGUE, d.clock)
    with pytest.raises(Conflict, match="changed meanwhile") as refused:
        second.act(T, "reassign", {"unit": "三中队", "reason": "乙"}, Actor("api", "J4202"))
    assert refused.value.code == "loop_changed"
    kept = Records(client, P).workorder(T)
    assert (kept["unit"], kept["reassigned_by"], kept["reassign_count"]) == \
        ("二中队", "J4201", "1")


def test_12345_takes_its_steps_on_the_stream_and_only_its_steps(client: redis.Redis) -> None:
    d, _ = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    for action, given in (("accept", {}), ("assign", {"unit": "一中队"}), ("answer", {})):
        d.act(T, action, given, POLICE)
    tickets = TicketDesk(client, P, TicketConfig(), CATALOGUE, d.clock)
    inbound = InboundTickets(client, tickets, INBOUND, "c1", null_log(), workorders=d)
    inbound.ensure_groups()
    staff = {"ticket": T, "operator": "G12345-07"}
    for entry in ({"type": "workorder_close", "result": "explained", **staff},
                  {"type": "workorder_satisfaction", "satisfaction": "satisfied", **staff},
                  {"type": "workorder_return", "reason": "x", **staff},  # 110's step
                  {"type": "workorder_pay", **staff},
                  {"type": "workorder_close", "result": "explained", "ticket": T}):
        client.xadd(INBOUND, cast(Any, entry))
    got = cast(Any, client.xreadgroup(GROUP, "c1", {INBOUND: ">"}))
    for entry_id, fields in got[0][1]:
        inbound.handle(entry_id, fields)
    order = Records(client, P).workorder(T)
    assert (order["status"], order["result"], order["closed_via"], order["closed_by"],
            order["satisfaction"]) == ("closed", "explained", "stream", "G12345-07",
                                       "satisfied")
    errors = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                 client.xrange(f"{INBOUND}:errors"))]
    assert [e["error"] for e in errors] == ["role_forbidden", "type_unknown",
                                            "operator_missing"]
    assert client.xpending(INBOUND, GROUP)["pending"] == 0


def test_the_cli_takes_every_step(client: redis.Redis) -> None:
    d, _ = desk_on(client, "2026-11-30 09:00")
    d.receive(dict(ORDER), AT_12345)
    records = Records(client, P)

    def cli(step: str, **options: str) -> dict[str, str]:
        args = argparse.Namespace(
            command="workorder", ticket=T, step=step, json=True, operator="J4201",
            **{k: options.get(k) for k in ("unit", "reason", "days", "hours", "result",
                                           "satisfaction", "note")})
        code, out = run_loop(args, records, d)
        assert code == 0
        return cast(dict[str, str], json.loads(out))

    cli("accept")
    cli("assign", unit="一中队")
    assert cli("reassign", unit="二中队", reason="辖区")["unit"] == "二中队"
    assert cli("extension", reason="取证", days="2")["extension"] == "requested"
    assert cli("refuse")["extension"] == "refused"
    cli("extension", reason="再取证", hours="6")
    assert cli("grant")["extension"] == "granted"
    cli("unit-return", unit="二中队", reason="非本辖区")
    cli("assign", unit="三中队")
    cli("answer", note="已处理")
    assert cli("close", result="partly_resolved")["result"] == "partly_resolved"
    assert cli("satisfaction", satisfaction="basically_satisfied")["status"] == "closed"
    assert cli("reopen", reason="不满意")["status"] == "reopened"
    assert cli("return", reason="转信访")["status"] == "returned"
    assert [e["event"].removeprefix("workorder_") for e in feed(client)] == [
        "received", "accepted", "assigned", "reassigned", "extension_requested",
        "extension_decided", "extension_requested", "extension_decided", "unit_returned",
        "assigned", "answered", "closed", "satisfaction", "reopened", "returned"]


def test_two_gateways_claim_each_ring_once_and_accepting_stops_the_ringing(
        client: redis.Redis) -> None:
    """A new order waits for the duty phone at once; two gateways that both saw its ring
    due write the claim guarded, and only one rings; accepting takes it off."""
    duty = DutyConfig(numbers=("PJSIP/duty1", "PJSIP/duty2"), every=300)
    d, clock = desk_on(client, "2026-11-30 09:00")
    other = WorkOrderDesk(client, P, d.config, CATALOGUE, d.clock)
    d.receive(dict(ORDER), AT_12345)
    assert d.rings_due(clock.now) == [T]
    seen_by_one = plan_ring(T, d.order(T), duty, clock.now)
    seen_by_other = plan_ring(T, other.order(T), duty, clock.now)
    assert seen_by_one is not None and seen_by_other is not None
    assert (d.write(seen_by_one.change), other.write(seen_by_other.change)) == (True, False)
    # the next ring: `every` after this one has ended (ring_timeout 30 s)
    assert d.rings_due(clock.now + 329) == [] and d.rings_due(clock.now + 330) == [T]
    again = claim_due(other, duty, clock.now + 330)[0]
    assert (again.attempt, again.say.split("&")[-1]) == (2, "linkgw/zh/cat_noise")
    d.act(T, "accept", {}, POLICE)
    assert d.rings_due(clock.now + 3600) == []
    events = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                 client.xrange(KEYS.events)) if e["record"].endswith(T)]
    assert [e["event"] for e in events] == ["workorder_received", "workorder_duty_rang",
                                            "workorder_duty_rang", "workorder_accepted"]
    assert [e["event"] for e in feed(client)] == ["workorder_received", "workorder_accepted"]
