"""The duty phone's ringer: every ``duty.poll`` seconds, the orders whose ring is due
are claimed (one guarded write each, in a thread: blocking Redis) and rung by AMI
Originate. A ring Asterisk refuses (AMI gone, no such endpoint) is logged; the claim
has already scored the next one, so the order is rung again ``duty.every`` later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from gateway.catalogue import Catalogue
from gateway.config import DutyConfig
from gateway.duty.say import announcement
from gateway.duty.schedule import Ring, originate, plan_ring
from gateway.records.errors import Malformed, Unavailable


class Orders(Protocol):
    """What the ringer needs of the work-order desk (blocking)."""

    catalogue: Catalogue

    def rings_due(self, now: float, limit: int = 20) -> list[str]: ...

    def order(self, ticket: str) -> dict[str, str]: ...

    def stop_ringing(self, ticket: str) -> None: ...

    def write(self, change: Any) -> bool: ...


class Ami(Protocol):
    @property
    def connected(self) -> bool: ...

    def action(self, action: str, headers: Any = ..., timeout: float = ...
               ) -> defer.Deferred[Any]: ...


def claim_due(orders: Orders, config: DutyConfig, now: float, log: Any = None
              ) -> list[Ring]:
    """The rings this process won (blocking: run it in a thread). An entry that is no
    order number any more (the pattern changed) leaves the list; Redis failing midway
    keeps the rings won so far (a claim it could not confirm is not rung: its attempt
    is spent, the next one comes ``every`` later)."""
    won: list[Ring] = []
    for ticket in orders.rings_due(now):
        try:
            order = orders.order(ticket)
            ring = plan_ring(ticket, order, config, now,
                             announcement(ticket, order, orders.catalogue))
            if ring is None:
                orders.stop_ringing(ticket)
            elif orders.write(ring.change):
                won.append(ring)
        except Malformed as exc:
            if log is not None:
                log.warning("duty.entry_dropped", ticket=ticket[:40], error=str(exc))
            orders.stop_ringing(ticket)
        except Unavailable:
            if not won:
                raise
            break
    return won


class DutyRinger(Service):
    def __init__(self, config: DutyConfig, orders: Orders, ami: Ami, clock: Any,
                 in_thread: Callable[..., defer.Deferred[Any]], log: Any) -> None:
        self.config, self.orders, self.ami, self.clock = config, orders, ami, clock
        self.in_thread, self.log = in_thread, log
        self.rung = self.failed = 0
        self.waiting = False  # AMI is gone: no ring is claimed until it is back
        self._loop: LoopingCall | None = None
        self._busy = False

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(self.config.poll, now=True)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        super().stopService()  # type: ignore[no-untyped-call]

    def tick(self) -> defer.Deferred[None] | None:
        """One look for due rings, unless the last one is still running."""
        if self._busy:
            return None
        self._busy = True
        d = defer.ensureDeferred(self._tick())
        d.addErrback(self._failed)
        d.addBoth(self._done)
        return d

    async def _tick(self) -> None:
        if not self.ami.connected:  # nothing could ring: no attempt is spent meanwhile
            if not self.waiting:
                self.log.warning("duty.waiting_for_ami")
            self.waiting = True
            return
        self.waiting = False
        rings: list[Ring] = await self.in_thread(claim_due, self.orders, self.config,
                                                 self.clock.seconds(), self.log)
        for ring in rings:
            await self._ring(ring)

    async def _ring(self, ring: Ring) -> None:
        try:
            await self.ami.action("Originate", originate(ring, self.config))
        except Exception as exc:  # AMI gone, no such endpoint: rung again later
            self.failed += 1
            self.log.warning("duty.ring_failed", ticket=ring.ticket, number=ring.number,
                             attempt=ring.attempt, error=str(exc),
                             error_id=getattr(exc, "code", type(exc).__name__))
            return
        self.rung += 1
        self.log.info("duty.ringing", ticket=ring.ticket, number=ring.number,
                      attempt=ring.attempt)

    def _failed(self, failure: Any) -> None:
        if failure.check(Unavailable):
            self.log.warning("duty.redis_unavailable", error=failure.getErrorMessage())
        else:
            self.log.error("duty.failed", error=failure.getErrorMessage(),
                           error_type=failure.type.__name__)

    def _done(self, _: object) -> None:
        self._busy = False
