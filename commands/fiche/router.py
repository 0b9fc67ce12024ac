"""``fiche C-…`` shows the feedback fiche draft; ``fiche C-… set key=value …`` fills it.

Editing a fiche while its consensus vote is open cancels that vote (spec §9).
"""

from __future__ import annotations

from collections.abc import Sequence

from commands.dossiers.case import parse_code
from commands.dossiers.workflow import get_dossier
from commands.fiche.document import BY_NAME, FIELDS, fiche_values, missing
from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.model import OPEN, Status, Table, Who
from commands.votes.closing import TableVotes, cancel_vote
from commands.votes.consensus import Kind

router = Router("fiche")


@router.command("fiche", who=Who.OPERATIONAL_MEMBER, tables=frozenset({Table.OPERATIONAL}),
                min_positional=1, max_positional=2, keys=frozenset(BY_NAME))
def fiche(ctx: CommandContext, args: Args) -> Sequence[Output]:
    code = parse_code(args.positional[0])
    record = get_dossier(ctx.repos, ctx.cell, code)
    if len(args.positional) == 1:
        if args.options:
            raise UsageError("fiche.set_needed")
        values = fiche_values(ctx.repos, ctx.cell, code)
        return [Reply("fiche_draft", {"code": code, "fields": values,
                                      "missing": missing(values),
                                      "order": [f.name for f in FIELDS]})]
    if ctx.english(args.positional[1]) != "set":
        raise UsageError("fiche.set_needed")
    if not args.options:
        raise UsageError("fiche.nothing_to_set")
    if Status(record.status) not in OPEN:
        raise Refusal("case.not_open", code=code, status=record.status)
    changes: dict[str, str] = {}
    for key, raw in args.options.items():
        field = BY_NAME[key]
        if field.values:
            value = ctx.english(raw)
            if value not in field.values:
                raise UsageError("fiche.bad_value", key=key, allowed=", ".join(field.values))
        else:
            value = raw.strip()
            if len(value) > field.max_length:
                raise UsageError("fiche.too_long", key=key, limit=field.max_length)
        changes[key] = value
    ctx.repos.fiches.put(ctx.cell.id, code, changes, ctx.member.user_id, ctx.now)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="fiche_edit",
                           at=ctx.now, code=code, decision_ref=ctx.incoming.event_id)
    outputs: list[Output] = []
    votes = TableVotes(ctx.cell, ctx.table, ctx.repos, ctx.scheduler, ctx.now)
    for vote in ctx.repos.votes.open_votes(ctx.cell.id, ctx.table.value):
        if vote.code == code and vote.kind == Kind.FICHE.value:
            outputs.extend(cancel_vote(votes, vote, actor=ctx.member.user_id, reason="edit"))
    values = fiche_values(ctx.repos, ctx.cell, code)
    return [Reply("msg:fiche.updated", {"code": code, "keys": sorted(changes),
                                        "missing": missing(values)}), *outputs]
