"""The push's outbox: the feed stream itself, read with a consumer group of its own.

Every change the 12345 system must see is already written to ``<p>:feed:12345`` by the
same Lua step that writes the record, so nothing can be recorded and not queued. The
pusher reads it with the group ``push`` (one consumer, ``pusher``): an entry stays
pending until a 2xx answered it, so a restart, a second gateway taking over or a 12345
outage loses nothing (at least once). Only the holder of ``<p>:push:lease`` reads, so
entries go out one at a time, in the stream's order.

``<p>:push:dead`` holds the entries given up on (too old, or not pushable), with why;
``linkgw outbox retry`` copies them to ``<p>:push:retry``, which the pusher sends first.
A further line's feed (``push.feed: "122"``) has its own: ``<p>:push:122:lease`` and so
on, so that its pusher and 12345's run side by side.
Retention never trims feed entries the ``push`` group has not acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from twisted.internet import defer

from gateway.push.codec import Entry
from gateway.schema import Keys

GROUP = "push"
CONSUMER = "pusher"
DEAD_MAXLEN = 100_000  # dead letters kept (approximately)

#: Take or renew the lease: KEYS[1] lease, ARGV[1] owner, ARGV[2] ttl ms.
_LEASE = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Outbox(Protocol):
    """What the pusher needs of its outbox (Redis; a list in memory for unit tests)."""

    def take_lease(self, owner: str, ttl: float) -> defer.Deferred[bool]: ...

    def next(self) -> defer.Deferred[Entry | None]: ...

    def done(self, entry: Entry) -> defer.Deferred[None]: ...

    def dead(self, entry: Entry, reason: str, tries: int) -> defer.Deferred[None]: ...


def _id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisOutbox:
    """``loop`` is the asyncio loop under Twisted's reactor."""

    def __init__(self, redis: Redis, loop: asyncio.AbstractEventLoop, keys: Keys,
                 feed: str) -> None:
        self.redis, self.loop, self.keys = redis, loop, keys
        self.stream, self.feed = keys.feed(feed), feed
        self._lease: Any = redis.register_script(_LEASE)
        self._group_ready = False

    def _run(self, coro: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(coro, loop=self.loop))

    def take_lease(self, owner: str, ttl: float) -> defer.Deferred[bool]:
        return self._run(self._take_lease(owner, ttl))

    async def _take_lease(self, owner: str, ttl: float) -> bool:
        held = await self._lease(keys=[self.keys.push("lease", self.feed)],
                                 args=[owner, int(ttl * 1000)])
        return bool(held)

    async def _ensure_group(self) -> None:
        """The group starts at the stream's beginning: what was queued before the first
        push (or while the push was off) is pushed too."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def next(self) -> defer.Deferred[Entry | None]:
        return self._run(self._next())

    async def _next(self) -> Entry | None:
        """A dead letter sent again first, then this consumer's pending entry (one a
        crashed pusher had in flight), then the next new one."""
        retry: Any = await self.redis.xrange(self.keys.push("retry", self.feed), count=1)
        if retry:
            rid, fields = retry[0]
            return Entry(f"retry:{_id(rid)}", fields)
        await self._ensure_group()
        for start in ("0", ">"):
            got: Any = await self.redis.xreadgroup(GROUP, CONSUMER, {self.stream: start},
                                                   count=1)
            for _, entries in got or []:
                for sid, fields in entries:
                    if fields:
                        return Entry(_id(sid), fields)
                    # trimmed away while pending: nothing to send
                    await self.redis.xack(self.stream, GROUP, sid)
        return None

    def done(self, entry: Entry) -> defer.Deferred[None]:
        return self._run(self._done(entry))

    async def _done(self, entry: Entry) -> None:
        if entry.outbox_id.startswith("retry:"):
            await self.redis.xdel(self.keys.push("retry", self.feed), entry.outbox_id[6:])
        else:
            await self.redis.xack(self.stream, GROUP, entry.outbox_id)

    def dead(self, entry: Entry, reason: str, tries: int) -> defer.Deferred[None]:
        return self._run(self._dead(entry, reason, tries))

    async def _dead(self, entry: Entry, reason: str, tries: int) -> None:
        fields: dict[Any, Any] = dict(entry.fields)
        fields.update({b"dead_reason": reason[:500].encode("utf-8", "replace"),
                       b"dead_tries": str(tries).encode()})
        # its first place in the outbox: a dead letter sent again and given up on again
        # keeps it (not "retry:…")
        if b"outbox_id" not in fields and "outbox_id" not in fields:
            fields[b"outbox_id"] = entry.outbox_id.encode()
        await self.redis.xadd(self.keys.push("dead", self.feed), fields, maxlen=DEAD_MAXLEN,
                              approximate=True)
        await self._done(entry)


class MemoryOutbox:
    """The outbox as lists, for unit tests: ``entries`` waiting, ``dead`` given up."""

    def __init__(self, entries: list[Entry] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.entries = list(entries or [])
        self.delivered: list[Entry] = []
        self.dead_letters: list[tuple[Entry, str, int]] = []
        self.lease_owner = ""
        self.lease_until = 0.0  # with a clock, the lease lapses as in Redis
        self.clock = clock
        self.down = False  # Redis unreachable

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("Redis is down")

    def take_lease(self, owner: str, ttl: float) -> defer.Deferred[bool]:
        return defer.maybeDeferred(self._take, owner, ttl)

    def _take(self, owner: str, ttl: float) -> bool:
        self._check()
        now = self.clock() if self.clock is not None else 0.0
        if self.clock is not None and now >= self.lease_until:
            self.lease_owner = ""  # lapsed
        if self.lease_owner in ("", owner):
            self.lease_owner, self.lease_until = owner, now + ttl
            return True
        return False

    def next(self) -> defer.Deferred[Entry | None]:
        return defer.maybeDeferred(self._next)

    def _next(self) -> Entry | None:
        self._check()
        return self.entries[0] if self.entries else None

    def done(self, entry: Entry) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._done, entry)

    def _done(self, entry: Entry) -> None:
        self._check()
        self.entries.remove(entry)
        self.delivered.append(entry)

    def dead(self, entry: Entry, reason: str, tries: int) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._dead, entry, reason, tries)

    def _dead(self, entry: Entry, reason: str, tries: int) -> None:
        self._check()
        self.entries.remove(entry)
        self.dead_letters.append((entry, reason, tries))
