"""One suite, two stores: the in-memory twin and real Redis behave the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import pytest
from redis.asyncio import Redis
from twisted.internet import defer

from gateway.bridge.redis_store import RedisStore
from gateway.bridge.store import HASHED, Change, Index, MemoryStore, chain_hash
from gateway.lab.services import RedisServer


@dataclass
class Harness:
    apply: Callable[[Change], bool]
    record: Callable[[str], dict[str, str]]
    events: Callable[[], list[dict[str, str]]]
    index: Callable[[str], list[str]]


def _result(d: defer.Deferred[bool]) -> bool:
    out: list[bool] = []
    d.addCallback(out.append)
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
        )
        return
    sync = redis_server.client()
    sync.flushdb()
    loop = asyncio.new_event_loop()
    client = Redis.from_url(redis_server.url)
    real = RedisStore(client, loop, prefix="t")
    yield Harness(
        apply=lambda c: loop.run_until_complete(real._apply(c)),
        record=lambda name: dict(sync.hgetall(f"t:{name}")),  # type: ignore[arg-type]
        events=lambda: [e for _, e in cast(list[tuple[str, dict[str, str]]],
                                           sync.xrange("t:events"))],
        index=lambda name: list(sync.zrange(f"t:idx:{name}", 0, -1)),  # type: ignore[arg-type]
    )
    loop.run_until_complete(client.aclose())
    loop.close()


def change(seq: int, **fields: str) -> Change:
    return Change("bridge:b1", seq, f"e{seq}", 1000.0 + seq, fields,
                  (Index("day:2026-11-28", "b1", 1000.0 + seq),), {"state": f"s{seq}"})


def test_change_sets_fields_appends_event_and_indexes(store: Harness) -> None:
    assert store.apply(change(1, state="requested", citizen_name='Zhang "三" \\n'))
    assert store.record("bridge:b1") == {"state": "requested", "seq": "1",
                                         "citizen_name": 'Zhang "三" \\n'}
    fields = json.dumps({"citizen_name": 'Zhang "三" \\n', "state": "requested"},
                        ensure_ascii=False, sort_keys=True)
    content = {"record": "bridge:b1", "seq": "1", "event": "e1", "at": "1001.0",
               "data": json.dumps({"state": "s1"}), "fields": fields}
    assert store.events() == [content | {"prev": "", "hash": chain_hash("", content)}]
    assert store.index("day:2026-11-28") == ["b1"]


def test_events_are_chained_per_day(store: Harness) -> None:
    """Each entry's prev is the hash of the one before it; Lua and Python agree."""
    assert store.apply(change(1, state="a"))
    assert store.apply(change(2, state="b"))
    first, second = store.events()
    assert second["prev"] == first["hash"]
    content = {k: second[k] for k in HASHED}
    assert second["hash"] == chain_hash(first["hash"], content)


def test_seq_zero_takes_the_next_number(store: Harness) -> None:
    """Records with several writers (tickets) let the store number their changes."""
    assert store.apply(Change("ticket:b1", 0, "ticket_attached", 5.0, {"ticket": "1"}))
    assert store.apply(Change("ticket:b1", 0, "ticket_accepted", 6.0, {"status": "a"}))
    assert store.record("ticket:b1")["seq"] == "2"
    assert [e["seq"] for e in store.events()] == ["1", "2"]


def test_negative_score_removes_from_an_index(store: Harness) -> None:
    assert store.apply(Change("ticket:b1", 0, "x", 5.0, {}, (Index("deadline", "b1", 9.0),)))
    assert store.index("deadline") == ["b1"]
    assert store.apply(Change("ticket:b1", 0, "y", 6.0, {}, (Index("deadline", "b1", -1),)))
    assert store.index("deadline") == []


def test_replayed_change_is_skipped(store: Harness) -> None:
    """A change whose seq is not newer changes nothing: replays are harmless."""
    assert store.apply(change(1, state="a"))
    assert store.apply(change(2, state="b"))
    assert not store.apply(change(2, state="b"))
    assert not store.apply(change(1, state="a"))
    assert store.record("bridge:b1")["state"] == "b"
    assert [e["seq"] for e in store.events()] == ["1", "2"]
