"""The 12345 side's way in: a Redis stream it may write tickets and statuses to.

Each entry (``bridge_id`` plus ``ticket`` / ``incident`` / ``status`` / ``note``) is
applied by the :class:`~gateway.records.tickets.TicketDesk` exactly as an API call is.
An entry of ``type`` ``workorder`` dispatches a work order; ``workorder_close``,
``workorder_satisfaction``, ``workorder_reopen`` and ``workorder_extension_decision``
(with ``ticket`` and the route's fields) take 12345's steps of its life, by the same
rules as its API role.
The gateway reads with a consumer group, at least once: an entry is acknowledged only
after it was applied or refused; a crash before that leaves it pending, and the
consumer's name is stable across restarts (``gw-<instance>``), so a restarted gateway
reads its own pending entries first. Entries left pending by a consumer that is gone
for good (another gateway's name) are claimed after ``claim_idle`` seconds
(``XAUTOCLAIM``), at start and every ``claim_idle`` seconds while the loop runs (a
gateway that died while this one ran leaves nothing pending until a restart). Applying
an entry again changes nothing.

The stream is written by another system, so nothing in an entry is trusted: it is read
as bytes; an entry that is not UTF-8, larger than 64 KiB, or refused by the desk is
acknowledged and copied, with the reason, to ``<stream>:errors`` (capped, each value
cut to 256 characters). The loop runs in a thread with a blocking client; nothing an
entry holds can stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis

from gateway.records.actor import Actor
from gateway.records.errors import Malformed, RecordError
from gateway.records.roles import LIFE_ROUTES, ApiRole, check_allowed, check_visible
from gateway.records.tickets import TicketDesk
from gateway.records.workorders import WorkOrderDesk

GROUP = "linkgw-gateway"
MAX_ENTRY = 65536  # bytes of one entry's keys and values
ERRORS_MAXLEN = 10000  # entries kept on <stream>:errors (approximately)
COPY_CHARS = 256  # characters of each value copied to <stream>:errors
COPY_FIELDS = 16

Raw = Mapping[Any, Any]  # bytes from Redis (text in tests)


def decode_entry(raw: Raw) -> dict[str, str]:
    """An entry's fields as text; :class:`Malformed` when it is too large or not UTF-8."""
    size = sum(len(k) + len(v) for k, v in raw.items())
    if size > MAX_ENTRY:
        raise Malformed(f"entry of {size} bytes: at most {MAX_ENTRY}", "entry_too_large")
    out: dict[str, str] = {}
    for key, value in raw.items():
        try:
            text_key = key.decode() if isinstance(key, bytes) else key
            out[text_key] = value.decode() if isinstance(value, bytes) else value
        except UnicodeDecodeError as exc:
            raise Malformed(f"field {_shown(key)!r} is not UTF-8 (byte {exc.start})",
                          "entry_not_utf8") from exc
    return out


def _shown(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text[:COPY_CHARS]


def _id(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


class InboundTickets:
    def __init__(self, client: redis.Redis, desk: TicketDesk, stream: str, consumer: str,
                 log: Any, feed_stream: str = "", feed_group: str = "",
                 claim_idle: float = 60.0, workorders: WorkOrderDesk | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.desk, self.stream, self.consumer = client, desk, stream, consumer
        self.clock, self.claim_every = clock, claim_idle
        self.next_claim = 0.0  # when entries left by a gone consumer are looked for again
        self.log = log
        self.feed_stream, self.feed_group = feed_stream, feed_group
        self.claim_idle_ms = int(claim_idle * 1000)
        self.stopping = threading.Event()
        self.applied = 0
        self.refused = 0
        self.claimed = 0
        self.up = False  # reading (False while Redis is down, or before the first read)
        self.workorders = workorders
        self.feed_lag = -1  # entries of the feed its group has not read yet (-1: unknown)

    def ensure_groups(self) -> None:
        """Our group on the inbound stream; the 12345 system's group on its feed."""
        groups = [(self.stream, GROUP)]
        if self.feed_stream and self.feed_group:
            groups.append((self.feed_stream, self.feed_group))
        for stream, group in groups:
            try:
                self.client.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def run(self) -> None:
        """Until stop(): first what was delivered but not acknowledged (ours, then what
        consumers gone for good left), then new entries."""
        backlog = True
        while not self.stopping.is_set():
            try:
                if backlog:
                    self.ensure_groups()
                if backlog or self.clock() >= self.next_claim:
                    self.claim()
                    self.next_claim = self.clock() + self.claim_every
                entries = self._read(backlog)
                if not self.up:
                    self.log.info("inbound.reading", stream=self.stream,
                                  consumer=self.consumer)
                self.up = True
                if backlog and not entries:
                    backlog = False
                for entry_id, raw in entries:
                    self.handle(_id(entry_id), raw)
                self.feed_lag = self.lag()
            except redis.RedisError as exc:  # unacknowledged entries come back later
                if self.up or backlog:  # once per outage, not once a second
                    self.log.warning("inbound.redis_unavailable", error=str(exc))
                self.up, backlog = False, True
                self.stopping.wait(1.0)

    def lag(self) -> int:
        """How far the 12345 system's group is behind its feed (Redis's own count;
        -1 when Redis cannot tell, e.g. after entries were deleted)."""
        if not (self.feed_stream and self.feed_group):
            return -1
        for group in cast(list[dict[Any, Any]], self.client.xinfo_groups(self.feed_stream)):
            name = group.get("name", group.get(b"name", b""))
            if (name.decode() if isinstance(name, bytes) else name) == self.feed_group:
                lag = group.get("lag", group.get(b"lag"))
                return int(lag) if lag is not None else -1
        return -1

    def _read(self, backlog: bool) -> list[tuple[bytes | str, Raw]]:
        got = cast(list[tuple[Any, list[tuple[bytes | str, Raw]]]],
                   self.client.xreadgroup(GROUP, self.consumer,
                                          {self.stream: "0" if backlog else ">"},
                                          count=50, block=None if backlog else 1000))
        return [(i, f) for i, f in (got[0][1] if got else []) if f is not None]

    def claim(self) -> None:
        """Take over entries another consumer left pending for ``claim_idle`` (it is gone:
        a gateway that was renamed, or a crashed one under another name)."""
        start: bytes | str = "0-0"
        while True:
            answer: list[Any] = self.client.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_idle_ms, start, count=100)
            start, entries = answer[0], answer[1]
            for entry_id, raw in entries:
                if raw is None:
                    continue
                self.claimed += 1
                self.log.info("inbound.claimed", entry=_id(entry_id))
                self.handle(_id(entry_id), raw)
            if _id(start) == "0-0":
                return

    def handle(self, entry_id: str, raw: Raw) -> None:
        """Apply one entry, or refuse it; either way it is acknowledged. Redis trouble
        (a 503 from the desk, an error here) leaves it pending: it comes back."""
        fields: dict[str, str] = {}
        try:
            fields = decode_entry(raw)
            kind = fields.get("type", "")
            if kind == "workorder" and self.workorders is not None:
                # a work order, no call; who dispatched it, as over HTTP
                self.workorders.receive(dict(fields), self._actor(fields))
            elif kind.startswith("workorder_") and self.workorders is not None:
                self._life(kind.removeprefix("workorder_"), fields)
            else:
                self._as_12345(fields)
                self.desk.apply_message(fields, self._actor(fields))
            self.applied += 1
            self.log.info("inbound.applied", entry=entry_id, bridge_id=fields.get("bridge_id"))
        except RecordError as exc:
            if exc.status == 503:
                return
            self._refuse(entry_id, raw, exc.code, str(exc))
        except redis.RedisError:
            raise
        except Exception as exc:  # a defect must not stop the loop or repeat for ever
            self.log.error("inbound.failed", entry=entry_id, error=str(exc),
                           error_type=type(exc).__name__)
            self._refuse(entry_id, raw, "internal", f"{type(exc).__name__}: {exc}")
        self.client.xack(self.stream, GROUP, entry_id)

    def _life(self, action: str, fields: dict[str, str]) -> None:
        """A step of a work order's life that is 12345's (close, satisfaction, reopen,
        an extension's decision), exactly as its API role may take it."""
        segment = next((s for s, a in LIFE_ROUTES.items() if a == action), "")
        if not segment:
            raise Malformed(f"unknown type workorder_{action[:40]} (work order steps: "
                            f"{', '.join('workorder_' + a for a in LIFE_ROUTES.values())})",
                            "type_unknown")
        check_allowed(f"POST /workorders/<ticket>/{segment}", ApiRole.LINE_12345)
        assert self.workorders is not None
        self.workorders.act(fields.get("ticket", ""), action, dict(fields),
                            self._actor(fields))

    @staticmethod
    def _actor(fields: dict[str, str]) -> Actor:
        """Who acts at 12345: required, as for the 12345 role over HTTP (checked after
        the role's rules, as there)."""
        return Actor.human("stream", fields.get("operator"))

    def _as_12345(self, fields: dict[str, str]) -> None:
        """The stream is the 12345 system's way in: exactly the rules its API role has.
        No incident number (110's to attach); only bridges handed to 12345 or by it, and
        any other is "no bridge", as if it did not exist (its existence is not told)."""
        if "incident" in fields:
            check_allowed("PUT /bridges/<id>/incident", ApiRole.LINE_12345)
        bridge_id = fields.get("bridge_id", "")
        check_visible(ApiRole.LINE_12345, self.desk.bridge(bridge_id), bridge_id)

    def _refuse(self, entry_id: str, raw: Raw, code: str, message: str) -> None:
        self.refused += 1
        self.log.warning("inbound.refused", entry=entry_id, error_id=code,
                         error=message[:COPY_CHARS])
        copy = {f"in_{_shown(k)[:64]}": _shown(v) for k, v in list(raw.items())[:COPY_FIELDS]}
        entry: dict[Any, Any] = {"entry": entry_id, "error": code,
                                 "message": message[:COPY_CHARS], **copy}
        self.client.xadd(f"{self.stream}:errors", entry, maxlen=ERRORS_MAXLEN,
                         approximate=True)

    def stop(self) -> None:
        self.stopping.set()
