"""``make_service(config)``: the whole gateway as one Twisted MultiService.

FastAGI listener, AMI client and bridge log, wired to the transfer feature. Addresses are
Twisted endpoint strings from the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString, serverFromString

from gateway.agi.server import FastAgiFactory
from gateway.ami.client import AmiClient
from gateway.bridge.log import BridgeLog
from gateway.bridge.redis_store import RedisStore
from gateway.config import Config
from gateway.transfer.categories import load_categories
from gateway.transfer.scripts import make_scripts
from gateway.transfer.service import TransferService


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
        self.redis = Redis.from_url(config.redis.url, socket_timeout=2.0,
                                    socket_connect_timeout=2.0)
        store = RedisStore(self.redis, config.redis.prefix, config.redis.events_maxlen)
        self.bridge_log = BridgeLog(store, clock=reactor, log=log.bind(part="bridge_log"),
                                    retry_delay=config.redis.retry_delay)
        self.ami = AmiClient(clientFromString(reactor, config.ami.endpoint),
                             config.ami.username, config.ami.secret, clock=reactor,
                             log=log.bind(part="ami"), auth=config.ami.auth)
        self.transfers = TransferService(self.ami, self.bridge_log, config.transfer,
                                         clock=reactor, log=log.bind(part="transfer"),
                                         catalogue=load_categories(
                                             Path(config.transfer.categories)))
        self.agi = FastAgiFactory(
            make_scripts(self.transfers, reactor),
            clock=reactor, log=log.bind(part="agi"), allow=frozenset(config.fastagi.allow),
            max_sessions=config.fastagi.max_sessions,
            session_timeout=config.fastagi.session_timeout)
        self.ami.service.setServiceParent(self)
        _Drain(self.agi, reactor, config.fastagi.session_timeout).setServiceParent(self)
        StreamServerEndpointService(serverFromString(reactor, config.fastagi.listen),
                                    self.agi).setServiceParent(self)


def make_service(config: Config, reactor: Any) -> Gateway:
    return Gateway(config, reactor)
