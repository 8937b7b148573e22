"""One suite, two stores: the in-memory twin and real Redis behave the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from twisted.internet import defer

from gateway.bridge.redis_store import RedisStore
from gateway.bridge.store import HASHED, Change, GuardFailed, Index, MemoryStore, chain_hash
from gateway.lab.services import RedisServer
from gateway.schema import (
    IDX_DEADLINE,
    Keys,
    bridge_record,
    call_record,
    idx_day,
    idx_ticket,
    ticket_record,
)

KEYS = Keys("t")


@dataclass
class Harness:
    apply: Callable[[Change], bool]
    record: Callable[[str], dict[str, str]]
    events: Callable[[], list[dict[str, str]]]
    index: Callable[[str], list[str]]
    apply_many: Callable[[list[Change]], list[int]]
    feed: Callable[[str], list[dict[str, str]]]


def _result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    failed: list[BaseException] = []
    d.addCallbacks(out.append, lambda f: failed.append(f.value))
    if failed:
        raise failed[0]
    assert out, "the memory store answers synchronously"
    return out[0]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Harness]:
    if request.param == "memory":
        mem = MemoryStore()
        yield Harness(
            apply=lambda c: _result(mem.apply(c)),
            record=lambda name: dict(mem.records.get(name, {})),
            events=lambda: list(mem.events),
            index=lambda name: sorted(mem.indexes.get(name, {}),
                                      key=lambda m: mem.indexes[name][m]),
            apply_many=lambda cs: _result(mem.apply_many(cs)),
            feed=lambda audience: list(mem.feeds.get(audience, [])),
        )
        return
    sync = redis_server.client()
    sync.flushdb()
    loop = asyncio.new_event_loop()
    client = Redis.from_url(redis_server.url)
    real = RedisStore(client, loop, prefix=KEYS.prefix)
    yield Harness(
        apply=lambda c: loop.run_until_complete(real._apply(c)),
        record=lambda name: dict(sync.hgetall(KEYS.record(name))),  # type: ignore[arg-type]
        events=lambda: [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                           sync.xrange(KEYS.events))],
        index=lambda name: list(sync.zrange(KEYS.index(name), 0, -1)),  # type: ignore[arg-type]
        apply_many=lambda cs: loop.run_until_complete(real._apply_many(cs)),
        feed=lambda audience: [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                                  sync.xrange(KEYS.feed(audience)))],
    )
    loop.run_until_complete(client.aclose())
    loop.close()


def change(n: int, **fields: str) -> Change:
    return Change(bridge_record("b1"), f"e{n}", 1000.0 + n, fields,
                  (Index(idx_day("2026-11-28"), "b1", 1000.0 + n),), {"state": f"s{n}"}, id=f"c{n}")


def test_change_sets_fields_appends_event_and_indexes(store: Harness) -> None:
    assert store.apply(change(1, state="requested", citizen_name='Zhang "三" \n\u2028'))
    assert store.record(bridge_record("b1")) == {"state": "requested", "seq": "1", "schema": "1",
                                         "citizen_name": 'Zhang "三" \n\u2028'}
    fields = json.dumps({"citizen_name": 'Zhang "三" \n\u2028', "state": "requested"},
                        ensure_ascii=False, sort_keys=True)
    content = {"record": bridge_record("b1"), "seq": "1", "id": "c1", "event": "e1",
               "at": "1001.0", "data": json.dumps({"state": "s1"}), "fields": fields}
    assert store.events() == [content | {"prev": "", "hash": chain_hash("", content),
                                         "schema": "1"}]
    assert store.index(idx_day("2026-11-28")) == ["b1"]


def test_events_are_chained_per_day(store: Harness) -> None:
    """Each entry's prev is the hash of the one before it; Lua and Python agree."""
    assert store.apply(change(1, state="a"))
    assert store.apply(change(2, state="b"))
    first, second = store.events()
    assert second["prev"] == first["hash"]
    content = {k: second[k] for k in HASHED}
    assert second["hash"] == chain_hash(first["hash"], content)


def test_the_store_counts_a_records_changes_whoever_writes_them(store: Harness) -> None:
    """Two processes write one record, each with ids of its own: seq counts them all."""
    assert store.apply(Change(call_record("u1"), "call_registered", 5.0, {"n": "1"}, id="gw-a:1"))
    assert store.apply(Change(call_record("u1"), "emergency_flagged", 6.0, {"e": "1"}, id="agi:9"))
    # the version that created the record stays; each event carries its writer's
    assert store.record(call_record("u1")) == {"n": "1", "e": "1", "seq": "2", "schema": "1"}
    assert [e["schema"] for e in store.events()] == ["1", "1"]
    assert [e["seq"] for e in store.events()] == ["1", "2"]


def test_negative_score_removes_from_an_index(store: Harness) -> None:
    assert store.apply(Change(ticket_record("b1"), "x", 5.0, {}, (Index(IDX_DEADLINE, "b1", 9.0),)))
    assert store.index(IDX_DEADLINE) == ["b1"]
    assert store.apply(Change(ticket_record("b1"), "y", 6.0, {}, (Index(IDX_DEADLINE, "b1", -1),)))
    assert store.index(IDX_DEADLINE) == []


def test_a_replayed_change_is_skipped_whatever_its_order(store: Harness) -> None:
    """A change whose id was applied changes nothing: replays are harmless."""
    assert store.apply(change(1, state="a"))
    assert store.apply(change(2, state="b"))
    assert not store.apply(change(2, state="b"))
    assert not store.apply(change(1, state="a"))
    assert store.record(bridge_record("b1"))["state"] == "b"
    assert [e["id"] for e in store.events()] == ["c1", "c2"]


def test_an_ended_record_stays_ended(store: Harness) -> None:
    """A late change (a cut-off gateway, a replayed spool) lands on the stream, but does
    not move an ended record's state or outcome; its other fields still land."""
    assert store.apply(change(1, state="ended", outcome="handed_off"))
    assert store.apply(change(2, state="three_party", outcome="x", seat_left_at="t"))
    assert store.record(bridge_record("b1")) == {"state": "ended", "outcome": "handed_off",
                                         "seat_left_at": "t", "seq": "2", "schema": "1"}
    assert len(store.events()) == 2


def test_a_guard_checks_and_writes_in_one_step(store: Harness) -> None:
    """A guarded change applies only while its field is empty (or holds an allowed
    value); refused, nothing of it lands: no field, no event, no index, no id."""
    first = Change(ticket_record("b1"), "ticket_attached", 1000.0, {"ticket": "11111111"},
                   (Index(idx_ticket("11111111"), "b1", 1000.0),), id="t1",
                   guard=(("ticket", ("",)),))
    second = Change(ticket_record("b1"), "ticket_attached", 1001.0, {"ticket": "22222222"},
                    (Index(idx_ticket("22222222"), "b1", 1001.0),), id="t2",
                    guard=(("ticket", ("",)),))
    assert store.apply(first)
    with pytest.raises(GuardFailed):
        store.apply(second)
    assert store.record(ticket_record("b1")) == {"ticket": "11111111", "seq": "1", "schema": "1"}
    assert [e["id"] for e in store.events()] == ["t1"]
    assert store.index(idx_ticket("22222222")) == []
    assert store.apply(first) is False  # a replay of the applied one is still a replay
    moved = Change(ticket_record("b1"), "ticket_accepted", 1002.0, {"status": "accepted"}, id="t3",
                   guard=(("status", ("", "attached")),))
    assert store.apply(moved)
    assert store.record(ticket_record("b1"))["status"] == "accepted"


def test_many_changes_in_one_round_trip_keep_their_order_and_rules(store: Harness) -> None:
    """A batch: applied in order; a change seen before is skipped, a guarded one that
    does not fit is refused; each answer says which; seq counts only what landed."""
    guarded = Change(bridge_record("b1"), "g", 1003.0, {"state": "x"}, id="c3",
                     guard=(("state", ("",)),))
    store.apply(change(1, state="requested"))
    answers = store.apply_many([change(2, state="dialing"), change(1, state="requested"),
                                guarded, change(4, state="three_party")])
    assert answers == [1, 0, -1, 1]
    assert store.record(bridge_record("b1"))["state"] == "three_party"
    assert [e["id"] for e in store.events()] == ["c1", "c2", "c4"]
    assert [e["seq"] for e in store.events()] == ["1", "2", "3"]


def test_a_handed_over_change_reaches_its_lines_feed_once_without_internals(
        store: Harness) -> None:
    name = "李\u2028四\r\n\x85"
    first = Change(bridge_record("b1"), "transfer_requested", 1000.5, {
        "citizen_number": "13800138000", "citizen_name": name, "seat_channel": "PJSIP/s-1",
        "citizen_uniqueid": "u-c", "owner": "gw-a", "direction": "110->12345"},
        data={"state": "requested"}, id="c1", feed="12345")
    assert store.apply(first)
    assert not store.apply(first)  # a replay adds nothing, to the feed either
    assert store.apply(Change(call_record("u-x"), "call_registered", 1001.0, {"number": "1"},
                              id="c2"))
    assert store.feed("12345") == [{
        "record": bridge_record("b1"), "id": "c1", "event": "transfer_requested", "at": "1000.5",
        "data": '{"state": "requested"}',
        "fields": json.dumps({"citizen_name": name, "citizen_number": "13800138000",
                              "direction": "110->12345"}, ensure_ascii=False,
                             sort_keys=True), "schema": "1"}]
    assert store.feed("110") == []
    assert [e["event"] for e in store.events()] == ["transfer_requested", "call_registered"]
