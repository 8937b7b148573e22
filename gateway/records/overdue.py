"""What is past due, counted for ``/metrics`` (and so for the alert rules): bridges whose
feedback or response deadline passed, work orders not accepted or answered in time.

Counted every :data:`EVERY` seconds in a thread of the reactor's pool (a blocking Redis
client), so that a scrape never waits on Redis; -1 until the first count and while
Redis cannot be read. A failed count is tried again after :data:`RETRY` seconds, so that
Redis back shows on the gauges without waiting for the next round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from gateway.records.errors import Unavailable

EVERY = 30.0
RETRY = 5.0


class OverdueCount(Service):
    def __init__(self, count: Callable[[float], tuple[int, int]], clock: Any,
                 in_thread: Callable[..., Any], log: Any, every: float = EVERY,
                 retry: float = RETRY) -> None:
        self.count, self.clock, self.in_thread, self.log = count, clock, in_thread, log
        self.every, self.retry = every, retry
        self._again: Any = None  # the retry's delayed call, while one is pending
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
        self._cancel_retry()
        super().stopService()  # type: ignore[no-untyped-call]

    def refresh(self) -> None:
        """One count, unless the last one is still running."""
        if self._busy:
            return
        self._cancel_retry()
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
        if self.running:
            self._again = self.clock.callLater(self.retry, self.refresh)

    def _cancel_retry(self) -> None:
        if self._again is not None and self._again.active():
            self._again.cancel()
        self._again = None

    def _done(self, _: object) -> None:
        self._busy = False
