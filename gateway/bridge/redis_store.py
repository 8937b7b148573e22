"""The Redis bridge store.

Key layout (``<p>`` is the configured prefix, ``linkgw`` by default):

- ``<p>:bridge:<bridge_id>``  hash: the bridge record (see README)
- ``<p>:call:<uniqueid>``     hash: a citizen call registered on reaching 110
- ``<p>:events``              stream: one entry per change (record, seq, event, at, data)
- ``<p>:idx:<name>:<value>``  sorted sets: bridge ids by caller, seat, day … scored by time

One change is applied by one Lua script, so the hash, the stream entry and the indexes
land together or not at all, and a change whose ``seq`` is not newer is skipped.

redis-py's asyncio client runs on Twisted's asyncio reactor; :meth:`RedisStore.apply`
turns its coroutine into a Deferred.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis
from twisted.internet import defer

from gateway.bridge.store import Change

APPLY_CHANGE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local seq = tonumber(ARGV[1])
if current >= seq then return 0 end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
local entry = cjson.decode(ARGV[3])
local args = {KEYS[2], 'MAXLEN', '~', ARGV[4], '*'}
for _, kv in ipairs(entry) do table.insert(args, kv[1]); table.insert(args, kv[2]) end
redis.call('XADD', unpack(args))
local indexes = cjson.decode(ARGV[5])
for _, ix in ipairs(indexes) do redis.call('ZADD', ix[1], ix[3], ix[2]) end
return 1
"""


class RedisStore:
    def __init__(self, redis: Redis, prefix: str = "linkgw", events_maxlen: int = 1_000_000):
        self.redis = redis
        self.prefix = prefix
        self.events_maxlen = events_maxlen
        self._script: Any = redis.register_script(APPLY_CHANGE)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def apply(self, change: Change) -> defer.Deferred[bool]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._apply(change)))

    async def _apply(self, change: Change) -> bool:
        entry = [[k, v] for k, v in change.event_entry().items()]
        indexes = [[self.key(f"idx:{ix.name}"), ix.member, ix.score] for ix in change.indexes]
        result = await self._script(
            keys=[self.key(change.record), self.key("events")],
            args=[
                change.seq,
                json.dumps(dict(change.fields), ensure_ascii=False),
                json.dumps(entry, ensure_ascii=False),
                self.events_maxlen,
                json.dumps(indexes, ensure_ascii=False),
            ],
        )
        return bool(result)
