"""The push feature wired from the config: one :class:`PushService` for the gateway
(``linkgw run``) and for ``linkgw push`` (a site in process mode has no gateway service:
it runs the push alone)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer

from gateway.bridge.connect import async_client
from gateway.config import Config
from gateway.push.http import make_post
from gateway.push.outbox import RedisOutbox
from gateway.push.services import Pusher
from gateway.schema import Keys


class PushService(Service):
    def __init__(self, pusher: Pusher) -> None:
        self.pusher = pusher

    def startService(self) -> None:
        super().startService()
        self.pusher.start()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return self.pusher.stop()


def build_push(config: Config, reactor: Any, log: Any, owner: str) -> PushService:
    outbox = RedisOutbox(async_client(config.redis), reactor._asyncioEventloop,
                         Keys(config.redis.prefix), config.push.feed)
    pusher = Pusher(outbox, make_post(reactor, config.push), reactor, config.push, owner,
                    log.bind(part="push"), config.cluster.lease_ttl)
    return PushService(pusher)
