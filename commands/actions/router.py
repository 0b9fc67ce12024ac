"""``action add|list|done|status``: the actions of a dossier (spec §13).

``action add C-… owner=<organisation> due=YYYY-MM-DD "…"`` (operational member; the text has
passed the privacy guard with the rest of the command), ``action list [C-…]``,
``action done C-…/N`` and ``action status C-…/N open|done|not-possible|not-done`` (the chair
or a member of the owning organisation). Creating and closing are audited, so they appear in
the decision list of the meeting in progress.
"""

from __future__ import annotations

from collections.abc import Sequence

from commands.actions.rules import (
    MAX_AHEAD,
    MAX_DESCRIPTION,
    ActionStatus,
    is_overdue,
    local_today,
    may_change,
    on_a_day_off,
    owner_organisation,
    parse_due,
    parse_ref,
    parse_status,
)
from commands.dossiers.case import parse_code
from commands.dossiers.workflow import get_dossier
from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.members.roster import table_members
from commands.model import OPEN, Table, Who
from storage.actions import ActionRecord

router = Router("action")
OPERATIONAL = frozenset({Table.OPERATIONAL})


def action_row(ctx: CommandContext, action: ActionRecord, *, text: bool) -> dict[str, object]:
    row: dict[str, object] = {
        "ref": action.ref, "owner": action.owner, "due": action.due.isoformat(),
        "status": action.status,
        "overdue": is_overdue(action.status, action.due, ctx.now, ctx.cell.tz),
        "day_off": on_a_day_off(action.due),
    }
    if text:
        row["description"] = action.description
    return row


@router.command("action", sub="add", who=Who.OPERATIONAL_MEMBER, tables=OPERATIONAL,
                min_positional=1, max_positional=100, keys=frozenset({"owner", "due"}),
                help="action")
def action_add(ctx: CommandContext, args: Args) -> Sequence[Output]:
    code = parse_code(args.positional[0])
    description = " ".join(args.positional[1:]).strip()
    if not description:
        raise UsageError("action.missing_description")
    if len(description) > MAX_DESCRIPTION:
        raise UsageError("action.description_too_long", limit=MAX_DESCRIPTION,
                         length=len(description))
    raw_owner = args.get("owner")
    if raw_owner is None or not raw_owner.strip():
        raise UsageError("action.missing_owner")
    members = table_members(ctx.cell, ctx.repos, ctx.table)
    owner = owner_organisation(raw_owner, members)
    if owner is None:
        organisations = sorted({m.organisation.strip() for m in members
                                if m.organisation.strip()})
        raise UsageError("action.bad_owner", allowed=", ".join(organisations))
    raw_due = args.get("due")
    due = parse_due(raw_due) if raw_due is not None else None
    if due is None:
        raise UsageError("action.bad_due")
    today = local_today(ctx.now, ctx.cell.tz)
    if due < today:
        raise UsageError("action.due_in_past", today=today.isoformat())
    if due - today > MAX_AHEAD:
        raise UsageError("action.due_too_far")
    record = get_dossier(ctx.repos, ctx.cell, code)
    if record.status not in OPEN:
        raise Refusal("action.dossier_not_open", code=code, status=record.status)
    action = ctx.repos.actions.add(cell=ctx.cell.id, code=code, owner=owner[:128], due=due,
                                   description=description, actor=ctx.member.user_id,
                                   at=ctx.now)
    meeting = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="action_add",
                           at=ctx.now, code=code, decision_ref=f"action:{action.n}",
                           meeting_id=meeting.id if meeting else None)
    return [Reply("msg:action.added", {"ref": action.ref, "owner": owner,
                                       "due": due.isoformat(),
                                       "day_off": on_a_day_off(due)})]


@router.command("action", sub="list", who=Who.OPERATIONAL_MEMBER, tables=OPERATIONAL,
                max_positional=1, help="action")
def action_list(ctx: CommandContext, args: Args) -> Sequence[Output]:
    """Without a code: the open actions of the cell (refs, owners, dates, no text); with a
    code: every action of that dossier, with its text."""
    if args.positional:
        code = parse_code(args.positional[0])
        get_dossier(ctx.repos, ctx.cell, code)
        actions = ctx.repos.actions.of_cell(ctx.cell.id, code)
        rows = [action_row(ctx, a, text=True) for a in actions]
        return [Reply("action_list", {"code": code, "rows": rows})]
    actions = ctx.repos.actions.of_cell(ctx.cell.id, statuses=[ActionStatus.OPEN.value])
    rows = [action_row(ctx, a, text=False) for a in actions]
    return [Reply("action_list", {"code": "", "rows": rows})]


def change_status(ctx: CommandContext, raw_ref: str, status: ActionStatus) -> list[Output]:
    parsed = parse_ref(raw_ref)
    if parsed is None:
        raise UsageError("action.bad_ref")
    code, n = parsed
    get_dossier(ctx.repos, ctx.cell, code)
    action = ctx.repos.actions.get(ctx.cell.id, code, n)
    if action is None:
        raise Refusal("action.not_found", ref=f"{code}/{n}")
    if not may_change(ctx.member, action.owner):
        raise Refusal("action.not_yours", ref=action.ref, owner=action.owner)
    if action.status == status.value:
        return [Reply("msg:action.unchanged", {"ref": action.ref, "status": status.value})]
    updated = ctx.repos.actions.set_status(ctx.cell.id, code, n, status.value,
                                           actor=ctx.member.user_id, at=ctx.now,
                                           closed=status.closed)
    meeting = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="action_status",
                           at=ctx.now, code=code, decision_ref=f"action:{n}:{status.value}",
                           meeting_id=meeting.id if meeting else None)
    return [Reply("msg:action.changed", {"ref": updated.ref, "status": status.value,
                                         "previous": action.status})]


@router.command("action", sub="done", tables=OPERATIONAL, min_positional=1, max_positional=1,
                help="action")
def action_done(ctx: CommandContext, args: Args) -> Sequence[Output]:
    return change_status(ctx, args.positional[0], ActionStatus.DONE)


@router.command("action", sub="status", tables=OPERATIONAL, min_positional=2,
                max_positional=2, help="action")
def action_status(ctx: CommandContext, args: Args) -> Sequence[Output]:
    status = parse_status(ctx.english(args.positional[1]))
    if status is None:
        raise UsageError("action.bad_status")
    return change_status(ctx, args.positional[0], status)

