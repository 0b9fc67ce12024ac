"""``ack``: a member acknowledges the table's confidentiality (art. 458ter Sw.), once."""

from __future__ import annotations

from collections.abc import Sequence

from commands.framework import Args, CommandContext, Output, Reply, Router

router = Router("ack")


@router.command("ack", needs_ack=False)
def ack(ctx: CommandContext, args: Args) -> Sequence[Output]:
    fresh = ctx.repos.acks.ack(ctx.cell.id, ctx.table.value, ctx.member.user_id, ctx.now)
    if fresh:
        ctx.repos.audit.record(
            cell=ctx.cell.id, actor=ctx.member.user_id, action="ack", at=ctx.now
        )
    return [Reply("msg:ack.done" if fresh else "msg:ack.already", {"table": ctx.table.value})]
