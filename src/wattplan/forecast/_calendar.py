"""Day types: the weekday, with German public holidays counted as Sundays."""

from __future__ import annotations

import datetime as dt
import functools

import holidays

__all__ = ["SUNDAY", "day_type", "german_holidays"]

SUNDAY = 6


@functools.cache
def german_holidays(subdivision: str | None) -> holidays.HolidayBase:
    """German public holidays (nationwide, plus those of ``subdivision``, e.g. ``"BW"``)."""
    return holidays.country_holidays("DE", subdiv=subdivision)


def day_type(day: dt.date, subdivision: str | None) -> int:
    """0 (Monday) … 6 (Sunday); a public holiday is a Sunday."""
    if day in german_holidays(subdivision):
        return SUNDAY
    return day.weekday()
