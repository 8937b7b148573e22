"""What is past due, counted for ``/metrics`` (and so for the alert rules): bridges whose
feedback or response deadline passed, work orders not accepted or answered in time.

Counted every :data:`EVERY` seconds in a thread of the reactor's pool (a blocking Redis
client), so that a scrape never waits on Redis; -1 until the first count and while
Redis cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from gateway.records.errors import Unavailable

EVERY = 30.0


class OverdueCount(Service):
    def __init__(self, count: Callable[[float], tuple[int, int]], clock: Any,
                 in_thread: Callable[..., Any], log: Any, every: float = EVERY) -> None:
        self.count, self.clock, self.in_thread, self.log = count, clock, in_thread, log
        self.every = every
        self.bridges = self.workorders = -1
        self._loop: LoopingCall | None = None
        self._busy = False

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self.clock
        self._loop.start(self.every, now=True)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        super().stopService()  # type: ignore[no-untyped-call]

    def refresh(self) -> None:
        """One count, unless the last one is still running."""
        if self._busy:
            return
        self._busy = True
        d = self.in_thread(self.count, self.clock.seconds())
        d.addCallbacks(self._counted, self._failed)
        d.addBoth(self._done)

    def _counted(self, counts: tuple[int, int]) -> None:
        self.bridges, self.workorders = counts

    def _failed(self, failure: Any) -> None:
        self.bridges = self.workorders = -1
        if failure.check(Unavailable):
            self.log.warning("overdue.unreadable", error=failure.getErrorMessage())
        else:
            self.log.error("overdue.failed", error=failure.getErrorMessage())

    def _done(self, _: object) -> None:
        self._busy = False
