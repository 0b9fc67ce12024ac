"""``members``: the table's roster; ``members add`` / ``members remove`` for the chair.

The roster comes from the configuration; a chair's changes in chat are stored on top of it and
checked against the same rules of the guideline (spec §5).
"""

from __future__ import annotations

from collections.abc import Sequence

from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.members.roster import effective_member, effective_roster, table_members
from commands.model import (
    USER_ID,
    Member,
    Role,
    Table,
    Who,
    member_problems,
    roster_problems,
    rule_code,
)
from storage.repositories import RosterChange

router = Router("members")



@router.command("members", help="members")
def list_members(ctx: CommandContext, args: Args) -> Sequence[Output]:
    rows = [
        {
            "user_id": m.user_id,
            "role": m.role.value,
            "organisation": m.organisation,
            "acked": ctx.repos.acks.has_acked(ctx.cell.id, ctx.table.value, m.user_id),
        }
        for m in table_members(ctx.cell, ctx.repos, ctx.table)
    ]
    return [Reply("members", {"members": rows, "table": ctx.table.value})]


def _own_table_only(ctx: CommandContext, tables: Sequence[Table]) -> None:
    """A chair changes the roster of their own table only (spec §11): the table of the room
    the command was sent from."""
    for table in tables:
        if table is not ctx.table:
            raise Refusal("members.own_table_only", table=table.value, own=ctx.table.value)


def _check(ctx: CommandContext, changed: Member | None, user_id: str,
           removal: bool = False) -> None:
    """The guideline's rules on the roster after the change; for a removal the table's own
    rules come first (removing the only chair says so)."""
    roster = [m for m in effective_roster(ctx.cell, ctx.repos) if m.user_id != user_id]
    if changed is not None:
        roster.append(changed)
    table_problems = roster_problems(
        ctx.cell.model_copy(update={"members": tuple(roster)}), "")
    if removal:  # the table-wide rules ("members") before those of one entry
        table_problems.sort(key=lambda problem: problem[0] != "members")
    own = member_problems(ctx.cell, changed, "member") if changed is not None else []
    for problems in ((table_problems, own) if removal else (own, table_problems)):
        if problems:
            raise Refusal("members.rule." + rule_code(problems[0][1]))


@router.command(
    "members",
    sub="add",
    who=Who.CHAIR,
    keys=frozenset({"tables"}),
    min_positional=3,
    max_positional=8,
    help="members",
)
def add_member(ctx: CommandContext, args: Args) -> Sequence[Output]:
    user_id, role_word, *organisation_words = args.positional
    if not USER_ID.fullmatch(user_id):
        raise UsageError("members.bad_user_id")
    try:
        role = Role(ctx.english(role_word))
    except ValueError as exc:
        raise UsageError("members.bad_role", roles=", ".join(r.value for r in Role)) from exc
    try:
        asked = tuple(Table(ctx.english(t)) for t in args.list("tables")) or (ctx.table,)
    except ValueError as exc:
        raise UsageError("members.bad_table") from exc
    _own_table_only(ctx, asked)
    organisation = " ".join(organisation_words)
    current = effective_member(ctx.cell, ctx.repos, user_id)
    tables: tuple[Table, ...] = (ctx.table,)
    if current is not None:
        elsewhere = tuple(t for t in current.tables if t is not ctx.table)
        # Role and organisation are the member's at every table: changing them would
        # change another table's roster.
        if elsewhere and (current.role is not role or current.organisation != organisation):
            raise Refusal("members.other_table", table=elsewhere[0].value)
        tables = tuple(t for t in Table if t in current.tables or t is ctx.table)
    member = Member(user_id=user_id, role=role, organisation=organisation, tables=tables)
    _check(ctx, member, user_id)
    ctx.repos.roster.put(
        RosterChange(
            cell=ctx.cell.id,
            user_id=user_id,
            role=role.value,
            organisation=member.organisation,
            tables=tuple(t.value for t in tables),
            removed=False,
        ),
        actor=ctx.member.user_id,
        at=ctx.now,
    )
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action="member_add", at=ctx.now
    )
    return [Reply("msg:members.added", {"user_id": user_id, "role": role.value})]


@router.command(
    "members", sub="remove", who=Who.CHAIR, min_positional=1, max_positional=1, help="members"
)
def remove_member(ctx: CommandContext, args: Args) -> Sequence[Output]:
    user_id = args.positional[0]
    if not USER_ID.fullmatch(user_id):
        raise UsageError("members.bad_user_id")
    current = effective_member(ctx.cell, ctx.repos, user_id)
    if current is None or ctx.table not in current.tables:
        raise Refusal("members.not_found", user_id=user_id)
    # Only from this table: a seat at the other table stays as it is.
    remaining = tuple(t for t in current.tables if t is not ctx.table)
    _check(ctx, current.model_copy(update={"tables": remaining}) if remaining else None,
           user_id, removal=True)
    ctx.repos.roster.put(
        RosterChange(
            cell=ctx.cell.id,
            user_id=user_id,
            role=current.role.value,
            organisation=current.organisation,
            tables=tuple(t.value for t in remaining or current.tables),
            removed=not remaining,
        ),
        actor=ctx.member.user_id,
        at=ctx.now,
    )
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action="member_remove", at=ctx.now
    )
    return [Reply("msg:members.removed", {"user_id": user_id})]


def _fingerprint(master_key: str) -> str:
    """The key in groups of four characters, as Element shows it (and the block notice)."""
    return " ".join(master_key[i : i + 4] for i in range(0, len(master_key), 4))


@router.command(
    "members", sub="trust", who=Who.CHAIR, min_positional=1, max_positional=1, help="members"
)
def trust_member(ctx: CommandContext, args: Args) -> Sequence[Output]:
    """Accept the changed identity of a member of this table (spec §11). The key accepted
    is the one the chair was shown at the block (stored), never whatever the homeserver
    publishes now; the edge picks the new pin up at its next sync and judges it again (if
    the identity changed once more meanwhile, the member stays blocked and the chair is
    told the newer key)."""
    user_id = args.positional[0]
    if not USER_ID.fullmatch(user_id):
        raise UsageError("members.bad_user_id")
    if user_id not in {m.user_id for m in table_members(ctx.cell, ctx.repos, ctx.table)}:
        raise Refusal("members.not_found", user_id=user_id)
    record = ctx.repos.identities.get(user_id)
    if record is None or record.blocked_key is None:
        raise Refusal("trust.not_blocked", user_id=user_id)
    key = record.blocked_key
    ctx.repos.identities.trust(user_id, key, f"chair:{ctx.member.user_id}", ctx.now)
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action="member_trust", at=ctx.now
    )
    return [Reply("msg:trust.trusted", {"user_id": user_id, "fingerprint": _fingerprint(key)})]
