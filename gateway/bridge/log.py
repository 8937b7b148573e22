"""The bridge log: records changes in order without ever making a call wait.

:meth:`BridgeLog.record` queues a change and returns at once. The queue is written in
order, up to ``BATCH`` changes in one round trip (a pipeline of the Lua script), one
batch at a time, oldest first. When the store fails (Redis down), every queued
change, and every change recorded until the store is back, is also appended to this
process's on-disk :class:`~gateway.bridge.spool.Spool` (fsynced); the head of the queue
is tried again every ``retry_delay``. Once the store has taken everything that was
spooled, the spool is emptied. At start, and whenever :meth:`adopt_orphans` is called,
the spools of processes that are gone are taken over and replayed too.

The queue's invariant: its first ``spooled`` changes are on disk.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gateway.bridge.spool import Spool
from gateway.bridge.store import BridgeStore, Change

BATCH = 64  # changes written in one round trip


class BridgeLog:
    def __init__(
        self, store: BridgeStore, *, clock: IReactorTime, log: Any, retry_delay: float = 1.0,
        spool: Spool | None = None, autostart: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.log = log
        self.retry_delay = retry_delay
        self.spool = spool
        self.queue: deque[Change] = deque()
        self.healthy = True
        self.written = 0
        self.spooled = 0  # how many changes at the head of the queue are on disk
        self._busy = False
        self._started = autostart  # False: queue only, until start()
        if spool is not None:
            try:
                spool.adopt()
                left = spool.load()
            except OSError as exc:  # an unsafe folder: Redis still gets every change
                self.log.error("bridge_log.spool_unusable", error=str(exc))
                left = []
            if left:
                self.log.warning("bridge_log.replaying_spool", changes=len(left))
            self.queue.extend(left)
            self.spooled = len(left)

    @property
    def pending(self) -> int:
        return len(self.queue)

    def status(self) -> dict[str, object]:
        return {"redis": "up" if self.healthy else "down", "pending": len(self.queue),
                "spooled": self.spooled}

    def start(self) -> None:
        self._started = True
        self._next()

    def record(self, change: Change) -> None:
        self.queue.append(change)
        if not self.healthy:
            self._spool_rest()
        self._next()

    def adopt_orphans(self) -> int:
        """Replay the spools left by processes that are gone; how many changes."""
        if self.spool is None:
            return 0
        self._spool_rest()
        if self.spooled != len(self.queue):
            return 0  # the disk refused our own changes: try again later
        try:
            adopted = self.spool.adopt()
        except OSError as exc:
            self.log.error("bridge_log.adopt_failed", error=str(exc))
            return 0
        self.queue.extend(adopted)
        self.spooled += len(adopted)
        self._next()
        return len(adopted)

    def _spool_rest(self) -> None:
        if self.spool is None:
            return
        rest = list(self.queue)[self.spooled:]
        if not rest:
            return
        try:
            self.spool.append(rest)
        except OSError as exc:
            self.log.error("bridge_log.spool_failed", error=str(exc), pending=len(rest))
            return
        self.spooled = len(self.queue)

    def _next(self) -> None:
        if self._busy or not self.queue or not self._started:
            return
        self._busy = True
        batch = [self.queue[n] for n in range(min(BATCH, len(self.queue)))]
        d = self.store.apply_many(batch)
        d.addCallbacks(self._applied, self._failed)

    def _applied(self, answers: list[int]) -> None:
        for answer in answers:
            change = self.queue.popleft()
            self.written += 1
            if answer == 0:
                self.log.info("bridge_log.duplicate_skipped", record=change.record,
                              change=change.id)
            elif answer < 0:  # refused by its own guard: not the store's fault
                self.log.warning("bridge_log.guard_refused", record=change.record,
                                 change=change.id, bridge_event=change.event)
        if self.spooled:
            self.spooled = max(0, self.spooled - len(answers))
            if not self.spooled and self.spool is not None:
                self.spool.clear()
                self.log.info("bridge_log.spool_replayed")
        if not self.healthy:
            self.healthy = True
            self.log.info("bridge_log.store_back", pending=len(self.queue))
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
            self._spool_rest()
        self._busy = False
        self.clock.callLater(self.retry_delay, self._next)
