"""``agenda``: the generated agenda of the next meeting, and the members' free items.

The agenda itself comes from the dossiers (:func:`commands.meetings.agenda.agenda`); free items are
the only text members add here, and like every command they passed the privacy guard before
this handler runs. They are deleted when the meeting that had them on its agenda ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.meetings.agenda import agenda
from commands.meetings.router import is_chair

router = Router("agenda")

MAX_ITEM = 300
MAX_ITEMS = 30


@router.command("agenda", help="agenda")
def show(ctx: CommandContext, args: Args) -> Sequence[Output]:
    return [Reply("agenda", agenda(ctx.repos, ctx.cell, ctx.table, ctx.now))]


@router.command("agenda", sub="add", max_positional=100, help="agenda")
def add(ctx: CommandContext, args: Args) -> Sequence[Output]:
    item = " ".join(args.positional).strip()
    if not item:
        raise UsageError("agenda.empty")
    if len(item) > MAX_ITEM:
        raise UsageError("agenda.too_long", limit=MAX_ITEM, length=len(item))
    items = ctx.repos.meetings.items(ctx.cell.id, ctx.table.value)
    if len(items) >= MAX_ITEMS:
        raise Refusal("agenda.full", limit=MAX_ITEMS)
    running = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    ctx.repos.meetings.add_item(cell=ctx.cell.id, table=ctx.table.value, text=item,
                                author=ctx.member.user_id, at=ctx.now,
                                meeting_id=running.id if running else None)
    return [Reply("msg:agenda.added", {"n": len(items) + 1})]


@router.command("agenda", sub="remove", min_positional=1, max_positional=1, help="agenda")
def remove(ctx: CommandContext, args: Args) -> Sequence[Output]:
    raw = args.positional[0].strip().lstrip("#")
    if not raw.isdigit():
        raise UsageError("agenda.bad_number")
    number = int(raw)
    items = ctx.repos.meetings.items(ctx.cell.id, ctx.table.value)
    if not 1 <= number <= len(items):
        raise Refusal("agenda.no_such_item", n=number, count=len(items))
    item = items[number - 1]
    if item.author != ctx.member.user_id and not is_chair(ctx):
        raise Refusal("agenda.not_yours", n=number)
    ctx.repos.meetings.delete_item(item.id)
    return [Reply("msg:agenda.removed", {"n": number})]
