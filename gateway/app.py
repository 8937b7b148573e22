"""The composition root of the transfer feature: one place builds its parts from the
config, for the gateway service (:mod:`gateway.service`) and for process mode's follower
(:mod:`gateway.process.follower`) alike.

Addresses are Twisted endpoint strings; the Redis clients come from
:mod:`gateway.bridge.connect` (one URL or Sentinel).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString

from gateway.ami.client import AmiClient
from gateway.bridge.connect import async_client
from gateway.bridge.log import BridgeLog
from gateway.bridge.redis_store import RedisStore
from gateway.bridge.spool import Spool
from gateway.catalogue import load_categories
from gateway.config import Config
from gateway.schema import Keys
from gateway.transfer.cluster import Cluster
from gateway.transfer.leases import Leases
from gateway.transfer.recovery import Recovery
from gateway.transfer.services import Meter, TransferService


@dataclass
class TransferParts:
    redis: Redis
    bridge_log: BridgeLog
    ami: AmiClient
    leases: Leases
    service: TransferService
    recovery: Recovery
    cluster: Cluster


def instance_name(config: Config) -> str:
    """This gateway's name among several: the config's, else the host name."""
    return config.cluster.instance or socket.gethostname()


def build_transfer(config: Config, reactor: Any, log: Any, name: str,
                   autostart: bool = True, instance: str = "",
                   meter: Meter | None = None) -> TransferParts:
    """Every part of the transfer feature, wired; nothing is started here."""
    loop = reactor._asyncioEventloop
    redis = async_client(config.redis)
    store = RedisStore(redis, loop, config.redis.prefix, config.redis.events_maxlen,
                       config.redis.min_replicas, int(config.redis.replica_timeout * 1000))
    leases = Leases(redis, loop, Keys(config.redis.prefix), name, config.cluster.lease_ttl,
                    log.bind(part="cluster"), instance)
    bridge_log = BridgeLog(store, clock=reactor, log=log.bind(part="bridge_log"),
                           retry_delay=config.redis.retry_delay,
                           spool=Spool(Path(config.redis.spool_dir), leases.instance,
                                       log.bind(part="spool")),
                           autostart=autostart)
    ami = AmiClient(clientFromString(reactor, config.ami.endpoint), config.ami.username,
                    config.ami.secret, clock=reactor, log=log.bind(part="ami"),
                    auth=config.ami.auth)
    service = TransferService(ami, bridge_log, config.transfer, clock=reactor,
                              log=log.bind(part="transfer"),
                              catalogue=load_categories(Path(config.transfer.categories)),
                              ownership=leases, meter=meter,
                              feedback_hours=config.tickets.feedback_hours,
                              ticket_pattern=config.tickets.pattern)
    recovery = Recovery(service, log.bind(part="recovery"))
    cluster = Cluster(service, recovery, leases, bridge_log, reactor,
                      config.cluster.sweep_interval, log.bind(part="cluster"),
                      config.cluster.stale_after)
    ami.on_login.append(lambda: defer.ensureDeferred(cluster.resync()))
    return TransferParts(redis, bridge_log, ami, leases, service, recovery, cluster)
