"""Deadlines in working days on China's official calendar, and where the site sets them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.catalogue import CategoryError, load_categories
from gateway.config import ConfigError, Line, TicketConfig, load_config
from gateway.deadlines import (
    HOURS,
    OFFICIAL,
    WEEKDAYS,
    Deadlines,
    Term,
    WorkCalendar,
    official_workday,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(SHANGHAI)


def at(text: str) -> float:
    """A moment in Beijing time, ``YYYY-MM-DD HH:MM``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp()


def shown(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).strftime("%Y-%m-%d %H:%M")


def test_the_official_calendar_knows_national_day_and_its_make_up_saturday() -> None:
    assert official_workday(date(2026, 10, 1)) is False  # 国庆节
    assert official_workday(date(2026, 10, 8)) is True
    assert official_workday(date(2026, 10, 10)) is True  # a Saturday worked (调休)
    assert official_workday(date(2026, 10, 11)) is False  # a Sunday


@pytest.mark.parametrize(("start", "days", "due"), [
    # the day it starts is not counted: Monday + 1 → the end of Tuesday
    ("2026-11-30 09:00", 1, "2026-12-02 00:00"),
    # Friday + 1 → the end of Monday (the weekend is not counted)
    ("2026-11-27 16:30", 1, "2026-12-01 00:00"),
    # the holiday moves it: 30 September + 1 → the end of 8 October, not of 1 October
    ("2026-09-30 10:00", 1, "2026-10-09 00:00"),
    # and the make-up Saturday counts: 8 Oct + 2 → 9 Oct (Fri), 10 Oct (Sat, worked)
    ("2026-10-08 10:00", 2, "2026-10-11 00:00"),
    # started on a holiday: counted from the first working day after it
    ("2026-10-03 12:00", 1, "2026-10-09 00:00"),
    # a minute after midnight in Beijing is the next day there (16:01 UTC the day before)
    ("2026-10-08 00:01", 1, "2026-10-10 00:00"),
])
def test_working_days_end_at_midnight_of_the_last_one_in_the_centres_time(
        start: str, days: int, due: str) -> None:
    got = CALENDAR.due(at(start), Term(working_days=days))
    assert (shown(got.at), got.calendar) == (due, OFFICIAL)


def test_hours_are_counted_on_the_clock_holiday_or_not() -> None:
    got = CALENDAR.due(at("2026-09-30 10:00"), Term(hours=24))
    assert (shown(got.at), got.calendar) == ("2026-10-01 10:00", HOURS)


def up_to_2026(day: date) -> bool | None:
    """The official calendar as chinese-calendar 1.11 has it: nothing after 2026 (a
    later release that knows 2027 must not change what these tests prove)."""
    return official_workday(day) if day.year <= 2026 else None


def test_a_year_no_calendar_knows_counts_weekdays_and_says_so() -> None:
    """A deadline into a year the calendar does not know is a guess, and says so."""
    got = WorkCalendar(SHANGHAI, official=up_to_2026).due(at("2026-12-31 10:00"),
                                                          Term(working_days=1))
    # 1 January 2027 is a Friday: counted as a working day, and marked as guessed
    assert (shown(got.at), got.calendar) == ("2027-01-02 00:00", WEEKDAYS)


def test_the_sites_own_dates_come_before_the_official_calendar() -> None:
    """The site knows 2027's New Year and a Saturday worked before a release does."""
    site = WorkCalendar(SHANGHAI, days_off=frozenset({date(2027, 1, 1)}),
                        make_up_days=frozenset({date(2027, 1, 2)}), official=up_to_2026)
    got = site.due(at("2026-12-31 10:00"), Term(working_days=1))
    assert (shown(got.at), got.calendar) == ("2027-01-03 00:00", OFFICIAL)


def test_a_calendar_asked_nothing_else_answers_from_its_own_function() -> None:
    """The official calendar is a part: a test (or a site) may give its own."""
    every_day = WorkCalendar(SHANGHAI, official=lambda day: True)
    got = every_day.due(at("2026-10-01 10:00"), Term(working_days=2))
    assert (shown(got.at), got.calendar) == ("2026-10-04 00:00", OFFICIAL)


CATEGORIES = """\
categories:
  - id: noise
    code: "1"
    name_zh: 噪声
    name_en: Noise
    stays_with_110_if: [fight]
    response_days: 3
    feedback_days: 5
    items:
      - {id: noise.square, code: "101", name_zh: 广场舞, name_en: Square dancing}
  - id: roads
    code: "2"
    name_zh: 道路
    name_en: Roads
    stays_with_110_if: [injury]
    response_hours: 4
    items:
      - {id: roads.pothole, code: "201", name_zh: 坑洼, name_en: Pothole}
police_matters:
  - {id: noise.threat, code: "199", name_zh: 威胁, name_en: Threat, near: noise}
"""


def catalogue(tmp_path: Path, text: str = CATEGORIES) -> Path:
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_deadline_comes_from_its_category_then_from_the_site(tmp_path: Path) -> None:
    deadlines = Deadlines(TicketConfig(workorder_response_days=2, feedback_hours=72),
                          load_categories(catalogue(tmp_path)))
    start = at("2026-09-30 10:00")
    # 3 working days after a holiday: 8, 9 and 10 October (a Saturday worked)
    assert shown(deadlines.response("noise", start).at) == "2026-10-11 00:00"
    assert shown(deadlines.response("noise.threat", start).at) == "2026-10-11 00:00"
    assert shown(deadlines.response("roads", start).at) == "2026-09-30 14:00"  # 4 h
    assert shown(deadlines.response("other", start).at) == "2026-10-10 00:00"  # site: 2
    assert shown(deadlines.feedback("noise", start).at) == "2026-10-14 00:00"  # 5 days
    assert shown(deadlines.feedback("roads", start).at) == "2026-10-03 10:00"  # site: 72 h


@pytest.mark.parametrize(("line", "error"), [
    ("    response_days: 0\n", "response_days must be 1 to 60 working days"),
    ("    response_days: 2.5\n", "response_days must be 1 to 60 working days"),
    ("    response_days: ３\n", "response_days must be 1 to 60 working days"),
    ("    response_days: 2\n    response_hours: 4\n", "response_days and response_hours"),
])
def test_a_categorys_working_days_are_checked(tmp_path: Path, line: str, error: str) -> None:
    text = CATEGORIES.replace("    response_days: 3\n", line)
    with pytest.raises(CategoryError, match=error):
        load_categories(catalogue(tmp_path, text))


@pytest.mark.parametrize(("tickets", "error"), [
    ("  days_off: [2027-02-30]\n", "not a valid value: day is out of range"),
    ("  days_off: ['2027-1-1']\n", "'2027-1-1' is not a date"),
    ("  days_off: ['2027-01-01\\n']\n", "is not a date"),
    ("  make_up_days: ['２０２７-01-01']\n", "is not a date"),
    ("  feedback_days: 61\n", "must be 0 to 60 working days"),
    ("  extension_max_days: 0\n", "must be 1 to 60 working days"),
    ("  days_off: [2027-01-01]\n  make_up_days: [2027-01-01]\n",
     "2027-01-01 is also in tickets.days_off"),
])
def test_the_sites_dates_and_days_are_checked(tickets: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(f"tickets:\n{tickets}", secrets=False)


def test_the_sites_dates_may_be_written_as_yaml_dates_or_texts() -> None:
    """A site's own day off (a Tuesday) and day worked (a Sunday), from its config."""
    config = load_config("tickets:\n  days_off: [2026-12-01, '2027-02-10']\n"
                         "  make_up_days: [2026-11-29]\n  workorder_response_days: 1\n",
                         secrets=False)
    assert (config.tickets.days_off, config.tickets.make_up_days) == \
        (("2026-12-01", "2027-02-10"), ("2026-11-29",))
    deadlines = Deadlines(config.tickets, load_categories(Path("config/categories.yaml")))
    monday = datetime(2026, 11, 30, 2, tzinfo=UTC).timestamp()  # 10:00 Beijing
    got = deadlines.response("no-such-category", monday)
    assert (shown(got.at), got.calendar) == ("2026-12-03 00:00", OFFICIAL)  # not Tuesday
    saturday = datetime(2026, 11, 28, 2, tzinfo=UTC).timestamp()
    assert shown(deadlines.response("no-such-category", saturday).at) == "2026-11-30 00:00"


def test_a_further_line_with_a_term_of_its_own_has_it_before_the_categorys() -> None:
    """122 answers within 8 hours (transfer.lines[].feedback_hours), or 1 working day;
    a line without one has the category's term, as 12345 does."""
    catalogue = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")
    deadlines = Deadlines(TicketConfig(), catalogue)
    start = 1_790_733_600.0  # 2026-09-30 10:00 in Beijing, before National Day
    hours = Line("122", "交警", "*3", "PJSIP/122", feedback_hours=8.0)
    days = Line("122", "交警", "*3", "PJSIP/122", feedback_days=1)
    plain = Line("122", "交警", "*3", "PJSIP/122")
    assert deadlines.feedback("utilities", start, hours).at == start + 8 * 3600
    # one working day on the site's calendar, as the site's own 1-day rule counts it for a
    # category without a term of its own, though utilities has 24 h of its own
    one_day = Deadlines(TicketConfig(feedback_days=1), catalogue).feedback("environment", start)
    assert deadlines.feedback("utilities", start, days) == one_day
    assert one_day.at > start + 7 * 86400  # National Day is not counted
    assert deadlines.feedback("utilities", start, plain) == \
        deadlines.feedback("utilities", start)
