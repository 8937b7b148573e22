"""The bridge log: records changes in order without ever making a call wait.

:meth:`BridgeLog.record` queues a change and returns at once. One change at a time is
applied to the store, oldest first. When the store fails (Redis down), the change stays
at the head of the queue and is tried again after ``retry_delay``; nothing is dropped
and the order holds. ``pending`` and ``healthy`` feed the health check.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gateway.bridge.store import BridgeStore, Change


class BridgeLog:
    def __init__(
        self, store: BridgeStore, *, clock: IReactorTime, log: Any, retry_delay: float = 1.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.log = log
        self.retry_delay = retry_delay
        self.queue: deque[Change] = deque()
        self.healthy = True
        self.written = 0
        self._busy = False

    @property
    def pending(self) -> int:
        return len(self.queue)

    def record(self, change: Change) -> None:
        self.queue.append(change)
        self._next()

    def _next(self) -> None:
        if self._busy or not self.queue:
            return
        self._busy = True
        d = self.store.apply(self.queue[0])
        d.addCallbacks(self._applied, self._failed)

    def _applied(self, applied: bool) -> None:
        change = self.queue.popleft()
        self.written += 1
        if not self.healthy:
            self.healthy = True
            self.log.info("bridge_log.store_back", pending=len(self.queue))
        if not applied:
            self.log.info("bridge_log.duplicate_skipped", record=change.record, seq=change.seq)
        self._busy = False
        self._next()

    def _failed(self, failure: Failure) -> None:
        if self.healthy:
            self.healthy = False
            self.log.error(
                "bridge_log.store_unavailable",
                error=failure.getErrorMessage(),
                error_type=type(failure.value).__name__,
                pending=len(self.queue),
            )
        self._busy = False
        self.clock.callLater(self.retry_delay, self._next)
