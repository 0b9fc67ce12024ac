"""What the signaller hears (spec §13) and the aftercare that follows a closure.

When the table decides on a signal (follow-up, not retained) and when it closes a dossier, the
member who signalled it gets a direct message with the code, the decision and the date: nothing
else. Closing a dossier plans the aftercare reviews (``aftercare_reviews``): only the code, the
month of closure and the review dates are kept, and they go after the last review.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from commands.framework import Output, Reply
from commands.members.roster import table_members
from commands.model import Cell, Status, Table
from storage.dossiers import DossierRecord
from storage.repositories import Repositories

#: Decisions the signaller hears of: on the signal, and the closure.
INTAKE = (Status.SIGNALLED.value, Status.ASSESSING.value)
_PERIOD = re.compile(r"^\s*(\d{1,3})\s*(mo|w|d)\s*$")


def signaller_outcome(repos: Repositories, cell: Cell, before: str, record: DossierRecord,
                      now: datetime) -> list[Output]:
    """The direct message to the signaller, when ``record`` was just decided on.

    Nothing when the decision is not one the signaller hears of (an evaluation that continues
    the follow-up) or when the signaller is no longer a member of the operational table."""
    decided = (record.status in (Status.FOLLOW_UP.value, Status.NOT_RETAINED.value)
               and before in INTAKE) or record.status == Status.CLOSED.value
    if not decided or not record.signalled_by:
        return []
    members = {m.user_id for m in table_members(cell, repos, Table.OPERATIONAL)}
    if record.signalled_by not in members:
        return []
    repos.audit.record(cell=cell.id, actor="livcr-bot", action="outcome_sent", at=now,
                       code=record.code, to_status=record.status)
    return [Reply("msg:outcome.decided",
                  {"code": record.code, "decision": record.status,
                   "date": now.astimezone(cell.tz).date().isoformat()},
                  direct_to=record.signalled_by, in_reply=False)]


def add_period(day: date, period: str) -> date:
    """``6mo`` (calendar months; the 31st becomes the month's last day), ``4w``, ``10d``."""
    match = _PERIOD.match(period)
    if not match:
        raise ValueError(f"not a period like 6mo, 4w or 10d: {period!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "mo":
        months = day.month - 1 + amount
        year, month = day.year + months // 12, months % 12 + 1
        return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    return day + (timedelta(weeks=amount) if unit == "w" else timedelta(days=amount))


def review_dates(closed: date, periods: Sequence[str]) -> list[date]:
    return sorted({add_period(closed, p) for p in periods})


def plan_aftercare(repos: Repositories, cell: Cell, code: str, at: datetime) -> list[date]:
    """At closure: the review dates of ``aftercare_reviews`` (none when it is empty)."""
    settings = cell.tables.get(Table.OPERATIONAL)
    if settings is None or not settings.aftercare_reviews:
        return []
    local = at.astimezone(cell.tz).date()
    dates = review_dates(local, settings.aftercare_reviews)
    repos.aftercare.plan(cell.id, code, local.strftime("%Y-%m"), dates)
    repos.audit.record(cell=cell.id, actor="livcr-bot", action="aftercare_planned", at=at,
                       code=code)
    return dates


def aftercare_reviewed(repos: Repositories, cell: Cell, day: date) -> list[str]:
    """A meeting held on ``day`` reviewed the aftercare on its agenda: those reviews are done,
    and a code whose last review this was is forgotten."""
    codes = []
    for record in repos.aftercare.of_cell(cell.id):
        if record.reviews and record.reviews[0] <= day:
            repos.aftercare.reviewed(cell.id, record.code, day)
            codes.append(record.code)
    return codes
