"""The dossier workflow (spec §7): transitions checked and audited, evaluations, retention.

The statuses and the legal transitions themselves are part of the model (``commands.model``).

These plain functions are what the commands and the consensus votes call; every transition is
written to the audit trail with time, actor and decision reference, never free text.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from commands.framework import Refusal, SchedulerPort
from commands.model import FINAL, TRANSITIONS, Cell, Status, Table
from storage.dossiers import DossierRecord
from storage.repositories import Repositories


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
