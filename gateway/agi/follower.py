"""The process-mode follower: the gateway's services for one AGI program's work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString
from twisted.internet.task import LoopingCall

from gateway import logs
from gateway.ami.client import AmiClient
from gateway.bridge.connect import async_client
from gateway.bridge.log import BridgeLog
from gateway.bridge.redis_store import RedisStore
from gateway.bridge.spool import Spool
from gateway.bridge.state import State
from gateway.config import Config
from gateway.transfer.categories import load_categories
from gateway.transfer.scripts import MOVE_DELAY, Script, make_scripts
from gateway.transfer.service import TransferService

#: Seconds the follower stays after its last bridge ended (the citizen's hangup comes
#: just after the conference's end), and the most it lives at all.
LINGER = 2.0
LIFETIME = 4 * 3600.0


class Follower:
    def __init__(self, config: Config, reactor: Any, later: Any) -> None:
        log_path = Path(config.redis.spool).with_name("linkgw-agi.log")
        logs.configure(config.log.format, config.log.level,
                       stream=open(log_path, "a", encoding="utf-8"))
        log = structlog.get_logger("gateway").bind(agi="process")
        self.reactor = reactor
        self.log = log
        store = RedisStore(async_client(config.redis), reactor._asyncioEventloop,
                           config.redis.prefix, config.redis.events_maxlen)
        self.bridge_log = BridgeLog(store, clock=reactor, log=log.bind(part="bridge_log"),
                                    retry_delay=config.redis.retry_delay,
                                    spool=Spool(Path(config.redis.spool), log),
                                    autostart=False)
        self.ami = AmiClient(clientFromString(reactor, config.ami.endpoint),
                             config.ami.username, config.ami.secret, clock=reactor,
                             log=log.bind(part="ami"), auth=config.ami.auth)
        self.service = TransferService(self.ami, self.bridge_log, config.transfer,
                                       clock=reactor, log=log.bind(part="transfer"),
                                       catalogue=load_categories(
                                           Path(config.transfer.categories)))
        self.later = later
        self._idle_since: float | None = None

    def scripts(self) -> dict[str, Script]:
        return make_scripts(self.service, self.later)

    def has_work(self, later: Any) -> bool:
        return bool(later.calls) or self.bridge_log.pending > 0

    def _live(self) -> bool:
        return any(b.state is not State.ENDED for b in self.service.bridges.values())

    def run(self, later: Any, agi_pid: int) -> None:
        """In the detached process: connect, do the work, stop when it is done.

        The calls the script scheduled (moving the call) wait for AMI and for the AGI
        program (``agi_pid``) to be gone: a Redirect while Asterisk still runs the AGI
        ends it with a hangup result, and the seat's channel with it.
        """
        def agi_gone() -> bool:
            try:
                os.kill(agi_pid, 0)
            except ProcessLookupError:
                return True
            return False

        def when_gone() -> defer.Deferred[None]:
            d: defer.Deferred[None] = defer.Deferred()

            def poll() -> None:
                if agi_gone():
                    loop.stop()
                    self.reactor.callLater(MOVE_DELAY, d.callback, None)

            loop = LoopingCall(poll)
            loop.start(0.02)
            return d

        def ready(_: object) -> None:
            for fn, args in later.calls:
                fn(*args)

        def check() -> None:
            now = self.reactor.seconds()
            if self._live() or self.bridge_log.pending:
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
            elif now - self._idle_since >= LINGER:
                self.reactor.stop()

        self.reactor.callWhenRunning(self.bridge_log.start)
        if later.calls:
            self.ami.service.startService()
            defer.gatherResults([self.ami.whenConnected(), when_gone()]).addCallback(ready)
        LoopingCall(check).start(0.5, now=False)
        self.reactor.callLater(LIFETIME, self.reactor.stop)
        self.reactor.run()
        self.log.info("follower.done", pending=self.bridge_log.pending)
