"""The pure rules of actions (spec §13): statuses, who may change one, when one is overdue.

An action is due on a date of the cell's calendar and is overdue from the day after it, as the
cell's clock reads the date (daylight saving included), never from a UTC date. Weekends and
public holidays do not stop that clock: "due 20 December" means overdue on 21 December, as
members read it. A due date on a weekend day or a Belgian public holiday is accepted with a
note (as ``meeting schedule`` does), never moved silently.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from commands.meetings.cadence import is_working_day
from commands.model import Member, Role

#: At most this much text in an action's description (spec §13).
MAX_DESCRIPTION = 200
#: How far ahead a due date may lie.
MAX_AHEAD = timedelta(days=2 * 366)


class ActionStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    NOT_POSSIBLE = "not-possible"  # the partner could not
    NOT_DONE = "not-done"  # it was not attempted

    @property
    def closed(self) -> bool:
        return self is not ActionStatus.OPEN


#: Other English words members use for the statuses (MARAC's "not undertaken").
ALIASES = {"not-undertaken": ActionStatus.NOT_DONE, "notdone": ActionStatus.NOT_DONE,
           "not_done": ActionStatus.NOT_DONE, "not_possible": ActionStatus.NOT_POSSIBLE,
           "impossible": ActionStatus.NOT_POSSIBLE, "closed": ActionStatus.DONE}

REF = re.compile(r"^(C-[0-9A-HJKMNP-TV-Z]{5})/(\d{1,4})$", re.IGNORECASE)
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_status(english: str) -> ActionStatus | None:
    """A status typed in English (the caller maps the cell's words first); None if unknown."""
    word = english.strip().lower()
    if word in ALIASES:
        return ALIASES[word]
    try:
        return ActionStatus(word)
    except ValueError:
        return None


def parse_ref(raw: str) -> tuple[str, int] | None:
    """``C-7KQ2M/2`` as (code, number); None when it is not written that way."""
    match = REF.match(raw.strip())
    if not match or int(match.group(2)) < 1:
        return None
    return match.group(1).upper(), int(match.group(2))


def parse_due(raw: str) -> date | None:
    match = DATE.match(raw.strip())
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def on_a_day_off(due: date) -> bool:
    """A weekend day or a Belgian public holiday (the reply notes it)."""
    return not is_working_day(due)


def local_today(now: datetime, tz: ZoneInfo) -> date:
    """Today in the cell's zone by the injected clock."""
    return now.astimezone(tz).date()


def overdue_on(status: str, due: date, day: date) -> bool:
    """Whether an open action is overdue on ``day`` (a date of the cell's calendar)."""
    return status == ActionStatus.OPEN.value and day > due


def is_overdue(status: str, due: date, now: datetime, tz: ZoneInfo) -> bool:
    """An open action whose (working-day) due date has passed in the cell's calendar."""
    return overdue_on(status, due, local_today(now, tz))


def owner_organisation(raw: str, members: Iterable[Member]) -> str | None:
    """The roster's spelling of the organisation named ``raw`` (any case); None if no member
    of the table belongs to it."""
    wanted = raw.strip().casefold()
    for member in members:
        if member.organisation.strip() and member.organisation.strip().casefold() == wanted:
            return member.organisation.strip()
    return None


def may_change(member: Member, owner: str) -> bool:
    """The chair, or a member of the owning organisation (spec §13)."""
    if member.role is Role.CHAIR:
        return True
    return bool(member.organisation.strip()) and (
        member.organisation.strip().casefold() == owner.strip().casefold())
