"""Redis clients from the config: one URL, or Redis Sentinel for a site with failover.

redis-py does the failover (its Sentinel client asks the sentinels for the current
master on every new connection); nothing here replicates anything by hand.
"""

from __future__ import annotations

from typing import cast

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from gateway.config import RedisConfig

TIMEOUT = 2.0  # seconds, for connecting and for each command


def _user(config: RedisConfig) -> str | None:
    """The ACL user (config/redis.acl) when configured; else the URL's, or none."""
    return config.username or None


def _password(config: RedisConfig) -> str | None:
    return config.password or None


def _sentinels(config: RedisConfig) -> list[tuple[str, int]]:
    out = []
    for item in config.sentinels:
        host, _, port = item.rpartition(":")
        out.append((host or item, int(port) if port.isdigit() else 26379))
    return out


def sync_client(config: RedisConfig, decode: bool = True) -> redis.Redis:
    """Text in, text out (decode_responses): for the API, the CLI and the tests.
    ``decode=False``: bytes, for reading what others wrote (the inbound ticket stream),
    where one entry that is not UTF-8 must not fail a whole read."""
    if config.sentinels:
        sentinel = redis.sentinel.Sentinel(_sentinels(config), socket_timeout=TIMEOUT)
        return cast(redis.Redis, sentinel.master_for(
            config.service, decode_responses=decode, socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT, username=_user(config),
            password=_password(config)))
    return redis.Redis.from_url(config.url, decode_responses=decode, socket_timeout=TIMEOUT,
                                socket_connect_timeout=TIMEOUT, username=_user(config),
                                password=_password(config))


def async_client(config: RedisConfig) -> redis.asyncio.Redis:
    """For the bridge log, on the asyncio reactor."""
    if config.sentinels:
        sentinel = redis.asyncio.sentinel.Sentinel(_sentinels(config), socket_timeout=TIMEOUT)
        return cast(redis.asyncio.Redis, sentinel.master_for(
            config.service, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
            username=_user(config), password=_password(config)))
    return redis.asyncio.Redis.from_url(config.url, socket_timeout=TIMEOUT,
                                        socket_connect_timeout=TIMEOUT,
                                        username=_user(config), password=_password(config))
