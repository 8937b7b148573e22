"""The Redis bridge store.

Key layout (``<p>`` is the configured prefix, ``linkgw`` by default):

- ``<p>:bridge:<bridge_id>``, ``<p>:call:<uniqueid>``, ``<p>:callback:<bridge_id>``,
  ``<p>:ticket:<bridge_id>``  hashes: the records (see README)
- ``<p>:events``              stream: one entry per change, hash-chained per UTC day
- ``<p>:chain:<YYYY-MM-DD>``  the last hash of that day's chain
- ``<p>:idx:<name>:<value>``  sorted sets of ids, scored by time

One change is applied by one Lua script, so the hash, the stream entry, the chain and
the indexes land together or not at all; a change whose ``seq`` is not newer is skipped.

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
if seq == 0 then seq = current + 1 end
if current >= seq then return 0 end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'seq', seq)
local prev = redis.call('GET', KEYS[3]) or ''
local hashed = {ARGV[6], tostring(seq), ARGV[7], ARGV[8], ARGV[9], ARGV[2]}
local hash = redis.sha1hex(prev .. '\\n' .. table.concat(hashed, '\\n'))
redis.call('SET', KEYS[3], hash)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
  'record', ARGV[6], 'seq', tostring(seq), 'event', ARGV[7], 'at', ARGV[8],
  'data', ARGV[9], 'fields', ARGV[2], 'prev', prev, 'hash', hash)
local indexes = cjson.decode(ARGV[5])
for _, ix in ipairs(indexes) do
  if tonumber(ix[3]) < 0 then redis.call('ZREM', ix[1], ix[2])
  else redis.call('ZADD', ix[1], ix[3], ix[2]) end
end
return 1
"""


def script_call(prefix: str, change: Change, events_maxlen: int
                ) -> tuple[list[str], list[object]]:
    """KEYS and ARGV of APPLY_CHANGE for one change."""
    def key(name: str) -> str:
        return f"{prefix}:{name}"

    indexes = [[key(f"idx:{ix.name}"), ix.member, ix.score] for ix in change.indexes]
    keys = [key(change.record), key("events"), key(f"chain:{change.day}")]
    args: list[object] = [
        change.seq, change.fields_json(), "", events_maxlen,
        json.dumps(indexes, ensure_ascii=False), change.record, change.event,
        repr(change.at), change.data_json(),
    ]
    return keys, args


class RedisStore:
    """``loop`` is the asyncio loop under Twisted's reactor (``reactor._asyncioEventloop``):
    named, because Python 3.14 no longer hands out a loop that is not running."""

    def __init__(self, redis: Redis, loop: asyncio.AbstractEventLoop, prefix: str = "linkgw",
                 events_maxlen: int = 1_000_000):
        self.redis = redis
        self.loop = loop
        self.prefix = prefix
        self.events_maxlen = events_maxlen
        self._script: Any = redis.register_script(APPLY_CHANGE)

    def apply(self, change: Change) -> defer.Deferred[bool]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._apply(change),
                                                               loop=self.loop))

    async def _apply(self, change: Change) -> bool:
        keys, args = script_call(self.prefix, change, self.events_maxlen)
        return bool(await self._script(keys=keys, args=args))


def apply_sync(client: Any, prefix: str, change: Change, events_maxlen: int = 1_000_000
               ) -> bool:
    """The same change through a blocking client (the API's thread, the CLI, tests)."""
    keys, args = script_call(prefix, change, events_maxlen)
    return bool(int(client.register_script(APPLY_CHANGE)(keys=keys, args=args)))
