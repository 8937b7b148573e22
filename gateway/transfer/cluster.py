"""Several gateways on one Asterisk: each live bridge has one owner, by a lease in Redis.

- The gateway that opens a bridge owns it: ``<p>:lease:<bridge id>`` holds its instance
  (``<name>/<boot nonce>``) and expires after ``lease_ttl`` unless renewed; the owner
  renews every ``sweep_interval``.
- Every gateway sweeps: a live bridge (index ``live``) on its own Asterisk whose lease is
  gone (its owner died or was cut off for longer than the lease) is taken with an atomic
  check-and-set and adopted (:class:`gateway.transfer.recovery.Recovery`). A lease held
  by an earlier life of the same instance name (a restart) is taken at once.
- A live bridge of *another* Asterisk whose lease is gone and which was requested more
  than ``stale_after`` ago is closed as ``unknown`` (its Asterisk has no gateway any
  more), so that no record stays live for ever.
- The sweep also takes over the spool files of processes that are gone.
- A gateway that finds its lease taken by another stops running that bridge (it does
  not write it any more).

Redis down: nobody can take a lease, so nobody adopts; owners keep running their bridges
and renew once Redis is back.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, cast

from redis.asyncio import Redis
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from gateway.bridge.log import BridgeLog
from gateway.schema import IDX_LIVE, Keys
from gateway.transfer.recovery import Recovery
from gateway.transfer.registry import following
from gateway.transfer.services import Ownership, TransferService

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


class Cluster:
    """The periodic sweep, and the resync after every AMI login."""

    def __init__(self, service: TransferService, recovery: Recovery, leases: Leases,
                 bridge_log: BridgeLog, clock: IReactorTime, interval: float,
                 log: Any, stale_after: float = 43200.0) -> None:
        self.service, self.recovery, self.leases = service, recovery, leases
        self.bridge_log, self.clock, self.interval, self.log = \
            bridge_log, clock, interval, log
        self._loop: LoopingCall | None = None
        self.stale_after = stale_after
        self._suspects: dict[str, float] = {}  # bridge id → first seen without a lease
        self.adopted = 0
        self.closed_unserved = 0

    def start(self) -> None:
        self._loop = LoopingCall(lambda: defer.ensureDeferred(self.sweep()))
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def resync(self) -> None:
        """After an AMI login (the first, or after a cut): learn the Asterisk's name,
        bring every bridge this gateway runs up to what Asterisk holds, then sweep."""
        service = self.service
        try:
            service.asterisk = await service.effects.system_name() or service.asterisk
            for bridge in service.registry.followed():
                await self.recovery.reconcile(bridge)
        except Exception as exc:
            self.log.error("cluster.resync_failed", error=str(exc),
                           error_type=type(exc).__name__)
        await self.sweep()

    async def sweep(self) -> None:
        """Renew leases, drop bridges another gateway took, adopt orphans."""
        try:
            for bridge_id in await self.leases.renew():
                self._lost(bridge_id)
            if self.service.ami.connected and self.service.asterisk:
                for record in await self._orphans():
                    if await self.leases.take(record["bridge_id"]):
                        if await self.recovery.adopt(record, "owner gone"):
                            self.adopted += 1
            if self.service.asterisk:
                await self._close_unserved()
        except Exception as exc:
            self.log.info("cluster.sweep_skipped", error=str(exc),
                          error_type=type(exc).__name__)
        self.bridge_log.adopt_orphans()

    async def _close_unserved(self) -> None:
        before = self.clock.seconds() - self.stale_after
        for record in await self.leases.unserved(self.service.asterisk, before):
            if await self.leases.take(record["bridge_id"]):
                why = (f"its Asterisk {record.get('asterisk', '')!r} had no gateway for "
                       f"{self.stale_after:.0f} s after the request")
                if self.recovery.close_unserved(record, why):
                    self.closed_unserved += 1

    async def _orphans(self) -> list[dict[str, str]]:
        """Bridges seen without a lease for a whole lease time (an owner whose lease was
        not yet written, say after a Redis outage, renews it within that time)."""
        now = self.clock.seconds()
        found = await self.leases.orphans(self.service.asterisk)
        ids = {r["bridge_id"] for r in found}
        self._suspects = {i: t for i, t in self._suspects.items() if i in ids}
        ready = []
        for record in found:
            first = self._suspects.setdefault(record["bridge_id"], now)
            if now - first >= self.leases.ttl_ms / 1000 or \
                    self.leases.mine(record.get("owner", "")):
                ready.append(record)
        return ready

    def _lost(self, bridge_id: str) -> None:
        bridge = self.service.registry.get(bridge_id)
        if bridge is not None and following(bridge):
            self.log.warning("bridge.lease_lost", bridge_id=bridge_id)
            self.service.registry.remove(bridge)
            self.service.legs.pop(bridge_id, None)
