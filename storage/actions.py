"""Actions per dossier (spec §13): owner organisation, due date, screened text, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import DossierAction


@dataclass(frozen=True)
class ActionRecord:
    cell: str
    code: str
    n: int
    owner: str
    due: date
    description: str
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @property
    def ref(self) -> str:
        """How members name it: ``C-7KQ2M/2``."""
        return f"{self.code}/{self.n}"


def _action(row: DossierAction) -> ActionRecord:
    return ActionRecord(
        cell=row.cell, code=row.code, n=row.n, owner=row.owner, due=row.due,
        description=row.description, status=row.status, created_by=row.created_by,
        created_at=row.created_at, updated_at=row.updated_at, closed_at=row.closed_at,
    )


class ActionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def _row(self, cell: str, code: str, n: int) -> DossierAction | None:
        return self._session.exec(
            select(DossierAction).where(DossierAction.cell == cell, DossierAction.code == code,
                                        DossierAction.n == n)
            .with_for_update()
        ).first()

    def add(self, *, cell: str, code: str, owner: str, due: date, description: str,
            actor: str, at: datetime) -> ActionRecord:
        """A new open action, numbered after the dossier's last one."""
        last = self._session.exec(
            select(sa.func.max(DossierAction.n)).where(DossierAction.cell == cell,
                                                       DossierAction.code == code)
        ).first()
        row = DossierAction(cell=cell, code=code, n=int(last or 0) + 1, owner=owner, due=due,
                            description=description, status="open", created_by=actor,
                            created_at=at, updated_by=actor, updated_at=at)
        self._session.add(row)
        self._session.flush()
        return _action(row)

    def get(self, cell: str, code: str, n: int) -> ActionRecord | None:
        row = self._row(cell, code, n)
        return _action(row) if row else None

    def set_status(self, cell: str, code: str, n: int, status: str, *, actor: str,
                   at: datetime, closed: bool) -> ActionRecord:
        row = self._row(cell, code, n)
        if row is None:
            raise KeyError(f"{code}/{n}")
        row.status = status
        row.updated_by = actor
        row.updated_at = at
        row.closed_at = at if closed else None
        self._session.add(row)
        self._session.flush()
        return _action(row)

    def of_cell(self, cell: str, code: str | None = None,
                statuses: list[str] | None = None) -> list[ActionRecord]:
        query = select(DossierAction).where(DossierAction.cell == cell)
        if code is not None:
            query = query.where(DossierAction.code == code)
        if statuses is not None:
            query = query.where(col(DossierAction.status).in_(statuses))
        query = query.order_by(col(DossierAction.code), col(DossierAction.n))
        return [_action(r) for r in self._session.exec(query).all()]

    def purge_code(self, cell: str, code: str) -> None:
        self._session.exec(  # type: ignore[call-overload]
            sa.delete(DossierAction).where(col(DossierAction.cell) == cell,
                                           col(DossierAction.code) == code)
        )
