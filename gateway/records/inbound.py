"""The 12345 side's way in: a Redis stream it may write tickets and statuses to.

Each entry (``bridge_id`` plus ``ticket`` / ``incident`` / ``status`` / ``note``) is
applied by the :class:`~gateway.records.tickets.TicketDesk` exactly as an API call is.
The gateway reads with a consumer group (at-least-once: an entry is acknowledged only
after it was applied or refused; a crash before that re-delivers it, and applying it
again changes nothing). A refused entry is acknowledged and copied, with the reason, to
``<stream>:errors``. The loop runs in a thread with a blocking client.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import redis

from gateway.records.errors import RecordError
from gateway.records.tickets import TicketDesk

GROUP = "linkgw-gateway"


class InboundTickets:
    def __init__(self, client: redis.Redis, desk: TicketDesk, stream: str, consumer: str,
                 log: Any, events_stream: str = "", events_group: str = "") -> None:
        self.client, self.desk, self.stream, self.consumer = client, desk, stream, consumer
        self.log = log
        self.events_stream, self.events_group = events_stream, events_group
        self.stopping = threading.Event()
        self.applied = 0
        self.refused = 0

    def ensure_groups(self) -> None:
        """Our group on the inbound stream; the 12345 system's group on the events."""
        groups = [(self.stream, GROUP)]
        if self.events_stream and self.events_group:
            groups.append((self.events_stream, self.events_group))
        for stream, group in groups:
            try:
                self.client.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def run(self) -> None:
        """Until stop(): first what was delivered but not acknowledged, then new ones."""
        backlog = True
        down = False
        while not self.stopping.is_set():
            try:
                if backlog:
                    self.ensure_groups()
                got = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]],
                           self.client.xreadgroup(GROUP, self.consumer,
                                                  {self.stream: "0" if backlog else ">"},
                                                  count=50, block=None if backlog else 1000))
            except redis.RedisError as exc:
                if not down:  # once per outage, not once a second
                    self.log.warning("inbound.redis_unavailable", error=str(exc))
                down = True
                self.stopping.wait(1.0)
                backlog = True
                continue
            if down:
                self.log.info("inbound.redis_back")
                down = False
            entries = got[0][1] if got else []
            if backlog and not entries:
                backlog = False
            try:
                for entry_id, fields in entries:
                    self.handle(entry_id, fields)
            except redis.RedisError as exc:  # unacknowledged entries come back later
                self.log.warning("inbound.redis_unavailable", error=str(exc))
                down, backlog = True, True
                self.stopping.wait(1.0)

    def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            self.desk.apply_message(fields, "stream")
            self.applied += 1
            self.log.info("inbound.applied", entry=entry_id, bridge_id=fields.get("bridge_id"))
        except RecordError as exc:
            if exc.status == 503:
                return  # Redis trouble: leave it unacknowledged, it comes back
            self.refused += 1
            self.log.warning("inbound.refused", entry=entry_id, error_id=exc.code,
                             error=str(exc))
            self.client.xadd(f"{self.stream}:errors", {
                "entry": entry_id, "error": exc.code, "message": str(exc),
                **{f"in_{k}": v for k, v in fields.items()}})
        self.client.xack(self.stream, GROUP, entry_id)

    def stop(self) -> None:
        self.stopping.set()
