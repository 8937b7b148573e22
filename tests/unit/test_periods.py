"""Periods of the records (pure): what a day, month or year of the centre is in UTC, and
that a label out of range is a clean refusal (HTTP 400), never a crash (500)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.records.errors import Malformed
from gateway.records.periods import period, shift

BEIJING = ZoneInfo("Asia/Shanghai")


def test_a_beijing_day_is_two_utc_days_from_16_00() -> None:
    day = period("2026-11-28", BEIJING)
    assert (day.kind, day.end - day.start) == ("day", 86400.0)
    assert day.utc_days() == ["2026-11-27", "2026-11-28"]
    assert period("2026", BEIJING).utc_days()[0] == "2025-12-31"
    assert period("1970-01-02", BEIJING).utc_days() == ["1970-01-01", "1970-01-02"]


@pytest.mark.parametrize("label", [
    "0001", "0001-01-01", "0001-01", "1969-12-31", "9999", "9999-12", "9999-12-31",
    "2026-02-30", "2026-13", "2026-00-10", "２０２６", "2026-11-28\n", "", "2026\u2028",
])
def test_a_label_out_of_range_or_shape_is_malformed(label: str) -> None:
    with pytest.raises(Malformed) as info:
        period(label, BEIJING)
    assert info.value.code == "period_malformed"


def _at(text: str, zone: str = "Asia/Shanghai") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize("now,label,ends", [
    ("2026-12-03 12:00", "2026-12-03 08:00", "2026-12-03 20:00"),
    ("2026-12-03 08:00", "2026-12-03 08:00", "2026-12-03 20:00"),  # from its first second
    ("2026-12-03 07:59", "2026-12-02 20:00", "2026-12-03 08:00"),  # the night shift
    ("2026-12-03 23:30", "2026-12-03 20:00", "2026-12-04 08:00"),
])
def test_the_shift_now_runs_from_the_last_start_to_the_next(now: str, label: str,
                                                            ends: str) -> None:
    on = shift(_at(now), ("08:00", "20:00"), ZoneInfo("Asia/Shanghai"))
    assert (on.label, on.kind, on.start, on.end) == (label, "shift", _at(label), _at(ends))


def test_one_start_a_day_is_a_day_long_shift_and_a_clock_change_is_felt() -> None:
    on = shift(_at("2026-12-03 06:00"), ("07:30",), ZoneInfo("Asia/Shanghai"))
    assert (on.label, on.end - on.start) == ("2026-12-02 07:30", 24 * 3600.0)
    berlin = ZoneInfo("Europe/Berlin")  # 2026-03-29 02:00 → 03:00
    spring = shift(_at("2026-03-29 12:00", "Europe/Berlin"), ("08:00", "20:00"), berlin)
    night = shift(_at("2026-03-29 01:00", "Europe/Berlin"), ("08:00", "20:00"), berlin)
    assert (spring.end - spring.start, night.end - night.start) == (12 * 3600.0, 11 * 3600.0)
