"""The framework every command is written in: what comes in, what goes out, routers.

Nothing here knows about Matrix, the scheduler or database sessions. ``bot/`` turns a
decrypted room event into an :class:`Incoming`, the dispatcher finds the :class:`Command`,
the handler returns :class:`Output` values, and ``bot/`` turns those into Matrix events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from commands.model import Cell, Member, Table, Who

if TYPE_CHECKING:
    from storage.repositories import Repositories


@dataclass(frozen=True)
class Incoming:
    """A decrypted command as the dispatcher sees it."""

    cell: str
    table: Table
    room_id: str
    event_id: str
    sender: str
    body: str
    timestamp: datetime
    thread_root: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A file sent with a reply (encrypted in transit by ``bot/``).

    ``template`` names what ``bot`` renders into the file's bytes with ``data``: a Markdown
    template under ``templates/<lang>/`` (``fiche``), or ``calendar`` (an iCalendar file).
    Commands never render.
    """

    filename: str
    mimetype: str
    template: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A message from the bot.

    ``template`` names a Markdown template under ``templates/<lang>/`` (without ``.md.j2``)
    or, prefixed with ``msg:``, a key of ``templates/<lang>/messages.toml``.
    By default it answers the command in its room (a reply, in its thread) as ``m.notice``.
    ``notify=True`` sends ``m.text`` that mentions ``mentions`` (notices never notify).
    ``room_id`` sends it to another room of the same cell instead; ``direct_to`` sends it
    to a user's encrypted direct room.
    """

    template: str
    data: Mapping[str, Any] = field(default_factory=dict)
    notify: bool = False
    mentions: tuple[str, ...] = ()
    room_id: str | None = None
    direct_to: str | None = None
    attachment: Attachment | None = None
    in_reply: bool = True
    #: A direct message that is part of a delivery (the case code of an adopted fiche): the
    #: table hears "sent to N" only after the messages went out (spec §11).
    delivery: str | None = None


@dataclass(frozen=True)
class Redact:
    """Remove the command's own event from the room (personal data was found in it).

    ``notice_if_failed`` is sent instead of the :class:`Reply` just before this output when the
    redaction fails (that reply goes out with the redaction, after it), so a refusal never
    says "removed" about a message that is still there."""

    reason_template: str = "msg:redaction_reason"
    notice_if_failed: Reply | None = None


@dataclass(frozen=True)
class PollStart:
    """A native poll mirroring a consensus vote."""

    vote_id: int
    question_template: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PollEnd:
    """End the poll of a vote with its outcome."""

    vote_id: int
    outcome_template: str
    data: Mapping[str, Any] = field(default_factory=dict)


Output = Reply | Redact | PollStart | PollEnd


class UsageError(Exception):
    """Bad input: the dispatcher answers with the message and the command's usage.

    ``key`` is a key of ``messages.toml``; ``data`` fills it. Never put the user's
    text into ``data`` when it may hold personal data: name the problem, not the value.
    """

    def __init__(self, key: str, /, **data: Any) -> None:
        super().__init__(key)
        self.key = key
        self.data = data


class Refusal(UsageError):
    """Well-formed input that the rules refuse (permission, workflow); no usage shown."""


class SchedulerPort(Protocol):
    """What handlers may ask of the scheduler: re-derive jobs for a table."""

    def table_changed(self, cell: str, table: Table) -> None: ...


class ChangeRecorder:
    """A scheduler port that records which tables changed, in order, without repeats.

    The core hands one to every decision, recomputes the recorded tables in the same
    transaction and tells the real scheduler after the commit; tests read ``changed``.
    """

    def __init__(self) -> None:
        self.changed: list[tuple[str, Table]] = []

    def table_changed(self, cell: str, table: Table) -> None:
        self.changed.append((cell, table))


@dataclass
class CommandContext:
    """Everything a handler may use."""

    cell: Cell
    table: Table
    member: Member
    incoming: Incoming
    now: datetime
    repos: Repositories
    scheduler: SchedulerPort
    room_ids: Mapping[Table, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)
    commands: Sequence[Command] = ()

    @property
    def language(self) -> str:
        return self.cell.language

    def english(self, value: str) -> str:
        """An enumerated value typed in the cell language, as its English name."""
        lowered = value.strip().lower()
        return self.values.get(lowered, lowered)

    def local_list(self, names: Iterable[str]) -> str:
        """Configured values (indicators, trajectories) for a reply: localised, comma-separated."""
        return local_list(names, self.values)


def local_list(names: Iterable[str], values: Mapping[str, str]) -> str:
    """English enumerated values as the cell language writes them (the first word of its
    vocabulary for each; a cell's own words unchanged), comma-separated."""
    local: dict[str, str] = {}
    for word, name in values.items():
        local.setdefault(name, word)
    return ", ".join(local.get(name, name) for name in names)


@dataclass(frozen=True)
class Args:
    """Parsed arguments: positional words and ``key=value`` options (keys in English)."""

    positional: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.options.get(key)

    def list(self, key: str) -> list[str]:
        raw = self.options.get(key)
        if raw is None:
            return []
        return [item.strip() for item in raw.split(",") if item.strip()]


Handler = Callable[[CommandContext, Args], Sequence[Output]]


@dataclass(frozen=True)
class Command:
    """One chat command, declared next to its handler.

    ``name`` is the first word, ``sub`` the optional second word (``case list``).
    ``keys`` are the option keys it accepts (English); ``help`` names the help template.
    """

    name: str
    handler: Handler
    who: Who = Who.MEMBER
    tables: frozenset[Table] = frozenset({Table.OPERATIONAL, Table.STRATEGIC})
    sub: str | None = None
    keys: frozenset[str] = frozenset()
    max_positional: int = 0
    min_positional: int = 0
    help: str | None = None
    needs_ack: bool = True

    @property
    def help_template(self) -> str:
        return self.help or self.name

    @property
    def full_name(self) -> str:
        return f"{self.name} {self.sub}" if self.sub else self.name


@dataclass
class Router:
    """The commands of one module; ``bot.core.dispatcher`` includes routers explicitly."""

    name: str
    commands: list[Command] = field(default_factory=list)

    def command(self, name: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        """Decorator declaring a command on this router (no global registry)."""

        def register(handler: Handler) -> Handler:
            self.commands.append(Command(name=name, handler=handler, **kwargs))
            return handler

        return register
