"""Several gateways on one Asterisk: each live bridge has one owner, by a lease in Redis.

- The gateway that opens a bridge owns it: ``<p>:lease:<bridge id>`` holds its instance
  (``<name>/<boot nonce>``) and expires after ``lease_ttl`` unless renewed; the owner
  renews every ``sweep_interval``.
- Every gateway sweeps: a live bridge (index ``live``) on its own Asterisk whose lease is
  gone (its owner died or was cut off for longer than the lease) is taken with an atomic
  check-and-set and adopted (:class:`gateway.transfer.recovery.Recovery`). A lease held
  by an earlier life of the same instance name (a restart) is taken at once.
- A live bridge of *another* Asterisk whose lease is gone and which was requested more
  than ``stale_after`` ago is closed as ``unknown`` (its Asterisk has no gateway any
  more), so that no record stays live for ever.
- The sweep also takes over the spool files of processes that are gone, and registers
  the calls that arrived while no gateway answered (:mod:`gateway.transfer.late`).
- A gateway that finds its lease taken by another stops running that bridge (it does
  not write it any more).

Redis down: nobody can take a lease, so nobody adopts; owners keep running their bridges
and renew once Redis is back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from gateway.bridge.log import BridgeLog
from gateway.transfer.late import LateCalls
from gateway.transfer.leases import Leases
from gateway.transfer.recovery import Recovery
from gateway.transfer.services import TransferService

#: Seconds between two reads of the calls no gateway answered (gateway/transfer/late.py)
LATE_EVERY = 5.0


class Cluster:
    """The periodic sweep, and the resync after every AMI login."""

    def __init__(self, service: TransferService, recovery: Recovery, leases: Leases,
                 bridge_log: BridgeLog, clock: IReactorTime, interval: float,
                 log: Any, stale_after: float = 43200.0, late: LateCalls | None = None
                 ) -> None:
        self.service, self.recovery, self.leases = service, recovery, leases
        self.bridge_log, self.clock, self.interval, self.log = \
            bridge_log, clock, interval, log
        self._loop: LoopingCall | None = None
        self.stale_after = stale_after
        self._suspects: dict[str, float] = {}  # bridge id → first seen without a lease
        self.adopted = 0
        self.closed_unserved = 0
        self.late = late
        self._late_at = -LATE_EVERY  # when the calls no gateway answered were last read
        self._late_busy = False

    def start(self) -> None:
        self._loop = LoopingCall(lambda: defer.ensureDeferred(self.sweep()))
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def resync(self) -> None:
        """After an AMI login (the first, or after a cut): learn the Asterisk's name,
        bring every bridge this gateway runs up to what Asterisk holds, then sweep."""
        service = self.service
        try:
            service.asterisk = await service.telephony.system_name() or service.asterisk
            for bridge in service.followed():
                await self.recovery.reconcile(bridge)
            self._late_at = -LATE_EVERY  # read what was kept while AMI was away
        except Exception as exc:
            self.log.error("cluster.resync_failed", error=str(exc),
                           error_type=type(exc).__name__)
        await self.sweep()

    async def sweep(self) -> None:
        """Renew leases, drop bridges another gateway took, adopt orphans."""
        try:
            for bridge_id in await self.leases.renew():
                self._lost(bridge_id)
            if self.service.ami_up and self.service.asterisk:
                for record in await self._orphans():
                    if await self.leases.take(record["bridge_id"]):
                        if await self.recovery.adopt(record, "owner gone"):
                            self.adopted += 1
            if self.service.asterisk:
                await self._close_unserved()
        except Exception as exc:
            self.log.info("cluster.sweep_skipped", error=str(exc),
                          error_type=type(exc).__name__)
        self.bridge_log.adopt_orphans()
        if not self._late_busy:  # beside the sweep: a slow pass never delays a renewal
            defer.ensureDeferred(self._register_late())

    async def _register_late(self) -> None:
        """Calls no gateway answered (every one was down), kept by the dialplan: read at
        most every :data:`LATE_EVERY` seconds, and at the first sweep after an AMI login."""
        now = self.clock.seconds()
        if self.late is None or not self.service.ami_up or now - self._late_at < LATE_EVERY:
            return
        self._late_at, self._late_busy = now, True
        try:
            registered = await self.late.register(now)
            if registered:
                self.log.info("cluster.late_registered", calls=registered)
        except Exception as exc:
            self.log.info("cluster.late_skipped", error=str(exc)[:200],
                          error_type=type(exc).__name__)
        finally:
            self._late_busy = False

    async def _close_unserved(self) -> None:
        before = self.clock.seconds() - self.stale_after
        for record in await self.leases.unserved(self.service.asterisk, before):
            if await self.leases.take(record["bridge_id"]):
                why = (f"its Asterisk {record.get('asterisk', '')!r} had no gateway for "
                       f"{self.stale_after:.0f} s after the request")
                if self.recovery.close_unserved(record, why):
                    self.closed_unserved += 1

    async def _orphans(self) -> list[dict[str, str]]:
        """Bridges seen without a lease for a whole lease time (an owner whose lease was
        not yet written, say after a Redis outage, renews it within that time)."""
        now = self.clock.seconds()
        found = await self.leases.orphans(self.service.asterisk)
        ids = {r["bridge_id"] for r in found}
        self._suspects = {i: t for i, t in self._suspects.items() if i in ids}
        ready = []
        for record in found:
            first = self._suspects.setdefault(record["bridge_id"], now)
            if now - first >= self.leases.ttl_ms / 1000 or \
                    self.leases.mine(record.get("owner", "")):
                ready.append(record)
        return ready

    def _lost(self, bridge_id: str) -> None:
        if any(b.id == bridge_id for b in self.service.followed()):
            self.log.warning("bridge.lease_lost", bridge_id=bridge_id)
            self.service.forget(bridge_id)
