"""Leases in Redis: which gateway owns which live bridge (see :mod:`gateway.transfer.cluster`
for how they are used). Each change of a lease is one Lua script, so two gateways never
both hold one."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, cast

from redis.asyncio import Redis
from twisted.internet import defer

from gateway.schema import IDX_LIVE, Keys
from gateway.transfer.stepper import Ownership

RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2])
  elseif not v then redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else table.insert(lost, i) end
end
return lost
"""
TAKE = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] and string.sub(v, 1, #ARGV[3]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_instance(name: str) -> str:
    """One life of a gateway (or follower) called ``name``."""
    return f"{name}/{secrets.token_hex(4)}"


class Leases(Ownership):
    def __init__(self, redis: Redis, loop: asyncio.AbstractEventLoop, keys: Keys,
                 name: str, ttl: float, log: Any, instance: str = "") -> None:
        self.redis, self.loop, self.keys, self.log = redis, loop, keys, log
        self.name = name
        self.instance = instance or new_instance(name)
        self.ttl_ms = int(ttl * 1000)
        self.owned: set[str] = set()
        self._renew: Any = redis.register_script(RENEW)
        self._take: Any = redis.register_script(TAKE)
        self._release: Any = redis.register_script(RELEASE)
        self._down = False

    def _run(self, coro: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(coro, loop=self.loop))

    def mine(self, owner: str) -> bool:
        """An instance of this gateway's name (this life or an earlier one)."""
        return owner.startswith(f"{self.name}/")

    def claim(self, bridge_id: str) -> None:
        self.owned.add(bridge_id)
        self._run(self._renew(keys=[self.keys.lease(bridge_id)],
                              args=[self.instance, self.ttl_ms])).addErrback(self._failed)

    def release(self, bridge_id: str) -> None:
        self.owned.discard(bridge_id)
        self._run(self._release(keys=[self.keys.lease(bridge_id)],
                                args=[self.instance])).addErrback(self._failed)

    def _failed(self, failure: Any) -> None:
        if not self._down:
            self._down = True
            self.log.warning("lease.redis_unavailable", error=failure.getErrorMessage())

    # Each public method runs its Redis work as an asyncio task (redis-py's client needs
    # one) and hands back a Deferred for the reactor's side.
    def renew(self) -> defer.Deferred[list[str]]:
        """Renew every lease this process holds; the bridges whose lease another has."""
        return self._run(self._renew_all())

    def orphans(self, asterisk: str) -> defer.Deferred[list[dict[str, str]]]:
        """Live bridges on ``asterisk`` that nobody (alive) owns."""
        return self._run(self._orphans(asterisk))

    def unserved(self, asterisk: str, before: float) -> defer.Deferred[list[dict[str, str]]]:
        """Live bridges of other Asterisks, without a lease, requested before ``before``."""
        return self._run(self._unserved(asterisk, before))

    def take(self, bridge_id: str) -> defer.Deferred[bool]:
        return self._run(self._take_one(bridge_id))

    async def _renew_all(self) -> list[str]:
        ids = sorted(self.owned)
        if not ids:
            return []
        lost_at = await self._renew(keys=[self.keys.lease(i) for i in ids],
                                    args=[self.instance, self.ttl_ms])
        self._down = False
        lost = [ids[int(n) - 1] for n in lost_at]
        self.owned.difference_update(lost)
        return lost

    async def _orphans(self, asterisk: str) -> list[dict[str, str]]:
        return [r for r in await self._free(max_score=None)
                if r.get("asterisk", "") in ("", asterisk)]

    async def _unserved(self, asterisk: str, before: float) -> list[dict[str, str]]:
        return [r for r in await self._free(max_score=before)
                if r.get("asterisk", "") not in ("", asterisk)]

    async def _free(self, max_score: float | None) -> list[dict[str, str]]:
        """Live records nobody alive holds a lease of (``max_score``: opened before)."""
        index = self.keys.index(IDX_LIVE)
        raw_ids = await (self.redis.zrange(index, 0, -1) if max_score is None else
                         self.redis.zrangebyscore(index, "-inf", max_score))
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids]
        ids = [i for i in ids if i not in self.owned]
        if not ids:
            return []
        leases = cast(list[bytes | None],
                      await self.redis.mget([self.keys.lease(i) for i in ids]))
        mine = f"{self.name}/".encode()
        free = [i for i, held in zip(ids, leases, strict=True)
                if held is None or (held.startswith(mine) and held != self.instance.encode())]
        out = []
        for bridge_id in free:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.bridge(bridge_id)))
            record = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
            if "bridge_id" not in record or (record.get("state") == "ended"
                                             and "citizen_hangup_at" in record):
                await self.redis.zrem(index, bridge_id)  # stale entry
                continue
            out.append(record)
        return out

    async def _take_one(self, bridge_id: str) -> bool:
        taken = await self._take(keys=[self.keys.lease(bridge_id)],
                                 args=[self.instance, self.ttl_ms, f"{self.name}/"])
        if int(taken):
            self.owned.add(bridge_id)
        return bool(int(taken))
