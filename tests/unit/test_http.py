"""The HTTP API at the wire: an HTTP channel over a string transport, exact bytes in.

What must be refused is refused before the body is read (the answer is on the wire
while the client has sent only headers); every answer is JSON with the security
headers, Twisted's HTML error page never shows."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from gateway.catalogue import Catalogue, Category
from gateway.lab.fakes import null_log
from gateway.records.actor import Actor
from gateway.records.http import MAX_BODY, MAX_INFLIGHT, ApiResource, api_site
from gateway.records.roles import ApiRole

TOKEN = "t" * 24
BID = "20261128195037abcdef"


class Desk:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        # a category whose name would end the page's data block, were it not escaped
        self.catalogue = Catalogue((Category("vehicle", "1", "挪车</script><script>x()",
                                             "Vehicles", (), ()),))

    def attach(self, bridge_id: str, ticket: str, actor: Actor) -> dict[str, str]:
        self.calls.append((bridge_id, ticket, f"{actor.via}:{actor.operator}"))
        return {"bridge_id": bridge_id, "ticket": ticket}


class Records:
    def day_figures(self, day: str, now: float) -> dict[str, Any]:
        return {"day": day}


def connect(run: Any = defer.maybeDeferred, peer: str = "127.0.0.1"
            ) -> tuple[HTTPChannel, StringTransport, Desk, ApiResource]:
    desk = Desk()
    resource = ApiResource(cast(Any, desk), cast(Any, Records()), {ApiRole.ADMIN: TOKEN}, run,
                           lambda: {"redis": "up"}, lambda: "linkgw_redis_up 1\n",
                           lambda: 1_795_895_437.0, null_log())
    channel = cast(HTTPChannel, api_site(resource).buildProtocol(
        IPv4Address("TCP", "127.0.0.1", 5000)))
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
    channel.makeConnection(transport)
    return channel, transport, desk, resource


def answer(transport: StringTransport) -> tuple[int, dict[str, str], bytes]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def put(length: int | str, token: str | None = TOKEN) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    size = (f"Content-Length: {length}\r\n" if isinstance(length, int)
            else "Transfer-Encoding: chunked\r\n")
    return (f"PUT /bridges/{BID}/ticket HTTP/1.1\r\nHost: gw\r\n{auth}{size}"
            "Content-Type: application/json\r\n\r\n").encode()


def test_a_gigabyte_body_is_refused_from_its_headers_alone() -> None:
    channel, transport, desk, _ = connect()
    channel.dataReceived(put(1 << 30))
    status, headers, body = answer(transport)
    assert (status, json.loads(body)["error"]) == (413, "body_too_large")
    assert transport.disconnecting and desk.calls == []
    assert headers["connection"] == "close"


def test_a_body_without_a_valid_token_is_never_read() -> None:
    for token, status, code in ((None, 401, "unauthorized"), ("wrong", 403, "forbidden")):
        channel, transport, desk, _ = connect()
        channel.dataReceived(put(40, token))  # headers only: the body is not sent yet
        got, _, body = answer(transport)
        assert (got, json.loads(body)["error"]) == (status, code)
        assert transport.disconnecting and desk.calls == []


def test_a_chunked_body_is_cut_off_past_the_limit() -> None:
    channel, transport, desk, _ = connect()
    channel.dataReceived(put("chunked"))
    chunk = b"x" * 4096
    for _ in range(MAX_BODY // len(chunk) + 1):
        channel.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, _, body = answer(transport)
    assert (status, json.loads(body)["error"]) == (413, "body_too_large")
    assert desk.calls == []


def test_a_good_request_goes_through() -> None:
    channel, transport, desk, _ = connect()
    body = json.dumps({"ticket": "20261128000001", "operator": "J4201"}).encode()
    channel.dataReceived(put(len(body)) + body)
    status, headers, got = answer(transport)
    assert status == 200 and json.loads(got)["ticket"] == "20261128000001"
    assert desk.calls == [(BID, "20261128000001", "api:J4201")]  # who, on the record
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(("operator", "code"), [
    (None, "operator_missing"), ("", "operator_missing"), (4201, "operator_malformed"),
    ("J42\r\n01", "operator_malformed"), ("警号4201", "operator_malformed"),
    ("J4201\u2028", "operator_malformed"), ("J4201\u0085", "operator_malformed"),
    ("J" * 33, "operator_malformed"),
    ("-J4201", "operator_malformed")])
def test_a_change_without_a_staff_or_police_number_is_refused_and_changes_nothing(
        operator: Any, code: str) -> None:
    channel, transport, desk, _ = connect()
    fields = {"ticket": "20261128000001"} | ({} if operator is None else {"operator": operator})
    body = json.dumps(fields).encode()
    channel.dataReceived(put(len(body)) + body)
    status, _, got = answer(transport)
    assert (status, json.loads(got)["error"]) == (400, code)
    assert desk.calls == []


def request(raw: bytes, run: Any = defer.maybeDeferred, peer: str = "127.0.0.1"
            ) -> tuple[int, dict[str, str], bytes]:
    channel, transport, _, _ = connect(run, peer)
    channel.dataReceived(raw)
    return answer(transport)


def test_head_of_health_answers_without_a_token_and_without_a_body() -> None:
    status, headers, body = request(b"HEAD /health HTTP/1.1\r\nHost: 127.0.0.1:8645\r\n\r\n")
    assert (status, body) == (200, b"")
    assert headers["content-type"].startswith("application/json")
    # from another host, /health and /metrics need a token too
    for path in (b"/health", b"/metrics"):
        status, _, _ = request(b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
                               peer="192.0.2.7")
        assert status == 401


@pytest.mark.parametrize("host,status", [
    (b"127.0.0.1:8645", 200), (b"localhost:8645", 200), (b"LOCALHOST", 200),
    (b"[::1]:8645", 200), (b"127.0.0.2", 200),
    # a page of another name rebound to 127.0.0.1 (DNS rebinding) sends its own name
    (b"evil.example:8645", 401), (b"gw", 401), (b"localhost.evil.example", 401),
    (b"127.0.0.1.evil.example", 401), (b"[::1", 401), (b"", 401), (b"\xe6\x9c\xac", 401),
])
def test_health_and_metrics_open_on_loopback_only_for_a_loopback_host(
        host: bytes, status: int) -> None:
    for path in (b"/health", b"/metrics"):
        raw = b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        assert request(raw)[0] == status, (path, host)


def test_the_page_carries_its_policy() -> None:
    status, headers, body = request(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert status == 200 and b"<script>" in body
    assert body.count(b"</script>") == 2  # the names' block and the script, no third
    assert '"vehicle": {"zh": "挪车\\u003c/script>\\u003cscript>x()"'.encode() in body
    assert "script-src 'sha256-" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_broken_input_is_a_json_400_never_an_html_page() -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    nested = b"[" * 100_000 + b"]" * 100_000
    raw = put(len(nested)) + nested
    assert len(nested) > MAX_BODY  # refused by size first; a nested one within the limit:
    deep = b"[" * 30_000 + b"]" * 30_000
    # nested just within what json reads (the surrogate check must not recurse past it)
    within = b'{"operator": "J4201", "ticket": ' + b"[" * 900 + b"]" * 900 + b"}"
    assert request(put(len(within)) + within)[0] == 200  # read, checked, no 500
    raw_surrogate, escaped = b'{"a": "\xed\xa0\x80"}', b'{"ticket":"\\ud800"}'
    cases = [
        (put(len(deep)) + deep, "body_malformed"),
        (put(len(raw_surrogate)) + raw_surrogate, "body_malformed"),
        (put(len(escaped)) + escaped, "body_malformed"),
        (put(4) + b"\xff\xfe{}", "body_malformed"),
        (b"GET /stats?day=%FF HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n", "day_malformed"),
        (b"GET /stats?day=2026-11-28%0A HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n",
         "day_malformed"),
    ]
    for data, code in cases:
        status, headers, body = request(data)
        assert (status, json.loads(body)["error"]) == (400, code), data[:60]
        assert headers["content-type"].startswith("application/json")
    assert request(raw)[0] == 413


def test_too_many_requests_at_once_are_refused_not_queued() -> None:
    pending: list[defer.Deferred[Any]] = []

    def never(work: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        pending.append(d)
        return d

    desk = Desk()
    resource = ApiResource(cast(Any, desk), cast(Any, Records()), {ApiRole.ADMIN: TOKEN}, never,
                           dict, str, lambda: 0.0, null_log())
    site = api_site(resource)
    body = json.dumps({"ticket": "20261128000001", "operator": "J4201"}).encode()
    answers = []
    for n in range(MAX_INFLIGHT + 1):
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6000 + n))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(put(len(body)) + body)
        answers.append(transport)
    assert [t.value() for t in answers[:MAX_INFLIGHT]] == [b""] * MAX_INFLIGHT
    status, _, got = answer(answers[-1])
    assert (status, json.loads(got)["error"]) == (503, "busy")
    assert len(pending) == MAX_INFLIGHT
