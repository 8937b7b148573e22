"""The push to the 12345 system without a network: the wire format as exact bytes, and
the pusher on a fake clock against treq's own stub of a receiver (treq.testing)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gateway.config import PushConfig
from gateway.lab.fakes import null_log
from gateway.push.codec import BadEntry, Entry, backoff, body, signature, verify
from gateway.push.http import make_post
from gateway.push.outbox import MemoryOutbox
from gateway.push.services import Pusher
from gateway.schema import bridge_record, workorder_record

SECRET = "k3y-shared-with-12345"
T0 = 1_796_240_000.0
CONFIG = PushConfig(url="https://12345.example/linkgw", secret=SECRET, retry_initial=1.0,
                    retry_max=8.0, dead_after=3600.0, poll=0.2, timeout=5.0)


def entry(n: int, bridge: str = "b1", event: str = "agent_answered", at_ms: int = 0,
          **extra: bytes | str) -> Entry:
    fields: dict[bytes | str, bytes | str] = {
        b"record": bridge_record(bridge).encode(), b"id": f"c{n}".encode(),
        b"event": event.encode(), b"at": b"2026-12-02T20:00:00.000Z",
        b"data": b"{}", b"fields": json.dumps({"n": n}).encode()}
    fields.update({k.encode(): v for k, v in extra.items()})
    return Entry(f"{at_ms or int(T0 * 1000)}-{n}", fields)


def test_the_signature_is_hmac_sha256_of_the_time_a_dot_and_the_body() -> None:
    assert signature(b"k3y", 1796240000, b'{"a":1}') == (
        "t=1796240000,v1=b5fed75d294361d03282f25999dd71b3ea78fc9979f907af9479c89b6a3ccd5c")


def test_a_receiver_refuses_a_tampered_body_an_old_time_and_garbage() -> None:
    raw = b'{"a":1}'
    header = signature(b"k3y", 1796240000, raw)
    assert verify(b"k3y", header, raw, 1796240010)
    assert not verify(b"k3y", header, b'{"a":2}', 1796240010)  # tampered
    assert not verify(b"other", header, raw, 1796240010)  # another secret
    assert not verify(b"k3y", header, raw, 1796240000 + 301)  # replayed later
    for bad in ("", "t=,v1=", "v1=00", "t=x,v1=00", "t=1796240000", "\r\n\u2028",
                "t=\u00b2,v1=00", "t=1796240000,v1=\u00e9", "t=1796240000,v1=" + "A" * 64):
        assert not verify(b"k3y", bad, raw, 1796240000)  # False, never an exception


def test_the_body_is_exactly_this_json() -> None:
    e = entry(7, data='{"recovered": "yes"}', schema="1")
    assert body(e) == (  # literal: the exact wire bytes
        b'{"at":"2026-12-02T20:00:00.000Z","bridge_id":"b1","data":{"recovered":"yes"},'
        b'"event":"agent_answered","fields":{"n":7},"id":"c7",'
        b'"outbox_id":"1796240000000-7","record":"bridge:b1","schema":1}')
    # an entry written before schema versions (or with a version that is not one) says 0
    assert json.loads(body(entry(7)))["schema"] == 0
    for schema in ("", "\u00b2", "1" * 7, "-1"):
        assert json.loads(body(entry(7, schema=schema)))["schema"] == 0
    work = Entry("1-1", {"record": workorder_record("2026120200001"), "id": "w1",
                         "event": "workorder_accepted", "data": "{}", "fields": "{}"})
    assert json.loads(body(work))["ticket"] == "2026120200001"


@pytest.mark.parametrize("name", ["张三", "a\u2028b\u0085c", 'q"uo\r\nte', "\x00\x1b", "x" * 4096])
def test_hostile_names_travel_exactly_as_json(name: str) -> None:
    e = entry(1, fields=json.dumps({"citizen_name": name}))
    assert json.loads(body(e).decode("utf-8"))["fields"] == {"citizen_name": name}


@pytest.mark.parametrize(("fields", "why"), [
    ({b"fields": b"\xff\xfe"}, "not UTF-8"),
    ({b"data": b"[1]"}, "not a JSON object"),
    ({b"data": b"{torn"}, "not JSON"),
    ({b"event": b""}, "no id or no event"),
    ({b"data": b"[" * 100_000}, "RecursionError"),  # nested past the recursion limit
    ({b"summary": b"x" * 300_000}, "at most 262144"),
])
def test_an_entry_that_cannot_be_a_body_says_why(fields: dict[bytes | str, bytes | str],
                                                  why: str) -> None:
    e = entry(1)
    broken = Entry(e.outbox_id, {**e.fields, **fields})
    with pytest.raises(BadEntry, match=why):
        body(broken)


@given(st.dictionaries(st.binary(max_size=20), st.binary(max_size=200), max_size=8))
def test_any_bytes_give_a_body_or_bad_entry(fields: dict[bytes, bytes]) -> None:
    try:
        json.loads(body(Entry("1-1", dict(fields.items()))))
    except BadEntry:
        pass


def test_backoff_doubles_to_its_cap() -> None:
    assert [backoff(n, 1.0, 8.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff(10_000, 1.0, 60.0) == 60.0


def test_a_dead_letter_sent_again_keeps_its_first_place_and_says_so() -> None:
    """``linkgw outbox retry`` copies the entry with its first ``outbox_id``: the body
    carries that one, and ``redelivered``, so a receiver can tell it is not new."""
    e = entry(4)
    again = Entry("1796249999000-0", {**e.fields, b"outbox_id": e.outbox_id.encode()})
    got = json.loads(body(again))
    assert (got["outbox_id"], got["redelivered"], got["id"]) == (e.outbox_id, True, "c4")
    assert "redelivered" not in json.loads(body(e))


class Receiver(Resource):
    """A 12345 receiver: checks each signature, answers the next planned status."""

    isLeaf = True

    def __init__(self, clock: Clock, statuses: list[int] | None = None) -> None:
        super().__init__()
        self.clock, self.statuses = clock, list(statuses or [])
        self.got: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.hang = False
        self.redirect = False
        self.slow_body = False
        self.gets = 0

    def render_GET(self, request: Request) -> bytes:
        self.gets += 1  # where a followed redirect would land
        return b"ok"

    def render_POST(self, request: Request) -> bytes | int:
        assert request.content is not None
        raw = request.content.read()
        header = request.getHeader("X-Linkgw-Signature") or ""
        if not verify(SECRET.encode(), header, raw, self.clock.seconds()):
            self.bad_signatures += 1
            request.setResponseCode(401)
            return b""
        if self.hang:
            return NOT_DONE_YET
        if self.redirect:
            request.setResponseCode(303)
            request.setHeader("Location", "/elsewhere")
            return b""
        if self.slow_body:  # headers, a first byte, then nothing more
            request.setResponseCode(200)
            request.write(b"{")
            return NOT_DONE_YET
        status = self.statuses.pop(0) if self.statuses else 200
        request.setResponseCode(status)
        if status < 300:
            self.got.append(json.loads(raw))
        return b""


class Rig:
    def __init__(self, entries: list[Entry], statuses: list[int] | None = None,
                 config: PushConfig = CONFIG) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.outbox = MemoryOutbox(entries, self.clock.seconds)
        self.receiver = Receiver(self.clock, statuses)
        self.stub = StubTreq(self.receiver)
        self.pusher = Pusher(self.outbox, make_post(self.clock, config, self.stub), self.clock,
                             config, "gw1", null_log(), lease_ttl=6.0)

    def run(self, seconds: float, step: float = 0.1) -> None:
        """Advance the fake clock, letting the stub answer as it goes."""
        for _ in range(int(seconds / step)):
            self.stub.flush()
            self.clock.advance(step)
        self.stub.flush()

    def ids(self) -> list[str]:
        return [g["id"] for g in self.receiver.got]


def test_events_go_out_in_order_signed_and_leave_the_outbox_once_answered() -> None:
    rig = Rig([entry(1), entry(2, "b2"), entry(3)])
    rig.pusher.start()
    rig.run(1)
    assert rig.ids() == ["c1", "c2", "c3"]
    assert rig.receiver.bad_signatures == 0
    assert rig.outbox.entries == [] and rig.pusher.delivered == 3
    assert rig.pusher.holding and rig.outbox.lease_owner == "gw1"


def test_a_500_is_retried_with_backoff_and_nothing_overtakes_it() -> None:
    """The head entry fails three times (1 s, 2 s, 4 s apart); the one behind it waits."""
    rig = Rig([entry(1), entry(2)], statuses=[500, 500, 503])
    rig.pusher.start()
    rig.run(0.5)
    assert rig.ids() == [] and rig.pusher.failures == 1
    rig.run(1 + 2)
    assert rig.ids() == [] and rig.pusher.failures == 3
    assert rig.pusher.last_error == "answered 503"
    rig.run(4.2)
    assert rig.ids() == ["c1", "c2"] and rig.pusher.failures == 0
    assert rig.pusher.failed == 3


def test_a_receiver_that_hangs_times_out_and_is_tried_again() -> None:
    rig = Rig([entry(1)])
    rig.receiver.hang = True
    rig.pusher.start()
    rig.run(CONFIG.timeout + 0.5)
    assert rig.pusher.failures == 1 and "Cancelled" in rig.pusher.last_error
    rig.receiver.hang = False
    rig.run(2)
    assert rig.ids() == ["c1"]


def test_too_old_or_unpushable_entries_go_to_the_dead_letters_and_the_rest_flows() -> None:
    """An entry older than ``dead_after`` is tried first (this pusher may have been the
    one that was down); failed, it is given up on with the receiver's answer."""
    old = entry(1, at_ms=int((T0 - 3601) * 1000))
    broken = Entry(f"{int(T0 * 1000)}-2", {b"record": bridge_record("b").encode(), b"id": b"c2",
                                           b"event": b"x", b"fields": b"\xff"})
    rig = Rig([old, broken, entry(3)], statuses=[500])
    rig.pusher.start()
    rig.run(2)
    assert rig.ids() == ["c3"]
    assert [(e.outbox_id, why) for e, why, _ in rig.outbox.dead_letters] == [
        (old.outbox_id, "undelivered for 3602 s: answered 500"),  # retried 1 s later
        (broken.outbox_id, "not pushable: field 'fields' is not UTF-8 (byte 0)")]
    assert rig.pusher.dead == 2


def test_an_old_entry_is_delivered_if_the_receiver_takes_it() -> None:
    """A pusher back after a long outage of its own loses nothing old."""
    rig = Rig([entry(1, at_ms=int((T0 - 86400) * 1000))])
    rig.pusher.start()
    rig.run(1)
    assert rig.ids() == ["c1"] and rig.outbox.dead_letters == []


def test_another_gateway_holds_the_lease_so_this_one_waits() -> None:
    rig = Rig([entry(1)])
    rig.outbox.lease_owner, rig.outbox.lease_until = "gw2", T0 + 1000
    rig.pusher.start()
    rig.run(5)
    assert rig.ids() == [] and not rig.pusher.holding
    rig.outbox.lease_owner = ""  # gw2's lease lapsed
    rig.run(4)
    assert rig.ids() == ["c1"] and rig.pusher.holding


def test_redis_down_loses_nothing() -> None:
    rig = Rig([entry(1)])
    rig.outbox.down = True
    rig.pusher.start()
    rig.run(3)
    assert rig.ids() == [] and "Redis is down" in rig.pusher.last_error
    rig.outbox.down = False
    rig.run(2)
    assert rig.ids() == ["c1"] and rig.outbox.entries == []


@given(st.binary(max_size=500), st.binary(min_size=1, max_size=40))
def test_the_example_receiver_agrees_with_the_signer(raw: bytes, key: bytes) -> None:
    """The README's receiver (gateway/lab/receiver.py, standard library only) accepts
    what the gateway signs, and refuses the same header on a body changed by one byte."""
    from gateway.lab.receiver import signature_ok

    header = signature(key, 1796240000, raw)
    assert signature_ok(key, header, raw, 1796240000 + 10)
    assert verify(key, header, raw, 1796240000 + 10)
    tampered = raw[:-1] + bytes([(raw[-1] + 1) % 256]) if raw else b"x"
    assert not signature_ok(key, header, tampered, 1796240000 + 10)
    assert not signature_ok(key, header, raw, 1796240000 + 400)


def test_a_redirect_is_not_a_delivery() -> None:
    """A 303 would turn the POST into a GET elsewhere whose 200 looked like delivery:
    redirects are not followed, and a 3xx is a failure like any non-2xx."""
    rig = Rig([entry(1)])
    rig.receiver.redirect = True
    rig.pusher.start()
    rig.run(0.5)
    assert rig.ids() == [] and rig.receiver.gets == 0
    assert rig.pusher.last_error == "answered 303" and rig.outbox.entries == [entry(1)]


def test_an_answer_whose_body_never_ends_times_out() -> None:
    """``push.timeout`` covers the whole exchange, the answer's body included."""
    rig = Rig([entry(1)])
    rig.receiver.slow_body = True
    rig.pusher.start()
    rig.run(CONFIG.timeout + 0.5)
    assert rig.pusher.failures == 1 and "TimeoutError" in rig.pusher.last_error
    assert rig.pusher.delivered == 0 and rig.outbox.entries == [entry(1)]


def test_content_the_receiver_refuses_is_given_up_after_three_tries_but_401_is_not() -> None:
    """400/413/422 say the event itself is refused: three tries, then a dead letter, so
    it does not hold every later event back for a day. A 401 (a wrong secret) is
    retried: config fixes it."""
    rig = Rig([entry(1), entry(2)], statuses=[413, 413, 413])
    rig.pusher.start()
    rig.run(1 + 2 + 4 + 0.5)  # three tries 1 s and 2 s apart; the fourth look gives up
    assert [(e.outbox_id, why) for e, why, _ in rig.outbox.dead_letters] == [
        (entry(1).outbox_id, "refused by the receiver: answered 413")]
    assert rig.ids() == ["c2"]
    wrong = Rig([entry(1)], config=replace(CONFIG, secret="not-the-receivers-secret"))
    wrong.pusher.start()
    wrong.run(1 + 2 + 4 + 8 + 8)
    assert wrong.outbox.dead_letters == [] and wrong.pusher.failures == 5
    assert wrong.pusher.last_error == "answered 401"


def test_the_lease_is_kept_through_a_long_backoff() -> None:
    """Backoff (8 s) longer than the lease (6 s): the pusher renews it meanwhile, so a
    second gateway never takes over while the first still retries its head event."""
    rig = Rig([entry(1)], statuses=[500] * 4)
    rig.pusher.start()
    rig.run(1 + 2 + 4 + 3)  # inside the 8 s wait after the fourth failure
    other = rig.outbox.take_lease("gw2", 6.0)
    assert other.result is False and rig.outbox.lease_owner == "gw1"
    rig.run(6)
    assert rig.ids() == ["c1"]


def test_a_new_head_starts_its_own_count_of_failures() -> None:
    """Failures of an earlier head (dead-lettered) never count against the next one:
    an old entry is tried before it is given up on."""
    old = entry(2, at_ms=int((T0 - 7200) * 1000))
    rig = Rig([entry(1, fields="[1]"), old])  # the first is not pushable
    rig.pusher.start()
    rig.run(1)
    assert rig.ids() == ["c2"] and len(rig.outbox.dead_letters) == 1
