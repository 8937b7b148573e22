"""The HTTP API (twisted.web): tickets, the closed loop, look-ups, figures, health.

Every route but ``/`` needs ``Authorization: Bearer <token>`` (``/health`` and
``/metrics`` not from loopback); the token names a role (:mod:`gateway.records.roles`:
admin, 12345, supervisor), and each route checks it. Errors are JSON
``{"error": <stable code>, "message": <words>}`` with a fitting status: 400 malformed,
401 no token, 403 wrong token or role, 404 unknown, 409 conflict, 413 body
too large, 503 Redis down or too many requests at once. A request that brings a body is
refused before the body is read when its token is wrong or its length too large
(:class:`ApiRequest`); at most ``MAX_INFLIGHT`` requests are worked on at once. The work
runs in a thread (``run``), never in the reactor. Every answer carries a content security
policy, ``X-Frame-Options: DENY`` and ``nosniff``.

    GET  /                            the supervisor's live page (HTML; asks for the token)
    GET  /live                        the bridges this gateway is running now
    GET  /health                      {"redis", "ami", "pending", "spooled", "live"}
    GET  /metrics                     Prometheus text
    GET  /bridges/<id>                the bridge, its ticket record, its events
    GET  /bridges?number=|ticket=|incident=|seat=|day=
    PUT  /bridges/<id>/ticket         {"ticket": "…"}
    POST /bridges/<id>/status         {"status": "accepted|assigned|feedback", "note": "…"}
    PUT  /bridges/<id>/incident       {"incident": "…"}
    PUT  /bridges/<id>/decline-reason {"reason": "…"}: why 12345 declined a consult
                                      transfer (the joint meeting's list)
    GET  /overdue                     past-deadline bridges and work orders
    POST /workorders                  {"ticket", "category", "summary", "number"?}: 12345
                                      dispatches a matter to the police, without a call
    GET  /workorders[?day=|month=|year=]   open ones, or those of a period
    GET  /workorders/<ticket>
    POST /workorders/<ticket>/status  {"status": "accepted|assigned|answered", "unit", "note"}
    POST /workorders/<ticket>/<action>  the rest of its life, each with "operator":
         return {"reason"} · unit-return {"unit", "reason"} · reassign {"unit", "reason"} ·
         extension {"reason", "days"|"hours"} · extension-decision {"decision":
         "granted|refused", "note"?} (12345) · reopen {"reason"} (12345) ·
         close {"result", "note"?} (12345) · satisfaction {"satisfaction", "note"?} (12345)
    GET  /callbacks                   open callback tasks
    POST /callbacks/<id>/done         {"note"?}
    GET  /push-needed                 work orders still to push to the line not reached
    POST /push-needed/<id>/done       {"ticket"?, "note"?}
    GET  /stats?day=YYYY-MM-DD
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from gateway.records.actor import Actor
from gateway.records.errors import (
    Busy,
    Malformed,
    NotFound,
    RecordError,
    TooLarge,
)
from gateway.records.page import CSP, render_page
from gateway.records.periods import today
from gateway.records.queries import FINDERS, Records
from gateway.records.roles import (
    LIFE_ROUTES,
    ApiRole,
    LineRole,
    Role,
    check_allowed,
    check_visible,
    identify,
    sees,
    shown_bridge,
    shown_handover,
    shown_rows,
)
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk

Runner = Callable[[Callable[[], Any]], defer.Deferred[Any]]
MAX_BODY = 65536
MAX_INFLIGHT = 32  # requests worked on at once (each holds a thread of the pool)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
SECURITY_HEADERS = ((b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"))


def _arg(request: Request, name: bytes) -> str:
    raw: bytes = (request.args.get(name) or [b""])[0]
    return raw.decode("utf-8", "replace")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(request: Request) -> bool:
    """Asked from loopback, for a loopback name: a web page elsewhere that rebinds its
    own name to 127.0.0.1 (DNS rebinding) sends its own name as ``Host`` and is not."""
    peer = getattr(request.getClientAddress(), "host", "")
    return _is_loopback(peer) and _is_loopback(_host_name(request.getHeader(b"host") or b""))


def _host_name(header: bytes) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8645`` → ``::1``)."""
    text = header.decode("ascii", "replace").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else ""
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def error_body(exc: RecordError) -> bytes:
    return json.dumps({"error": exc.code, "message": str(exc)}, ensure_ascii=False).encode()


class ApiRequest(Request):
    """A request that is refused as soon as its headers are in, before its body is read,
    when it brings a body (a length, or chunks) with no valid token or over
    ``MAX_BODY``; a chunked body is cut off once it passes ``MAX_BODY``. The answer is
    written and the connection closed at once."""

    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        site = getattr(self.channel, "site", None)  # set by Site.buildProtocol
        resource = getattr(site, "resource", None)
        tokens = resource.tokens if isinstance(resource, ApiResource) else {}
        refusal = early_refusal(self.requestHeaders, length, tokens)
        if refusal is not None:
            self._refuse(refusal)
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse(TooLarge(f"body larger than {MAX_BODY} bytes"))
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def _refuse(self, exc: RecordError) -> None:
        self._refused = True
        self.content = io.BytesIO()
        body = error_body(exc)
        head = [f"HTTP/1.1 {exc.status} {_REASONS.get(exc.status, 'Error')}".encode(),
                b"content-type: application/json; charset=utf-8",
                b"content-length: " + str(len(body)).encode(), b"connection: close",
                *(name + b": " + value for name, value in SECURITY_HEADERS)]
        transport = getattr(self.channel, "transport", None)
        if transport is None:  # the client is gone already
            return
        transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        transport.loseConnection()


_REASONS = {401: "Unauthorized", 403: "Forbidden", 413: "Content Too Large"}


def early_refusal(headers: Headers, length: int | None, tokens: Mapping[Role, str]
                  ) -> RecordError | None:
    """Why a request that brings a body is refused before it is read (None: read it)."""
    if length == 0:
        return None
    if length is not None and length > MAX_BODY:
        return TooLarge(f"body of {length} bytes: at most {MAX_BODY}")
    raw = headers.getRawHeaders(b"authorization") or [b""]
    try:
        identify(raw[0].decode("latin-1"), tokens)
    except RecordError as exc:
        return exc
    return None


def api_site(resource: ApiResource) -> Site:
    site = Site(resource)
    site.requestFactory = ApiRequest
    site.displayTracebacks = False
    return site


class ApiResource(Resource):
    isLeaf = True

    def __init__(self, desk: TicketDesk, records: Records, tokens: Mapping[ApiRole, str],
                 run: Runner, health: Callable[[], dict[str, Any]], metrics: Callable[[], str],
                 clock: Callable[[], float], log: Any,
                 live: Callable[[], list[dict[str, str]]] = list,
                 mask_numbers: bool = True, workorders: WorkOrderDesk | None = None,
                 shifts: tuple[str, ...] = ("08:00", "20:00"),
                 line_tokens: Mapping[str, str] | None = None) -> None:
        """``line_tokens``: a further line's number → its system's token."""
        Resource.__init__(self)
        self.desk, self.records, self.shifts = desk, records, shifts
        self.tokens: dict[Role, str] = {role: token for role, token in tokens.items() if token}
        self.tokens |= {LineRole(line): token for line, token in (line_tokens or {}).items()
                        if token}
        self.mask = mask_numbers
        self.workorders = workorders
        self.inflight = 0
        self.run, self.health, self.metrics, self.clock, self.log = \
            run, health, metrics, clock, log
        self.live = live

    def render(self, request: Request) -> int | bytes:
        for name, value in SECURITY_HEADERS:
            request.setHeader(name, value)
        method = request.method.decode("latin-1")
        method = "GET" if method == "HEAD" else method  # Twisted drops the body
        path = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        try:
            return self._render(request, method, path)
        except RecordError as exc:
            return self._error(request, exc)
        except Exception as exc:  # never Twisted's HTML page
            self.log.error("api.failed", method=method, path="/".join(path), error=str(exc),
                           error_type=type(exc).__name__)
            return self._json(request, 500, {"error": "internal",
                                             "message": "see the gateway log"})

    def _render(self, request: Request, method: str, path: list[str]) -> int | bytes:
        if path == [] and method == "GET":
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            names = {c.id: {"zh": c.name_zh, "en": c.name_en}
                     for c in self.desk.catalogue.categories}
            return render_page(names).encode()
        if path in (["health"], ["metrics"]) and method == "GET":
            if not _loopback(request):  # open on loopback only; else any role's token
                self._authorize(request)
            if path == ["health"]:
                return self._json(request, 200, self.health())
            request.setHeader(b"content-type", b"text/plain; version=0.0.4")
            return self.metrics().encode()
        role = self._authorize(request)
        if path == ["live"] and method == "GET":
            check_allowed("GET /live", role)
            return self._json(request, 200,
                              {"bridges": shown_rows(role, self.live(), self.mask)})
        route, work = self._route(method, path, request, role)
        check_allowed(route, role)
        if self.inflight >= MAX_INFLIGHT:
            raise Busy(f"{MAX_INFLIGHT} requests are being worked on: try again")
        self.inflight += 1
        gone: list[bool] = []  # the client hung up before the answer was ready
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self.run(work)
        d.addCallbacks(lambda body: self._finish(request, 200, body, gone),
                       lambda f: self._failed(request, f, method, path, gone))
        return NOT_DONE_YET

    # -- routing ---------------------------------------------------------------------
    def _route(self, method: str, path: list[str], request: Request, role: Role
               ) -> tuple[str, Callable[[], Any]]:
        """The route's name (for :data:`gateway.records.roles.ALLOWED`) and its work,
        answering as ``role`` sees it."""
        mask = self.mask
        match method, path:
            case "GET", ["bridges", bridge_id]:  # the role's rule before the events
                return "GET /bridges/<id>", lambda: shown_bridge(role, self.records.bridge(
                    bridge_id, lambda b: check_visible(role, b, bridge_id)), mask)
            case "GET", ["bridges"]:
                by = [k for k in FINDERS if request.args.get(k.encode())]
                if len(by) != 1:
                    raise Malformed(f"give exactly one of {', '.join(FINDERS)}",
                                    "query_malformed")
                value = request.args[by[0].encode()][0].decode("utf-8", "replace")
                return "GET /bridges", lambda: {"bridges": shown_rows(
                    role, self.records.find(by[0], value, keep=lambda row: sees(role, row)),
                    mask)}
            case "PUT", ["bridges", bridge_id, "ticket"]:
                body = self._body(request)
                return "PUT /bridges/<id>/ticket", lambda: self._as(
                    role, bridge_id, lambda: self.desk.attach(
                        bridge_id, body.get("ticket", ""), self._actor(body)))
            case "PUT", ["bridges", bridge_id, "decline-reason"]:
                body = self._body(request)
                return "PUT /bridges/<id>/decline-reason", lambda: self._as(
                    role, bridge_id, lambda: self.desk.decline_reason(
                        bridge_id, body.get("reason"), self._actor(body)))
            case "PUT", ["bridges", bridge_id, "incident"]:
                body = self._body(request)
                return "PUT /bridges/<id>/incident", lambda: self.desk.incident(
                    bridge_id, body.get("incident", ""), self._actor(body))
            case "POST", ["bridges", bridge_id, "status"]:
                body = self._body(request)
                return "POST /bridges/<id>/status", lambda: self._as(
                    role, bridge_id, lambda: self.desk.status(
                        bridge_id, str(body.get("status")), str(body.get("note", "")),
                        self._actor(body)))
            case "GET", ["overdue"]:
                return "GET /overdue", lambda: self._overdue(role)
            case "GET", ["stats"]:
                month, year = (_arg(request, b"month"), _arg(request, b"year"))
                if month or year:  # checked (period_malformed) in the thread
                    return "GET /stats", lambda: self.records.figures(month or year,
                                                                      self.clock())
                day = _arg(request, b"day") or today(self.clock(), self.records.zone)
                if not _DAY.match(day):
                    raise Malformed(f"day {day[:20]!r} is not YYYY-MM-DD", "day_malformed")
                return "GET /stats", lambda: self.records.day_figures(day, self.clock())
        if self.workorders is not None:
            found = self._loop_route(method, path, request, role)
            if found is not None:
                return found
        raise NotFound(f"no route {method} /{'/'.join(path)}", "no_route")

    def _loop_route(self, method: str, path: list[str], request: Request, role: Role
                    ) -> tuple[str, Callable[[], Any]] | None:
        """Work orders without a call, callback tasks, pushes owed."""
        desk, records, mask = self.workorders, self.records, self.mask
        assert desk is not None
        match method, path:
            case "POST", ["workorders"]:
                body = self._body(request)
                return "POST /workorders", lambda: desk.receive(body, self._actor(body))
            case "GET", ["workorders"]:
                label = _arg(request, b"day") or _arg(request, b"month") or \
                    _arg(request, b"year")
                return "GET /workorders", lambda: self._listed(
                    "workorders", *records.workorder_list(label), role, own=True)
            case "GET", ["workorders", ticket]:
                return "GET /workorders/<ticket>", lambda: shown_rows(
                    role, [records.workorder(ticket)], mask, own=True)[0]
            case "POST", ["workorders", ticket, "status"]:
                body = self._body(request)
                return "POST /workorders/<ticket>/status", lambda: desk.step(
                    ticket, str(body.get("status")), body, self._actor(body))
            case "POST", ["workorders", ticket, action] if action in LIFE_ROUTES:
                body = self._body(request)
                return f"POST /workorders/<ticket>/{action}", lambda: desk.act(
                    ticket, LIFE_ROUTES[action], body, self._actor(body))
            case "GET", ["callbacks"]:
                return "GET /callbacks", lambda: self._listed(
                    "callbacks", *records.callback_list(), role)
            case "POST", ["callbacks", bridge_id, "done"]:
                body = self._body(request)
                return "POST /callbacks/<id>/done", lambda: desk.callback_done(
                    bridge_id, body.get("note"), self._actor(body))
            case "GET", ["push-needed"]:
                return "GET /push-needed", lambda: self._listed(
                    "push_needed", *records.push_list(), role)
            case "GET", ["handover"]:
                return "GET /handover", lambda: shown_handover(
                    role, records.handover(self.clock(), self.shifts), mask)
            case "POST", ["push-needed", bridge_id, "done"]:
                body = self._body(request)
                return "POST /push-needed/<id>/done", lambda: desk.push_done(
                    bridge_id, body.get("ticket"), body.get("note"), self._actor(body))
        return None

    def _listed(self, name: str, rows: list[dict[str, str]], total: int, role: Role,
                own: bool = False) -> dict[str, Any]:
        """A list (at most LIST_CAP rows, oldest first) and how many there are in all."""
        return {name: shown_rows(role, rows, self.mask, own=own), "total": total}

    def _overdue(self, role: Role) -> dict[str, Any]:
        now = self.clock()
        totals = self.records.totals(now)
        return {"overdue": shown_rows(role, self.records.overdue(now), self.mask),
                "workorders": shown_rows(role, self.records.overdue_workorders(now),
                                         self.mask),
                "overdue_total": totals["overdue_bridges"],
                "workorders_total": totals["overdue_workorders"]}

    @staticmethod
    def _actor(body: dict[str, Any]) -> Actor:
        """Who acts (required): checked in the route's work, after the role's rules and
        before anything is written."""
        return Actor.human("api", body.get("operator"))

    def _as(self, role: Role, bridge_id: str, change: Callable[[], Any]) -> Any:
        """A change the 12345 role, or a further line's, may make only on a bridge it may
        see."""
        if role is ApiRole.LINE_12345 or isinstance(role, LineRole):
            check_visible(role, self.records.bridge(bridge_id)["bridge"], bridge_id)
        return change()

    def _authorize(self, request: Request) -> Role:
        return identify((request.getHeader(b"authorization") or b"").decode("latin-1"),
                        self.tokens)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.content.read(MAX_BODY + 1) if request.content else b""
        if len(raw) > MAX_BODY:
            raise Malformed("body larger than 64 KiB", "body_too_large")
        try:
            # strictly UTF-8: json.loads(bytes) would let the bytes of a lone surrogate
            # (ED A0 80) through, which no Redis value can hold
            text = (raw or b"{}").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(f"body is not UTF-8 (byte {exc.start})",
                            "body_malformed") from exc
        try:
            body = json.loads(text)
        except ValueError as exc:  # not JSON
            raise Malformed(f"body is not JSON: {exc}", "body_malformed") from exc
        except RecursionError as exc:
            raise Malformed("body is nested too deeply", "body_malformed") from exc
        if not isinstance(body, dict):
            raise Malformed("body must be a JSON object", "body_malformed")
        if _holds_surrogate(body):  # "\ud800" escaped in the JSON
            raise Malformed("body holds a lone surrogate (\\ud800-\\udfff): not text",
                            "body_malformed")
        return body

    # -- answers ---------------------------------------------------------------------
    @staticmethod
    def _json(request: Request, status: int, body: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()

    def _error(self, request: Request, exc: RecordError) -> bytes:
        return self._json(request, exc.status, {"error": exc.code, "message": str(exc)})

    def _finish(self, request: Request, status: int, body: Any, gone: list[bool]) -> None:
        self.inflight -= 1
        if gone:
            return
        payload = self._json(request, status, body)
        request.setHeader(b"content-length", str(len(payload)).encode())
        request.write(payload)
        request.finish()

    def _failed(self, request: Request, failure: Failure, method: str,
                path: list[str], gone: list[bool]) -> None:
        if failure.check(RecordError):
            exc = failure.value
            assert isinstance(exc, RecordError)
            self.log.info("api.refused", method=method, path="/".join(path),
                          error_id=exc.code, status=exc.status)
            self._finish(request, exc.status, {"error": exc.code, "message": str(exc)}, gone)
            return
        self.log.error("api.failed", method=method, path="/".join(path),
                       error=failure.getErrorMessage())
        self._finish(request, 500, {"error": "internal", "message": "see the gateway log"},
                     gone)


def _holds_surrogate(value: Any) -> bool:
    """A lone surrogate anywhere in a parsed body (keys and values, any depth; walked
    without recursion, so a deeply nested body is no 500)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= char <= "\udfff" for char in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
