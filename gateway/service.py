"""``make_service(config)``: the whole gateway as one Twisted MultiService.

FastAGI listener, AMI client and bridge log, wired to the transfer feature. Addresses are
Twisted endpoint strings from the config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool

from gateway.agi.server import FastAgiFactory
from gateway.app import build_records, build_transfer, instance_name
from gateway.bridge.connect import sync_client
from gateway.catalogue import Catalogue
from gateway.config import Config
from gateway.duty.ringer import DutyRinger
from gateway.duty.scripts import make_duty_scripts
from gateway.listener import Listener
from gateway.metrics import Figure, Snapshot, TransferMeter, exposition
from gateway.push.plugin import PushService, build_push
from gateway.records.http import ApiResource, api_site
from gateway.records.inbound import InboundTickets
from gateway.records.overdue import OverdueCount
from gateway.records.roles import ApiRole
from gateway.reload import Reloader
from gateway.schema import Keys
from gateway.systemd.notify import Notifier, watchdog_interval
from gateway.systemd.readiness import Check, Readiness
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

    def __init__(self, config: Config, reactor: Any, path: Path | None = None) -> None:
        super().__init__()
        log = structlog.get_logger("gateway")
        self.config = config
        self.registry = CollectorRegistry()
        parts = build_transfer(config, reactor, log, instance_name(config), autostart=False,
                               meter=TransferMeter(self.registry))
        self.parts = parts
        self.bridge_log = parts.bridge_log
        self.ami = parts.ami
        self.transfers = parts.service
        reactor.callWhenRunning(self.bridge_log.start)
        reactor.callWhenRunning(parts.cluster.start)
        pool = reactor.getThreadPool()
        self.agi = FastAgiFactory(
            make_scripts(self.transfers) | make_duty_scripts(
                lambda: self.workorders, lambda: self.config.duty,
                lambda f, *a: deferToThreadPool(reactor, pool, f, *a)),
            clock=reactor, log=log.bind(part="agi"), allow=frozenset(config.fastagi.allow),
            max_sessions=config.fastagi.max_sessions,
            session_timeout=config.fastagi.session_timeout)
        self.ami.service.setServiceParent(self)
        _Drain(self.agi, reactor, config.fastagi.session_timeout).setServiceParent(self)
        self.listeners = [Listener("fastagi", serverFromString(reactor, config.fastagi.listen),
                                   self.agi, log)]
        self.listeners[0].setServiceParent(self)
        self._records(config, reactor, log, self.transfers.catalogue)
        if config.duty.numbers:  # the duty phone rings for each new work order
            DutyRinger(config.duty, self.workorders, self.ami, reactor,
                       lambda f, *a: deferToThreadPool(reactor, pool, f, *a),
                       log.bind(part="duty")).setServiceParent(self)
        self.push: PushService | None = None
        if config.push.url:
            self.push = build_push(config, reactor, log, self.parts.leases.instance)
            self.push.setServiceParent(self)
        self.registry.register(Snapshot(self._figures()))
        # last, so it starts after the parts it checks and says STOPPING=1 first
        self.readiness = Readiness(Notifier.from_environ(), self._checks(), reactor,
                                   log.bind(part="systemd"), watchdog_interval())
        self.readiness.setServiceParent(self)
        self.reloader = Reloader(path or Path("config/gateway.yaml"), lambda: self.config,
                                 self.reconfigure, log.bind(part="reload"))

    def reload(self) -> None:
        """SIGHUP: re-read the config and the categories; no call is touched."""
        self.readiness.reloading()
        outcome = "reload failed (old config kept)"
        try:
            outcome = self.reloader.reload()
        finally:
            self.readiness.reloaded(outcome)

    def reconfigure(self, config: Config, catalogue: Catalogue) -> None:
        self.config = config
        self.transfers.reconfigure(config.transfer, catalogue)
        self.desk.catalogue = self.workorders.catalogue = catalogue

    def _checks(self) -> list[Check]:
        """What must be up before the gateway tells systemd it is ready."""
        checks = [Check("AMI", lambda: self.ami.connected),
                  Check("Redis", lambda: self.inbound.up and self.bridge_log.healthy)]
        return checks + [Check(f"{one.name} listener", _listening(one))
                         for one in self.listeners]

    def _records(self, config: Config, reactor: Any, log: Any, catalogue: Catalogue) -> None:
        """Ticket desk, HTTP API and the inbound ticket stream (blocking Redis, threads)."""
        parts = build_records(config, reactor.seconds, catalogue)
        self.sync_redis, self.desk, self.records, self.workorders = \
            parts.client, parts.desk, parts.records, parts.workorders
        prefix = config.redis.prefix
        # its own client, reading bytes: what the other system wrote is checked entry by
        # entry; the name is stable, so a restart reads its own pending entries first
        self.inbound = InboundTickets(
            sync_client(config.redis, decode=False), self.desk,
            f"{prefix}:{config.tickets.inbound_stream}", f"gw-{instance_name(config)}",
            log.bind(part="inbound"), Keys(prefix).feed("12345"), config.redis.feed_group,
            workorders=self.workorders)
        _Thread(reactor, self.inbound.run, self.inbound.stop).setServiceParent(self)
        pool = reactor.getThreadPool()
        self.overdue = OverdueCount(self.records.overdue_counts, reactor,
                                    lambda f, *a: deferToThreadPool(reactor, pool, f, *a),
                                    log.bind(part="overdue"))
        self.overdue.setServiceParent(self)
        if config.http.listen:
            pool = reactor.getThreadPool()
            tokens = {ApiRole.ADMIN: config.http.token,
                      ApiRole.LINE_12345: config.http.token_12345,
                      ApiRole.SUPERVISOR: config.http.token_supervisor,
                      ApiRole.LIAISON: config.http.token_liaison}
            api = ApiResource(
                self.desk, self.records, tokens,
                lambda f: deferToThreadPool(reactor, pool, f), self.health, self.metrics,
                reactor.seconds, log.bind(part="api"), self.transfers.live,
                config.http.mask_numbers, self.workorders, config.tickets.shifts,
                {line.name: line.token for line in config.transfer.lines})
            http = Listener("http", serverFromString(reactor, config.http.listen),
                            api_site(api), log)
            self.listeners.append(http)
            http.setServiceParent(self)

    def health(self) -> dict[str, Any]:
        return self.bridge_log.status() | {
            "ami": "connected" if self.ami.connected else "down",
            "live": len(self.transfers.live()),
            "instance": self.parts.leases.instance,
            "agi_sessions": len(self.agi.active),
            "inbound": "up" if self.inbound.up else "down",
            "feed_12345_lag": self.inbound.feed_lag,
            "push": self._push_health()}

    def _push_health(self) -> str:
        """off; standby (another gateway pushes); ok; failing (the head entry is being
        retried)."""
        if self.push is None:
            return "off"
        pusher = self.push.pusher
        if not pusher.holding:
            return "standby"
        return "failing" if pusher.failures else "ok"

    def metrics(self) -> str:
        return exposition(self.registry)

    def _figures(self) -> list[Figure]:
        log, agi, inbound = self.bridge_log, self.agi.counters, self.inbound
        return [
            Figure("linkgw_redis_up", "1 while Redis takes the bridge log's writes", "gauge",
                   lambda: log.healthy),
            Figure("linkgw_ami_connected", "1 while logged in to AMI", "gauge",
                   lambda: self.ami.connected),
            Figure("linkgw_ami_reconnects", "AMI logins after the first (the link was "
                   "lost and won back)", "counter", lambda: max(self.ami.logins - 1, 0)),
            Figure("linkgw_bridge_log_pending", "Changes queued, not yet in Redis", "gauge",
                   lambda: log.pending),
            Figure("linkgw_spool_depth", "Changes kept in the spool file while Redis is "
                   "down", "gauge", lambda: log.spooled),
            Figure("linkgw_bridge_log_written", "Changes written to Redis", "counter",
                   lambda: log.written),
            Figure("linkgw_bridges_live", "Bridges this gateway runs now", "gauge",
                   lambda: len(self.transfers.live())),
            Figure("linkgw_bridges_adopted", "Bridges adopted from a gateway that was gone",
                   "counter", lambda: self.parts.cluster.adopted),
            Figure("linkgw_agi_sessions", "FastAGI sessions served", "counter",
                   lambda: agi.sessions),
            Figure("linkgw_agi_refused", "FastAGI connections refused (address not "
                   "allowed, or too many at once)", "counter",
                   lambda: agi.refused_address + agi.refused_busy),
            Figure("linkgw_inbound_applied", "Inbound ticket entries applied", "counter",
                   lambda: inbound.applied),
            Figure("linkgw_inbound_refused", "Inbound ticket entries refused", "counter",
                   lambda: inbound.refused),
            Figure("linkgw_inbound_claimed", "Inbound entries claimed from a gone consumer",
                   "counter", lambda: inbound.claimed),
            Figure("linkgw_inbound_up", "1 while the inbound stream is read", "gauge",
                   lambda: inbound.up),
            Figure("linkgw_feed_12345_lag", "Entries of 12345's feed its consumer group "
                   "has not read (-1: unknown)", "gauge", lambda: inbound.feed_lag),
            Figure("linkgw_bridges_overdue", "Bridges past their feedback or response "
                   "deadline (-1: unknown)", "gauge", lambda: self.overdue.bridges),
            Figure("linkgw_workorders_overdue", "Work orders not accepted or answered by "
                   "their deadline (-1: unknown)", "gauge", lambda: self.overdue.workorders),
            *self._push_figures(),
        ]

    def _push_figures(self) -> list[Figure]:
        if self.push is None:
            return []
        pusher = self.push.pusher
        return [
            Figure("linkgw_push_delivered", "Events the receiver answered with a 2xx",
                   "counter", lambda: pusher.delivered),
            Figure("linkgw_push_failed", "Tries that failed (each is retried)", "counter",
                   lambda: pusher.failed),
            Figure("linkgw_push_dead", "Events given up on (linkgw outbox list)",
                   "counter", lambda: pusher.dead),
            Figure("linkgw_push_failing", "Tries in a row the head event has failed",
                   "gauge", lambda: pusher.failures),
            Figure("linkgw_push_holding", "1 while this gateway is the one that pushes",
                   "gauge", lambda: pusher.holding),
        ]


def _listening(listener: Listener) -> Callable[[], bool]:
    return lambda: listener.listening


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


def make_service(config: Config, reactor: Any, path: Path | None = None) -> Gateway:
    return Gateway(config, reactor, path)
