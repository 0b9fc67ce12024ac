"""The dossier workflow (spec §7): statuses, legal transitions, decisions, retention.

These plain functions are what the commands and the consensus votes call; every transition is
written to the audit trail with time, actor and decision reference, never free text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from bot.config import Cell
from commands.base import Refusal, SchedulerPort, Table
from storage.repositories import DossierRecord, Repositories


class Status(enum.StrEnum):
    SIGNALLED = "signalled"
    ASSESSING = "assessing"
    FOLLOW_UP = "follow_up"
    NOT_RETAINED = "not_retained"
    EVALUATION = "evaluation"
    CLOSED = "closed"


OPEN = (Status.SIGNALLED, Status.ASSESSING, Status.FOLLOW_UP, Status.EVALUATION)
FINAL = (Status.NOT_RETAINED, Status.CLOSED)

TRANSITIONS: Mapping[Status, tuple[Status, ...]] = {
    Status.SIGNALLED: (Status.ASSESSING, Status.FOLLOW_UP, Status.NOT_RETAINED),
    Status.ASSESSING: (Status.FOLLOW_UP, Status.NOT_RETAINED),
    Status.FOLLOW_UP: (Status.EVALUATION, Status.CLOSED),
    Status.EVALUATION: (Status.FOLLOW_UP, Status.CLOSED),
    Status.NOT_RETAINED: (),
    Status.CLOSED: (),
}


class Phenomenon(enum.StrEnum):
    FTF = "FTF"
    HTF = "HTF"
    HP = "HP"
    CHILD = "child"
    EARLY = "early"


CONTEXTS = (
    "family",
    "identity",
    "school",
    "work",
    "psychological",
    "housing",
    "health",
    "leisure",
    "finances",
    "justice",
    "social-network",
    "online",
)


def get_dossier(repos: Repositories, cell: Cell, code: str) -> DossierRecord:
    """The dossier with this code in this cell, or a refusal that names the code form."""
    normal = code.strip().upper()
    record = repos.dossiers.get(cell.id, normal)
    if record is None:
        raise Refusal("case.not_found", code=normal[:12])
    return record


def transition(
    repos: Repositories,
    scheduler: SchedulerPort,
    cell: Cell,
    code: str,
    to: Status,
    *,
    actor: str,
    at: datetime,
    decision_ref: str,
    action: str = "transition",
    meeting_id: int | None = None,
    **changes: object,
) -> DossierRecord:
    """Move a dossier to ``to`` if the workflow allows it; refuse listing the allowed ones."""
    current = repos.dossiers.lock(cell.id, code)
    if current is None:
        raise Refusal("case.not_found", code=code[:12])
    source = Status(current.status)
    if to not in TRANSITIONS[source]:
        allowed = ", ".join(s.value for s in TRANSITIONS[source]) or "—"
        raise Refusal(
            "case.illegal_transition", code=code, current=source.value, to=to.value,
            allowed=allowed,
        )
    fields: dict[str, object] = {"status": to.value, **changes}
    if to in FINAL:
        fields["closed_at"] = at
        fields["problematic"] = False
    record = repos.dossiers.update(cell.id, code, at, **fields)
    repos.audit.record(
        cell=cell.id,
        actor=actor,
        action=action,
        at=at,
        code=code,
        from_status=source.value,
        to_status=to.value,
        decision_ref=decision_ref,
        meeting_id=meeting_id,
    )
    scheduler.table_changed(cell.id, Table.OPERATIONAL)
    return record


def accept(repos: Repositories, scheduler: SchedulerPort, cell: Cell, code: str, *,
           actor: str, at: datetime, decision_ref: str,
           meeting_id: int | None = None) -> DossierRecord:
    """Consensus to follow the person up: ``follow_up``."""
    return transition(repos, scheduler, cell, code, Status.FOLLOW_UP, actor=actor, at=at,
                      decision_ref=decision_ref, action="accept", meeting_id=meeting_id)


def reject(repos: Repositories, scheduler: SchedulerPort, cell: Cell, code: str, *,
           actor: str, at: datetime, decision_ref: str,
           meeting_id: int | None = None) -> DossierRecord:
    """Consensus that there are not enough elements: ``not_retained``."""
    return transition(repos, scheduler, cell, code, Status.NOT_RETAINED, actor=actor, at=at,
                      decision_ref=decision_ref, action="reject", meeting_id=meeting_id)


def close(repos: Repositories, scheduler: SchedulerPort, cell: Cell, code: str, *,
          actor: str, at: datetime, decision_ref: str,
          meeting_id: int | None = None) -> DossierRecord:
    """Consensus to end the follow-up: ``closed`` (retention applies from here)."""
    return transition(repos, scheduler, cell, code, Status.CLOSED, actor=actor, at=at,
                      decision_ref=decision_ref, action="close", meeting_id=meeting_id)


def due_for_evaluation(
    repos: Repositories, scheduler: SchedulerPort, cell: Cell, today: date, at: datetime
) -> list[str]:
    """Follow-up dossiers whose evaluation date is reached move to ``evaluation``."""
    moved = []
    for record in repos.dossiers.list(cell.id, [Status.FOLLOW_UP.value]):
        if record.next_evaluation is not None and record.next_evaluation <= today:
            transition(repos, scheduler, cell, record.code, Status.EVALUATION,
                       actor="livcr-bot", at=at, decision_ref="evaluation-date",
                       action="evaluation_due")
            moved.append(record.code)
    return moved


def apply_retention(cell: Cell, repos: Repositories, now: datetime) -> int:
    """Closed dossiers older than the retention period become anonymous statistics."""
    cutoff = now - timedelta(days=cell.retention_days_after_close)
    return repos.dossiers.purge_closed(cell.id, cutoff, [s.value for s in FINAL])


def status_lines(cell: Cell, repos: Repositories, now: datetime) -> list[str]:
    """``livcr status``: counts only, never codes."""
    counts = repos.dossiers.counts_by_status(cell.id)
    open_counts = ", ".join(f"{s.value} {counts.get(s.value, 0)}" for s in OPEN)
    lines = [f"{cell.id}: open dossiers — {open_counts}"]
    from commands.planning import status_line  # planning builds on this module

    for table in cell.tables:
        lines.append(f"{cell.id}/{table.value}: room {cell.tables[table].room}; "
                     f"{status_line(repos, cell, table, now)}")
    return lines
