"""The pusher: the outbox's entries to the 12345 system's receiver, one at a time, in
order, each until a 2xx answers it.

One step (:meth:`Pusher.step`) at a time on an injected clock:

1. hold the lease (only one gateway pushes; another takes over when it lapses);
2. take the outbox's next entry (none: look again after ``poll``);
3. an entry that cannot be made a body, or one that is older than ``dead_after`` and
   has failed since this pusher took it, goes to the dead letters (counted, logged): a
   pusher that was itself down for a day gives every queued entry a try first;
4. POST it, signed; a 2xx marks it done and the next step follows at once; anything
   else (an error status, a refused TLS certificate, a timeout, a reset) is retried after
   ``retry_initial`` doubled per failure, at most ``retry_max``.

Redis down: the step is tried again after ``retry_initial``; nothing is lost, since an
entry leaves the outbox only once answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from gateway.config import PushConfig
from gateway.push.codec import SIGNATURE_HEADER, BadEntry, Entry, backoff, body, signature
from gateway.push.outbox import Outbox

#: The receiver refuses the content itself: tried this often, then a dead letter (a
#: 401 or 404 is retried: a wrong secret or URL is fixed by config, not by the event).
_REFUSALS = {f"answered {code}" for code in (400, 413, 422)}
REFUSED_TRIES = 3

#: POST ``body`` with ``headers``; the answer's status code.
Post = Callable[[bytes, dict[str, str]], defer.Deferred[int]]


class Pusher:
    def __init__(self, outbox: Outbox, post: Post, clock: IReactorTime, config: PushConfig,
                 owner: str, log: Any, lease_ttl: float = 6.0) -> None:
        self.outbox, self.post, self.clock, self.config = outbox, post, clock, config
        self.owner, self.log, self.lease_ttl = owner, log, lease_ttl
        self.secret = config.secret.encode("utf-8")
        self.delivered = 0
        self.failed = 0  # failed tries (each retried)
        self.dead = 0
        self.failures = 0  # in a row, for the entry at the head (``_head``)
        self._head = ""
        self.last_error = ""
        self.holding = False  # this gateway holds the lease
        self._call: IDelayedCall | None = None
        self._renewing: IDelayedCall | None = None
        self._running = False
        self._busy: defer.Deferred[None] | None = None

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._later(0)
        self._renewing = self.clock.callLater(self.lease_ttl / 3, self._renew)

    def stop(self) -> defer.Deferred[None]:
        self._running = False
        for call in (self._call, self._renewing):
            if call is not None and call.active():
                call.cancel()
        return self._busy if self._busy is not None else defer.succeed(None)

    def _renew(self) -> None:
        """Keep the lease while a POST or a backoff lasts longer than it: another
        gateway takes over only when this one stops renewing (gone, or cut off)."""
        if not self._running:
            return
        if self.holding:
            d = self.outbox.take_lease(self.owner, self.lease_ttl)
            d.addCallbacks(self._holding, lambda _: self._holding(False))
        self._renewing = self.clock.callLater(self.lease_ttl / 3, self._renew)

    def _later(self, seconds: float) -> None:
        if self._running:
            self._call = self.clock.callLater(seconds, self._go)

    def _go(self) -> None:
        d: defer.Deferred[Any] = self.step()
        d.addCallback(self._later)
        d.addErrback(self._crashed)
        self._busy = d

    def _crashed(self, failure: Failure) -> None:
        """A defect, not a condition: logged; the pusher goes on after a pause."""
        self.log.error("push.step_failed", error=failure.getErrorMessage())
        self._later(self.config.retry_max)

    # -- one step ----------------------------------------------------------------------
    @defer.inlineCallbacks
    def step(self) -> Any:
        """Do one thing; return the seconds until the next step."""
        try:
            held = yield self.outbox.take_lease(self.owner, self.lease_ttl)
            if not held:
                self._holding(False)
                return self.lease_ttl / 2
            self._holding(True)
            entry = yield self.outbox.next()
        except Exception as exc:  # Redis unreachable: nothing was taken
            self._note_error(f"outbox: {exc}")
            return self.config.retry_initial
        if entry is None:
            return self.config.poll
        return (yield self._push(entry))

    def _holding(self, held: bool) -> None:
        if held != self.holding:
            self.holding = held
            self.log.info("push.lease", held=held, owner=self.owner)

    @defer.inlineCallbacks
    def _push(self, entry: Entry) -> Any:
        if entry.outbox_id != self._head:  # a new head: its own count of failures
            self._head, self.failures = entry.outbox_id, 0
        age = self.clock.seconds() - entry.written_at
        try:
            raw = body(entry)
        except BadEntry as exc:
            yield self._give_up(entry, f"not pushable: {exc}")
            return 0.0
        if age > self.config.dead_after and self.failures:  # tried, failed, too old
            yield self._give_up(entry, f"undelivered for {age:.0f} s: {self.last_error}")
            return 0.0
        if self.failures >= REFUSED_TRIES and self.last_error in _REFUSALS:
            yield self._give_up(entry, f"refused by the receiver: {self.last_error}")
            return 0.0
        at = int(self.clock.seconds())
        headers = {"Content-Type": "application/json; charset=utf-8",
                   SIGNATURE_HEADER: signature(self.secret, at, raw)}
        try:
            status = yield self.post(raw, headers)
        except Exception as exc:  # refused, reset, timed out, a certificate refused
            return self._retry(entry, f"{type(exc).__name__}: {exc}")
        if not 200 <= status < 300:
            return self._retry(entry, f"answered {status}")
        try:
            yield self.outbox.done(entry)
        except Exception as exc:  # delivered, not marked: it comes again (at least once)
            self._note_error(f"outbox: {exc}")
            return self.config.retry_initial
        self.delivered += 1
        if self.failures:
            self.log.info("push.recovered", after_failures=self.failures,
                          outbox_id=entry.outbox_id)
        self.failures = 0
        return 0.0

    def _retry(self, entry: Entry, error: str) -> float:
        self.failed += 1
        self.failures += 1
        self.last_error = error
        wait = backoff(self.failures, self.config.retry_initial, self.config.retry_max)
        if self.failures == 1 or self.failures % 10 == 0:  # not one line per try
            self.log.warning("push.failed", error=error, outbox_id=entry.outbox_id,
                             failures=self.failures, retry_in=wait)
        return wait

    def _note_error(self, error: str) -> None:
        if error != self.last_error:
            self.log.warning("push.outbox_unreachable", error=error)
        self.last_error = error

    @defer.inlineCallbacks
    def _give_up(self, entry: Entry, reason: str) -> Any:
        yield self.outbox.dead(entry, reason, self.failures)
        self.dead += 1
        self.failures = 0
        self.log.error("push.dead_letter", outbox_id=entry.outbox_id, reason=reason)
