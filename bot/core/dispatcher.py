"""From a command's text to the handler's outputs: the middleware chain, routing, errors.

No Matrix here: the core hands in an :class:`Incoming`, gets :class:`Output` values back.
Every input from a roster member gets an answer; nothing escapes as an exception. The
cross-cutting checks are the chains of :mod:`bot.core.middleware`, in the order listed in
``outer`` and ``inner``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from bot.config import Config
from bot.core.middleware import (
    EDIT_CHAIN,
    INNER_CHAIN,
    Middleware,
    RateLimiter,
    Request,
    outer_chain,
    run_chain,
)
from bot.core.parsing import Parsed, ParseError, command_text, parse
from bot.core.render import vocabulary
from bot.logsafe import where
from bot.ops import metrics
from commands import help as help_cmd
from commands import stats
from commands.actions import router as action
from commands.dossiers import case, signal
from commands.fiche import router as fiche
from commands.framework import (
    Args,
    ChangeRecorder,
    Command,
    CommandContext,
    Incoming,
    Output,
    Refusal,
    Reply,
    Router,
    SchedulerPort,
    UsageError,
)
from commands.help import help_data
from commands.meetings import agenda_router as agenda
from commands.meetings import record
from commands.meetings import router as meeting
from commands.members import ack
from commands.members import router as members
from commands.model import Cell, Table
from commands.votes import router as vote
from storage.repositories import Repositories

log = logging.getLogger(__name__)


def include_routers() -> list[Router]:
    """Every command module, assembled explicitly (no import side effects)."""
    return [
        help_cmd.router,
        ack.router,
        members.router,
        signal.router,
        case.router,
        stats.router,
        meeting.router,
        agenda.router,
        vote.router,
        fiche.router,
        action.router,
        record.router,
    ]


class Dispatcher:
    """Finds and runs commands; answers every member, stays silent for everyone else."""

    def __init__(
        self,
        config: Config,
        routers: Sequence[Router] | None = None,
        scheduler: SchedulerPort | None = None,
        room_ids: Mapping[str, Mapping[Table, str]] | None = None,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.routers = list(routers) if routers is not None else include_routers()
        self.scheduler: SchedulerPort = scheduler or ChangeRecorder()
        self.room_ids: Mapping[str, Mapping[Table, str]] = room_ids or {}
        self.limiter = RateLimiter(config.limits.commands_per_minute, rate_clock)
        #: Before a command is looked up, then once it is known (bot.core.middleware).
        self.outer: list[Middleware] = outer_chain(config, self.limiter)
        self.inner: list[Middleware] = list(INNER_CHAIN)
        self.commands: dict[str, list[Command]] = defaultdict(list)
        for router in self.routers:
            for command in router.commands:
                self.commands[command.name].append(command)

    def all_commands(self) -> list[Command]:
        return [c for router in self.routers for c in router.commands]

    def find(
        self, name: str, words: Sequence[str], values: Mapping[str, str] | None = None
    ) -> tuple[Command, tuple[str, ...]] | None:
        candidates = self.commands.get(name)
        if not candidates:
            return None
        if words:
            word = words[0].lower()
            english = values.get(word, word) if values else word
            for command in candidates:
                if command.sub is not None and command.sub in (word, english):
                    return command, tuple(words[1:])
        for command in candidates:
            if command.sub is None:
                return command, tuple(words)
        return None

    def dispatch(
        self,
        incoming: Incoming,
        repos: Repositories,
        now: datetime,
        scheduler: SchedulerPort | None = None,
    ) -> list[Output]:
        """Run one command; never raises for bad input.

        ``scheduler`` replaces the dispatcher's port for this command (the core collects the
        tables a command changed, to recompute them in the same transaction).
        """
        text = command_text(incoming.body)
        if text is None:
            return []
        request = Request(incoming, text, self.config.cell(incoming.cell), repos, now,
                          scheduler or self.scheduler)
        outputs = run_chain(self.outer, request, self._guarded)
        found = request.command
        metrics.command_done(
            (f"{found.name} {found.sub}" if found.sub else found.name) if found else None,
            request.outcome or "refused")
        return outputs

    def screen_edit(self, incoming: Incoming, repos: Repositories,
                    now: datetime) -> list[Output]:
        """An edit (``m.replace``) is never run as a command, whatever its text or fallback
        (spec §11). Its new text is screened like a new command's: personal data from a
        member of the table gets the same refusal and redaction; anything else, silence."""
        text = command_text(incoming.body.removeprefix("* "))
        if text is None:
            return []
        request = Request(incoming, text, self.config.cell(incoming.cell), repos, now,
                          self.scheduler)
        return run_chain(EDIT_CHAIN, request, lambda _request: [])

    def _guarded(self, request: Request) -> list[Output]:
        try:
            return self._route(request)
        except Exception as exc:
            # Exception texts may quote input; log the type and where it happened only.
            log.error("command failed with %s at %s", type(exc).__name__, where(exc))
            request.outcome = "error"
            return [Reply("msg:error.internal")]

    def _route(self, request: Request) -> list[Output]:
        cell = request.cell
        try:
            parsed = parse(request.text)
        except ParseError as exc:
            request.outcome = "usage"
            return [self._usage_reply(exc, None, cell)]
        found = self.find(parsed.name, parsed.words, vocabulary(cell.language)[1])
        if found is None:
            request.outcome = "unknown_command"
            if parsed.name in self.commands:
                return [self._usage_reply(UsageError("error.unknown_subcommand",
                                                     name=parsed.name),
                                          self.commands[parsed.name][0], cell)]
            return [Reply("msg:error.unknown_command", {"name": parsed.name[:40]})]
        request.command, request.words = found
        return run_chain(self.inner, request, lambda req: self._run(req, parsed))

    def _run(self, request: Request, parsed: Parsed) -> list[Output]:
        command, cell, member = request.command, request.cell, request.member
        assert command is not None
        assert member is not None
        try:
            args = self._args(cell, command, parsed, request.words)
            context = CommandContext(
                cell=cell,
                table=request.incoming.table,
                member=member,
                incoming=request.incoming,
                now=request.now,
                repos=request.repos,
                scheduler=request.scheduler,
                room_ids=self.room_ids.get(cell.id, {}),
                values=vocabulary(cell.language)[1],
                commands=self.all_commands(),
            )
            with request.repos.savepoint():
                outputs = list(command.handler(context, args))
            request.outcome = "ok"
            return outputs
        except Refusal as exc:
            request.outcome = "refused"
            return [Reply(f"msg:{exc.key}", exc.data)]
        except UsageError as exc:
            request.outcome = "usage"
            return [self._usage_reply(exc, command, cell)]

    def _args(self, cell: Cell, command: Command, parsed: Parsed, words: tuple[str, ...]) -> Args:
        keys, _values = vocabulary(cell.language)
        options: dict[str, str] = {}
        for key, value in parsed.options.items():
            english = keys.get(key, key)
            if english not in command.keys:
                raise UsageError("error.unknown_key", key=key[:40])
            if english in options:
                raise UsageError("error.duplicate_key", key=key[:40])
            options[english] = value
        if len(words) < command.min_positional:
            raise UsageError("error.missing_argument")
        if len(words) > command.max_positional:
            raise UsageError("error.extra_argument")
        return Args(positional=words, options=options)

    def _usage_reply(self, exc: UsageError, command: Command | None, cell: Cell) -> Reply:
        return Reply(
            "usage_error",
            {
                "error_key": exc.key,
                "error_data": exc.data,
                "help": command.help_template if command else None,
                **help_data(cell, vocabulary(cell.language)[1]),
            },
        )
