"""The application core: decisions in one transaction each, replies through the outbox.

``handle`` runs a command exactly once: the effect, the rendered replies and the processed
event id are committed together. ``bot.matrix`` sends the outbox afterwards and deletes each
item once the homeserver has it; a crash in between resends with the same transaction id, which
the homeserver deduplicates. No nio here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.wire import wire
from commands.base import Incoming, Reply, Role, SchedulerPort, Table
from commands.members import effective_member, table_members
from storage.db import Database
from storage.repositories import OutboxItem

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RoomRef:
    cell: str
    table: Table


class Core:
    """Config, database and dispatcher; knows which room belongs to which table."""

    def __init__(
        self,
        config: Config,
        db: Database,
        clock: Clock = system_clock,
        scheduler: SchedulerPort | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.rooms: dict[str, RoomRef] = {}
        self.room_ids: dict[str, dict[Table, str]] = {}
        self.dispatcher = Dispatcher(config, scheduler=scheduler, room_ids=self.room_ids)

    def bind_room(self, room_id: str, cell: str, table: Table) -> None:
        self.rooms[room_id] = RoomRef(cell, table)
        self.room_ids.setdefault(cell, {})[table] = room_id

    def language(self, cell: str) -> str:
        return self.config.cell(cell).language

    def handle(self, incoming: Incoming) -> bool:
        """Run one command exactly once; False when the event was handled before."""
        lang = self.language(incoming.cell)
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(incoming.event_id):
                return False
            now = self.clock()
            outputs = self.dispatcher.dispatch(incoming, repos, now)
            for item in wire(lang, outputs, incoming, incoming.room_id):
                repos.events.enqueue(
                    incoming.event_id, item.pop("room"), item.pop("kind"), item, now
                )
            repos.events.mark_processed(incoming.event_id, incoming.room_id, now)
        return True

    def outsider_joined(self, room_id: str, user_id: str, event_id: str) -> None:
        """A room member who is not on the roster: tell the chair, once."""
        ref = self.rooms.get(room_id)
        if ref is None:
            return
        cell = self.config.cell(ref.cell)
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event_id):
                return
            member = effective_member(cell, repos, user_id)
            now = self.clock()
            if member is None or ref.table not in member.tables:
                chair_role = Role.MAYOR if ref.table is Table.STRATEGIC else Role.CHAIR
                chairs = tuple(
                    m.user_id
                    for m in table_members(cell, repos, ref.table)
                    if m.role is chair_role
                )
                reply = Reply(
                    "msg:members.outsider",
                    {"user_id": user_id},
                    notify=True,
                    mentions=chairs,
                    in_reply=False,
                )
                for item in wire(cell.language, [reply], None, room_id):
                    repos.events.enqueue(event_id, item.pop("room"), item.pop("kind"), item, now)
                log.warning("a non-roster user joined a table room %s", room_id)
            repos.events.mark_processed(event_id, room_id, now)

    def refuse_unencrypted(self, room_id: str, event_id: str) -> None:
        ref = self.rooms[room_id]
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event_id):
                return
            now = self.clock()
            incoming = Incoming(ref.cell, ref.table, room_id, event_id, "", "", now)
            reply = Reply("msg:error.unencrypted")
            for item in wire(self.language(ref.cell), [reply], incoming, room_id):
                repos.events.enqueue(event_id, item.pop("room"), item.pop("kind"), item, now)
            repos.events.mark_processed(event_id, room_id, now)

    def undecryptable(self, room_id: str, sender: str, event_id: str) -> None:
        """One notice asking the sender to resend a command we never could decrypt."""
        ref = self.rooms.get(room_id)
        if ref is None:
            return
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event_id):
                return
            now = self.clock()
            incoming = Incoming(ref.cell, ref.table, room_id, event_id, sender, "", now)
            reply = Reply("msg:error.undecryptable", {"sender": sender})
            for item in wire(self.language(ref.cell), [reply], incoming, room_id):
                repos.events.enqueue(event_id, item.pop("room"), item.pop("kind"), item, now)
            repos.events.mark_processed(event_id, room_id, now)

    def pending(self) -> list[OutboxItem]:
        with self.db.unit_of_work() as repos:
            return repos.events.pending()

    def sent(self, item: OutboxItem) -> None:
        with self.db.unit_of_work() as repos:
            repos.events.sent(item.id)

    def sync_token(self) -> str | None:
        with self.db.unit_of_work() as repos:
            return repos.events.sync_token()

    def save_sync_token(self, token: str) -> None:
        with self.db.unit_of_work() as repos:
            repos.events.set_sync_token(token)

    def is_processed(self, event_id: str) -> bool:
        with self.db.unit_of_work() as repos:
            return repos.events.is_processed(event_id)

    def forget_old_events(self, keep: timedelta = timedelta(days=30)) -> int:
        with self.db.unit_of_work() as repos:
            return repos.events.forget_processed_before(self.clock() - keep)

    def roster_user_ids(self, room_id: str) -> set[str]:
        """Users whose devices may receive this room's keys: the table's roster."""
        ref = self.rooms.get(room_id)
        if ref is None:
            return set()
        cell = self.config.cell(ref.cell)
        with self.db.unit_of_work() as repos:
            return {m.user_id for m in table_members(cell, repos, ref.table)}

    def cell_languages(self) -> Mapping[str, str]:
        return {c.id: c.language for c in self.config.cells}
