"""The dispatcher's cross-cutting checks as a visible chain (aiogram's middlewares).

Each middleware takes the :class:`Request` and the rest of the chain (``proceed``) and either
answers itself (or stays silent) or lets the request go on. The *outer* chain runs before a
command is looked up: roster only, rate limit, size, privacy guard. The *inner* chain runs
once the command is known: the confidentiality acknowledgement, the command's tables, the
sender's role. ``Dispatcher.outer`` and ``Dispatcher.inner`` list them in order.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Config
from commands.framework import Command, Incoming, Output, Redact, Reply, SchedulerPort
from commands.members.roster import effective_member
from commands.model import Cell, Member, Role, Table, Who, chair_role
from commands.privacy import screen
from storage.repositories import Repositories

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One command on its way through the chain."""

    incoming: Incoming
    text: str
    cell: Cell
    repos: Repositories
    now: datetime
    scheduler: SchedulerPort
    member: Member | None = None
    command: Command | None = None
    words: tuple[str, ...] = ()
    #: For the metrics (spec §14): ok | refused | usage | unknown_command | error. Left
    #: empty when a middleware stopped the command (counted as refused).
    outcome: str = ""


Proceed = Callable[[Request], list[Output]]
Middleware = Callable[[Request, Proceed], list[Output]]


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


def roster_only(request: Request, proceed: Proceed) -> list[Output]:
    """Only a member of this table is answered; everyone else gets silence."""
    incoming = request.incoming
    member = effective_member(request.cell, request.repos, incoming.sender)
    if member is None or incoming.table not in member.tables:
        log.info("ignored a command from a non-roster sender in %s", incoming.room_id)
        return []
    request.member = member
    return proceed(request)


@dataclass
class RateLimit:
    """At most ``commands_per_minute`` per member, with one notice per minute."""

    limiter: RateLimiter

    def __call__(self, request: Request, proceed: Proceed) -> list[Output]:
        sender = request.incoming.sender
        if not self.limiter.allow(sender):
            if self.limiter.should_warn(sender):
                return [Reply("msg:error.rate_limited", {"limit": self.limiter.per_minute})]
            return []
        return proceed(request)


@dataclass
class SizeLimit:
    max_chars: int

    def __call__(self, request: Request, proceed: Proceed) -> list[Output]:
        if len(request.incoming.body) > self.max_chars:
            return [Reply("msg:error.too_long", {"limit": self.max_chars})]
        return proceed(request)


def privacy_guard(request: Request, proceed: Proceed) -> list[Output]:
    """A command carrying personal data is refused and redacted; nothing of it is stored."""
    findings = screen(request.text)
    if findings:
        # The reply names kinds, never the text.
        log.info("refused a command carrying personal data (%s)",
                 ", ".join(sorted(f.value for f in findings)))
        # The refusal goes out with the redaction and says the message was removed only when
        # the redaction succeeded (spec §11); else the ``refused_not_removed`` words.
        kinds = {"kinds": sorted(f.value for f in findings)}
        return [Reply("msg:privacy.refused", kinds),
                Redact(notice_if_failed=Reply("msg:privacy.refused_not_removed", kinds))]
    return proceed(request)


def acknowledged(request: Request, proceed: Proceed) -> list[Output]:
    """Commands need the table's confidentiality acknowledgement first (``ack`` itself not)."""
    assert request.command is not None
    incoming = request.incoming
    if request.command.needs_ack and not request.repos.acks.has_acked(
        request.cell.id, incoming.table.value, incoming.sender
    ):
        return [Reply("msg:ack.required")]
    return proceed(request)


def at_its_table(request: Request, proceed: Proceed) -> list[Output]:
    assert request.command is not None
    if request.incoming.table not in request.command.tables:
        return [Reply("msg:error.wrong_table",
                      {"command": request.command.full_name,
                       "table": request.incoming.table.value})]
    return proceed(request)


def allowed(command: Command, member_role: Role, table: Table) -> bool:
    if command.who is Who.CHAIR:
        return member_role is chair_role(table)
    if command.who is Who.OPERATIONAL_MEMBER:
        return table is Table.OPERATIONAL
    if command.who is Who.STRATEGIC_MEMBER:
        return table is Table.STRATEGIC
    return True


def role_allowed(request: Request, proceed: Proceed) -> list[Output]:
    """The command's ``who``: chair-only commands for the table's chair, and so on."""
    assert request.command is not None
    assert request.member is not None
    if not allowed(request.command, request.member.role, request.incoming.table):
        return [Reply("msg:error.not_allowed",
                      {"command": request.command.full_name,
                       "who": request.command.who.value})]
    return proceed(request)


def outer_chain(config: Config, limiter: RateLimiter) -> list[Middleware]:
    return [roster_only, RateLimit(limiter), SizeLimit(config.limits.max_input_chars),
            privacy_guard]


INNER_CHAIN: tuple[Middleware, ...] = (acknowledged, at_its_table, role_allowed)
#: What an edit goes through: it is never run, only screened (spec §11).
EDIT_CHAIN: tuple[Middleware, ...] = (roster_only, privacy_guard)


def run_chain(chain: list[Middleware] | tuple[Middleware, ...], request: Request,
              last: Proceed) -> list[Output]:
    """``chain[0]`` first; each decides whether the next one (finally ``last``) runs."""
    def step(index: int) -> Proceed:
        if index == len(chain):
            return last
        return lambda req: chain[index](req, step(index + 1))

    return step(0)(request)
