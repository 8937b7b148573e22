"""Tickets, the closed loop, look-ups, figures and the hash chain on a real Redis."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyRequest

from gateway.bridge.redis_store import apply_sync
from gateway.bridge.store import Change, Index
from gateway.catalogue import load_categories
from gateway.config import TicketConfig
from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.chain import verify_day
from gateway.records.cli import run as run_cli
from gateway.records.errors import Conflict, Malformed, NotFound
from gateway.records.http import ApiResource
from gateway.records.inbound import GROUP, InboundTickets
from gateway.records.queries import FINDERS, Records
from gateway.records.roles import ALLOWED, ApiRole, LineRole, sees
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DEADLINE,
    Keys,
    bridge_record,
    callback_record,
    idx_caller,
    idx_day,
    idx_ticket,
    ticket_record,
    workorder_record,
)

P = "t"
T0 = 1_795_895_437.0  # 2026-11-28T19:50:37Z
DAY = "2026-11-28"
B1, B2, B3 = "20261128195037aaaaaa", "20261128195100bbbbbb", "20261128195200cccccc"
B4, B5, B6 = "20261128195300dddddd", "20261128195400eeeeee", "20261128195230ffffff"
KEYS = Keys(P)
INBOUND = KEYS.inbound(TicketConfig.inbound_stream)  # the 12345 side's stream
CATALOGUE = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")


#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")
#: who acts at 12345, on an inbound stream entry (required, as over HTTP)
BY_12345: dict[Any, Any] = {b"operator": b"G12345-07"}
STREAM = Actor("stream")


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 600

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    c.flushdb()
    yield c


def bridge(client: redis.Redis, bridge_id: str, at: float, **fields: str) -> None:
    base = {"bridge_id": bridge_id, "requested_at": "2026-11-28T19:50:37.000Z",
            "state": "ended" if "outcome" in fields else "requested"}
    apply_sync(client, P, Change(bridge_record(bridge_id), "transfer_requested", at,
                                 base | fields,
                                 (Index(idx_day(DAY), bridge_id, at),
                                  Index(idx_caller(fields.get("citizen_number", "")),
                                        bridge_id, at))))


@pytest.fixture
def desk(client: redis.Redis) -> tuple[TicketDesk, Clock]:
    clock = Clock()
    return TicketDesk(client, P, TicketConfig(pattern=r"^\d{8,20}$", feedback_hours=72),
                      CATALOGUE, clock), clock


def test_attach_is_checked_idempotent_and_indexed(client: redis.Redis,
                                                  desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", category="utilities",
           citizen_number="13800138000")
    with pytest.raises(Malformed) as bad:
        d.attach(B1, "GD-1", API)
    assert bad.value.code == "ticket_malformed"
    with pytest.raises(NotFound):
        d.attach(B2, "20261128000001", API)
    with pytest.raises(Malformed):
        d.attach("../etc", "20261128000001", API)
    first = d.attach(B1, "20261128000001", API)
    again = d.attach(B1, "20261128000001", STREAM)
    assert first == again and first["seq"] == "1"
    assert first["deadline_at"] == "2026-11-29T20:00:37.000Z"  # utilities: 24 h
    with pytest.raises(Conflict):
        d.attach(B1, "20261128000002", API)
    assert cast(list[str], client.zrange(KEYS.index(idx_ticket("20261128000001")), 0, -1)) == [B1]


@pytest.mark.parametrize(
    "ticket", ["87654321\n", "１２３４５６７８", "8765\u20284321", "87654321 "])
def test_a_ticket_is_the_whole_value_in_ascii_digits(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], ticket: str) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345")
    with pytest.raises(Malformed):
        d.attach(B1, ticket, API)
    assert client.exists(KEYS.ticket(B1)) == 0


def test_fifty_writers_attaching_different_tickets_at_once_one_wins(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], redis_server: RedisServer) -> None:
    """Each writer on its own connection, all released together: one ticket_attached
    event, one index entry, the others refused with a conflict (or, for the winner's
    own number, the same record)."""
    import threading

    _, clock = desk
    bridge(client, B1, T0, direction="110->12345")
    go = threading.Barrier(50)
    results: list[str] = []

    def attach(n: int) -> None:
        own = TicketDesk(redis_server.client(), P, TicketConfig(pattern=r"^\d{8,20}$"),
                         CATALOGUE, clock)
        go.wait()
        try:
            results.append(own.attach(B1, f"{20261128000000 + n}", API)["ticket"])
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=attach, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winner = cast(dict[str, str], client.hgetall(KEYS.ticket(B1)))["ticket"]
    assert sorted(results) == sorted([winner] + ["conflict"] * 49)
    events = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                 client.xrange(KEYS.events))
              if e["record"] == ticket_record(B1)]
    assert [e["event"] for e in events] == ["ticket_attached"]
    assert [k for k in cast(list[str], client.keys(KEYS.index(idx_ticket("*"))))] == \
        [KEYS.index(idx_ticket(winner))]


def test_loop_in_order_once_each(client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, clock = desk
    bridge(client, B1, T0, direction="110->12345", category="noise")
    with pytest.raises(Conflict) as early:
        d.status(B1, "accepted", "", API)
    assert early.value.code == "no_ticket"
    d.attach(B1, "20261128000001", API)
    with pytest.raises(Conflict) as skip:
        d.status(B1, "assigned", "", API)
    assert skip.value.code == "loop_order"
    with pytest.raises(Malformed):
        d.status(B1, "done", "", API)
    d.status(B1, "accepted", "", API)
    assert d.status(B1, "accepted", "", API)["seq"] == "2"  # repeat: no change
    clock.now += 60
    d.status(B1, "assigned", "区城管局", STREAM)
    clock.now += 3600
    done = d.status(B1, "feedback", "已处理", API)
    assert (done["status"], done["on_time"], done["feedback_note"]) == \
        ("feedback", "yes", "已处理")
    assert done["accepted_at"] < done["assigned_at"] < done["feedback_at"]
    assert client.zscore(KEYS.index(IDX_DEADLINE), B1) is None


def test_overdue_and_day_figures(client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, clock = desk
    # 12345 is dialled at the key: the answer time runs from requested_at
    # ... and the time in 12345's queue from the answering attempt's dial (dialing_at;
    # a record without it, from requested_at)
    bridge(client, B1, T0, direction="110->12345", category="noise", outcome="handed_off",
           dialing_target="PJSIP/12345", requested_at="2026-11-28T19:50:37.000Z",
           dialing_at="2026-11-28T19:50:39.000Z",
           agent_answered_at="2026-11-28T19:50:45.000Z")
    bridge(client, B2, T0 + 60, direction="110->12345", category="noise",
           outcome="kept_by_110", dialing_target="PJSIP/12345",
           requested_at="2026-11-28T19:51:37.000Z", code="", code_given="no")
    bridge(client, B3, T0 + 120, direction="12345->110", outcome="handed_off",
           response_due_at="2026-11-28T20:00:00.000Z", dialing_target="PJSIP/seat2",
           requested_at="2026-11-28T19:52:37.000Z",
           agent_answered_at="2026-11-28T19:52:55.000Z")
    bridge(client, B6, T0 + 150, direction="110->12345", outcome="refused",
           refusal="never_transfer", dialing_target="PJSIP/12345",  # its leg cancelled
           code="104", code_given="yes")
    bridge(client, B4, T0 + 180, direction="110->12345", outcome="unknown", recovered="yes",
           outcome_reason="ended while no gateway watched")
    bridge(client, B5, T0 + 240, direction="110->12345", state="three_party")
    apply_sync(client, P, Change(bridge_record(B3), "x", T0 + 121, {},
                                 (Index(IDX_DEADLINE, B3, 1_795_896_000.0),)))
    d.attach(B1, "20261128000001", API)
    records = Records(client, P)
    clock.now = T0 + 73 * 3600
    assert [r["bridge_id"] for r in records.overdue(clock.now)] == [B3, B1]
    figures = records.day_figures(DAY, clock.now)
    assert (figures["transfers"], figures["ended"], figures["live"]) == (6, 5, 1)
    # the record written with the outcome's earlier name counts under today's
    assert figures["by_outcome"] == {"handed_off": 2, "kept_by_first_line": 1, "refused": 1,
                                     "unknown": 1}
    assert (figures["recovered"], figures["unknown"], figures["unknown_reasons"]) == \
        (1, 1, {"ended while no gateway watched": 1})
    assert figures["by_category"] == {"noise": 2, "unspecified": 4}
    assert figures["unclassified"] == 1  # B2: no code typed, none defaulted
    assert (figures["dialled"], figures["answered"]) == (3, 2)
    assert (figures["answer_p50_s"], figures["answer_p90_s"]) == (13.0, 18.0)
    assert figures["answer_bands"] == {"0-5": 0, "5-10": 1, "10-15": 0, "15-20": 1,
                                       "20-30": 0, "30+": 0}  # 8 s and 18 s
    assert (figures["answered_within_15s"], figures["answered_within_20s"]) == \
        (round(1 / 3, 4), round(2 / 3, 4))
    # 6 s and 18 s in the other line's queue, against 90 % / 95 % of the standard
    assert (figures["queue_p50_s"], figures["queue_within_15s"],
            figures["queue_within_20s"]) == (12.0, 0.5, 1.0)
    assert figures["queue_standard"] == {"within_15s": 0.9, "within_20s": 0.95}
    assert (figures["reverse_due"], figures["response_rate"]) == (1, 0.0)


def test_find_and_show(client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000")
    d.attach(B1, "20261128000001", API)
    d.incident(B1, "110-2026-000123", API)
    records = Records(client, P)
    for by, value in (("number", "13800138000"), ("ticket", "20261128000001"),
                      ("incident", "110-2026-000123"), ("day", DAY)):
        assert [r["bridge_id"] for r in records.find(by, value)] == [B1], by
    shown = records.bridge(B1)
    assert shown["ticket"]["incident"] == "110-2026-000123"
    assert [e["event"] for e in shown["events"]] == [
        "transfer_requested", "ticket_attached", "incident_attached"]


def test_show_and_find_never_send_a_callers_escapes_to_the_terminal(
        client: redis.Redis) -> None:
    """A caller name with an OSC title, an 8-bit CSI, a line separator and a bidi
    override, read back from Redis: ``linkgw show`` and ``find`` print it escaped, as
    text and as JSON (which still reads back the same)."""
    name = "张三\x1b]0;owned\x07\x9b2J\u2028\u202e"
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000",
           citizen_name=name)
    records = Records(client, P)
    code, text = run_cli(argparse.Namespace(command="show", bridge_id=B1, json=False),
                         records)
    assert code == 0
    assert "  citizen_name             张三\\x1b]0;owned\\x07\\x9b2J\\u2028\\u202e" in \
        text.split("\n")
    code, text = run_cli(argparse.Namespace(command="show", bridge_id=B1, json=True),
                         records)
    assert json.loads(text)["bridge"]["citizen_name"] == name
    assert not set(text) & {"\x1b", "\x07", "\x9b", "\u2028", "\u202e"}
    for as_json in (False, True):
        args = argparse.Namespace(command="find", json=as_json,
                                  **{f: None for f in FINDERS} | {"number": "13800138000"})
        code, text = run_cli(args, records)
        assert code == 0 and B1 in text
        assert not set(text) & {"\x1b", "\x07", "\x9b", "\u2028", "\u202e"}


def test_chain_holds_and_an_edited_event_breaks_it_there(client: redis.Redis,
                                                         desk: tuple[TicketDesk, Clock]
                                                         ) -> None:
    """Rewrite the stream with one entry's content changed (same ids, same hashes):
    verification names that entry."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345")
    bridge(client, B2, T0 + 1, direction="110->12345")
    d.attach(B1, "20261128000001", API)
    assert verify_day(client, P, DAY).ok and verify_day(client, P, DAY).checked == 3
    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(KEYS.events))
    client.delete(KEYS.events)
    for entry_id, entry in entries:
        if entry_id == entries[1][0]:
            entry = entry | {"fields": entry["fields"].replace(B2, B3)}
        client.xadd(KEYS.events, cast(Any, entry), id=entry_id)
    report = verify_day(client, P, DAY)
    assert (report.ok, report.broken_at, report.checked) == (False, entries[1][0], 2)
    assert "does not match its hash" in report.reason


def test_removing_the_newest_event_is_caught(client: redis.Redis) -> None:
    bridge(client, B1, T0)
    bridge(client, B2, T0 + 1)
    last = cast(list[tuple[str, dict[str, str]]], client.xrange(KEYS.events))[-1][0]
    client.xdel(KEYS.events, last)
    report = verify_day(client, P, DAY)
    assert (report.ok, report.broken_at) == (False, "(end)")


def test_inbound_stream_applies_acks_and_reports_refusals(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    inbound = InboundTickets(client, d, INBOUND, "c1", null_log(),
                             KEYS.feed("12345"), "12345")
    inbound.ensure_groups()
    good = client.xadd(INBOUND, {"operator": "G12345-07", "bridge_id": B1,
                                 "ticket": "20261128000009", "status": "accepted"})
    bad = client.xadd(INBOUND, {"operator": "G12345-07", "bridge_id": B1, "ticket": "nope"})
    got = cast(Any, client.xreadgroup(GROUP, "c1", {INBOUND: ">"}))
    for entry_id, fields in got[0][1]:
        inbound.handle(entry_id, fields)
    assert d._hash(ticket_record(B1))["status"] == "accepted"
    assert client.xpending(INBOUND, GROUP)["pending"] == 0
    errors = cast(list[tuple[str, dict[str, str]]], client.xrange(f"{INBOUND}:errors"))
    assert [(e["entry"], e["error"]) for _, e in errors] == [(bad, "ticket_malformed")]
    assert good != bad
    groups = client.xinfo_groups(KEYS.feed("12345"))
    assert [g["name"] for g in groups] == ["12345"]


TOKENS = {ApiRole.ADMIN: "s3cret", ApiRole.LINE_12345: "twelve-345-token",
          ApiRole.SUPERVISOR: "supervisor-token", ApiRole.LIAISON: "liaison-desk-token"}


def api(client: redis.Redis, desk: TicketDesk) -> ApiResource:
    orders = WorkOrderDesk(client, P, desk.config, desk.catalogue, desk.clock)
    return ApiResource(desk, Records(client, P), TOKENS, defer.maybeDeferred,
                       lambda: {"redis": "up"}, lambda: "linkgw_redis_up 1\n",
                       desk.clock, null_log(), workorders=orders)


def call(resource: ApiResource, method: str, path: str, body: object = None,
         token: str | None = "s3cret", args: dict[bytes, list[bytes]] | None = None,
         client: str = "127.0.0.1", host: bytes = b"127.0.0.1:8645",
         operator: str | None = "J4201") -> tuple[int, Any]:
    """One request; a change (a dict body) names ``operator`` unless it is None."""
    if isinstance(body, dict) and operator is not None:
        body = {"operator": operator} | body
    request = DummyRequest([p.encode() for p in path.strip("/").split("/")])
    request.client = IPv4Address("TCP", client, 40000)
    request.requestHeaders.setRawHeaders(b"host", [host])
    request.method = method.encode()
    request.args = args or {}
    if token is not None:
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
    request.content = io.BytesIO(  # type: ignore[attr-defined]
        json.dumps(body).encode() if body is not None else b"")
    out = resource.render(cast(Request, request))
    if isinstance(out, bytes):
        request.write(out)
    text = b"".join(request.written).decode()
    return request.responseCode or 200, json.loads(text) if text.startswith(("{", "[")) \
        else text


def test_api_refuses_without_changing_anything(client: redis.Redis,
                                               desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345")
    resource = api(client, d)
    before = cast(list[Any], client.xrange(KEYS.events))
    cases = [
        (dict(token=None), 401, "unauthorized"),
        (dict(token="wrong"), 403, "forbidden"),
        (dict(body={"ticket": "GD 1"}), 400, "ticket_malformed"),
        (dict(body=["x"]), 400, "body_malformed"),
    ]
    for kw, status, code in cases:
        got = call(resource, "PUT", f"bridges/{B1}/ticket", **kw)  # type: ignore[arg-type]
        assert got == (status, {"error": code, "message": got[1]["message"]}), kw
    assert call(resource, "PUT", f"bridges/{B2}/ticket", {"ticket": "20261128000001"}) \
        [0] == 404
    assert cast(list[Any], client.xrange(KEYS.events)) == before
    assert not client.exists(KEYS.ticket(B1))


def test_api_attach_loop_and_look_up(client: redis.Redis,
                                     desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000")
    resource = api(client, d)
    status, body = call(resource, "PUT", f"bridges/{B1}/ticket", {"ticket": "20261128000001"})
    assert (status, body["ticket"], body["attached_via"], body["attached_by"]) == \
        (200, "20261128000001", "api", "J4201")
    for step in ("accepted", "assigned", "feedback"):
        assert call(resource, "POST", f"bridges/{B1}/status", {"status": step})[0] == 200
    status, found = call(resource, "GET", "bridges", args={b"number": [b"13800138000"]})
    assert [r["ticket_status"] for r in found["bridges"]] == ["feedback"]
    assert call(resource, "GET", "health", token=None) == (200, {"redis": "up"})
    assert call(resource, "GET", "nothing")[0] == 404


def test_inbound_loop_survives_redis_failing_mid_entry(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    """Redis fails while an entry is acknowledged: the loop goes on and the entry,
    delivered again, is applied once."""
    import threading

    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")

    class FlakyAck(InboundTickets):
        failed = False

        def handle(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
            if not FlakyAck.failed:
                FlakyAck.failed = True
                raise redis.ConnectionError("Connection reset by peer")
            super().handle(entry_id, fields)
            self.stop()

    inbound = FlakyAck(client, d, INBOUND, "c1", null_log())
    client.xadd(INBOUND, {"operator": "G12345-07", "bridge_id": B1,
                          "ticket": "20261128000009"})
    thread = threading.Thread(target=inbound.run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and inbound.applied == 1
    assert d._hash(ticket_record(B1))["ticket"] == "20261128000009"
    assert client.xpending(INBOUND, GROUP)["pending"] == 0


def _raw_client(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=redis_server.port)  # bytes, as the gateway


def _run_until(inbound: InboundTickets, done: Callable[[], bool]) -> None:
    """Run the loop in its thread until ``done`` (or 10 s), then stop it."""
    import threading
    import time

    thread = threading.Thread(target=inbound.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    inbound.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_an_entry_that_is_not_utf8_or_too_large_is_refused_and_the_next_applied(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], redis_server: RedisServer
) -> None:
    """What ``printf 'x\\xc3' | redis-cli -x XADD …`` writes used to kill the consumer
    for good; now it is refused, copied to the errors stream, and reading goes on."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    raw = _raw_client(redis_server)
    stream = INBOUND
    torn = cast(bytes, raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(),
                                         b"ticket": b"77777777", b"note": "张".encode()[:2]}))
    huge = cast(bytes, raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(),
                                         b"note": b"x" * 70000}))
    raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(), b"ticket": b"20261128000009"})
    inbound = InboundTickets(raw, d, stream, "gw-test", null_log())
    _run_until(inbound, lambda: inbound.applied + inbound.refused == 3)
    assert (inbound.applied, inbound.refused) == (1, 2)
    assert d._hash(ticket_record(B1))["ticket"] == "20261128000009"
    errors = cast(list[tuple[str, dict[str, str]]], client.xrange(f"{stream}:errors"))
    assert [(e["entry"], e["error"]) for _, e in errors] == [
        (torn.decode(), "entry_not_utf8"), (huge.decode(), "entry_too_large")]
    assert len(errors[1][1]["in_note"]) == 256  # a copy, cut
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_an_entry_left_pending_by_a_gone_consumer_is_claimed_and_applied(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], redis_server: RedisServer
) -> None:
    """Delivered to a gateway that crashed before acknowledging it (under another name):
    after claim_idle the next gateway takes it over, so it is not lost."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    raw = _raw_client(redis_server)
    stream = INBOUND
    InboundTickets(raw, d, stream, "gw-old", null_log()).ensure_groups()
    raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(), b"ticket": b"20261128000010"})
    raw.xreadgroup(GROUP, "gw-old", {stream: ">"})  # delivered, never acknowledged
    inbound = InboundTickets(raw, d, stream, "gw-new", null_log(), claim_idle=0.05)
    import time
    time.sleep(0.1)  # the entry has been idle longer than claim_idle
    _run_until(inbound, lambda: inbound.applied == 1)
    assert (inbound.claimed, inbound.applied) == (1, 1)
    assert d._hash(ticket_record(B1))["ticket"] == "20261128000010"
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_an_entry_left_by_a_gateway_that_died_meanwhile_is_claimed_without_a_restart(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], redis_server: RedisServer
) -> None:
    """Another gateway took an entry and died just before this one started: at the start
    it has not been idle for claim_idle yet. The running loop looks again every
    claim_idle seconds, not only when it starts, so the entry is applied while it runs."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    raw = _raw_client(redis_server)
    stream = INBOUND
    now = [1000.0]
    inbound = InboundTickets(raw, d, stream, "gw-running", null_log(), claim_idle=0.5,
                             clock=lambda: now[0])
    inbound.ensure_groups()
    raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(), b"ticket": b"20261128000012"})
    raw.xreadgroup(GROUP, "gw-dead", {stream: ">"})  # it dies here

    def time_passes() -> bool:
        now[0] += 60  # the loop's clock: a look is due at each of its turns
        return inbound.applied == 1

    _run_until(inbound, time_passes)
    assert (inbound.claimed, inbound.applied) == (1, 1)
    assert d._hash(ticket_record(B1))["ticket"] == "20261128000012"
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_a_restarted_gateway_reads_its_own_pending_entries_first(
        client: redis.Redis, desk: tuple[TicketDesk, Clock], redis_server: RedisServer
) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    raw = _raw_client(redis_server)
    stream = INBOUND
    InboundTickets(raw, d, stream, "gw-a", null_log()).ensure_groups()
    raw.xadd(stream, {**BY_12345, b"bridge_id": B1.encode(), b"ticket": b"20261128000011"})
    raw.xreadgroup(GROUP, "gw-a", {stream: ">"})  # the first life crashed here
    again = InboundTickets(raw, d, stream, "gw-a", null_log())  # same name, long idle
    _run_until(again, lambda: again.applied == 1)
    assert (again.claimed, again.applied) == (0, 1)


#: A body for each step of a work order's life (in an order where each may work).
LIFE_BODIES: dict[str, dict[str, str]] = {
    "extension": {"reason": "需调取监控", "days": "2"},
    "extension-decision": {"decision": "granted"},
    "reassign": {"unit": "二中队", "reason": "辖区调整"},
    "unit-return": {"unit": "二中队", "reason": "非本辖区"},
    "return": {"reason": "非警务事项"},
    "reopen": {"reason": "市民不满意"},
    "close": {"result": "resolved"},
    "satisfaction": {"satisfaction": "satisfied"},
}


def test_each_route_checks_the_role_of_its_token(client: redis.Redis,
                                                  desk: tuple[TicketDesk, Clock]) -> None:
    """Every route × every role: what each may do, and what it is refused (403
    role_forbidden), on a real Redis. /health and /metrics: the next tests."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000",
           dialing_target="PJSIP/12345", seat_channel="PJSIP/seat1-1",
           work_order_push_needed="yes")
    apply_sync(client, P, Change(callback_record(B1), "callback_needed", T0, {
        "bridge_id": B1, "status": "open", "direction": "110->12345"},
        (Index(IDX_CALLBACKS_OPEN, B1, T0),)))
    resource = api(client, d)
    day = {b"day": [DAY.encode()]}
    order = {"ticket": "2026112900001", "category": "noise", "summary": "噪声"}
    routes = [  # (route, method, path, body, args), in an order where each change works
        ("GET /live", "GET", "live", None, None),
        ("GET /bridges/<id>", "GET", f"bridges/{B1}", None, None),
        ("GET /bridges", "GET", "bridges", None, {b"number": [b"13800138000"]}),
        ("PUT /bridges/<id>/ticket", "PUT", f"bridges/{B1}/ticket",
         {"ticket": "20261128000001"}, None),
        ("POST /bridges/<id>/status", "POST", f"bridges/{B1}/status",
         {"status": "accepted"}, None),
        ("PUT /bridges/<id>/incident", "PUT", f"bridges/{B1}/incident",
         {"incident": "110-2026-1"}, None),
        ("PUT /bridges/<id>/decline-reason", "PUT", f"bridges/{B1}/decline-reason",
         {"reason": "需现场处置"}, None),
        ("GET /overdue", "GET", "overdue", None, None),
        ("GET /stats", "GET", "stats", None, day),
        ("POST /workorders", "POST", "workorders", order, None),
        ("GET /workorders", "GET", "workorders", None, None),
        ("GET /workorders/<ticket>", "GET", "workorders/2026112900001", None, None),
        ("POST /workorders/<ticket>/status", "POST", "workorders/2026112900001/status",
         {"status": "accepted"}, None),
        *[(f"POST /workorders/<ticket>/{segment}", "POST",
           f"workorders/2026112900001/{segment}", body, None)
          for segment, body in LIFE_BODIES.items()],
        ("GET /callbacks", "GET", "callbacks", None, None),
        ("POST /callbacks/<id>/done", "POST", f"callbacks/{B1}/done", {}, None),
        ("GET /push-needed", "GET", "push-needed", None, None),
        ("POST /push-needed/<id>/done", "POST", f"push-needed/{B1}/done", {}, None),
        ("GET /handover", "GET", "handover", None, None),
    ]
    assert {r[0] for r in routes} | {"GET /health", "GET /metrics"} == set(ALLOWED)
    allowed = {
        ApiRole.SUPERVISOR: {"GET /live", "GET /bridges/<id>", "GET /bridges",
                             "GET /overdue", "GET /stats", "GET /workorders",
                             "GET /workorders/<ticket>", "GET /callbacks",
                             "GET /push-needed", "GET /handover"},
        ApiRole.LINE_12345: {"GET /bridges/<id>", "GET /bridges", "PUT /bridges/<id>/ticket",
                             "PUT /bridges/<id>/decline-reason",
                             "POST /bridges/<id>/status", "GET /stats", "POST /workorders",
                             "GET /workorders", "GET /workorders/<ticket>",
                             *(f"POST /workorders/<ticket>/{segment}" for segment in
                               ("extension-decision", "reopen", "close", "satisfaction"))},
        ApiRole.LIAISON: {"GET /workorders", "GET /workorders/<ticket>",
                          "POST /workorders/<ticket>/status"},
        ApiRole.ADMIN: {r[0] for r in routes},
    }
    for role in (ApiRole.ADMIN, ApiRole.LINE_12345, ApiRole.SUPERVISOR,  # admin first:
                 ApiRole.LIAISON):
        for route, method, path, body, args in routes:  # it makes what others read
            status, answer = call(resource, method, path, body, TOKENS[role], args)
            if route in allowed[role]:
                assert status in (200, 409), (role, route, answer)  # 409: done already
            else:
                assert (status, answer["error"]) == (403, "role_forbidden"), (role, route)
    # accepted, given more time, then returned to 12345 (the steps that found it moved
    # on answered 409)
    order_now = client.hgetall(KEYS.record(workorder_record("2026112900001")))
    assert (order_now["status"], order_now["extension"]) == ("returned", "granted")
    assert client.hget(KEYS.callback(B1), "status") == "done"


def test_12345_sees_only_what_was_handed_to_it_and_no_110_internals(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000",
           dialing_target="PJSIP/12345", seat_channel="PJSIP/seat1-1", owner="gw-a")
    # refused at the key (an emergency): 12345's phone never rang
    bridge(client, B2, T0 + 1, direction="110->12345", citizen_number="13800138000",
           outcome="refused", refusal="emergency")
    resource = api(client, d)
    token = TOKENS[ApiRole.LINE_12345]
    status, shown = call(resource, "GET", f"bridges/{B1}", token=token)
    assert status == 200 and shown["bridge"]["citizen_number"] == "13800138000"
    assert "seat_channel" not in shown["bridge"] and "owner" not in shown["bridge"]
    assert all("seat_channel" not in e["fields"] for e in shown["events"])
    assert call(resource, "GET", f"bridges/{B2}", token=token)[1]["error"] == \
        "bridge_not_found"  # as if it did not exist
    assert call(resource, "PUT", f"bridges/{B2}/ticket", {"ticket": "20261128000002"},
                token)[0] == 404
    assert not client.exists(KEYS.ticket(B2))
    _, found = call(resource, "GET", "bridges", token=token,
                    args={b"number": [b"13800138000"]})
    assert [b["bridge_id"] for b in found["bridges"]] == [B1]
    assert [b["bridge_id"] for b in call(resource, "GET", "bridges", args={
        b"number": [b"13800138000"]})[1]["bridges"]] == [B2, B1]  # admin sees both


def test_the_supervisor_sees_numbers_and_names_masked(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", citizen_number="13800138000",
           citizen_name="张三丰\u2028")
    resource = api(client, d)
    token = TOKENS[ApiRole.SUPERVISOR]
    _, shown = call(resource, "GET", f"bridges/{B1}", token=token)
    assert (shown["bridge"]["citizen_number"], shown["bridge"]["citizen_name"]) == \
        ("138****8000", "张***")
    assert all("13800138000" not in e["fields"] and "三丰" not in e["fields"]
               for e in shown["events"])
    _, found = call(resource, "GET", "bridges", token=token,
                    args={b"number": [b"13800138000"]})
    assert found["bridges"][0]["citizen_number"] == "138****8000"
    assert call(resource, "GET", f"bridges/{B1}")[1]["bridge"]["citizen_number"] == \
        "13800138000"  # the admin role sees it whole


def test_health_and_metrics_need_a_token_unless_asked_from_loopback(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    d, _ = desk
    resource = api(client, d)
    assert call(resource, "GET", "health", token=None) == (200, {"redis": "up"})
    assert call(resource, "GET", "metrics", token=None)[0] == 200
    for path in ("health", "metrics"):
        # a page elsewhere whose name was rebound to 127.0.0.1 (DNS rebinding)
        assert call(resource, "GET", path, token=None, host=b"evil.example:8645")[0] == 401
        assert call(resource, "GET", path, token=None, client="10.0.0.9")[0] == 401
        assert call(resource, "GET", path, token="wrong", client="10.0.0.9")[0] == 403
        assert call(resource, "GET", path, token=TOKENS[ApiRole.SUPERVISOR],
                    client="10.0.0.9")[0] == 200


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def indexed(client: redis.Redis, bridge_id: str, stamp: str, **fields: str) -> None:
    """A bridge requested at ``stamp`` (UTC), in the UTC day index as the gateway puts it."""
    at = _at(stamp)
    base = {"bridge_id": bridge_id, "requested_at": stamp, "direction": "110->12345",
            "state": "ended" if "outcome" in fields else "requested"}
    apply_sync(client, P, Change(bridge_record(bridge_id), "transfer_requested", at,
                                 base | fields, (Index(idx_day(stamp[:10]), bridge_id, at),)))


def test_days_months_and_years_are_the_centres_own(client: redis.Redis) -> None:
    """A Beijing day runs 16:00 to 16:00 UTC; a month and a year likewise."""
    ids = {"late_28": "20261128155959aaaaaa", "first_29": "20261128160000bbbbbb",
           "first_dec": "20261130163000cccccc", "first_nov": "20261031170000dddddd"}
    indexed(client, ids["late_28"], "2026-11-28T15:59:59.000Z", outcome="handed_off")
    indexed(client, ids["first_29"], "2026-11-28T16:00:00.000Z", outcome="refused")
    indexed(client, ids["first_dec"], "2026-11-30T16:30:00.000Z", outcome="handed_off")
    indexed(client, ids["first_nov"], "2026-10-31T17:00:00.000Z", outcome="handed_off",
            direction="12345->110")
    beijing = Records(client, P, ZoneInfo("Asia/Shanghai"))
    now = _at("2026-12-02T00:00:00.000Z")
    day_28 = beijing.figures("2026-11-28", now)
    assert day_28["transfers"] == 1
    assert day_28["by_hour"]["23"] == 1 and sum(day_28["by_hour"].values()) == 1
    assert list(day_28["by_hour"]) == [f"{h:02d}" for h in range(24)]
    assert beijing.figures("2026-11-29", now)["by_hour"]["00"] == 1
    assert beijing.figures("2026-11-29", now)["by_outcome"] == {"refused": 1}
    assert Records(client, P).figures("2026-11-28", now)["transfers"] == 2  # UTC days
    month = beijing.figures("2026-11", now)
    assert (month["month"], month["time_zone"], month["transfers"]) == \
        ("2026-11", "Asia/Shanghai", 3)
    assert month["by_direction"] == {"110->12345": {"handed_off": 1, "refused": 1},
                                     "12345->110": {"handed_off": 1}}
    assert beijing.figures("2026", now)["transfers"] == 4
    assert [b["bridge_id"] for b in beijing.find("day", "2026-12-01")] == [ids["first_dec"]]
    for bad in ("2026-13", "2026-02-30", "26", "2026-11-28\n", "２０２６"):
        with pytest.raises(Malformed):
            beijing.figures(bad, now)


def test_the_monthly_report_lists_refused_and_declined_items(client: redis.Redis) -> None:
    stamp = "2026-11-10T02:00:00.000Z"
    indexed(client, "20261110020000aaaaaa", stamp, outcome="refused", refusal="never_transfer",
            item="vehicle.fire_lane", item_name="占用消防通道", category="vehicle", code="104")
    indexed(client, "20261110020001bbbbbb", stamp, outcome="refused", refusal="never_transfer",
            item="vehicle.fire_lane", item_name="占用消防通道", category="vehicle", code="104")
    indexed(client, "20261110020002cccccc", stamp, outcome="kept_by_110",
            decision="kept_by_first_line", mode="consult", item="noise.night",
            item_name="=HYPERLINK(\"x\")", category="noise", code="201")
    indexed(client, "20261110020003dddddd", stamp, outcome="handed_off", item="noise.night",
            item_name="=HYPERLINK(\"x\")", category="noise", code="201")
    records = Records(client, P, ZoneInfo("Asia/Shanghai"))
    got = records.report("2026-11", _at("2026-12-01T00:00:00.000Z"))
    assert got["figures"]["transfers"] == 4
    assert [(i["item"], i["transfers"], i["refused"], i["declined"]) for i in got["items"]] \
        == [("vehicle.fire_lane", 2, 2, 0), ("noise.night", 2, 0, 1)]
    assert got["items"][0]["refusal_reasons"] == {"never_transfer": 2}
    args = argparse.Namespace(command="report", month="2026-11", year=None, day=None,
                              json=False, csv=True, lang="en", xlsx=None)
    code, text = run_cli(args, records)
    assert code == 0 and text.split("\r\n") == [
        "\ufeffitem,item_name,category,code,transfers,refused,refusal_reasons,declined,"
        "not_reached",
        "vehicle.fire_lane,占用消防通道,vehicle,104,2,2,never_transfer 2,0,0",
        "noise.night,\"'=HYPERLINK(\"\"x\"\")\",noise,201,2,0,—,1,0",
    ]
    code, text = run_cli(argparse.Namespace(**{**vars(args), "lang": "zh"}), records)
    assert text.split("\r\n")[:2] == [
        "\ufeff事项,事项名称,类别,代码,转接次数,拒绝转接,拒绝原因,对方未接收,未接通",
        "vehicle.fire_lane,占用消防通道,vehicle,104,2,2,不可转接事项 2,0,0"]


def test_a_handoff_without_a_ticket_falls_overdue_and_a_late_ticket_keeps_the_deadline(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    """12345 took the call at T0 (feedback due 72 h later) but attached no ticket: it is
    overdue all the same; a ticket attached later does not restart the clock."""
    d, clock = desk
    due = T0 + 72 * 3600
    apply_sync(client, P, Change(bridge_record(B1), "transfer_requested", T0, {
        "bridge_id": B1, "direction": "110->12345", "state": "ended",
        "outcome": "handed_off", "feedback_due_at": "2026-12-01T19:50:37.000Z"},
        (Index(IDX_DEADLINE, B1, due),)))
    records = Records(client, P)
    assert records.overdue(due - 1) == []
    assert [r["bridge_id"] for r in records.overdue(due + 1)] == [B1]
    clock.now = T0 + 48 * 3600
    assert d.attach(B1, "20261128000001", API)["deadline_at"] == "2026-12-01T19:50:37.000Z"
    assert client.zscore(KEYS.index(IDX_DEADLINE), B1) == due


class CountingClient:
    """A real client that counts the stream reads made through it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.xranges = 0

    def __getattr__(self, name: str) -> Any:
        if name == "xrange":
            self.xranges += 1
        return getattr(self.client, name)


def _crowd_the_stream(client: redis.Redis, count: int) -> None:
    """``count`` events of other records after B1's start, as a busy centre has."""
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(KEYS.events, {"record": bridge_record(f"other{n}"), "event": "x", "at": "y"})
    pipe.execute()


def test_a_bridge_the_role_may_not_see_costs_one_read_not_the_stream(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    """GET /bridges/<id> with the 12345 token for a bridge 110 kept: 404 from the hash
    alone; the events stream (every bridge's, possibly huge) is never read."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", outcome="refused", refusal="emergency")
    _crowd_the_stream(client, 30_000)
    counting = CountingClient(client)
    resource = ApiResource(d, Records(cast(redis.Redis, counting), P), TOKENS,
                           defer.maybeDeferred, lambda: {}, lambda: "", d.clock, null_log())
    status, body = call(resource, "GET", f"/bridges/{B1}", token="twelve-345-token")
    assert (status, body["error"]) == (404, "bridge_not_found")
    assert counting.xranges == 0


def test_a_bridge_look_up_reads_a_bounded_part_of_the_stream(client: redis.Redis) -> None:
    """30,000 other events after the bridge's start: the look-up reads at most
    EVENTS_SCANNED of them, a page at a time, keeps the bridge's own, and says the list
    may not be complete (the API and ``linkgw show`` alike)."""
    from gateway.records import queries

    bridge(client, B1, T0, direction="110->12345")
    _crowd_the_stream(client, 30_000)
    counting = CountingClient(client)
    got = Records(cast(redis.Redis, counting), P).bridge(B1)
    assert [e["event"] for e in got["events"]] == ["transfer_requested"]
    assert got["events_complete"] is False
    pages = queries.EVENTS_SCANNED // queries.EVENTS_PAGE
    assert counting.xranges == pages + 1  # and one look past the last page
    code, text = run_cli(argparse.Namespace(command="show", bridge_id=B1, json=False),
                         Records(client, P))
    assert code == 0 and "more may follow" in text
    client.delete(KEYS.events)
    bridge(client, B2, T0, direction="110->12345")
    assert Records(client, P).bridge(B2)["events_complete"] is True


def test_the_inbound_stream_has_exactly_the_12345_roles_rules(
        client: redis.Redis, desk: tuple[TicketDesk, Clock]) -> None:
    """Through the stream the 12345 system may do what its API token may, no more: no
    incident number (110's; taking it first would make the admin's real one a 409); no
    change to a bridge it may not see (refused at the key: never handed to it), which
    reads as "no bridge", like one that does not exist; and no error on its errors
    stream tells another value."""
    d, _ = desk
    bridge(client, B1, T0, direction="110->12345", dialing_target="PJSIP/12345")
    bridge(client, B2, T0 + 60, direction="110->12345", outcome="refused",
           refusal="emergency")  # 110 kept it: never dialled, not 12345's
    d.incident(B1, "110-2026-000123", API)
    inbound = InboundTickets(client, d, INBOUND, "c1", null_log())
    inbound.ensure_groups()
    entries = [
        {"bridge_id": B1, "incident": "110-2026-999999"},
        {"bridge_id": B2, "ticket": "20261128000009"},
        {"bridge_id": B2, "status": "accepted"},
        {"bridge_id": "20261128195999ffffff", "ticket": "20261128000009"},
        {"bridge_id": B1, "ticket": "20261128000001"},
        {"bridge_id": B1, "ticket": "20261128000002"},
    ]
    for fields in entries:
        client.xadd(INBOUND, cast(Any, {"operator": "G12345-07", **fields}))
    got = cast(Any, client.xreadgroup(GROUP, "c1", {INBOUND: ">"}))
    for entry_id, fields in got[0][1]:
        inbound.handle(entry_id, fields)
    errors = [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                 client.xrange(f"{INBOUND}:errors"))]
    assert [(e["error"], e["message"]) for e in errors] == [
        ("role_forbidden", "the 12345 role may not use PUT /bridges/<id>/incident"),
        ("bridge_not_found", f"no bridge {B2}"),
        ("bridge_not_found", f"no bridge {B2}"),
        ("bridge_not_found", "no bridge 20261128195999ffffff"),
        ("ticket_conflict", f"bridge {B1} already has another ticket"),
    ]
    assert d._hash(ticket_record(B1))["incident"] == "110-2026-000123"
    assert d._hash(ticket_record(B1))["ticket"] == "20261128000001"
    assert not d._hash(ticket_record(B2))
    assert all("110-2026" not in v for e in errors for k, v in e.items() if k != "in_incident")


def test_a_look_up_for_a_role_that_sees_few_bridges_finds_them_past_the_newest(
        client: redis.Redis) -> None:
    """122's five bridges are the oldest of 250 on the day (and of one caller's): its
    look-up still finds all five, newest first, as the limit counts only what it sees;
    a look-up without a rule is cut at the limit as before."""
    traffic = [f"20261128195{i:03d}aaaaaa" for i in range(5)]
    for i, bridge_id in enumerate(traffic):
        bridge(client, bridge_id, T0 + i, direction="110->122", citizen_number="13900000000")
    for i in range(245):
        bridge(client, f"20261128196{i:03d}bbbbbb", T0 + 10 + i, direction="110->12345",
               citizen_number="13900000000")
    records = Records(client, P)
    line = LineRole("122")
    for by, value in (("day", DAY), ("number", "13900000000")):
        found = records.find(by, value, keep=lambda row: sees(line, row))
        assert [r["bridge_id"] for r in found] == traffic[::-1], by
        assert len(records.find(by, value)) == 100
    assert len(records.find("day", DAY, limit=3, keep=lambda row: sees(line, row))) == 3
