"""``make_service(config)``: the whole gateway as one Twisted MultiService.

FastAGI listener, AMI client and bridge log, wired to the transfer feature. Addresses are
Twisted endpoint strings from the config.
"""

from __future__ import annotations

from typing import Any

import structlog
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool

from gateway.agi.server import FastAgiFactory
from gateway.app import build_transfer, instance_name
from gateway.bridge.connect import sync_client
from gateway.config import Config
from gateway.records.http import ApiResource, api_site
from gateway.records.inbound import InboundTickets
from gateway.records.queries import Records
from gateway.records.roles import ApiRole
from gateway.records.tickets import TicketDesk
from gateway.schema import Keys
from gateway.transfer.categories import Catalogue
from gateway.transfer.scripts import make_scripts


class _Drain(Service):
    """Stops after the FastAGI sessions that are running have finished (or time out)."""

    def __init__(self, factory: FastAgiFactory, reactor: Any, limit: float) -> None:
        self.factory, self.reactor, self.limit = factory, reactor, limit

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        d = self.factory.drain()
        d.addTimeout(self.limit, self.reactor)
        d.addErrback(lambda _: None)
        return d


class Gateway(MultiService):
    """The running gateway; its parts are attributes for health checks and tests."""

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        log = structlog.get_logger("gateway")
        self.config = config
        parts = build_transfer(config, reactor, log, instance_name(config), autostart=False)
        self.parts = parts
        self.bridge_log = parts.bridge_log
        self.ami = parts.ami
        self.transfers = parts.service
        reactor.callWhenRunning(self.bridge_log.start)
        reactor.callWhenRunning(parts.cluster.start)
        self.agi = FastAgiFactory(
            make_scripts(self.transfers),
            clock=reactor, log=log.bind(part="agi"), allow=frozenset(config.fastagi.allow),
            max_sessions=config.fastagi.max_sessions,
            session_timeout=config.fastagi.session_timeout)
        self.ami.service.setServiceParent(self)
        _Drain(self.agi, reactor, config.fastagi.session_timeout).setServiceParent(self)
        StreamServerEndpointService(serverFromString(reactor, config.fastagi.listen),
                                    self.agi).setServiceParent(self)
        self._records(config, reactor, log, self.transfers.catalogue)

    def _records(self, config: Config, reactor: Any, log: Any, catalogue: Catalogue) -> None:
        """Ticket desk, HTTP API and the inbound ticket stream (blocking Redis, threads)."""
        self.sync_redis = sync_client(config.redis)
        prefix = config.redis.prefix
        self.desk = TicketDesk(self.sync_redis, prefix, config.tickets, catalogue,
                               reactor.seconds)
        self.records = Records(self.sync_redis, prefix)
        # its own client, reading bytes: what the other system wrote is checked entry by
        # entry; the name is stable, so a restart reads its own pending entries first
        self.inbound = InboundTickets(
            sync_client(config.redis, decode=False), self.desk,
            f"{prefix}:{config.tickets.inbound_stream}", f"gw-{instance_name(config)}",
            log.bind(part="inbound"), Keys(prefix).feed("12345"), config.redis.feed_group)
        _Thread(reactor, self.inbound.run, self.inbound.stop).setServiceParent(self)
        if config.http.listen:
            pool = reactor.getThreadPool()
            tokens = {ApiRole.ADMIN: config.http.token,
                      ApiRole.LINE_12345: config.http.token_12345,
                      ApiRole.SUPERVISOR: config.http.token_supervisor}
            api = ApiResource(
                self.desk, self.records, tokens,
                lambda f: deferToThreadPool(reactor, pool, f), self.health, self.metrics,
                reactor.seconds, log.bind(part="api"), self.transfers.live,
                config.http.mask_numbers)
            StreamServerEndpointService(serverFromString(reactor, config.http.listen),
                                        api_site(api)).setServiceParent(self)

    def health(self) -> dict[str, Any]:
        return self.bridge_log.status() | {
            "ami": "connected" if self.ami.connected else "down",
            "live": len(self.transfers.registry.live()),
            "instance": self.parts.leases.instance,
            "agi_sessions": len(self.agi.active),
            "inbound": "up" if self.inbound.up else "down"}

    def metrics(self) -> str:
        h = self.health()
        lines = [
            ("linkgw_redis_up", int(h["redis"] == "up")),
            ("linkgw_ami_connected", int(h["ami"] == "connected")),
            ("linkgw_bridge_log_pending", h["pending"]),
            ("linkgw_bridge_log_spooled", h["spooled"]),
            ("linkgw_bridge_log_written_total", self.bridge_log.written),
            ("linkgw_bridges_live", h["live"]),
            ("linkgw_bridges_adopted_total", self.parts.cluster.adopted),
            ("linkgw_agi_sessions_total", self.agi.counters.sessions),
            ("linkgw_agi_refused_total", self.agi.counters.refused_address
             + self.agi.counters.refused_busy),
            ("linkgw_inbound_applied_total", self.inbound.applied),
            ("linkgw_inbound_refused_total", self.inbound.refused),
            ("linkgw_inbound_claimed_total", self.inbound.claimed),
            ("linkgw_inbound_up", int(self.inbound.up)),
        ]
        return "".join(f"{name} {value}\n" for name, value in lines)


class _Thread(Service):
    """Runs a blocking loop in a thread of the reactor's pool; stops it on shutdown."""

    def __init__(self, reactor: Any, loop: Any, stop: Any) -> None:
        self.reactor, self.loop, self.stop = reactor, loop, stop

    def startService(self) -> None:
        super().startService()
        self.reactor.callInThread(self.loop)

    def stopService(self) -> None:
        self.stop()
        super().stopService()


def make_service(config: Config, reactor: Any) -> Gateway:
    return Gateway(config, reactor)
