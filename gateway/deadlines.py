"""Deadlines in hours or in working days, on China's official holiday calendar (pure).

12345's rules give most deadlines in working days (工作日): "answered within 3 working
days". A :class:`Term` is either hours (counted on the clock) or working days. N working
days from a moment end at midnight, the centre's time, at the end of the N-th working day
after the day it started; the day it started is not counted (期间开始之日不计算在期间内,
as Chinese procedure counts periods), so an order received on a Friday morning with one
working day is due at the end of Monday.

Which days are working days: the site's own dates first (``tickets.days_off``,
``tickets.make_up_days``: a holiday the State Council adds, or next year's schedule
before a release has it), then the official calendar of the ``chinese-calendar`` package
(its holidays and make-up working days, 调休), and for a year neither knows, Monday to
Friday. A deadline counted over such a year says so (:attr:`Due.calendar` is
``weekdays``), so nobody mistakes it for the official one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the config and the catalogue import this module's MAX_WORKING_DAYS
    from gateway.catalogue import Catalogue
    from gateway.config import Line, TicketConfig

#: How a deadline was counted: on the clock, on the official (or the site's) calendar, or
#: over a year no calendar knows (Monday to Friday).
HOURS, OFFICIAL, WEEKDAYS = "hours", "official", "weekdays"
MAX_WORKING_DAYS = 60  # a term longer than this is a mistake in the config


@dataclass(frozen=True)
class Term:
    """How long something may take: ``working_days`` when set, else ``hours``."""

    hours: float = 0.0
    working_days: int = 0

    def __str__(self) -> str:
        if self.working_days:
            return f"{self.working_days} working day(s)"
        return f"{self.hours:g} h"


@dataclass(frozen=True)
class Due:
    at: float  # epoch seconds
    calendar: str  # HOURS, OFFICIAL or WEEKDAYS


def official_workday(day: date) -> bool | None:
    """Whether ``day`` is a working day by China's official calendar; None for a year the
    installed ``chinese-calendar`` has no data for."""
    try:  # no stubs; imported when used (process mode's Python may lack it: weekdays)
        import chinese_calendar  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # "no available data for year ..."
        return None


@dataclass(frozen=True)
class WorkCalendar:
    zone: ZoneInfo
    days_off: frozenset[date] = frozenset()  # the site's: holidays the package lacks
    make_up_days: frozenset[date] = frozenset()  # the site's: weekend days worked
    official: Callable[[date], bool | None] = official_workday

    def working(self, day: date) -> tuple[bool, bool]:
        """(is a working day, known from a calendar rather than guessed from the
        weekday)."""
        if day in self.make_up_days:
            return True, True
        if day in self.days_off:
            return False, True
        known = self.official(day)
        if known is None:
            return day.weekday() < 5, False
        return known, True

    def due(self, start: float, term: Term) -> Due:
        """When something started at ``start`` with ``term`` is due."""
        if not term.working_days:
            return Due(start + term.hours * 3600, HOURS)
        day = datetime.fromtimestamp(start, self.zone).date()
        left, guessed = term.working_days, False
        while left:
            day += timedelta(days=1)
            working, known = self.working(day)
            guessed = guessed or not known
            left -= working
        end = day + timedelta(days=1)  # midnight at the end of the last working day
        at = datetime(end.year, end.month, end.day, tzinfo=self.zone).timestamp()
        return Due(at, WEEKDAYS if guessed else OFFICIAL)


def parse_dates(values: tuple[str, ...]) -> frozenset[date]:
    """``YYYY-MM-DD`` texts as dates (the config checked them)."""
    return frozenset(date.fromisoformat(v) for v in values)


@lru_cache(maxsize=8)
def calendar_of(zone: str, days_off: tuple[str, ...] = (),
                make_up_days: tuple[str, ...] = ()) -> WorkCalendar:
    """The site's calendar from its ``tickets`` settings (one per setting)."""
    return WorkCalendar(ZoneInfo(zone), parse_dates(days_off), parse_dates(make_up_days))


def term(working_days: int | None, hours: float | None, default_days: int,
         default_hours: float) -> Term:
    """A category's term (days before hours), else the site's (days before hours)."""
    if working_days:
        return Term(working_days=working_days)
    if hours:
        return Term(hours=hours)
    if default_days:
        return Term(working_days=default_days)
    return Term(hours=default_hours)


class Deadlines:
    """The site's deadlines: 12345's feedback on a bridge handed to it, 110's answer to
    a work order, each per category (``categories.yaml``) else the site's
    (``tickets.*``), counted on the site's calendar."""

    def __init__(self, tickets: TicketConfig, catalogue: Catalogue) -> None:
        self.tickets, self.catalogue = tickets, catalogue
        self.calendar = calendar_of(tickets.time_zone, tickets.days_off, tickets.make_up_days)

    def feedback(self, category_id: str, start: float, line: Line | None = None) -> Due:
        """A further line (``transfer.lines``) with a term of its own has it; else the
        category's, else the site's."""
        if line is not None and (line.feedback_days or line.feedback_hours):
            return self.calendar.due(start, term(line.feedback_days, line.feedback_hours,
                                                 0, 0.0))
        category = self.catalogue.category(category_id)
        return self.calendar.due(start, term(
            category.feedback_days if category else None,
            category.feedback_hours if category else None,
            self.tickets.feedback_days, self.tickets.feedback_hours))

    def response(self, category_id: str, start: float) -> Due:
        """A police matter takes the deadline of the category it is near."""
        matter = self.catalogue.police_matter(category_id)
        category = self.catalogue.category(matter.category if matter else category_id)
        return self.calendar.due(start, term(
            category.response_days if category else None,
            category.response_hours if category else None,
            self.tickets.workorder_response_days, self.tickets.workorder_response_hours))
