"""The Redis bridge store.

Key layout: :mod:`gateway.schema`. One change is applied by one Lua script, so the
hash, the stream entry, the chain, the indexes and the change's id in the record's
"applied" set land together or not at all; a change whose id is already in that set is
skipped (the set expires ``dedup_days`` after the record's last change). Redis counts
the record's ``seq``. Once a record's state is ``ended`` its ``state`` and ``outcome``
stay as they are.

With ``min_replicas`` > 0 (Redis Sentinel sites) a change counts as written only once
that many replicas have it (``WAIT``, on the same connection as the script): a master
that dies before replicating cannot take an acknowledged change with it, and the change,
tried again on the new master, is applied there once.

redis-py's asyncio client runs on Twisted's asyncio reactor; :meth:`RedisStore.apply`
turns its coroutine into a Deferred.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis
from twisted.internet import defer

from gateway.bridge.change import Change, GuardFailed, feed_entry_of
from gateway.schema import SCHEMA_VERSION, Keys

APPLY_CHANGE = """
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return 0 end
for _, g in ipairs(cjson.decode(ARGV[10])) do
  local v = redis.call('HGET', KEYS[1], g[1]) or ''
  local ok = false
  for i = 2, #g do if g[i] == v then ok = true end end
  if not ok then return -1 end
end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[9]))
local fields = cjson.decode(ARGV[2])
local created = redis.call('EXISTS', KEYS[1]) == 0
local ended = redis.call('HGET', KEYS[1], 'state') == 'ended'
for k, v in pairs(fields) do
  if not (ended and (k == 'state' or k == 'outcome')) then redis.call('HSET', KEYS[1], k, v) end
end
if created then redis.call('HSET', KEYS[1], 'schema', ARGV[12]) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local prev = redis.call('GET', KEYS[3]) or ''
local hashed = {ARGV[5], tostring(seq), ARGV[1], ARGV[6], ARGV[7], ARGV[8], ARGV[2]}
local hash = redis.sha1hex(prev .. '\\n' .. table.concat(hashed, '\\n'))
redis.call('SET', KEYS[3], hash)
local function xadd(key, entry)
  local args = {key}
  if tonumber(ARGV[3]) > 0 then args = {key, 'MAXLEN', '~', ARGV[3]} end
  table.insert(args, '*')
  for _, v in ipairs(entry) do table.insert(args, v) end
  return redis.call('XADD', unpack(args))
end
xadd(KEYS[2], {'record', ARGV[5], 'seq', tostring(seq), 'id', ARGV[1], 'event', ARGV[6],
  'at', ARGV[7], 'data', ARGV[8], 'fields', ARGV[2], 'prev', prev, 'hash', hash,
  'schema', ARGV[12]})
if ARGV[11] ~= '' then
  xadd(KEYS[5], {'record', ARGV[5], 'id', ARGV[1], 'event', ARGV[6], 'at', ARGV[7],
    'data', ARGV[8], 'fields', ARGV[11], 'schema', ARGV[12]})
end
local indexes = cjson.decode(ARGV[4])
for _, ix in ipairs(indexes) do
  if tonumber(ix[3]) < 0 then redis.call('ZREM', ix[1], ix[2])
  else redis.call('ZADD', ix[1], ix[3], ix[2]) end
end
return 1
"""

DEDUP_DAYS = 35


class NotReplicated(ConnectionError):
    """Fewer replicas than required took the change in time: it is not yet safe."""


def script_call(keys: Keys, change: Change, events_maxlen: int,
                dedup_days: int = DEDUP_DAYS) -> tuple[list[str], list[object]]:
    """KEYS and ARGV of APPLY_CHANGE for one change."""
    indexes = [[keys.index(ix.name), ix.member, ix.score] for ix in change.indexes]
    redis_keys = [keys.record(change.record), keys.events, keys.chain(change.day),
                  keys.applied(change.record), keys.feed(change.feed or "none")]
    args: list[object] = [
        change.id, change.fields_json(), events_maxlen,
        json.dumps(indexes, ensure_ascii=False), change.record, change.event,
        repr(change.at), change.data_json(), dedup_days * 86400, change.guard_json(),
        feed_entry_of(change)["fields"] if change.feed else "", str(SCHEMA_VERSION),
    ]
    return redis_keys, args


class RedisStore:
    """``loop`` is the asyncio loop under Twisted's reactor (``reactor._asyncioEventloop``):
    named, because Python 3.14 no longer hands out a loop that is not running."""

    def __init__(self, redis: Redis, loop: asyncio.AbstractEventLoop, prefix: str = "linkgw",
                 events_maxlen: int = 0, min_replicas: int = 0,
                 replica_timeout_ms: int = 1000) -> None:
        self.redis = redis
        self.loop = loop
        self.keys = Keys(prefix)
        self.events_maxlen = events_maxlen
        self.min_replicas = min_replicas
        self.replica_timeout_ms = replica_timeout_ms
        self._script: Any = redis.register_script(APPLY_CHANGE)

    def apply(self, change: Change) -> defer.Deferred[bool]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._apply(change),
                                                               loop=self.loop))

    def apply_many(self, changes: list[Change]) -> defer.Deferred[list[int]]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._apply_many(changes),
                                                               loop=self.loop))

    async def _apply_many(self, changes: list[Change]) -> list[int]:
        """One pipeline, in order, on one connection (so WAIT counts all of them)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for change in changes:
                keys, args = script_call(self.keys, change, self.events_maxlen)
                await self._script(keys=keys, args=args, client=pipe)
            if self.min_replicas:
                pipe.execute_command("WAIT", self.min_replicas, self.replica_timeout_ms)
            answers = await pipe.execute()
        if self.min_replicas:
            replicas = answers.pop()
            if int(replicas) < self.min_replicas:
                raise NotReplicated(f"{len(changes)} changes reached {replicas} of "
                                    f"{self.min_replicas} replicas")
        return [int(a) for a in answers]

    async def _apply(self, change: Change) -> bool:
        keys, args = script_call(self.keys, change, self.events_maxlen)
        if not self.min_replicas:
            return _applied(change, await self._script(keys=keys, args=args))
        # WAIT counts what its own connection wrote: both on one connection, taken from
        # the pool for this change only (after a failover it is a new master's)
        async with self.redis.client() as conn:
            applied = await self._script(keys=keys, args=args, client=conn)
            replicas = await conn.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", self.min_replicas, self.replica_timeout_ms)
        if int(replicas) < self.min_replicas:
            raise NotReplicated(f"change {change.id} reached {replicas} of "
                                f"{self.min_replicas} replicas")
        return _applied(change, applied)


def _applied(change: Change, answer: Any) -> bool:
    """The script's answer: 1 applied, 0 applied before, -1 its guard refused it."""
    if int(answer) < 0:
        raise GuardFailed(change.id)
    return bool(int(answer))


def apply_sync(client: Any, prefix: str, change: Change, events_maxlen: int = 0,
               min_replicas: int = 0, replica_timeout_ms: int = 1000) -> bool:
    """The same change through a blocking client (the API's thread, the CLI, process
    mode's writer, tests); with ``min_replicas``, confirmed as :class:`RedisStore` does."""
    keys, args = script_call(Keys(prefix), change, events_maxlen)
    script = client.register_script(APPLY_CHANGE)
    if not min_replicas:
        return _applied(change, script(keys=keys, args=args))
    pipe = client.pipeline(transaction=False)
    script(keys=keys, args=args, client=pipe)
    pipe.execute_command("WAIT", min_replicas, replica_timeout_ms)
    applied, replicas = pipe.execute()
    if int(replicas) < min_replicas:
        raise NotReplicated(f"change {change.id} reached {replicas} of {min_replicas} "
                            "replicas")
    return _applied(change, applied)
