"""Redis clients from the config: one URL, or Redis Sentinel for a site with failover.

redis-py does the failover (its Sentinel client asks the sentinels for the current
master on every new connection); nothing here replicates anything by hand.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from gateway.config import Config, RedisConfig

TIMEOUT = 2.0  # seconds, for connecting and for each command


class MaintenanceLogin(ValueError):
    """The maintenance user is configured without its password."""


def maintenance_redis(config: Config) -> RedisConfig:
    """The Redis settings of the operator's jobs (``linkgw retention|export|seal``,
    ``linkgw check-records``): the maintenance user of ``config/redis.acl`` when
    ``retention.redis_username`` names it (they list keys with SCAN, which the gateway's
    user, whose password process-mode programs hold, may not), else the gateway's."""
    if not config.retention.redis_username:
        return config.redis
    if not config.retention.redis_password:
        raise MaintenanceLogin(f"retention.redis_username is {config.retention.redis_username!r}"
                               " but retention.redis_password_env names no variable that is "
                               "set (the maintenance user's password)")
    return replace(config.redis, username=config.retention.redis_username,
                   password=config.retention.redis_password)


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
