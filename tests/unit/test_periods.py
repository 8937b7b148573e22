"""Periods of the records (pure): what a day, month or year of the centre is in UTC, and
that a label out of range is a clean refusal (HTTP 400), never a crash (500)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gateway.records.errors import Malformed
from gateway.records.periods import period

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
