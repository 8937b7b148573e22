"""``linkgw check-records``: can this release read everything in Redis?

Every record hash (bridges, calls, callback tasks, tickets, work orders) and every entry
of the events stream and the lines' feeds is read as bytes and checked: UTF-8, a schema
version this release reads (none: written before versions, read as 0), a bridge's
fields all known (:data:`gateway.schema.BRIDGE_FIELDS`), an event's ``record``, ``id``,
``event`` and ``at`` present and its ``data`` and ``fields`` JSON objects. It counts
what it read by kind and version and names each problem; it changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from gateway.schema import READABLE_VERSIONS, Keys, known_field

RECORD_KINDS = ("bridge", "call", "callback", "ticket", "workorder")
EVENT_KEYS = ("record", "id", "event", "at")
SHOWN = 50  # problems printed; all are counted


@dataclass
class Report:
    read: Counter[str] = field(default_factory=Counter)  # "bridge v0" → count
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{what}: {n}" for what, n in sorted(self.read.items())]
        out += [f"unreadable: {p}" for p in self.problems[:SHOWN]]
        if len(self.problems) > SHOWN:
            out.append(f"… and {len(self.problems) - SHOWN} more")
        out.append("ok: this release reads every record and event" if self.ok else
                   f"{len(self.problems)} unreadable")
        return out


def _text(raw: Mapping[bytes, bytes]) -> tuple[dict[str, str], str]:
    """The fields as text, or the first one that is not UTF-8."""
    out = {}
    for k, v in raw.items():
        try:
            out[k.decode("utf-8")] = v.decode("utf-8")
        except UnicodeDecodeError:
            name = k.decode("utf-8", "backslashreplace")
            return out, f"{name!r} is not UTF-8"
    return out, ""


def version(fields: Mapping[str, str]) -> tuple[int, str]:
    """The schema version and, when this release cannot read it, why."""
    raw = fields.get("schema", "0")
    if not raw.isascii() or not raw.isdigit():
        return -1, f"schema {raw[:20]!r} is not a version"
    number = int(raw)
    if number not in READABLE_VERSIONS:
        return number, f"schema {number}: written by a newer linkgw"
    return number, ""


def record_problems(kind: str, fields: Mapping[str, str]) -> list[str]:
    _, why = version(fields)
    problems = [why] if why else []
    if kind == "bridge" and not why:
        unknown = sorted(k for k in fields if not known_field(k))
        if unknown:
            problems.append(f"unknown fields {', '.join(unknown)[:200]}")
    return problems


def event_problems(entry: Mapping[str, str]) -> list[str]:
    _, why = version(entry)
    problems = [why] if why else []
    missing = [k for k in EVENT_KEYS if not entry.get(k)]
    if missing:
        problems.append(f"no {', '.join(missing)}")
    for name in ("data", "fields"):
        if name in entry:
            try:
                value = json.loads(entry[name])
            except (ValueError, RecursionError):
                value = None
            if not isinstance(value, dict):
                problems.append(f"{name} is not a JSON object")
    return problems


class RecordCheck:
    """``client`` reads bytes (``decode_responses=False``)."""

    def __init__(self, client: Any, prefix: str, batch: int = 1000) -> None:
        self.client, self.keys, self.batch = client, Keys(prefix), batch

    def run(self) -> Report:
        report = Report()
        for kind in RECORD_KINDS:
            for key in self._scan(self.keys.record(f"{kind}:*")):
                self._record(report, kind, key)
        for stream in [self.keys.events.encode(), *self._scan(self.keys.feed("*"))]:
            self._stream(report, stream)
        return report

    def _scan(self, pattern: str) -> Iterator[bytes]:
        """Key names as Redis holds them: a name that is not UTF-8 is still looked up
        by its own bytes (and shown escaped)."""
        yield from self.client.scan_iter(match=pattern, count=self.batch)

    def _record(self, report: Report, kind: str, raw_key: bytes) -> None:
        key = raw_key.decode("utf-8", "backslashreplace")
        if self.client.type(raw_key) != b"hash":
            report.problems.append(f"{key}: not a hash")
            return
        fields, bad = _text(cast(dict[bytes, bytes], self.client.hgetall(raw_key)))
        if bad:
            report.problems.append(f"{key}: {bad}")
            return
        number, _ = version(fields)
        report.read[f"{kind} v{number}"] += 1
        report.problems += [f"{key}: {p}" for p in record_problems(kind, fields)]

    def _stream(self, report: Report, raw_stream: bytes) -> None:
        stream = raw_stream.decode("utf-8", "backslashreplace")
        if self.client.type(raw_stream) not in (b"stream", b"none"):
            report.problems.append(f"{stream}: not a stream")
            return
        name = "events" if stream == self.keys.events else stream.rsplit(":", 1)[-1]
        start = "-"
        while True:
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]],
                           self.client.xrange(raw_stream, start, "+", count=self.batch))
            for raw_id, raw in entries:
                entry_id = raw_id.decode("ascii")
                fields, bad = _text(raw)
                if bad:
                    report.problems.append(f"{stream} {entry_id}: {bad}")
                    continue
                number, _ = version(fields)
                label = "events" if name == "events" else f"feed {name}"
                report.read[f"{label} entry v{number}"] += 1
                report.problems += [f"{stream} {entry_id}: {p}"
                                    for p in event_problems(fields)]
            if len(entries) < self.batch:
                return
            start = "(" + entries[-1][0].decode("ascii")
