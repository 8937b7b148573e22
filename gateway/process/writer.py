"""Write a process-mode program's changes, or spool them (detached, blocking client).

Each change goes through the same Lua script as the gateway's; if Redis does not take
one, it and every change after it go to a spool file of this process's own, which the
next gateway or follower on this machine takes over (:meth:`Spool.adopt`) and replays.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import redis
import structlog

from gateway import logs
from gateway.bridge.change import Change
from gateway.bridge.connect import sync_client
from gateway.bridge.redis_store import apply_sync
from gateway.bridge.spool import Spool
from gateway.config import Config


def write(config: Config, changes: list[Change]) -> None:
    from gateway.process.logfile import log_path

    logs.configure(config.log.format, config.log.level,
                   stream=open(log_path(config), "a", encoding="utf-8"))
    log = structlog.get_logger("gateway").bind(agi="process", part="writer")
    client = sync_client(config.redis)
    for n, change in enumerate(changes):
        try:
            apply_sync(client, config.redis.prefix, change, config.redis.events_maxlen,
                       config.redis.min_replicas, int(config.redis.replica_timeout * 1000))
        except (redis.RedisError, OSError) as exc:
            spool = Spool(Path(config.redis.spool_dir),
                          f"agi-{os.getpid()}-{secrets.token_hex(3)}", log)
            spool.append(changes[n:])
            log.warning("writer.spooled", changes=len(changes) - n, error=str(exc))
            spool.close()  # unlocked: the next gateway or follower takes it over
            return
    log.info("writer.done", changes=len(changes))
