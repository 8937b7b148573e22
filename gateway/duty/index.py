"""The duty phone's one write outside the record's guarded changes (lean: redis and the
key names only, for process mode's duty call)."""

from __future__ import annotations

import redis

from gateway.records.errors import Unavailable
from gateway.schema import IDX_DUTY_DUE, Keys


def postpone_ring(client: redis.Redis, prefix: str, ticket: str, until: float) -> None:
    """The duty phone was answered for this order: its next ring waits until ``until``
    (``ZADD XX``: only while it still waits; an accepted order stays off)."""
    try:
        client.zadd(Keys(prefix).index(IDX_DUTY_DUE), {ticket: until}, xx=True)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis: {exc}") from exc
