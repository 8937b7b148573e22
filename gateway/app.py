"""The composition root: one place builds the parts from the config.

- :func:`build_transfer`: the transfer feature, for the gateway service
  (:mod:`gateway.service`) and for process mode's follower (:mod:`gateway.process.follower`);
- :func:`build_records`: the record desks (tickets, work orders) and the queries, for the
  service's API and the CLI; the desks write with the durability of transfer changes
  (``redis.min_replicas``: done only once replicas have it);
- :func:`build_retention`: the operator's retention jobs, as the maintenance user;
- :func:`load_catalogue`: the item catalogue the config names.

Process mode's AGI program builds its own small desk (:mod:`gateway.process.desk`): it
must start without Twisted or an asyncio Redis client, which this module imports.

Addresses are Twisted endpoint strings; the Redis clients come from
:mod:`gateway.bridge.connect` (one URL or Sentinel).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
from redis.asyncio import Redis
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString

from gateway.ami.client import AmiClient
from gateway.bridge.connect import async_client, maintenance_redis, sync_client
from gateway.bridge.log import BridgeLog
from gateway.bridge.redis_store import RedisStore
from gateway.bridge.spool import Spool
from gateway.catalogue import Catalogue, load_for
from gateway.config import Config, retention_groups
from gateway.records.desk import durability
from gateway.records.queries import Records
from gateway.records.retention import Retention
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk
from gateway.schema import Keys
from gateway.transfer.cluster import Cluster
from gateway.transfer.late import LateCalls
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
                              catalogue=load_catalogue(config),
                              ownership=leases, meter=meter,
                              tickets=config.tickets,
                              ticket_pattern=config.tickets.pattern)
    recovery = Recovery(service, log.bind(part="recovery"))
    late = LateCalls(service.telephony, service.persist, service.arrivals,
                     lambda: bridge_log.pending, log.bind(part="late"))
    cluster = Cluster(service, recovery, leases, bridge_log, reactor,
                      config.cluster.sweep_interval, log.bind(part="cluster"),
                      config.cluster.stale_after, late)
    ami.on_login.append(lambda: defer.ensureDeferred(cluster.resync()))
    return TransferParts(redis, bridge_log, ami, leases, service, recovery, cluster)


def load_catalogue(config: Config) -> Catalogue:
    """The item catalogue (``transfer.categories``); raises ``CategoryError``, also for
    an item handed to a further line the config does not have (a typo would otherwise
    send it to 12345's queue unnoticed)."""
    return load_for(config.transfer)


@dataclass
class RecordParts:
    client: redis.Redis
    desk: TicketDesk
    workorders: WorkOrderDesk
    records: Records


def build_queries(config: Config, client: redis.Redis | None = None) -> Records:
    """The look-ups and figures, on ``client`` (else a new blocking client)."""
    return Records(client if client is not None else sync_client(config.redis),
                   config.redis.prefix, ZoneInfo(config.tickets.time_zone))


def build_records(config: Config, clock: Callable[[], float],
                  catalogue: Catalogue) -> RecordParts:
    """The ticket and work-order desks and the queries, on one blocking client."""
    client = sync_client(config.redis)
    prefix, written_as = config.redis.prefix, durability(config.redis)
    return RecordParts(
        client,
        TicketDesk(client, prefix, config.tickets, catalogue, clock, **written_as,
                   lines=config.transfer.lines),
        WorkOrderDesk(client, prefix, config.tickets, catalogue, clock, **written_as),
        build_queries(config, client))


def build_retention(config: Config, say: Callable[[str], None]) -> Retention:
    """``linkgw retention|export|seal``: as the maintenance user when configured (raises
    ``MaintenanceLogin`` when its password is missing)."""
    return Retention(sync_client(maintenance_redis(config)), config.redis.prefix,
                     Path(config.retention.export_dir), retention_groups(config),
                     config.retention.chain_key.encode(), say)
