"""A core with a settable clock and bound rooms, for the meeting and scheduler tests.

Commands go through :meth:`bot.core.app.Core.decide` (dispatcher, cadence recomputation, outbox in
one transaction), so the tests see exactly what would be sent, attachments included.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from icalendar import Calendar

from bot.config import Config, parse_config
from bot.core.app import Core
from commands.framework import ChangeRecorder
from commands.model import Table
from storage.db import Database
from storage.repositories import OutboxItem
from tests.factories import CHAIR, NOW, PARTNER, ack_all, incoming, memory_db, raw_config

OP_ROOM = "!op:example.be"
STRAT_ROOM = "!strat:example.be"
CODE = re.compile(r"C-[0-9A-Z]{5}")


def meeting_config(language: str = "en", limits: dict[str, Any] | None = None,
                   **table: Any) -> Config:
    """The factories' cell, no rate limit, with operational-table settings overridden."""
    raw = raw_config(language)
    raw["limits"] = {"commands_per_minute": 10_000, **(limits or {})}
    raw["tables"]["operational"].update(table)
    return parse_config(raw, environ={})


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sent:
    """One outbox item as a member would see it."""

    item: OutboxItem

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.item.content.get("content", {}))

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))

    @property
    def room(self) -> str:
        return self.item.room_id

    @property
    def notifies(self) -> list[str]:
        return list(self.content.get("m.mentions", {}).get("user_ids", []))

    @property
    def is_reply(self) -> bool:
        return "m.relates_to" in self.content

    @property
    def calendar(self) -> Calendar | None:
        attachment = self.item.content.get("attachment")
        if attachment is None:
            return None
        assert attachment["mimetype"] == "text/calendar"
        return Calendar.from_ical(base64.b64decode(attachment["data"]))


@dataclass
class Harness:
    config: Config
    db: Database
    clock: Clock
    port: ChangeRecorder = field(default_factory=ChangeRecorder)
    core: Core = field(init=False)
    _seen: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.core = Core(self.config, self.db, clock=self.clock, scheduler=self.port)
        cell = self.config.cells[0]
        self.core.bind_room(OP_ROOM, cell.id, Table.OPERATIONAL)
        self.core.bind_room(STRAT_ROOM, cell.id, Table.STRATEGIC)

    @property
    def cell(self) -> Any:
        return self.config.cells[0]

    def new(self) -> list[Sent]:
        """Outbox items added since the last call."""
        fresh = [i for i in self.core.pending() if i.id not in self._seen]
        self._seen.update(i.id for i in fresh)
        return [Sent(i) for i in fresh]

    def say(self, body: str, sender: str = CHAIR, table: Table = Table.OPERATIONAL) -> list[Sent]:
        self.core.decide(incoming(body, sender=sender, table=table, at=self.clock.now))
        return self.new()

    def text(self, body: str, sender: str = CHAIR, table: Table = Table.OPERATIONAL) -> str:
        return "\n".join(s.body for s in self.say(body, sender, table))

    def signal(self, sender: str = PARTNER) -> str:
        answer = self.text("!signal phenomenon=HTF indicators=isolation assessed=yes",
                           sender=sender)
        match = CODE.search(answer)
        assert match, answer
        return match.group(0)

    def repos(self) -> Any:
        return self.db.unit_of_work()


@contextmanager
def harness(now: datetime = NOW, language: str = "en", url: str | None = None,
            limits: dict[str, Any] | None = None, **table: Any) -> Iterator[Harness]:
    """A harness on an in-memory database, or on ``url`` (a file when threads share it)."""
    config = meeting_config(language, limits, **table)
    if url is None:
        with memory_db() as db:
            ack_all(db, config)
            yield Harness(config, db, Clock(now))
        return
    database = Database(url)
    database.migrate()
    try:
        ack_all(database, config)
        yield Harness(config, database, Clock(now))
    finally:
        database.dispose()


def calendars(sent: list[Sent]) -> list[Calendar]:
    return [c for c in (s.calendar for s in sent) if c is not None]


def event(calendar: Calendar) -> Any:
    return calendar.walk("VEVENT")[0]
