"""From a command's text to the handler's outputs: parsing, authorisation, errors.

No Matrix here: ``bot.matrix`` hands in an :class:`Incoming`, gets :class:`Output` values back.
Every input from a roster member gets an answer; nothing escapes as an exception.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Config
from bot.core.render import vocabulary
from bot.logsafe import where
from commands import help as help_cmd
from commands import stats
from commands.dossiers import case, signal
from commands.fiche import router as fiche
from commands.framework import (
    Args,
    Command,
    CommandContext,
    Incoming,
    Output,
    Redact,
    Refusal,
    Reply,
    Router,
    SchedulerPort,
    UsageError,
)
from commands.help import help_data
from commands.meetings import agenda_router as agenda
from commands.meetings import router as meeting
from commands.members import ack
from commands.members import router as members
from commands.members.roster import effective_member
from commands.model import Cell, Member, Role, Table, Who, chair_role
from commands.privacy import screen
from commands.votes import router as vote
from storage.repositories import Repositories

log = logging.getLogger(__name__)

PREFIXES = ("//", "!", "/")


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
    ]


@dataclass(frozen=True)
class Parsed:
    name: str
    words: tuple[str, ...]
    options: Mapping[str, str]


class ParseError(UsageError):
    pass


def command_text(body: str) -> str | None:
    """The command without its prefix, or None when the message is not a command.

    A reply's quoted fallback (lines starting with ``> ``) is skipped.
    """
    lines = body.splitlines()
    while lines and (lines[0].startswith("> ") or lines[0] == ">"):
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    text = "\n".join(lines).strip()
    for prefix in PREFIXES:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest[:1].isalpha():
                return rest
            return None
    return None


def tokenize(text: str) -> list[str]:
    """Split on whitespace; double quotes group (also inside ``key="a b"``)."""
    tokens: list[str] = []
    current: list[str] = []
    in_quotes = False
    started = False
    for char in text.replace("“", '"').replace("”", '"').replace("„", '"'):
        if char == '"':
            in_quotes = not in_quotes
            started = True
        elif char.isspace() and not in_quotes:
            if started:
                tokens.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if in_quotes:
        raise ParseError("error.unbalanced_quotes")
    if started:
        tokens.append("".join(current))
    return tokens


def parse(text: str) -> Parsed:
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("error.empty")
    name = tokens[0].lower()
    words: list[str] = []
    options: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if sep and key and key.replace("_", "").replace("-", "").isalpha():
            if key.lower() in options:
                raise ParseError("error.duplicate_key", key=key)
            options[key.lower()] = value
        else:
            words.append(token)
    return Parsed(name=name, words=tuple(words), options=options)


@dataclass
class RateLimiter:
    """Sliding one-minute window per user; a monotonic clock, not the message time."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _warned: dict[str, float] = field(default_factory=dict)

    def allow(self, user_id: str) -> bool:
        now = self.clock()
        window = self._seen[user_id]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        return True

    def should_warn(self, user_id: str) -> bool:
        """One notice per minute at most, so the limit cannot be used to spam the room."""
        now = self.clock()
        if now - self._warned.get(user_id, -1e9) > 60:
            self._warned[user_id] = now
            return True
        return False


def _allowed(command: Command, member_role: Role, table: Table) -> bool:
    if command.who is Who.CHAIR:
        return member_role is chair_role(table)
    if command.who is Who.OPERATIONAL_MEMBER:
        return table is Table.OPERATIONAL
    if command.who is Who.STRATEGIC_MEMBER:
        return table is Table.STRATEGIC
    return True


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
        from commands.framework import ChangeRecorder

        self.config = config
        self.routers = list(routers) if routers is not None else include_routers()
        self.scheduler: SchedulerPort = scheduler or ChangeRecorder()
        self.room_ids: Mapping[str, Mapping[Table, str]] = room_ids or {}
        self.limiter = RateLimiter(config.limits.commands_per_minute, rate_clock)
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
        cell = self.config.cell(incoming.cell)
        member = effective_member(cell, repos, incoming.sender)
        if member is None or incoming.table not in member.tables:
            log.info("ignored a command from a non-roster sender in %s", incoming.room_id)
            return []
        if not self.limiter.allow(incoming.sender):
            if self.limiter.should_warn(incoming.sender):
                return [Reply("msg:error.rate_limited",
                              {"limit": self.config.limits.commands_per_minute})]
            return []
        if len(incoming.body) > self.config.limits.max_input_chars:
            return [Reply("msg:error.too_long", {"limit": self.config.limits.max_input_chars})]
        findings = screen(text)
        if findings:
            # Nothing of this message is stored; the reply names kinds, never the text.
            log.info("refused a command carrying personal data (%s)",
                     ", ".join(sorted(f.value for f in findings)))
            return [Reply("msg:privacy.refused", {"kinds": sorted(f.value for f in findings)}),
                    Redact()]
        try:
            return self._run(cell, member, incoming, repos, now, text,
                             scheduler or self.scheduler)
        except Exception as exc:
            # Exception texts may quote input; log the type and where it happened only.
            log.error("command failed with %s at %s", type(exc).__name__, where(exc))
            return [Reply("msg:error.internal")]

    def _run(
        self,
        cell: Cell,
        member: Member,
        incoming: Incoming,
        repos: Repositories,
        now: datetime,
        text: str,
        scheduler: SchedulerPort,
    ) -> list[Output]:
        try:
            parsed = parse(text)
        except ParseError as exc:
            return [self._usage_reply(exc, None, cell)]
        found = self.find(parsed.name, parsed.words, vocabulary(cell.language)[1])
        if found is None:
            if parsed.name in self.commands:
                return [self._usage_reply(UsageError("error.unknown_subcommand",
                                                     name=parsed.name),
                                          self.commands[parsed.name][0], cell)]
            return [Reply("msg:error.unknown_command", {"name": parsed.name[:40]})]
        command, words = found
        if command.needs_ack and not repos.acks.has_acked(
            cell.id, incoming.table.value, incoming.sender
        ):
            return [Reply("msg:ack.required")]
        if incoming.table not in command.tables:
            return [Reply("msg:error.wrong_table",
                          {"command": command.full_name,
                           "table": incoming.table.value})]
        if not _allowed(command, member.role, incoming.table):
            return [Reply("msg:error.not_allowed",
                          {"command": command.full_name, "who": command.who.value})]
        try:
            args = self._args(cell, command, parsed, words)
            context = CommandContext(
                cell=cell,
                table=incoming.table,
                member=member,
                incoming=incoming,
                now=now,
                repos=repos,
                scheduler=scheduler,
                room_ids=self.room_ids.get(cell.id, {}),
                values=vocabulary(cell.language)[1],
                commands=self.all_commands(),
            )
            with repos.savepoint():
                return list(command.handler(context, args))
        except Refusal as exc:
            return [Reply(f"msg:{exc.key}", exc.data)]
        except UsageError as exc:
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
