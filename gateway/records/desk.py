"""What the records' writers share: a blocking Redis client, the key prefix, the site's
ticket settings, the categories and a clock; reading a record; applying a guarded change
through the bridge log's Lua script."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import redis

from gateway.bridge.redis_store import NotReplicated, apply_sync
from gateway.bridge.store import Change, GuardFailed
from gateway.catalogue import Catalogue
from gateway.config import Line, RedisConfig, TicketConfig
from gateway.deadlines import Deadlines
from gateway.records.errors import Unavailable
from gateway.schema import Keys


@dataclass
class Desk:
    client: redis.Redis
    prefix: str
    config: TicketConfig
    catalogue: Catalogue
    clock: Callable[[], float]
    # as the transfer changes are written (redis.*): on a Sentinel site a change counts
    # only once this many replicas have it, so a failover right after cannot lose it
    min_replicas: int = 0
    replica_timeout_ms: int = 1000
    events_maxlen: int = 0
    lines: tuple[Line, ...] = ()  # further lines (transfer.lines): their own terms

    @property
    def deadlines(self) -> Deadlines:
        """The site's deadlines on its calendar (the catalogue of the moment)."""
        return Deadlines(self.config, self.catalogue)

    def _hash(self, name: str) -> dict[str, str]:
        """A record (``bridge:<id>``, ``ticket:<id>``, ``workorder:<n>``) as a dict."""
        try:
            return cast(dict[str, str], self.client.hgetall(Keys(self.prefix).record(name)))
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc

    def _apply(self, change: Change) -> bool:
        """Apply a change; False when its guard found another writer had been first."""
        try:
            apply_sync(self.client, self.prefix, change, self.events_maxlen,
                       self.min_replicas, self.replica_timeout_ms)
        except GuardFailed:
            return False
        except NotReplicated as exc:  # on the master, not yet safe: the asker tries again
            raise Unavailable(f"Redis: {exc}") from exc
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc
        return True


    def _confirmed(self, record: dict[str, str]) -> dict[str, str]:
        """A change found already made (a retry after a 503, say): on a site that asks
        for replicas it counts as done only once they have it. WAIT covers this
        connection's own writes, so one small write goes first; replication keeps the
        master's order, so a replica that has it has the change too."""
        if not self.min_replicas:
            return record
        try:
            pipe: Any = self.client.pipeline(transaction=False)
            pipe.incr(Keys(self.prefix).record("durable"))
            pipe.execute_command("WAIT", self.min_replicas, self.replica_timeout_ms)
            _, replicas = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}") from exc
        if int(replicas) < self.min_replicas:
            raise Unavailable(f"Redis: reached {replicas} of {self.min_replicas} replicas")
        return record


class Durability(TypedDict):
    min_replicas: int
    replica_timeout_ms: int
    events_maxlen: int


def durability(config: RedisConfig) -> Durability:
    """The keyword arguments that make a desk write as the bridge log does."""
    return {"min_replicas": config.min_replicas,
            "replica_timeout_ms": int(config.replica_timeout * 1000),
            "events_maxlen": config.events_maxlen}
