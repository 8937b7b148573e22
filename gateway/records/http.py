"""The HTTP API (twisted.web): tickets, the closed loop, look-ups, figures, health.

Every route but ``/health`` and ``/metrics`` needs ``Authorization: Bearer <token>``.
Errors are JSON ``{"error": <stable code>, "message": <words>}`` with a fitting status:
400 malformed, 401 no token, 403 wrong token, 404 unknown, 409 conflict, 503 Redis down.
The work runs in a thread (``run``), never in the reactor.

    GET  /                            the supervisor's live page (HTML; asks for the token)
    GET  /live                        the bridges this gateway is running now
    GET  /health                      {"redis", "ami", "pending", "spooled", "live"}
    GET  /metrics                     Prometheus text
    GET  /bridges/<id>                the bridge, its ticket record, its events
    GET  /bridges?number=|ticket=|incident=|seat=|day=
    PUT  /bridges/<id>/ticket         {"ticket": "…"}
    POST /bridges/<id>/status         {"status": "accepted|assigned|feedback", "note": "…"}
    PUT  /bridges/<id>/incident       {"incident": "…"}
    GET  /overdue
    GET  /stats?day=YYYY-MM-DD
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gateway.records.errors import Forbidden, Malformed, NotFound, RecordError, Unauthorized
from gateway.records.page import PAGE
from gateway.records.queries import FINDERS, Records
from gateway.records.tickets import TicketDesk

Runner = Callable[[Callable[[], Any]], defer.Deferred[Any]]
MAX_BODY = 65536


class ApiResource(Resource):
    isLeaf = True

    def __init__(self, desk: TicketDesk, records: Records, token: str, run: Runner,
                 health: Callable[[], dict[str, Any]], metrics: Callable[[], str],
                 clock: Callable[[], float], log: Any,
                 live: Callable[[], list[dict[str, str]]] = list) -> None:
        Resource.__init__(self)
        self.desk, self.records, self._token = desk, records, token
        self.run, self.health, self.metrics, self.clock, self.log = \
            run, health, metrics, clock, log
        self.live = live

    def render(self, request: Request) -> int | bytes:
        method = request.method.decode()
        path = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        try:
            if path == ["health"] and method == "GET":
                return self._json(request, 200, self.health())
            if path == ["metrics"] and method == "GET":
                request.setHeader(b"content-type", b"text/plain; version=0.0.4")
                return self.metrics().encode()
            if path == [] and method == "GET":
                request.setHeader(b"content-type", b"text/html; charset=utf-8")
                return PAGE.encode()
            self._authorize(request)
            if path == ["live"] and method == "GET":
                return self._json(request, 200, {"bridges": self.live()})
            work = self._route(method, path, request)
        except RecordError as exc:
            return self._error(request, exc)
        gone: list[bool] = []  # the client hung up before the answer was ready
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self.run(work)
        d.addCallbacks(lambda body: self._finish(request, 200, body, gone),
                       lambda f: self._failed(request, f, method, path, gone))
        return NOT_DONE_YET

    # -- routing ---------------------------------------------------------------------
    def _route(self, method: str, path: list[str], request: Request) -> Callable[[], Any]:
        match method, path:
            case "GET", ["bridges", bridge_id]:
                return lambda: self.records.bridge(bridge_id)
            case "GET", ["bridges"]:
                by = [k for k in FINDERS if request.args.get(k.encode())]
                if len(by) != 1:
                    raise Malformed(f"give exactly one of {', '.join(FINDERS)}",
                                    "query_malformed")
                value = request.args[by[0].encode()][0].decode("utf-8", "replace")
                return lambda: {"bridges": self.records.find(by[0], value)}
            case "PUT", ["bridges", bridge_id, "ticket"]:
                body = self._body(request)
                return lambda: self.desk.attach(bridge_id, body.get("ticket", ""), "api")
            case "PUT", ["bridges", bridge_id, "incident"]:
                body = self._body(request)
                return lambda: self.desk.incident(bridge_id, body.get("incident", ""),
                                                  "api")
            case "POST", ["bridges", bridge_id, "status"]:
                body = self._body(request)
                return lambda: self.desk.status(bridge_id, str(body.get("status")),
                                                str(body.get("note", "")), "api")
            case "GET", ["overdue"]:
                return lambda: {"overdue": self.records.overdue(self.clock())}
            case "GET", ["stats"]:
                day = (request.args.get(b"day") or [b""])[0].decode() or \
                    datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
                return lambda: self.records.day_figures(day, self.clock())
        raise NotFound(f"no route {method} /{'/'.join(path)}", "no_route")

    def _authorize(self, request: Request) -> None:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("send Authorization: Bearer <token>")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise Forbidden("wrong token")

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.content.read(MAX_BODY + 1) if request.content else b""
        if len(raw) > MAX_BODY:
            raise Malformed("body larger than 64 KiB", "body_too_large")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise Malformed(f"body is not JSON: {exc}", "body_malformed") from exc
        if not isinstance(body, dict):
            raise Malformed("body must be a JSON object", "body_malformed")
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
        if gone:
            return
        request.write(self._json(request, status, body))
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
