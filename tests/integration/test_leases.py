"""Leases on a real Redis: one owner per live bridge, taken over when the owner is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from twisted.internet import defer

from gateway.lab.fakes import null_log
from gateway.lab.services import RedisServer
from gateway.schema import IDX_LIVE, Keys
from gateway.transfer.leases import Leases

KEYS = Keys("lt")


class Rig:
    def __init__(self, server: RedisServer) -> None:
        self.loop = asyncio.new_event_loop()
        self.sync = server.client()
        self.sync.flushdb()
        self.clients: list[Redis] = []
        self.url = server.url

    def leases(self, name: str, ttl: float = 5.0) -> Leases:
        client = Redis.from_url(self.url)
        self.clients.append(client)
        return Leases(client, self.loop, KEYS, name, ttl, null_log())

    def wait(self, d: defer.Deferred[Any]) -> Any:
        return self.loop.run_until_complete(d.asFuture(self.loop))

    def live(self, bridge_id: str, asterisk: str, at: float, state: str = "three_party",
             **fields: str) -> None:
        self.sync.hset(KEYS.bridge(bridge_id), mapping={
            "bridge_id": bridge_id, "asterisk": asterisk, "state": state,
            "citizen_name": "张三\u2028\r\n"})
        for name, value in fields.items():
            self.sync.hset(KEYS.bridge(bridge_id), name, value)
        self.sync.zadd(KEYS.index(IDX_LIVE), {bridge_id: at})

    def close(self) -> None:
        for client in self.clients:
            self.loop.run_until_complete(client.aclose())
        self.loop.close()


@pytest.fixture
def rig(redis_server: RedisServer) -> Iterator[Rig]:
    r = Rig(redis_server)
    yield r
    r.close()


def _settle(rig: Rig) -> None:
    """Let fire-and-forget claims and releases land, and their callbacks run."""
    for _ in range(20):
        for _ in range(3):  # a task's done callbacks run one loop turn after it ends
            rig.loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in asyncio.all_tasks(rig.loop) if not t.done()]
        if not pending:
            return
        rig.loop.run_until_complete(asyncio.wait(pending))


def test_the_owner_holds_the_lease_and_another_gateway_cannot_take_it(rig: Rig) -> None:
    a, b = rig.leases("gw-a"), rig.leases("gw-b")
    a.claim("b1")
    _settle(rig)
    assert rig.sync.get(KEYS.lease("b1")) == a.instance
    assert 0 < rig.sync.pttl(KEYS.lease("b1")) <= 5000
    assert rig.wait(b.take("b1")) is False
    assert rig.wait(a.renew()) == []


def test_a_restarted_gateway_takes_its_earlier_lives_lease_at_once(rig: Rig) -> None:
    before, after = rig.leases("gw-a"), rig.leases("gw-a")
    before.claim("b1")
    _settle(rig)
    assert rig.wait(after.take("b1")) is True
    assert rig.sync.get(KEYS.lease("b1")) == after.instance
    assert rig.wait(before.renew()) == ["b1"]  # the old life learns it lost the bridge
    assert "b1" not in before.owned


def test_a_released_or_expired_lease_can_be_taken(rig: Rig) -> None:
    a, b = rig.leases("gw-a", ttl=0.2), rig.leases("gw-b")
    a.claim("b1")
    a.claim("b2")
    _settle(rig)
    a.release("b1")
    _settle(rig)
    assert rig.sync.get(KEYS.lease("b1")) is None
    assert rig.wait(b.take("b1")) is True
    rig.loop.run_until_complete(asyncio.sleep(0.3))  # the lease's own expiry, in Redis
    assert rig.wait(b.take("b2")) is True


def test_orphans_are_the_live_bridges_of_this_asterisk_without_an_owner(rig: Rig) -> None:
    a, b = rig.leases("gw-a"), rig.leases("gw-b")
    rig.live("owned", "ast1", 1.0)
    rig.live("orphan", "ast1", 2.0)
    rig.live("elsewhere", "ast2", 3.0)
    rig.live("finished", "ast1", 4.0, state="ended", citizen_hangup_at="x")
    # ended into a plain call, the citizen still on the line: still followed
    rig.live("talking", "ast1", 5.0, state="ended")
    rig.live("gone", "ast1", 6.0)
    rig.sync.delete(KEYS.bridge("gone"))  # its record removed (retention, by hand)
    a.claim("owned")
    _settle(rig)
    orphans = rig.wait(b.orphans("ast1"))
    assert [r["bridge_id"] for r in orphans] == ["orphan", "talking"]
    assert rig.sync.zscore(KEYS.index(IDX_LIVE), "gone") is None
    assert orphans[0]["citizen_name"] == "张三\u2028\r\n"
    assert rig.sync.zscore(KEYS.index(IDX_LIVE), "finished") is None  # stale entry dropped


def test_unserved_are_old_live_bridges_of_other_asterisks(rig: Rig) -> None:
    b = rig.leases("gw-b")
    rig.live("old-elsewhere", "ast2", 100.0)
    rig.live("new-elsewhere", "ast2", 900.0)
    rig.live("old-here", "ast1", 100.0)
    assert [r["bridge_id"] for r in rig.wait(b.unserved("ast1", before=500.0))] == \
        ["old-elsewhere"]


def test_redis_down_is_reported_once_and_ownership_is_kept(rig: Rig) -> None:
    nobody = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    lost = Leases(nobody, rig.loop, KEYS, "gw-a", 5.0, null_log())
    lost.claim("b1")
    _settle(rig)
    assert "b1" in lost.owned and lost._down
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1"):
        rig.wait(lost.renew())
