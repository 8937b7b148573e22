"""The push's wire format (pure): an outbox entry in, a signed HTTP body out.

The body is JSON (UTF-8): the feed entry's ``id`` (the change's own id, stable across
retries: the receiver dedupes by it), ``record``, ``bridge_id`` (for a change of a
bridge, its callback task or its ticket), ``ticket`` (for a work order's), ``event``,
``at``, ``data`` and ``fields`` (objects), ``outbox_id`` (the entry's place in the
outbox stream; increasing) and ``schema`` (the record schema the entry was written
with, :data:`gateway.schema.SCHEMA_VERSION`; 0 for an entry written before versions),
so that a receiver can tell an old entry, redelivered after an upgrade, from a new one.

The signature header is ``X-Linkgw-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">``: the receiver recomputes it over the bytes it received, compares in
constant time, and refuses a ``t`` too far from its own clock (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Linkgw-Signature"
_UNIX = re.compile(r"[0-9]{1,12}")  # ASCII digits only ("²".isdigit() is True)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9]{1,6}")
TOLERANCE = 300  # seconds a receiver should accept between t and its own clock


class BadEntry(ValueError):
    """An outbox entry that cannot be pushed (not UTF-8, not JSON where JSON is due):
    it goes to the dead letters at once, with this reason."""


@dataclass(frozen=True)
class Entry:
    """One outbox entry: its stream id and its fields, as Redis gave them."""

    outbox_id: str
    fields: Mapping[bytes | str, bytes | str]

    @property
    def written_at(self) -> float:
        """Epoch seconds the entry was written (its stream id's milliseconds)."""
        ms, _, _ = self.outbox_id.removeprefix("retry:").partition("-")
        return int(ms) / 1000 if ms.isdigit() else 0.0


def _text(value: bytes | str, name: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEntry(f"{name} is not UTF-8 (byte {exc.start})") from exc


MAX_ENTRY = 256 * 1024  # bytes of one entry's names and values


def body(entry: Entry) -> bytes:
    """The JSON body for one entry; :class:`BadEntry` if it cannot be one (too large,
    not UTF-8, not JSON where JSON is due, nested past Python's recursion limit)."""
    size = sum(len(k) + len(v) for k, v in entry.fields.items())
    if size > MAX_ENTRY:
        raise BadEntry(f"entry of {size} bytes: at most {MAX_ENTRY}")
    fields = {_text(k, "a field name"): _text(v, f"field {_text(k, 'name')!r}")
              for k, v in entry.fields.items()}
    record = fields.get("record", "")
    kind, _, key = record.partition(":")
    # a dead letter sent again keeps its first place in the outbox, and says so
    first = fields.get("outbox_id", "")
    out: dict[str, object] = {"id": fields.get("id", ""),
                              "outbox_id": first or entry.outbox_id, "record": record}
    if first:
        out["redelivered"] = True
    if kind in ("bridge", "callback", "ticket"):
        out["bridge_id"] = key
    elif kind == "workorder":
        out["ticket"] = key
    out["event"] = fields.get("event", "")
    out["at"] = fields.get("at", "")
    schema = fields.get("schema", "")
    out["schema"] = int(schema) if _VERSION.fullmatch(schema) else 0
    for name in ("data", "fields"):
        try:
            value = json.loads(fields.get(name) or "{}")
        except (ValueError, RecursionError) as exc:
            raise BadEntry(f"{name} is not JSON: {type(exc).__name__}") from exc
        if not isinstance(value, dict):
            raise BadEntry(f"{name} is not a JSON object")
        out[name] = value
    if not out["id"] or not out["event"]:
        raise BadEntry("no id or no event")
    return json.dumps(out, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def signature(secret: bytes, at: int, raw: bytes) -> str:
    """The header value for ``raw`` sent at ``at`` (unix seconds)."""
    mac = hmac.new(secret, str(at).encode("ascii") + b"." + raw, hashlib.sha256)
    return f"t={at},v1={mac.hexdigest()}"


def verify(secret: bytes, header: str, raw: bytes, now: float,
           tolerance: float = TOLERANCE) -> bool:
    """What a receiver does: the header's ``t`` is recent and its ``v1`` is the HMAC of
    ``"<t>.<raw>"``."""
    parts = dict(p.partition("=")[::2] for p in header.split(",") if "=" in p)
    t, given = parts.get("t", ""), parts.get("v1", "")
    if not _UNIX.fullmatch(t) or not _HEX64.fullmatch(given) or \
            abs(now - int(t)) > tolerance:
        return False
    expected = signature(secret, int(t), raw).partition(",v1=")[2]
    return hmac.compare_digest(expected, given)


def backoff(failures: int, initial: float, cap: float) -> float:
    """Seconds before try ``failures + 1``: ``initial``, doubled each failure, at most
    ``cap``."""
    return float(min(cap, initial * 2 ** max(0, min(failures - 1, 30))))
