"""The report to the city government, on a real redis-server, against golden files: a
month's and a year's records seeded as the gateway writes them (bridges of every
outcome, registered calls, work orders of three units, two consult transfers 12345
declined, one with its reason), then ``Records.report`` formatted as ``linkgw report``
prints it. A changed figure or label shows as a changed golden file (regenerate with
``LINKGW_GOLDEN=write``, then read the diff)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis
from openpyxl import load_workbook

from gateway.bridge.redis_store import apply_sync
from gateway.bridge.store import Change, Index
from gateway.config import TicketConfig
from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.errors import Conflict, Malformed, NotFound
from gateway.records.inbound import GROUP, InboundTickets
from gateway.records.queries import Records
from gateway.records.report_format import report_text, report_xlsx
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import bridge_record, call_record, idx_calls_day, idx_day, iso
from tests.integration.test_records import CATALOGUE, INBOUND, P

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT_12345 = Actor("api", "G12345-07")
POLICE = Actor("api", "J4201")


def beijing(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    c.flushdb()
    yield c


def bridge(client: redis.Redis, bridge_id: str, at: float, **fields: str) -> None:
    """A bridge as the transfer log leaves it once ended (12345 dialled at the key,
    unless the key was refused)."""
    dialled = {} if fields.get("outcome") == "refused" else {
        "dialing_target": "PJSIP/12345", "dialing_at": iso(at + 0.01)}
    apply_sync(client, P, Change(
        bridge_record(bridge_id), "transfer_requested", at,
        {"bridge_id": bridge_id, "requested_at": iso(at), "state": "ended",
         "direction": "110->12345"} | dialled | fields,
        (Index(idx_day(iso(at)[:10]), bridge_id, at),)))


def call(client: redis.Redis, uniqueid: str, at: float, dialed: str) -> None:
    apply_sync(client, P, Change(call_record(uniqueid), "call_registered", at,
                                 {"uniqueid": uniqueid, "dialed": dialed,
                                  "registered_at": iso(at)},
                                 (Index(idx_calls_day(iso(at)[:10]), uniqueid, at),)))


NOODLE = "20261115103000aaaa01"  # handed off
DECLINED = "20261116110000aaaa02"  # consult, 12345 declined, reason given
SILENT = "20261117120000aaaa03"  # consult, 12345 declined, no reason yet
REFUSED = "20261118130000aaaa04"
GONE = "20261119140000aaaa05"  # the citizen hung up
UNREACHED = "20261120150000aaaa06"
MARCH = "20260310090000aaaa07"  # another month of the year: handed off
REASON = "涉及人身安全，应由110处置\r\n（夜间独居老人）\u2028"


def seed(client: redis.Redis) -> None:
    noise = {"category": "noise", "item": "noise.square_dance", "item_name": "广场舞噪声",
             "code": "403"}
    answered = {"agent_answered_at": iso(beijing("2026-11-15 10:30") + 6)}
    bridge(client, NOODLE, beijing("2026-11-15 10:30"), outcome="handed_off", **noise,
           **answered)
    bridge(client, DECLINED, beijing("2026-11-16 11:00"), outcome="kept_by_110",
           decision="kept_by_first_line", mode="consult", **noise)
    bridge(client, SILENT, beijing("2026-11-17 12:00"), outcome="kept_by_110",
           decision="kept_by_first_line", mode="consult", category="vehicle",
           item="vehicle.driveway", item_name="车辆堵塞出入口", code="101")
    bridge(client, REFUSED, beijing("2026-11-18 13:00"), outcome="refused",
           refusal="never_transfer", category="vehicle", item="vehicle.fire_lane",
           item_name="占用消防通道", code="104")
    bridge(client, GONE, beijing("2026-11-19 14:00"), outcome="abandoned", **noise)
    bridge(client, UNREACHED, beijing("2026-11-20 15:00"), outcome="kept_by_110", **noise)
    bridge(client, MARCH, beijing("2026-03-10 09:00"), outcome="handed_off", **noise,
           agent_answered_at=iso(beijing("2026-03-10 09:00") + 25))
    for n in range(20):  # 20 calls to 110 in November, 4 to 12345; 10 to 110 in March
        call(client, f"u-nov-110-{n}", beijing("2026-11-10 08:00") + n * 3600, "110")
    for n in range(4):
        call(client, f"u-nov-12345-{n}", beijing("2026-11-11 08:00") + n * 3600, "12345")
    for n in range(10):
        call(client, f"u-mar-110-{n}", beijing("2026-03-05 08:00") + n * 3600, "110")


def work_orders(client: redis.Redis) -> None:
    """Three units: one answered on time, one late, one still open; one order never
    assigned; one in March."""
    clock = Clock(beijing("2026-11-21 09:00"))
    desk = WorkOrderDesk(client, P, TicketConfig(), CATALOGUE, clock)
    steps = {"2026112100001": ("城关派出所", 1.0), "2026112100002": ("东关派出所", 3.0),
             "2026112100003": ("交警一大队", None), "2026112100004": (None, None)}
    for ticket, (unit, answer_after) in steps.items():
        clock.now = beijing("2026-11-21 09:00")
        desk.receive({"ticket": ticket, "category": "noise", "summary": "噪声"}, AT_12345)
        if unit is None:
            continue
        desk.act(ticket, "accept", {}, POLICE)
        desk.act(ticket, "assign", {"unit": unit}, POLICE)
        if answer_after is not None:
            clock.now += answer_after * 3600  # noise: 2 h to answer
            desk.act(ticket, "answer", {}, POLICE)
    clock.now = beijing("2026-03-12 09:00")
    desk.receive({"ticket": "2026031200001", "category": "noise", "summary": "噪声"},
                 AT_12345)
    desk.act("2026031200001", "accept", {}, POLICE)
    desk.act("2026031200001", "assign", {"unit": "城关派出所"}, POLICE)
    desk.act("2026031200001", "answer", {}, POLICE)


def golden(name: str, made: str) -> str:
    path = GOLDEN / name
    if os.environ.get("LINKGW_GOLDEN") == "write":
        path.write_text(made, encoding="utf-8")
    return path.read_text(encoding="utf-8")


def test_12345_gives_a_decline_reason_once_and_only_for_a_declined_transfer(
        client: redis.Redis) -> None:
    seed(client)
    desk = TicketDesk(client, P, TicketConfig(), CATALOGUE, Clock(beijing("2026-11-16 11:05")))
    for bad in ("", "   ", "长" * 501, 42, "ok\x1b[2J", "ok\x85"):
        with pytest.raises(Malformed):
            desk.decline_reason(DECLINED, bad, AT_12345)
    with pytest.raises(Conflict, match="not a transfer 12345 declined"):
        desk.decline_reason(NOODLE, REASON, AT_12345)
    # a 12345 -> 110 consult that 110 declined: 110's decision, not 12345's to explain
    bridge(client, "20261116120000aaaa09", beijing("2026-11-16 12:00"),
           direction="12345->110", outcome="kept_by_110", decision="kept_by_first_line")
    with pytest.raises(Conflict, match="not a transfer 12345 declined"):
        desk.decline_reason("20261116120000aaaa09", REASON, AT_12345)
    with pytest.raises(NotFound):
        desk.decline_reason("20261116110000ffffff", REASON, AT_12345)
    given = desk.decline_reason(DECLINED, REASON, AT_12345)
    assert (given["decline_reason"], given["decline_reason_by"]) == (REASON, "G12345-07")
    assert desk.decline_reason(DECLINED, REASON, AT_12345) == given  # a retry
    with pytest.raises(Conflict, match="already has a decline reason"):
        desk.decline_reason(DECLINED, "another", AT_12345)


@pytest.mark.parametrize(("label", "lang"), [("2026-11", "zh"), ("2026-11", "en"),
                                             ("2026", "zh")])
def test_the_city_report_against_its_golden_file(client: redis.Redis, label: str,
                                                 lang: str) -> None:
    seed(client)
    work_orders(client)
    TicketDesk(client, P, TicketConfig(), CATALOGUE, Clock(beijing("2026-11-16 11:05"))) \
        .decline_reason(DECLINED, REASON, AT_12345)
    report = Records(client, P, SHANGHAI).report(label, beijing("2026-12-02 09:00"))
    made = report_text(report, lang) + "\n"
    assert made == golden(f"city-report.{label}.{lang}.txt", made)


def test_the_months_report_counts_what_it_says(client: redis.Redis) -> None:
    """The golden file's figures, read again as numbers (the arithmetic, not the text)."""
    seed(client)
    work_orders(client)
    report = Records(client, P, SHANGHAI).report("2026-11", beijing("2026-12-02 09:00"))
    assert report["diverted"] == {
        "keys": 6, "attempted": 5, "handed_off": 1, "refused": 1, "abandoned": 1,
        "declined": 2, "not_reached": 1, "calls_110": 20, "non_police_share": 0.25}
    assert report["by_unit"] == [  # as busy, then by name (code point order)
        {"unit": "东关派出所", "assigned": 1, "answered": 1, "answered_on_time": 0,
         "response_rate": 0.0},
        {"unit": "交警一大队", "assigned": 1, "answered": 0, "answered_on_time": 0,
         "response_rate": None},
        {"unit": "城关派出所", "assigned": 1, "answered": 1, "answered_on_time": 1,
         "response_rate": 1.0}]
    assert [(m["bridge_id"], m["reason"]) for m in report["joint_meeting"]] == [
        (DECLINED, ""), (SILENT, "")]  # no reason given yet
    orders = report["figures"]["workorders"]
    assert (orders["received"], orders["due"], orders["answered_on_time"]) == (4, 4, 1)


def test_12345_may_give_the_reason_on_its_stream_too(client: redis.Redis) -> None:
    seed(client)
    desk = TicketDesk(client, P, TicketConfig(), CATALOGUE, Clock(beijing("2026-11-17 12:05")))
    inbound = InboundTickets(client, desk, INBOUND, "c1", null_log())
    inbound.ensure_groups()
    client.xadd(INBOUND, {"bridge_id": SILENT, "decline_reason": "车主已自行挪车",
                          "operator": "G12345-07"})
    got = cast(Any, client.xreadgroup(GROUP, "c1", {INBOUND: ">"}))
    for entry_id, fields in got[0][1]:
        inbound.handle(entry_id, fields)
    assert desk.bridge(SILENT)["decline_reason"] == "车主已自行挪车"
    assert desk.bridge(SILENT)["decline_reason_via"] == "stream"


def test_the_city_report_workbook_opens_with_its_sections_in_chinese(
        client: redis.Redis) -> None:
    """The workbook as a spreadsheet reads it back: one sheet per section, Chinese
    labels, the reason's line break kept, an escape for any other control character."""
    seed(client)
    work_orders(client)
    TicketDesk(client, P, TicketConfig(), CATALOGUE, Clock(beijing("2026-11-16 11:05"))) \
        .decline_reason(DECLINED, REASON, AT_12345)
    report = Records(client, P, SHANGHAI).report("2026-11", beijing("2026-12-02 09:00"))
    report["joint_meeting"][1]["reason"] = "ok\x1b[2J"  # as an older release let in
    book = load_workbook(io.BytesIO(report_xlsx(report, "zh")))
    assert book.sheetnames == ["汇总", "分流", "按承办单位", "联席会议", "按事项"]
    assert [c.value for c in book["分流"]["A"]][-1] == "非警务来电占比"
    assert [c.value for c in book["分流"]["B"]][-1] == "25.0%"
    meeting = [[c.value for c in row] for row in book["联席会议"].iter_rows()]
    assert meeting[0] == ["时间", "转接编号", "事项", "事项名称", "未接收原因"]
    # the line break kept (XML reads CR LF back as LF, as Excel shows it)
    assert meeting[1][1:] == [DECLINED, "noise.square_dance", "广场舞噪声",
                              REASON.replace("\r\n", "\n")]
    assert meeting[2][4] == "ok\\x1b[2J"
    units = [row[0].value for row in book["按承办单位"].iter_rows(min_row=2)]
    assert units == ["东关派出所", "交警一大队", "城关派出所"]
