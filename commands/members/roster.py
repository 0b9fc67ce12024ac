"""The effective roster: the configured members with a chair's stored changes on top."""

from __future__ import annotations

from commands.model import Cell, Member, Role, Table
from storage.repositories import Repositories


def effective_roster(cell: Cell, repos: Repositories) -> tuple[Member, ...]:
    """The configured roster with the chair's stored changes applied."""
    roster = {m.user_id: m for m in cell.members}
    for change in repos.roster.changes(cell.id):
        if change.removed:
            roster.pop(change.user_id, None)
        else:
            roster[change.user_id] = Member(
                user_id=change.user_id,
                role=Role(change.role),
                organisation=change.organisation,
                tables=tuple(Table(t) for t in change.tables),
            )
    return tuple(roster.values())


def effective_member(cell: Cell, repos: Repositories, user_id: str) -> Member | None:
    for member in effective_roster(cell, repos):
        if member.user_id == user_id:
            return member
    return None


def table_members(cell: Cell, repos: Repositories, table: Table) -> tuple[Member, ...]:
    return tuple(m for m in effective_roster(cell, repos) if table in m.tables)
