"""Hostile input, round two: random role and route pairs at the HTTP API, and random
entries on the 12345 side's inbound stream, on a real Redis, and every answer matches
the role table.

The oracle is written out here on its own: the table of who may use which route
(:data:`TABLE`, checked once against :data:`gateway.records.roles.ALLOWED`), which of
the seeded bridges the 12345 role may see (:data:`SEEN_BY_12345`, from how each was
seeded), and a small model of the write-once ticket, incident and the loop. The code
under test is real throughout: TicketDesk, Records, WorkOrderDesk and InboundTickets on
redis-server, the API driven at the wire (HTTP bytes in, HTTP bytes out). Each
hypothesis example works under a key prefix of its own, removed afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from gateway.bridge.redis_store import apply_sync
from gateway.bridge.store import Change, Index
from gateway.catalogue import load_categories
from gateway.config import TicketConfig
from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.http import ApiResource, api_site
from gateway.records.inbound import GROUP, InboundTickets
from gateway.records.queries import Records
from gateway.records.roles import ALLOWED, ApiRole
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DEADLINE,
    IDX_PUSH_NEEDED,
    Keys,
    bridge_record,
    callback_record,
    idx_caller,
    idx_day,
    idx_seat,
)

CATALOGUE = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")
T0 = 1_795_895_437.0  # 2026-11-28T19:50:37Z
NOW = T0 + 600  # every desk's clock, on both sides: times come out the same
DAY = "2026-11-28"

# -- the seeded world ---------------------------------------------------------------------

TO = "20261128195037aaaaaa"  # 110 -> 12345, dialled at the key: handed to 12345
REFUSED = "20261128195100bbbbbb"  # 110 -> 12345 refused at the key: 12345's phone never rang
BY = "20261128195200cccccc"  # 12345 -> 110: handed by 12345
UNKNOWN = "20261128195300dddddd"  # no such bridge
IDS = (TO, REFUSED, BY, UNKNOWN)
SEEN_BY_12345 = frozenset({TO, BY})

WO = "2026112900001"  # a work order 12345 dispatched (seeded)
WO_UNKNOWN = "2026112999999"
NEW_WOS = ("2026112900002", "2026112900003")

A, L, S, P = ApiRole.ADMIN, ApiRole.LINE_12345, ApiRole.SUPERVISOR, ApiRole.LIAISON
TOKENS = {A: "admin-token-0123456789", L: "line-12345-token-abcdef",
          S: "supervisor-token-ghijkl", P: "liaison-token-mnopqrst"}

#: Who each route is for, written out again (the issue's table), not read from the code.
EVERYONE, READERS = frozenset({A, L, S}), frozenset({A, S})
#: the police liaison seat at 12345 (P) works on work orders only
ANYONE, ORDERS = EVERYONE | {P}, frozenset({A, P})
TABLE: dict[str, frozenset[ApiRole]] = {
    "GET /live": READERS,
    "GET /bridges/<id>": EVERYONE,
    "GET /bridges": EVERYONE,
    "PUT /bridges/<id>/ticket": frozenset({A, L}),
    "POST /bridges/<id>/status": frozenset({A, L}),
    "PUT /bridges/<id>/incident": frozenset({A}),
    "PUT /bridges/<id>/decline-reason": frozenset({A, L}),
    "GET /overdue": READERS,
    "POST /workorders": frozenset({A, L}),
    "GET /workorders": ANYONE,
    "GET /workorders/<ticket>": ANYONE,
    "POST /workorders/<ticket>/status": ORDERS,
    # the rest of a work order's life: 110's steps are the admin's, 12345's its own too
    "POST /workorders/<ticket>/return": frozenset({A}),
    "POST /workorders/<ticket>/unit-return": frozenset({A}),
    "POST /workorders/<ticket>/reassign": frozenset({A}),
    "POST /workorders/<ticket>/extension": frozenset({A}),
    "POST /workorders/<ticket>/extension-decision": frozenset({A, L}),
    "POST /workorders/<ticket>/reopen": frozenset({A, L}),
    "POST /workorders/<ticket>/close": frozenset({A, L}),
    "POST /workorders/<ticket>/satisfaction": frozenset({A, L}),
    "GET /callbacks": READERS,
    "POST /callbacks/<id>/done": frozenset({A}),
    "GET /push-needed": READERS,
    "GET /handover": READERS,
    "POST /push-needed/<id>/done": frozenset({A}),
    "GET /stats": EVERYONE,
    "GET /health": ANYONE,
    "GET /metrics": ANYONE,
}

#: Who the citizens are: the supervisor (masking on) never sees these whole.
NUMBERS = ("13800138000", "13700137000")
NAMES = ("张三", "王五", "李四秘")
#: 110's internals on the bridges 12345 may see: it never sees the field nor its value.
HIDDEN = {"seat_channel": "PJSIP/seat1-1", "dialing_target": "PJSIP/12345-secret-trunk",
          "owner": "gw-secret-owner", "recording": "/var/spool/asterisk/monitor/secret.wav",
          "citizen_channel": "PJSIP/citizen-secret-0001", "asterisk": "pbx-secret-host",
          "agent_channel": "PJSIP/agent-secret-7"}
#: What only the bridge refused at the key holds: the 12345 role never sees it.
REFUSED_MARKS = ("李四秘", "REFUSED-SECRET-ITEM", REFUSED)

LOOP = ("accepted", "assigned", "feedback")
STEPS = ("received", "accepted", "assigned", "answered")
SEED_TICKETS = {TO: "20261128000001", REFUSED: "20261128000077", BY: "20261128000055"}
SEED_INCIDENT = "110-2026-000123"


#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")


@dataclass(frozen=True)
class Seed:
    """What the records hold besides the bridges, before the requests come."""

    ticket_on_to: bool = False
    incident_on_to: bool = False
    ticket_on_refused: bool = False  # the admin attached one to a bridge 12345 cannot see
    ticket_on_by: bool = False


@dataclass
class Model:
    """The oracle's own idea of the write-once fields and the loops."""

    ticket: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    incident: dict[str, str] = field(default_factory=dict)
    workorders: dict[str, str] = field(default_factory=lambda: {WO: "received"})
    #: each order's other fields the life's answers depend on (unit, extension, …)
    orders: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class World:
    text: redis.Redis  # decoded, as the desks and Records read
    raw: redis.Redis  # bytes, as the inbound loop reads (and for DUMP)


@pytest.fixture(scope="module")
def world(redis_server: RedisServer) -> World:
    return World(redis_server.client(), redis.Redis(host="127.0.0.1", port=redis_server.port))


@contextmanager
def fresh_prefix(world: World) -> Iterator[str]:
    prefix = f"rp{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(world.raw.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            world.raw.delete(*keys)


@dataclass
class Gateway:
    prefix: str
    desk: TicketDesk
    orders: WorkOrderDesk
    site: Site


def gateway(world: World, prefix: str) -> Gateway:
    """The records part as gateway/service.py builds it, under ``prefix``."""

    def clock() -> float:
        return NOW

    config = TicketConfig()
    desk = TicketDesk(world.text, prefix, config, CATALOGUE, clock)
    orders = WorkOrderDesk(world.text, prefix, config, CATALOGUE, clock)

    def live() -> list[dict[str, str]]:
        return [cast(dict[str, str], world.text.hgetall(Keys(prefix).bridge(TO)))]

    resource = ApiResource(desk, Records(world.text, prefix), TOKENS, defer.maybeDeferred,
                           lambda: {"redis": "up"}, lambda: "linkgw_redis_up 1\n", clock,
                           null_log(), live, True, orders)
    site = api_site(resource)
    site.timeOut = None  # no idle timer left on the global reactor
    return Gateway(prefix, desk, orders, site)


def seed(world: World, gw: Gateway, state: Seed) -> Model:
    """Three bridges (handed to 12345, refused at the key, handed by 12345), a callback
    task, a push owed and a work order, through the real Lua script; then ``state``."""
    p = gw.prefix
    requested = "2026-11-28T19:50:37.000Z"

    def put(bridge_id: str, at: float, fields: dict[str, str], *extra: Index,
            feed: str = "") -> None:
        base = {"bridge_id": bridge_id, "requested_at": requested, "state": "ended"}
        apply_sync(world.text, p, Change(bridge_record(bridge_id), "transfer_requested", at,
                                         base | fields,
                                         (Index(idx_day(DAY), bridge_id, at),
                                          Index(idx_caller(fields["citizen_number"]),
                                                bridge_id, at), *extra), feed=feed))

    put(TO, T0, {"direction": "110->12345", "outcome": "handed_off",
                 "citizen_number": "13800138000", "citizen_name": "张三",
                 "category": "utilities", "seat": "PJSIP/seat1",
                 "callback_needed": "yes"} | HIDDEN,
        Index(idx_seat("PJSIP/seat1-1"), TO, T0), Index(IDX_DEADLINE, TO, T0),
        feed="12345")
    put(REFUSED, T0 + 1, {"direction": "110->12345", "outcome": "refused",
                          "refusal": "emergency", "citizen_number": "13800138000",
                          "citizen_name": "李四秘", "item_name": "REFUSED-SECRET-ITEM\u2028",
                          "seat_channel": "PJSIP/seat1-1"},
        Index(idx_seat("PJSIP/seat1-1"), REFUSED, T0 + 1))
    put(BY, T0 + 2, {"direction": "12345->110", "mode": "trunk", "outcome": "handed_off",
                     "citizen_number": "13700137000", "citizen_name": "王五",
                     "seat": "12345:agent7", "agent_channel": HIDDEN["agent_channel"],
                     "response_due_at": "2026-11-28T21:50:37.000Z",
                     "work_order_push_needed": "yes"},
        Index(IDX_PUSH_NEEDED, BY, T0 + 2), feed="12345")
    apply_sync(world.text, p, Change(callback_record(TO), "callback_needed", T0 + 3, {
        "bridge_id": TO, "number": "13800138000", "name": "张三", "seat": "PJSIP/seat1",
        "direction": "110->12345", "at": requested, "status": "open"},
        (Index(IDX_CALLBACKS_OPEN, TO, T0 + 3),), feed="12345"))
    gw.orders.receive({"ticket": WO, "category": "vehicle", "summary": "挪车\u2028请求\r\n",
                       "number": "13800138000"}, API)
    model = Model()
    for wanted, bridge_id in ((state.ticket_on_to, TO), (state.ticket_on_refused, REFUSED),
                              (state.ticket_on_by, BY)):
        if wanted:
            gw.desk.attach(bridge_id, SEED_TICKETS[bridge_id], API)
            model.ticket[bridge_id] = SEED_TICKETS[bridge_id]
            model.status[bridge_id] = "attached"
    if state.incident_on_to:
        gw.desk.incident(TO, SEED_INCIDENT, API)
        model.incident[TO] = SEED_INCIDENT
    return model


# -- the wire -----------------------------------------------------------------------------

PEER = "192.0.2.7"  # not loopback: /health and /metrics want a token too


@dataclass(frozen=True)
class Req:
    route: str  # as in the table
    method: str
    path: str
    body: bytes | None = None
    query: tuple[tuple[str, str], ...] = ()
    target: str = ""  # the bridge id or work-order number in the path
    value: str = ""  # the ticket, incident or status the request brings

    def wire(self, token: str) -> bytes:
        target = "/" + self.path
        if self.query:
            target += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in self.query)
        head = [f"{self.method} {target} HTTP/1.1", "Host: gw",
                f"Authorization: Bearer {token}"]
        if self.body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        return "\r\n".join(head).encode() + b"\r\n\r\n" + (self.body or b"")


def exchange(site: Site, raw: bytes) -> tuple[int, Any]:
    """One request over a fresh connection; the status and the decoded answer."""
    channel = cast(HTTPChannel, site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8645)))
    transport = StringTransport(peerAddress=IPv4Address("TCP", PEER, 40000))
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    channel.connectionLost(Failure(ConnectionDone()))
    status = int(head.split(b" ", 2)[1])
    text = body.decode("utf-8")
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def snapshot(world: World, prefix: str) -> dict[bytes, bytes]:
    """Every key of the example, serialised (DUMP): equal means nothing changed."""
    keys = sorted(world.raw.scan_iter(match=f"{prefix}:*", count=1000))
    pipe = world.raw.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return dict(zip(keys, cast(list[bytes], pipe.execute()), strict=True))


def _walk(value: Any, strings: bool) -> Iterator[str]:
    """Every key of every object in an answer (and, with ``strings``, every string),
    the JSON that an event's fields hold as text included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _walk(item, strings)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, strings)
    elif isinstance(value, str):
        if strings:
            yield value
        if value.startswith(("{", "[") if strings else "{"):
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from _walk(inner, strings)


def texts(value: Any) -> Iterator[str]:
    """Every key and string of an answer, and of the JSON an event's fields hold."""
    return _walk(value, strings=True)


def keys_of(value: Any) -> Iterator[str]:
    """Every key of every object in an answer, nested JSON text included."""
    return _walk(value, strings=False)


def check_shown(role: ApiRole, req: Req, status: int, answer: Any) -> None:
    """What each role's answer may hold, whatever the status."""
    seen = list(texts(answer))
    assert not any(token in t for t in seen for token in TOKENS.values())
    if role is L:
        assert not set(keys_of(answer)) & set(HIDDEN), (req, answer)
        assert not [t for t in seen for v in HIDDEN.values() if v in t], (req, answer)
        # the refused bridge: not a trace, but its own id echoed in "no bridge <id>"
        told = [t for t in seen for mark in REFUSED_MARKS if mark in t]
        if req.target == REFUSED and status == 404:
            told = [t for t in told if t != answer["message"]]
        assert not told, (req, answer)
        if req.route == "GET /bridges" and status == 200:
            assert {row["bridge_id"] for row in answer["bridges"]} <= SEEN_BY_12345
    if role is S:
        assert not [t for t in seen for who in NUMBERS + NAMES if who in t], (req, answer)


# -- what is asked ------------------------------------------------------------------------

_MARK_CHARS = "".join(sorted(set("".join(NAMES))))
#: Values no form check looks at: Chinese, separators, CR LF, escapes, bidi, NUL, emoji.
HOSTILE = ("赵六\u2028第二行", "line\r\nX-Injected: 1", "\u2029\u0085\x1b[2J\x9b",
           "\u202egnp.exe", "'; DROP TABLE tickets; --", "🚓🚑", "\x00nul", "a" * 300,
           '{"fields": "[1]"}', "%0d%0a", "\ufeffbom", "\t \r")


def hostile(min_size: int = 0) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([h for h in HOSTILE if len(h) >= min_size]),
                     st.text(st.characters(codec="utf-8", exclude_characters=_MARK_CHARS),
                             min_size=min_size, max_size=40))


TICKETS = st.one_of(st.sampled_from([*sorted(SEED_TICKETS.values()), "20261128000002"]),
                    st.from_regex(r"[0-9]{8,20}", fullmatch=True))
INCIDENTS = st.one_of(st.sampled_from([SEED_INCIDENT, "110-2026-000124"]),
                      st.from_regex(r"[0-9A-Za-z-]{1,40}", fullmatch=True))


def body(ascii_only: bool, **fields: Any) -> bytes:
    """A change's body. It names its operator (who acts is required) unless the fields
    say otherwise: ``operator=None`` leaves it out."""
    fields = {"operator": "J4201"} | fields
    if fields["operator"] is None:
        del fields["operator"]
    return json.dumps(fields, ensure_ascii=ascii_only).encode()


#: Every route, the ones that change something twice as often; the bridges 12345 may see
#: twice as often as the others (so that loops move on).
ROUTES = sorted(TABLE) + sorted(r for r in TABLE if not r.startswith("GET"))
BRIDGES = st.sampled_from((TO, TO, BY, BY, REFUSED, UNKNOWN))


@st.composite
def a_step(draw: st.DrawFn) -> tuple[ApiRole, Req]:
    """A request and whose token it carries: any role, or one the table allows."""
    req = draw(a_request())
    anyone = st.sampled_from((A, L, S, P))
    return draw(anyone | st.sampled_from(sorted(TABLE[req.route]))), req


@st.composite
def a_request(draw: st.DrawFn) -> Req:
    """A well-formed request for any route of the table (no 400 is the right answer)."""
    route = draw(st.sampled_from(ROUTES))
    bridge_id = draw(BRIDGES)
    ascii_only = draw(st.booleans())
    note = draw(hostile())
    match route:
        case "GET /live" | "GET /overdue" | "GET /callbacks" | "GET /push-needed" \
                | "GET /handover" | "GET /health" | "GET /metrics":
            return Req(route, "GET", route.split("/", 1)[1])
        case "GET /bridges/<id>":
            return Req(route, "GET", f"bridges/{bridge_id}", target=bridge_id)
        case "GET /bridges":
            by = draw(st.sampled_from(("number", "ticket", "incident", "seat", "day")))
            value = draw({"number": st.sampled_from(NUMBERS) | hostile(1),
                          "ticket": TICKETS | hostile(1), "incident": INCIDENTS | hostile(1),
                          "seat": st.sampled_from(("PJSIP/seat1-1", "12345:agent7"))
                          | hostile(1),
                          "day": st.sampled_from((DAY, "2026-11-29"))}[by])
            return Req(route, "GET", "bridges", query=((by, value),))
        case "PUT /bridges/<id>/ticket":
            ticket = draw(TICKETS)
            return Req(route, "PUT", f"bridges/{bridge_id}/ticket",
                       body(ascii_only, ticket=ticket), target=bridge_id, value=ticket)
        case "POST /bridges/<id>/status":
            status = draw(st.sampled_from(LOOP))
            return Req(route, "POST", f"bridges/{bridge_id}/status",
                       body(ascii_only, status=status, note=note), target=bridge_id,
                       value=status)
        case "PUT /bridges/<id>/decline-reason":
            return Req(route, "PUT", f"bridges/{bridge_id}/decline-reason",
                       body(ascii_only, reason=draw(st.sampled_from(
                           ("非12345受理范围", "需现场处置\r\n夜间", "noise 噪声\u2028")))),
                       target=bridge_id)
        case "PUT /bridges/<id>/incident":
            incident = draw(INCIDENTS)
            return Req(route, "PUT", f"bridges/{bridge_id}/incident",
                       body(ascii_only, incident=incident), target=bridge_id, value=incident)
        case "POST /workorders":
            ticket = draw(st.sampled_from((WO, *NEW_WOS)))
            fields = {"ticket": ticket,
                      "category": draw(st.sampled_from(("vehicle", "utilities"))),
                      "summary": draw(hostile(1)),
                      "number": draw(st.sampled_from(("13800138000", "")))}
            return Req(route, "POST", "workorders", body(ascii_only, **fields), target=ticket)
        case "GET /workorders":
            query = draw(st.sampled_from(((), (("day", DAY),), (("month", "2026-11"),),
                                          (("year", "2026"),))))
            return Req(route, "GET", "workorders", query=query)
        case "GET /workorders/<ticket>":
            ticket = draw(st.sampled_from((WO, WO_UNKNOWN, *NEW_WOS)))
            return Req(route, "GET", f"workorders/{ticket}", target=ticket)
        case str() if route.startswith("POST /workorders/<ticket>/") and \
                not route.endswith("/status"):
            ticket = draw(st.sampled_from((WO, WO_UNKNOWN, *NEW_WOS)))
            segment = route.rsplit("/", 1)[1]
            given = {k: draw(st.sampled_from(v)) for k, v in LIFE_CHOICES[segment].items()}
            return Req(route, "POST", f"workorders/{ticket}/{segment}",
                       body(ascii_only, **given), target=ticket,
                       value=json.dumps(given, sort_keys=True))
        case "POST /workorders/<ticket>/status":
            ticket = draw(st.sampled_from((WO, WO_UNKNOWN, *NEW_WOS)))
            status = draw(st.sampled_from(STEPS[1:]))
            unit = draw(st.sampled_from(("派出所一组", "Unit 7 / 交警")))
            return Req(route, "POST", f"workorders/{ticket}/status",
                       body(ascii_only, status=status, unit=unit, note=note), target=ticket,
                       value=status)
        case "POST /callbacks/<id>/done":
            return Req(route, "POST", f"callbacks/{bridge_id}/done",
                       body(ascii_only, note=note), target=bridge_id)
        case "POST /push-needed/<id>/done":
            fields = {"note": note} | ({"ticket": draw(TICKETS)} if draw(st.booleans())
                                       else {})
            return Req(route, "POST", f"push-needed/{bridge_id}/done",
                       body(ascii_only, **fields), target=bridge_id)
        case "GET /stats":
            query = draw(st.sampled_from(((), (("day", DAY),), (("month", "2026-11"),))))
            return Req(route, "GET", "stats", query=query)
    raise AssertionError(route)


#: What each step of the life may say (a small choice, so that steps meet again).
LIFE_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "return": {"reason": ("非警务", "重复工单")},
    "unit-return": {"unit": ("派出所一组", "二中队"), "reason": ("非本辖区", "派错")},
    "reassign": {"unit": ("派出所一组", "二中队"), "reason": ("辖区调整",)},
    "extension": {"reason": ("需调取监控", "等待鉴定"), "days": ("1", "3")},
    "extension-decision": {"decision": ("granted", "refused")},
    "reopen": {"reason": ("市民不满意",)},
    "close": {"result": ("resolved", "explained")},
    "satisfaction": {"satisfaction": ("satisfied", "dissatisfied")},
}
#: Written out again from the issue: where each step may start, where it leads ("" stays).
STEP_FROM = {"accepted": {"received"}, "assigned": {"accepted"},
             "answered": {"assigned", "reopened"}}
RUNNING = {"accepted", "assigned", "reopened"}
LIFE: dict[str, tuple[set[str], str]] = {
    "return": ({"received", *RUNNING}, "returned"),
    "unit-return": ({"assigned"}, "accepted"),
    "reassign": ({"assigned", "reopened"}, "assigned"),
    "extension": (RUNNING, ""),
    "extension-decision": (RUNNING, ""),
    "reopen": ({"answered", "closed"}, "reopened"),
    "close": ({"answered"}, "closed"),
    "satisfaction": ({"closed"}, ""),
}


def _life_done(o: dict[str, str], status: str, step: str, given: dict[str, str]
               ) -> tuple[int, str] | None:
    """The answer when the step is already made (200) or cannot be made again (409);
    None when it is to be made."""
    match step:
        case "return" | "reopen":
            return (200, "") if status == LIFE[step][1] else None
        case "unit-return":
            back = status == "accepted" and o.get("back") == given["reason"] and \
                o.get("back_from") == given["unit"] and not o.get("unit")
            return (200, "") if back else None
        case "reassign":
            same = status == "assigned" and o.get("unit") == given["unit"]
            return (200, "") if same else None
        case "extension":
            if o.get("extension") != "requested":
                return None
            return (200, "") if o.get("asked") == given["reason"] else \
                (409, "extension_pending")
        case "extension-decision":
            if o.get("extension") in ("granted", "refused"):
                return (200, "") if o["extension"] == given["decision"] else \
                    (409, "extension_decided")
            return None if o.get("extension") == "requested" else (409, "no_extension")
    field_ = "result" if step == "close" else "satisfaction"
    if not o.get(field_):
        return None
    return (200, "") if o[field_] == given[field_] else (409, f"{field_}_conflict")


def life(m: Model, b: str, step: str, given: dict[str, str]) -> tuple[int, str]:
    status, o = m.workorders[b], m.orders.setdefault(b, {})
    done = _life_done(o, status, step, given)
    if done is not None:
        return done
    if status not in LIFE[step][0]:
        return 409, "loop_order"
    if step == "unit-return" and given["unit"] != o.get("unit"):
        return 409, "not_its_unit"  # only the unit it is assigned to hands it back
    m.workorders[b] = LIFE[step][1] or status
    match step:
        case "unit-return":
            o.update(unit="", back=given["reason"], back_from=given["unit"])
        case "reassign":
            o["unit"] = given["unit"]
        case "extension":
            o.update(extension="requested", asked=given["reason"])
        case "extension-decision":
            o["extension"] = given["decision"]
        case "reopen":
            o.update(result="", satisfaction="", extension="")
        case "close" | "satisfaction":
            key = "result" if step == "close" else "satisfaction"
            o[key] = given[key]
    return 200, ""


def _write_once(model: dict[str, str], bridge_id: str, value: str, code: str
                ) -> tuple[int, str]:
    if model.get(bridge_id, value) != value:
        return 409, code
    model[bridge_id] = value
    return 200, ""


def expect(role: ApiRole, req: Req, m: Model) -> tuple[int, str]:
    """The status and error code ("" for 200) the table, the seed and the requests so far
    call for; ``m`` moves on with each change that is made."""
    if role not in TABLE[req.route]:
        return 403, "role_forbidden"
    b = req.target
    if req.route.startswith(("GET /bridges/", "PUT /bridges/", "POST /bridges/")) and (
            b == UNKNOWN or (role is L and b not in SEEN_BY_12345)):
        return 404, "bridge_not_found"  # for the 12345 role, unseen is unknown
    match req.route:
        case "PUT /bridges/<id>/ticket":
            if b not in m.ticket:  # attached now: the loop starts
                m.status[b] = "attached"
            return _write_once(m.ticket, b, req.value, "ticket_conflict")
        case "PUT /bridges/<id>/incident":
            return _write_once(m.incident, b, req.value, "incident_conflict")
        case "PUT /bridges/<id>/decline-reason":
            return 409, "not_declined"  # no seeded bridge was declined in consult mode
        case "POST /bridges/<id>/status":
            if b not in m.ticket:
                return 409, "no_ticket"
            order = ("attached", *LOOP)
            done = m.status[b]
            if req.value != done:
                if order.index(req.value) != order.index(done) + 1:
                    return 409, "loop_order"
                m.status[b] = req.value
        case "POST /workorders":
            m.workorders.setdefault(b, "received")
        case "GET /workorders/<ticket>":
            if b not in m.workorders:
                return 404, "workorder_not_found"
        case "POST /workorders/<ticket>/status":
            if b not in m.workorders:
                return 404, "workorder_not_found"
            done = m.workorders[b]
            unit = json.loads(req.body or b"{}")["unit"]
            if req.value == done == "assigned" and unit != m.orders.get(b, {}).get("unit"):
                return 409, "already_assigned"  # another unit: told, not kept silently
            if req.value != done:
                if done not in STEP_FROM[req.value]:
                    return 409, "loop_order"
                m.workorders[b] = req.value
                if req.value == "assigned":
                    m.orders.setdefault(b, {})["unit"] = unit
        case str() if req.route.startswith("POST /workorders/<ticket>/"):
            if b not in m.workorders:
                return 404, "workorder_not_found"
            return life(m, b, req.route.rsplit("/", 1)[1], json.loads(req.value))
        case "POST /callbacks/<id>/done":
            if b != TO:  # the one callback task (done again: the same answer)
                return 404, "callback_not_found"
        case "POST /push-needed/<id>/done":
            if b == UNKNOWN:
                return 404, "bridge_not_found"
            if b != BY:  # the one push owed (pushed again: the same answer)
                return 409, "no_push_needed"
    return 200, ""


#: After the random steps, each role reads each bridge and each list, whatever the steps
#: left in the records.
SWEEP = [(role, req) for role in (A, L, S, P) for req in (
    *(Req("GET /bridges/<id>", "GET", f"bridges/{b}", target=b) for b in IDS),
    Req("GET /bridges", "GET", "bridges", query=(("number", NUMBERS[0]),)),
    Req("GET /bridges", "GET", "bridges", query=(("day", DAY),)),
    Req("GET /bridges", "GET", "bridges", query=(("ticket", SEED_TICKETS[REFUSED]),)),
    *(Req(route, "GET", route.split("/", 1)[1])
      for route in ("GET /live", "GET /overdue", "GET /callbacks", "GET /push-needed",
                    "GET /handover", "GET /workorders")))]


def ask(gw: Gateway, model: Model, role: ApiRole, req: Req) -> int:
    """One request at the wire: its status and error code as expected, its answer what
    the role may see."""
    want = expect(role, req, model)
    status, answer = exchange(gw.site, req.wire(TOKENS[role]))
    code = answer.get("error", "") if isinstance(answer, dict) and status >= 300 else ""
    assert (status, code) == want, (role, req, answer)
    event(f"answer {status} {code}".rstrip())
    if status >= 300:
        assert set(answer) == {"error", "message"}
    check_shown(role, req, status, answer)
    return status


SEEDS = st.builds(Seed, st.booleans(), st.booleans(), st.booleans(), st.booleans())


def test_the_oracles_table_is_the_products_table() -> None:
    """The property below takes its expectations from TABLE; the code, from ALLOWED."""
    assert TABLE == ALLOWED


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(state=SEEDS, steps=st.lists(a_step(), min_size=1, max_size=8))
def test_every_answer_to_a_role_and_route_matches_the_role_table(
        world: World, state: Seed, steps: list[tuple[ApiRole, Req]]) -> None:
    """Refused by the table: 403 role_forbidden. Allowed, but a bridge the 12345 role may
    not see (refused at the key) or none at all: 404, never 403. Otherwise what the
    records call for (200, or 409 for a write-once field taken or the loop out of
    order). A refused request, and any GET, changes nothing in Redis; what an answer
    holds is what the role may see."""
    with fresh_prefix(world) as prefix:
        gw = gateway(world, prefix)
        model = seed(world, gw, state)
        for role, req in steps:
            before = snapshot(world, prefix)
            status = ask(gw, model, role, req)
            if status != 200 or req.method == "GET":
                assert snapshot(world, prefix) == before, (role, req)
        before = snapshot(world, prefix)
        for role, req in SWEEP:  # then every role reads every view the steps left
            ask(gw, model, role, req)
        assert snapshot(world, prefix) == before


# -- the stream and the API, side by side -------------------------------------------------

#: Bytes that are not UTF-8: a torn 张, a lone continuation byte, an overlong "/", 0xFF.
#: (A surrogate written as UTF-8 would write it, ED A0 80, is not UTF-8 either: the
#: stream refuses it, the API does not; test_a_lone_surrogate_… below, on its own, so
#: that this property goes on looking for anything else.)
NOT_UTF8 = ("张".encode()[:2], b"\x80", b"\xc0\xaf", b"\xff\xfe")
STATUSES = st.sampled_from((*LOOP, "closed", "受理", "accepted\r\n", "", "ACCEPTED"))
BAD_TICKETS = st.sampled_from(("87654321\n", "１２３４５６７８", "8765\u20284321",
                               "87654321 ", "1234567", "", "张三12345678"))
BAD_INCIDENTS = st.sampled_from(("110\r\n-1", "", "a" * 41))
NOT_AN_ID = "2026112819503700000Z"  # what no bridge id looks like (20 characters)
ENTRY_BRIDGES = st.sampled_from((TO, TO, BY, BY, REFUSED, UNKNOWN, NOT_AN_ID))


@dataclass(frozen=True)
class Entry:
    fields: dict[str, str]  # what the 12345 system meant to write
    torn: tuple[str, bytes] | None = None  # a field whose value carries bytes not UTF-8

    @property
    def workorder(self) -> bool:
        return self.fields.get("type") == "workorder"

    def raw(self) -> dict[bytes, bytes]:
        out = {k.encode(): v.encode() for k, v in self.fields.items()}
        if self.torn is not None:
            name, junk = self.torn
            out[name.encode()] = self.fields.get(name, "").encode() + junk + b"x"
        return out


@st.composite
def an_entry(draw: st.DrawFn) -> Entry:
    """Mostly a ticket, a step of the loop (and a note) for a bridge; now and then an
    incident number, a work order without a call, a bridge id that is none, or bytes
    that are not UTF-8."""
    torn_in: tuple[str, ...] = ("ticket", "status", "note")
    if draw(st.integers(0, 5)) == 0:  # a work order 12345 dispatches, no call
        fields = {"type": "workorder", "ticket": draw(st.sampled_from((WO, *NEW_WOS))
                                                      | BAD_TICKETS),
                  "category": draw(st.sampled_from(("vehicle", "utilities", "nonsense", ""))),
                  "summary": draw(hostile())}
        if draw(st.booleans()):
            fields["number"] = draw(st.sampled_from(NUMBERS) | hostile())
        torn_in = ("ticket", "summary")
    else:
        fields = {"bridge_id": draw(ENTRY_BRIDGES)}
        ticket, status = draw(st.booleans()), draw(st.booleans())
        incident = draw(st.integers(0, 5)) == 0  # never the 12345 side's: refused whole
        if ticket or not (status or incident):
            fields["ticket"] = draw(TICKETS | TICKETS | BAD_TICKETS)
        if incident:
            fields["incident"] = draw(INCIDENTS | BAD_INCIDENTS)
        if status:
            fields["status"] = draw(st.sampled_from(LOOP) | STATUSES)
        if draw(st.booleans()):
            fields["note"] = draw(hostile())
    # who acts at 12345: mostly a staff number; now and then none, or one that is not
    operator = draw(st.sampled_from(("G12345-07", "G12345-07", "G12345-07", None, "",
                                     "G1\r\nX", "张三", "G1\u2028", "G1\u0085", "-G1",
                                     "G" * 33)))
    if operator is not None:
        fields["operator"] = operator
    torn = None
    if draw(st.integers(0, 9)) == 0:
        torn = (draw(st.sampled_from(torn_in)), draw(st.sampled_from(NOT_UTF8)))
    return Entry(fields, torn)


def mirror(entry: Entry) -> list[Req]:
    """The same operation as requests with the 12345 role's token, in the order the
    role's rules are checked: an incident number (never its to attach: the entry is
    refused whole, as that request is), then the ticket, then the loop. A work order is
    ``POST /workorders``. An entry that is not UTF-8 is a body that is not either: the
    one request that carries the torn value, with the same bytes in it."""
    f = entry.fields
    op = {"operator": f.get("operator")}  # the entry's, or none: the same on both sides
    if entry.workorder:
        order: dict[str, str | None] = {k: v for k, v in f.items() if k != "type"}
        return [Req("POST /workorders", "POST", "workorders", torn_body(entry, order | op))]
    b = f["bridge_id"]
    if entry.torn is not None:
        if entry.torn[0] == "ticket":
            return [Req("PUT /bridges/<id>/ticket", "PUT", f"bridges/{b}/ticket",
                        torn_body(entry, {"ticket": f.get("ticket", ""), **op}), target=b)]
        step = {"status": f.get("status", ""), "note": f.get("note", "")} | op
        return [Req("POST /bridges/<id>/status", "POST", f"bridges/{b}/status",
                    torn_body(entry, step), target=b)]
    out = []
    if "incident" in f:
        out.append(Req("PUT /bridges/<id>/incident", "PUT", f"bridges/{b}/incident",
                       body(False, incident=f["incident"], **op), target=b))
    if "ticket" in f:
        out.append(Req("PUT /bridges/<id>/ticket", "PUT", f"bridges/{b}/ticket",
                       body(False, ticket=f["ticket"], **op), target=b))
    if "status" in f:
        fields = {"status": f["status"]} | ({"note": f["note"]} if "note" in f else {})
        out.append(Req("POST /bridges/<id>/status", "POST", f"bridges/{b}/status",
                       body(True, **fields, **op), target=b))
    return out


def torn_body(entry: Entry, fields: dict[str, str | None]) -> bytes:
    """``fields`` as a JSON body, the entry's bytes that are not UTF-8 (if any) where
    the entry has them: at the end of the torn value, before an "x"."""
    if entry.torn is None:
        return body(False, **fields)
    name, junk = entry.torn
    mark = "@@torn@@"
    text = body(False, **(fields | {name: (fields.get(name) or "") + mark + "x"}))
    return text.replace(mark.encode(), junk)


#: The same refusal under each way in's name: what cannot be read at all.
SAME_CODE = {"entry_not_utf8": "body_malformed"}


def _way_in_unnamed(value: Any) -> Any:
    """The way in (``via``) taken out of a record or an event; who acted (``operator``,
    ``<step>_by``) stays: both ways in must keep the same."""
    if isinstance(value, dict):
        return {k: "<way in>" if k == "via" or k.endswith("_via") else _way_in_unnamed(v)
                for k, v in value.items() if k not in ("id", "prev", "hash")}
    if isinstance(value, str) and value.startswith("{"):
        try:
            return _way_in_unnamed(json.loads(value))
        except ValueError:
            return value
    return value


def records_of(world: World, prefix: str) -> dict[str, Any]:
    """Every record, index, event and feed entry under ``prefix`` (the inbound stream
    and its errors left out), with the way in and the change ids (random, and so the
    chain's hashes) taken out."""
    out: dict[str, Any] = {}
    for key in world.text.scan_iter(match=f"{prefix}:*", count=1000):
        name = key[len(prefix) + 1:]
        kind = world.text.type(key)
        if name.startswith(TicketConfig.inbound_stream):
            continue
        if kind == "hash":
            out[name] = _way_in_unnamed(world.text.hgetall(key))
        elif kind == "zset":
            out[name] = world.text.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[name] = [_way_in_unnamed(e) for _, e in
                         cast(list[tuple[str, dict[str, str]]], world.text.xrange(key))]
        elif kind == "set":  # change ids: how many
            out[name] = world.text.scard(key)
        else:  # the chain's last hash: there
            out[name] = kind
    return out


def told(world: World, prefix: str) -> set[str]:
    """What the 12345 user must not learn from a refusal: the values of the records
    (tickets, the incident number), 110's internals, the refused bridge."""
    values = {v for bridge_id in IDS for k, v in cast(dict[str, str], world.text.hgetall(
        Keys(prefix).ticket(bridge_id))).items() if k in ("ticket", "incident")}
    return values | set(HIDDEN.values()) | set(REFUSED_MARKS) | set(NUMBERS) | set(NAMES)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(state=SEEDS, entries=st.lists(an_entry(), min_size=1, max_size=8))
def test_the_inbound_stream_answers_as_the_12345_role_does_over_http(
        world: World, state: Seed, entries: list[Entry]) -> None:
    """The same entries on the stream (one prefix) and as the 12345 role's requests
    (another, seeded alike): each is applied on both sides or refused with the same
    code; the records come out the same but for the way in; the errors stream copies
    the entry and the reason, never another value."""
    with fresh_prefix(world) as sp, fresh_prefix(world) as hp:
        by_stream, by_http = gateway(world, sp), gateway(world, hp)
        seed(world, by_stream, state)
        seed(world, by_http, state)
        stream = Keys(sp).inbound(TicketConfig.inbound_stream)
        inbound = InboundTickets(world.raw, by_stream.desk, stream, "gw-test", null_log(),
                                 workorders=by_stream.orders)  # as gateway/service.py
        inbound.ensure_groups()
        ids = [cast(bytes, world.raw.xadd(stream, cast(Any, e.raw()))).decode()
               for e in entries]
        got = cast(list[Any], world.raw.xreadgroup(GROUP, "gw-test", {stream: ">"}))
        for entry_id, raw in got[0][1]:
            inbound.handle(entry_id.decode(), raw)
        assert inbound.applied + inbound.refused == len(entries)
        assert world.raw.xpending(stream, GROUP)["pending"] == 0
        errors = {e["entry"]: e for _, e in cast(list[tuple[str, dict[str, str]]],
                                                  world.text.xrange(f"{stream}:errors"))}
        for entry_id, entry in zip(ids, entries, strict=True):
            on_stream = errors[entry_id]["error"] if entry_id in errors else "applied"
            on_http = "applied"
            for req in mirror(entry):
                status, answer = exchange(by_http.site, req.wire(TOKENS[L]))
                check_shown(L, req, status, answer)
                if status != 200:
                    on_http = answer["error"]
                    break
            assert SAME_CODE.get(on_stream, on_stream) == on_http, (entry, errors.get(entry_id))
            assert "internal" not in (on_stream, on_http)
            event(f"entry {on_stream}")
            if entry.torn is not None:
                assert on_stream == "entry_not_utf8"
            elif entry.workorder:
                pass
            elif "incident" in entry.fields:
                assert on_stream == "role_forbidden"
            elif entry.fields["bridge_id"] == NOT_AN_ID:
                assert on_stream == "bridge_id_malformed"
            elif entry.fields["bridge_id"] not in SEEN_BY_12345:
                assert on_stream == "bridge_not_found"  # refused at the key, or none
        assert records_of(world, sp) == records_of(world, hp)
        secrets = told(world, sp)
        for entry_id, entry in zip(ids, entries, strict=True):
            if entry_id not in errors:
                continue
            error = errors[entry_id]
            copied = {f"in_{k.decode('utf-8', 'replace')}": v.decode("utf-8", "replace")[:256]
                      for k, v in entry.raw().items()}
            assert {k: v for k, v in error.items() if k.startswith("in_")} == copied
            assert set(error) - set(copied) == {"entry", "error", "message"}
            own = list(copied.values())
            tells = [s for s in secrets if s in error["message"] and
                     not any(s in mine for mine in own)]
            assert not tells, (entry, error)


# -- a lone surrogate ---------------------------------------------------------------------

LONE = "\ud800"  # half of a UTF-16 pair: no character; Redis (UTF-8) cannot hold it


@pytest.mark.parametrize("raw", [False, True], ids=["escaped", "raw-bytes"])
@pytest.mark.parametrize("role,route,path,fields,entry", [
    (L, "POST /bridges/<id>/status", f"bridges/{TO}/status",
     {"status": "accepted", "note": f"备注{LONE}"},
     {"bridge_id": TO, "status": "accepted", "note": f"备注{LONE}"}),
    (L, "PUT /bridges/<id>/ticket", f"bridges/{TO}/ticket", {"ticket": f"2026{LONE}1128"},
     {"bridge_id": TO, "ticket": f"2026{LONE}1128"}),
    (L, "POST /workorders", "workorders",
     {"ticket": NEW_WOS[0], "category": "vehicle", "summary": f"挪车{LONE}"},
     {"type": "workorder", "ticket": NEW_WOS[0], "category": "vehicle",
      "summary": f"挪车{LONE}"}),
    (A, "POST /workorders/<ticket>/status", f"workorders/{WO}/status",
     {"status": "accepted", "note": LONE}, None),
    (A, "POST /callbacks/<id>/done", f"callbacks/{TO}/done", {"note": LONE}, None),
], ids=["status-note", "ticket", "workorder-summary", "workorder-note", "callback-note"])
def test_a_lone_surrogate_in_a_body_is_refused_as_malformed_and_changes_nothing(
        world: World, role: ApiRole, route: str, path: str, fields: dict[str, str],
        entry: dict[str, str] | None, raw: bool) -> None:
    """The bytes ED A0 80 (U+D800 as UTF-8 would write it, were it allowed) are not
    UTF-8: the stream refuses an entry holding them (``entry_not_utf8``), and the API a
    body holding them as a body that is not UTF-8 (``body_malformed``); as a JSON escape
    (``\\ud800``) a 400 all the same, never a 500. Nothing is written."""
    with fresh_prefix(world) as prefix:
        gw = gateway(world, prefix)
        seed(world, gw, Seed(ticket_on_to=True))
        before = snapshot(world, prefix)
        if raw and entry is not None:  # the stream's answer to the same bytes
            stream = Keys(prefix).inbound(TicketConfig.inbound_stream)
            inbound = InboundTickets(world.raw, gw.desk, stream, "gw-test", null_log(),
                                     workorders=gw.orders)
            inbound.ensure_groups()
            world.raw.xadd(stream, {k.encode(): v.encode("utf-8", "surrogatepass")
                                    for k, v in entry.items()})
            got = cast(list[Any], world.raw.xreadgroup(GROUP, "gw-test", {stream: ">"}))
            inbound.handle(got[0][1][0][0].decode(), got[0][1][0][1])
            errors = cast(list[tuple[str, dict[str, str]]],
                          world.text.xrange(f"{stream}:errors"))
            assert [e["error"] for _, e in errors] == ["entry_not_utf8"]
            assert {k: v for k, v in snapshot(world, prefix).items()
                    if not k.startswith(stream.encode())} == before
        data = json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass") \
            if raw else json.dumps(fields).encode()
        method = route.split(" ")[0]
        status, answer = exchange(gw.site, Req(route, method, path, data).wire(TOKENS[role]))
        if raw:
            assert (status, answer["error"]) == (400, "body_malformed"), answer
        assert status == 400, answer
        assert {k: v for k, v in snapshot(world, prefix).items()
                if b":tickets:in" not in k} == before
