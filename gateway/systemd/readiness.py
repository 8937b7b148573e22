"""Tells systemd (``Type=notify``) what the gateway is doing.

``READY=1`` once every check passes (AMI logged in, Redis read, the listeners
listening), ``STATUS=`` naming what it still waits for or what went down later,
``WATCHDOG=1`` from the reactor at half the manager's interval (a reactor that stops
turning stops the pings, and systemd restarts the gateway), ``RELOADING=1`` and
``READY=1`` around a reload, ``STOPPING=1`` at the end.

The checks are polled on an injected clock; nothing here blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from gateway.systemd.notify import Notifier

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Check:
    name: str
    passes: Callable[[], bool]


def status_text(waiting: Sequence[str], ready_before: bool) -> str:
    if not waiting:
        return "ready: AMI, Redis and the listeners are up"
    what = ", ".join(waiting)
    return f"degraded, down: {what}" if ready_before else f"starting, waiting for: {what}"


class Readiness(Service):
    def __init__(self, notifier: Notifier, checks: Sequence[Check], clock: IReactorTime,
                 log: Any, watchdog: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.notifier, self.checks, self.clock, self.log = notifier, checks, clock, log
        self.watchdog, self.monotonic = watchdog, monotonic
        self.ready = False
        self.status = ""
        self._loops: list[LoopingCall] = []

    def startService(self) -> None:
        super().startService()
        self._every(POLL_SECONDS, self.poll)
        if self.watchdog:
            self._every(self.watchdog, self.ping)

    def _every(self, seconds: float, job: Callable[[], None]) -> None:
        loop = LoopingCall(job)
        loop.clock = self.clock
        loop.start(seconds, now=True)
        self._loops.append(loop)

    def waiting(self) -> list[str]:
        return [check.name for check in self.checks if not check.passes()]

    def poll(self) -> None:
        waiting = self.waiting()
        status = status_text(waiting, self.ready)
        if not waiting and not self.ready:
            self.ready = True
            self.notifier.send(READY="1", STATUS=status)
            self.log.info("systemd.ready", notified=self.notifier.active)
        elif status != self.status:
            self.notifier.send(STATUS=status)
        self.status = status

    def ping(self) -> None:
        self.notifier.send(WATCHDOG="1")

    def reloading(self) -> None:
        """Before a reload (systemd 253+ reads it; with ``Type=notify`` it is a status)."""
        usec = int(self.monotonic() * 1_000_000)
        self.notifier.send(RELOADING="1", MONOTONIC_USEC=str(usec), STATUS="reloading")

    def reloaded(self, outcome: str) -> None:
        """After a reload: READY=1 again, but only if it was ready before (a SIGHUP
        while starting must not say ready early)."""
        if self.ready:
            self.status = f"ready; {outcome}"
            self.notifier.send(READY="1", STATUS=self.status)
        else:
            self.notifier.send(STATUS=f"{self.status}; {outcome}")

    def stopService(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.notifier.send(STOPPING="1", STATUS="stopping: finishing AGI sessions")
        super().stopService()
