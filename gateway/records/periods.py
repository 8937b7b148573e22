"""Days, months and years in the centre's own time zone (pure).

Bridges are indexed by the UTC day they were requested on (``idx:day:<UTC date>``,
scored by epoch seconds), which never changes with a site's setting. A period in the
centre's time (a Beijing day runs from 16:00 UTC to 16:00 UTC) is read as the UTC days
that overlap it, cut by score to ``[start, end)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.records.errors import Malformed

_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})\Z")
_YEAR = re.compile(r"([0-9]{4})\Z")


@dataclass(frozen=True)
class Period:
    label: str  # "2026-11-28", "2026-11" or "2026"
    kind: str  # "day", "month" or "year"
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive

    def utc_days(self) -> list[str]:
        """The UTC dates whose day index may hold a bridge of this period."""
        first = datetime.fromtimestamp(self.start, UTC).date()
        last = datetime.fromtimestamp(self.end - 0.001, UTC).date()
        return [(first + timedelta(days=n)).isoformat()
                for n in range((last - first).days + 1)]


def _epoch(d: date, zone: ZoneInfo) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()


#: The years a period may fall in: no record is older than the epoch, and a later year
#: than this would overflow the next period's start.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def period(text: str, zone: ZoneInfo) -> Period:
    """``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``, in ``zone``; Malformed otherwise."""
    year = text[:4]
    if year.isascii() and year.isdigit() and not FIRST_YEAR <= int(year) <= LAST_YEAR:
        raise Malformed(f"{text[:20]!r}: the year must be {FIRST_YEAR} to {LAST_YEAR}",
                        "period_malformed")
    try:
        if m := _DAY.match(text):
            first = date(int(m[1]), int(m[2]), int(m[3]))
            return Period(text, "day", _epoch(first, zone),
                          _epoch(first + timedelta(days=1), zone))
        if m := _MONTH.match(text):
            first = date(int(m[1]), int(m[2]), 1)
            after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return Period(text, "month", _epoch(first, zone), _epoch(after, zone))
        if m := _YEAR.match(text):
            first = date(int(m[1]), 1, 1)
            return Period(text, "year", _epoch(first, zone),
                          _epoch(date(first.year + 1, 1, 1), zone))
    except (ValueError, OverflowError) as exc:  # 2026-02-30, month 13
        raise Malformed(f"{text[:20]!r}: {exc}", "period_malformed") from exc
    raise Malformed(f"{text[:20]!r} is not YYYY-MM-DD, YYYY-MM or YYYY", "period_malformed")


def shift(now: float, starts: tuple[str, ...], zone: ZoneInfo) -> Period:
    """The shift ``now`` falls in: from the latest of the day's shift starts (``HH:MM``,
    the centre's time, sorted) at or before ``now`` to the next one; its label is its
    start, ``YYYY-MM-DD HH:MM``. Each start is a wall-clock time, so a shift across a
    daylight-saving change is an hour longer or shorter, as the people working it see."""
    local = datetime.fromtimestamp(now, zone)
    candidates = []
    for days in (-1, 0, 1):
        on = local.date() + timedelta(days=days)
        for start in starts:
            hours, minutes = int(start[:2]), int(start[3:])
            candidates.append(datetime(on.year, on.month, on.day, hours, minutes,
                                       tzinfo=zone))
    candidates.sort()
    began = max(c for c in candidates if c.timestamp() <= now)
    ends = min(c for c in candidates if c.timestamp() > now)
    return Period(began.strftime("%Y-%m-%d %H:%M"), "shift", began.timestamp(),
                  ends.timestamp())


def today(now: float, zone: ZoneInfo) -> str:
    """The centre's date at ``now``."""
    return datetime.fromtimestamp(now, zone).strftime("%Y-%m-%d")
