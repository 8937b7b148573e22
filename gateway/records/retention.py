"""Retention: a UTC day's records exported, then removed; streams trimmed safely; the
chain checkpointed where it was cut and sealed with a key kept outside Redis.

``linkgw retention`` (from cron, e.g. nightly) does, for every UTC day older than
``retention.days``:

1. **export** the day to ``<export_dir>/<day>.jsonl`` (0600; written to a temporary
   file, fsynced, renamed, the folder fsynced): every record of the day (bridges with
   their ticket and callback records, registered calls, work orders) and every event
   of the day, one JSON object a line, ASCII only; ``<p>:exported:<day>`` then holds the
   file's name, line count and SHA-256;
2. **seal** the day's chain when a key is configured (``retention.chain_key_env``):
   ``<p>:seal:<day>`` = HMAC-SHA256 over the day, its entry count and last hash;
3. **remove** the day's records and their index entries, only if the export on record
   still matches the file on disk;

then trims each stream up to the oldest removed day's end, but never past an entry a
configured consumer group (``retention.groups``) has not read or acknowledged. Before
entries of a day are trimmed, ``<p>:checkpoint:<day>`` records how many of the day's
entries went and the hash of the last one, so that ``verify-chain`` still checks what
is left of the day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import redis

from gateway.schema import (
    IDX_CALLBACKS_OPEN,
    IDX_DEADLINE,
    IDX_DUTY_DUE,
    IDX_FEEDBACK,
    IDX_LIVE,
    IDX_PUSH_NEEDED,
    IDX_WORKORDER_DEADLINE,
    IDX_WORKORDERS_OPEN,
    Keys,
    bridge_record,
    call_record,
    callback_record,
    idx_caller,
    idx_calls_caller,
    idx_calls_day,
    idx_day,
    idx_incident,
    idx_seat,
    idx_ticket,
    idx_workorder_day,
    ticket_record,
    workorder_record,
)


class RetentionError(Exception):
    pass


#: Milliseconds a chain walk starts before its day: a stream id is Redis's clock, an
#: entry's ``at`` the writer's; they may differ a little.
SKEW_MS = 3_600_000


def walk_start(day: str) -> str:
    """The stream id a walk over one day's chain starts from."""
    return f"{max(day_bounds_ms(day)[0] - SKEW_MS, 0)}-0"


def day_bounds_ms(day: str) -> tuple[int, int]:
    """A UTC day as stream ids' millisecond range [start, end)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def seal_mac(key: bytes, day: str, count: int, last_hash: str) -> str:
    return hmac.new(key, f"linkgw-seal\n{day}\n{count}\n{last_hash}".encode(),
                    hashlib.sha256).hexdigest()


@dataclass
class DayRecords:
    """What one UTC day holds: record names and the index entries pointing at them."""

    records: list[str] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (index, member)
    day_indexes: list[str] = field(default_factory=list)


@dataclass
class Retention:
    client: redis.Redis
    prefix: str
    export_dir: Path
    groups: tuple[str, ...] = ()
    key: bytes = b""
    log: Callable[[str], None] = lambda _: None

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    # -- which days --------------------------------------------------------------------
    def days(self) -> list[str]:
        """UTC days that still have records (from the day indexes), oldest first. A
        name from Redis becomes a file name: only a real date ``YYYY-MM-DD`` is a day;
        anything else is logged and left alone (``../../x`` never names a path)."""
        found: set[str] = set()
        for pattern in ("day:*", "calls:day:*", "workorders:day:*"):
            for key in self.client.scan_iter(match=self.keys.index(pattern), count=500):
                name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                day = name.split(":day:", 1)[1] if ":day:" in name else ""
                if is_day(day):
                    found.add(day)
                else:
                    self.log(f"refused: index {name[:120]!r} does not name a day; left alone")
        return sorted(found)

    def export_path(self, day: str) -> Path:
        """``<export_dir>/<day>.jsonl`` for a checked day; never a path outside."""
        if not is_day(day):
            raise RetentionError(f"{day[:40]!r} is not a day")
        path = self.export_dir / f"{day}.jsonl"
        if path.parent != self.export_dir:
            raise RetentionError(f"{day[:40]!r} leaves the export folder")
        return path

    # -- what a day holds --------------------------------------------------------------
    def _members(self, index: str) -> list[str]:
        return cast(list[str], self.client.zrange(self.keys.index(index), 0, -1))

    def _hash(self, record: str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(self.keys.record(record)))

    def collect(self, day: str) -> tuple[DayRecords, list[dict[str, Any]]]:
        """The day's record names, index entries and the records themselves."""
        held, rows = DayRecords(), []
        held.day_indexes = [idx_day(day), idx_calls_day(day), idx_workorder_day(day)]
        for bridge_id in self._members(idx_day(day)):
            for name in (bridge_record(bridge_id), ticket_record(bridge_id),
                         callback_record(bridge_id)):
                record = self._hash(name)
                if record:
                    rows.append({"record": name, "fields": record})
                    held.records.append(name)
            bridge = self._hash(bridge_record(bridge_id))
            ticket = self._hash(ticket_record(bridge_id))
            held.memberships += [(ix, bridge_id) for ix in (
                idx_caller(bridge.get("citizen_number", "")), idx_seat(bridge.get("seat", "")),
                idx_ticket(ticket.get("ticket", "")), idx_incident(ticket.get("incident", "")),
                IDX_LIVE, IDX_DEADLINE, IDX_FEEDBACK, IDX_CALLBACKS_OPEN, IDX_PUSH_NEEDED)]
        for uniqueid in self._members(idx_calls_day(day)):
            call = self._hash(call_record(uniqueid))
            if call:
                rows.append({"record": call_record(uniqueid), "fields": call})
                held.records.append(call_record(uniqueid))
            held.memberships.append((idx_calls_caller(call.get("number", "")), uniqueid))
        for number in self._members(idx_workorder_day(day)):
            order = self._hash(workorder_record(number))
            if order:
                rows.append({"record": workorder_record(number), "fields": order})
                held.records.append(workorder_record(number))
            held.memberships += [(IDX_WORKORDERS_OPEN, number), (IDX_WORKORDER_DEADLINE, number),
                                 (IDX_DUTY_DUE, number)]
        return held, rows

    def events(self, day: str) -> Iterator[tuple[str, dict[str, str]]]:
        """The entries of the day's chain (their ``at`` on that UTC day), in stream
        order. None is written before its time (give or take the clocks' skew), so the
        walk starts at the day."""
        cursor = walk_start(day)
        while True:
            batch = cast(list[tuple[str, dict[str, str]]], self.client.xrange(
                self.keys.events, cursor, "+", count=1000))
            for entry_id, entry in batch:
                if chain_day(entry) == day:
                    yield entry_id, entry
            if len(batch) < 1000:
                return
            cursor = "(" + batch[-1][0]

    # -- 1. export ---------------------------------------------------------------------
    def export(self, day: str) -> Path:
        path = self.export_path(day)
        held, rows = self.collect(day)
        self.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".jsonl.part")
        digest = hashlib.sha256()
        lines = 0
        # never through a link planted at the temporary name
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            items: list[dict[str, Any]] = [{"kind": "record"} | row for row in rows]
            items += [{"kind": "event", "id": i, "entry": e} for i, e in self.events(day)]
            for item in items:
                line = (json.dumps(item, ensure_ascii=True, sort_keys=True) + "\n").encode()
                out.write(line)
                digest.update(line)
                lines += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        folder = os.open(self.export_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self.client.hset(self.keys.exported(day), mapping={
            "file": str(path), "lines": str(lines), "sha256": digest.hexdigest(),
            "records": str(len(held.records))})
        self.log(f"exported {day}: {lines} lines to {path}")
        return path

    def export_intact(self, day: str) -> bool:
        """The export on record is on disk, whole and unchanged. The file is the day's
        own in ``export_dir`` (whatever path Redis holds), a regular file, not a link:
        a FIFO or a device there is refused without blocking."""
        mark = cast(dict[str, str], self.client.hgetall(self.keys.exported(day)))
        if not mark:
            return False
        path = self.export_path(day)
        if mark.get("file") not in (None, str(path)):
            self.log(f"refused: exported:{day} names {mark.get('file', '')[:120]!r}, not "
                     f"{path}; the day is exported again")
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                self.log(f"refused: {path} is not a regular file")
                return False
            data = f.read()
        return hashlib.sha256(data).hexdigest() == mark.get("sha256")

    # -- 2. seal -----------------------------------------------------------------------
    def seal(self, day: str) -> bool:
        """Seal the day's chain as it stands (False without a key or entries)."""
        if not self.key:
            return False
        count, last = 0, ""
        checkpoint = cast(dict[str, str], self.client.hgetall(self.keys.checkpoint(day)))
        if checkpoint:
            count, last = int(checkpoint.get("removed", "0")), checkpoint.get("hash", "")
        for _, entry in self.events(day):
            count, last = count + 1, entry.get("hash", "")
        if not count:
            return False
        seal = {"count": str(count), "hash": last, "mac": seal_mac(self.key, day, count, last)}
        # first where a Redis writer cannot reach: a day once sealed stays known as
        # sealed, even when its seal is deleted from Redis
        self._write_manifest(day, seal)
        self.client.hset(self.keys.seal(day), mapping=dict(seal.items()))
        return True

    def _write_manifest(self, day: str, seal: dict[str, str]) -> None:
        path = manifest_path(self.export_dir, day)
        self.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".seal.part")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps({"day": day} | seal, sort_keys=True).encode("ascii"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)

    # -- 3. remove ---------------------------------------------------------------------
    def remove(self, day: str) -> int:
        """Remove the day's records (only when its export is intact); how many."""
        if not self.export_intact(day):
            raise RetentionError(f"{day}: no intact export on record; nothing removed")
        held, _ = self.collect(day)
        pipe = self.client.pipeline(transaction=True)
        for name in held.records:
            pipe.delete(self.keys.record(name), self.keys.applied(name))
        for index, member in held.memberships:
            pipe.zrem(self.keys.index(index), member)
        for index in held.day_indexes:
            pipe.delete(self.keys.index(index))
        pipe.execute()
        self.log(f"removed {day}: {len(held.records)} records")
        return len(held.records)

    # -- trimming ----------------------------------------------------------------------
    def safe_id(self, stream: str, wanted: str) -> str:
        """The smallest id trimming may keep on ``stream``: ``wanted``, or earlier when
        a configured group has not read, or not acknowledged, what lies before it."""
        safe = _id_tuple(wanted)
        for spec in self.groups:
            name, _, group = spec.partition("/")
            if self.keys.inbound(name) != stream:
                continue
            try:
                infos = self.client.xinfo_groups(stream)
            except redis.ResponseError:
                continue  # no such stream yet
            info = next((g for g in infos if _text(g.get("name")) == group), None)
            if info is None:  # the group is not there yet: it has read nothing
                return "0-0"
            after_read = _next_id(_id_tuple(_text(info.get("last-delivered-id", "0-0"))))
            safe = min(safe, after_read)
            pending = self.client.xpending(stream, group)
            if int(pending.get("pending", 0)):
                safe = min(safe, _id_tuple(_text(pending["min"])))
        return f"{safe[0]}-{safe[1]}"

    def trim(self, before_day: str) -> dict[str, int]:
        """Trim every stream to ``before_day`` (UTC, exclusive) or the groups' progress,
        checkpointing the event stream's chain first. Entries removed, per stream."""
        wanted = f"{day_bounds_ms(before_day)[0]}-0"
        out: dict[str, int] = {}
        grouped = {self.keys.inbound(spec.partition("/")[0]) for spec in self.groups}
        streams = list(dict.fromkeys([self.keys.events, *sorted(grouped)]))
        for stream in streams:
            minid = self.safe_id(stream, wanted)
            if stream == self.keys.events:
                self._checkpoint(minid)
            out[stream] = int(self.client.xtrim(stream, minid=minid, approximate=False))
        return out

    def _checkpoint(self, minid: str) -> None:
        """For each day of which entries are about to go: how many, and the last one's
        hash (what the first kept entry of that day must point to)."""
        gone: dict[str, tuple[int, str]] = {}
        cursor = "-"
        while True:
            batch = cast(list[tuple[str, dict[str, str]]], self.client.xrange(
                self.keys.events, cursor, "+", count=1000))
            for entry_id, entry in batch:
                if _id_tuple(entry_id) >= _id_tuple(minid):
                    batch = []
                    break
                day = chain_day(entry)
                count, _ = gone.get(day, (0, ""))
                gone[day] = (count + 1, entry.get("hash", ""))
            if len(batch) < 1000:
                break
            cursor = "(" + batch[-1][0]
        for day, (count, last) in gone.items():
            before = cast(dict[str, str], self.client.hgetall(self.keys.checkpoint(day)))
            removed = int(before.get("removed", "0")) + count
            self.client.hset(self.keys.checkpoint(day),
                             mapping={"removed": str(removed), "hash": last})

    # -- all of it ---------------------------------------------------------------------
    def run(self, keep_days: int, today: date) -> dict[str, Any]:
        """Export, seal and remove every day older than ``keep_days``; trim."""
        cutoff = (today - timedelta(days=keep_days)).isoformat()
        done, failed = [], []
        for day in self.days():
            if day >= cutoff:
                continue
            try:
                if not self.export_intact(day):
                    self.export(day)
                self.seal(day)
                self.remove(day)
            except (RetentionError, OSError) as exc:  # this day only; the others go on
                self.log(f"{day}: not done: {exc}")
                failed.append(day)
                continue
            done.append(day)
        # never trim past a day that could not be exported
        trimmed = self.trim(min([cutoff, *failed]))
        return {"cutoff": cutoff, "days": done, "failed": failed, "trimmed": trimmed}


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MANIFEST_MAX = 4096  # bytes of a seal manifest


def manifest_path(export_dir: Path, day: str) -> Path:
    """``<export_dir>/<day>.seal``: the day's seal as retention made it."""
    if not is_day(day):
        raise RetentionError(f"{day[:40]!r} is not a day")
    return export_dir / f"{day}.seal"


def read_manifest(export_dir: Path, day: str) -> dict[str, str] | None:
    """The day's seal manifest, if one was written (a regular file, not a link, small,
    a JSON object of strings naming this day); None when there is none. Anything else
    there reads as a manifest nobody can trust: ``{"invalid": why}``."""
    try:
        fd = os.open(manifest_path(export_dir, day), os.O_RDONLY | os.O_NOFOLLOW |
                     os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except (OSError, RetentionError) as exc:
        return {"invalid": f"cannot open: {exc}"}
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return {"invalid": "not a regular file"}
        raw = f.read(MANIFEST_MAX + 1)
    try:
        value = json.loads(raw) if len(raw) <= MANIFEST_MAX else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or value.get("day") != day or \
            not all(isinstance(v, str) for v in value.values()):
        return {"invalid": "not this day's manifest"}
    return value


def is_day(name: str) -> bool:
    """``name`` is a real calendar date written ``YYYY-MM-DD`` (ASCII digits)."""
    if not _DAY.fullmatch(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def chain_day(entry: dict[str, str]) -> str:
    """The UTC day whose chain an event entry belongs to (by its ``at``)."""
    try:
        return datetime.fromtimestamp(float(entry.get("at", "")), UTC).strftime("%Y-%m-%d")
    except ValueError:
        return ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: tuple[int, int]) -> tuple[int, int]:
    return stream_id[0], stream_id[1] + 1
