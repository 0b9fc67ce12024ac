"""The application core: decisions in one transaction each, replies through the outbox.

``handle`` runs a command exactly once: the effect, the rendered replies and the processed
event id are committed together. ``bot.matrix`` sends the outbox afterwards and deletes each
item once the homeserver has it; a crash in between resends with the same transaction id, which
the homeserver deduplicates. No nio here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Config
from bot.core import render
from bot.core.dispatcher import Dispatcher, where
from bot.edge.content import outbox_items
from commands.framework import ChangeRecorder, Incoming, Output, Reply, SchedulerPort
from commands.meetings import cadence
from commands.meetings.recompute import recompute_all, recompute_table
from commands.meetings.reminders import JobPlan, job_plan
from commands.members.roster import effective_member, table_members
from commands.model import Role, Table, parse_duration
from storage.db import Database
from storage.repositories import OutboxItem, Repositories

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: A scheduled job's decision: repositories, the port for tables it changes, and "now".
JobFn = Callable[[Repositories, SchedulerPort, datetime], Sequence[Output]]


def system_clock() -> datetime:
    return datetime.now(UTC)  # the wall clock: read here and nowhere else in the bot


@dataclass(frozen=True)
class RoomRef:
    cell: str
    table: Table


def is_reply(item: OutboxItem) -> bool:
    """Answers a member's Matrix event (ids start with ``$``), not a job or the cadence."""
    return item.source_event_id.startswith("$")


def send_order(items: Sequence[OutboxItem]) -> list[OutboxItem]:
    """Replies to members first, but never ahead of an earlier item for the same room.

    A first start with many open dossiers announces hundreds of meetings at once; a command
    sent meanwhile must not wait minutes behind them. Within a room nothing changes order (a
    poll's start before its end, an announcement before the reply that refers to it).
    """
    first: list[OutboxItem] = []
    later: list[OutboxItem] = []
    waiting_rooms: set[str] = set()
    for item in items:
        if is_reply(item) and item.room_id not in waiting_rooms:
            first.append(item)
        else:
            later.append(item)
            waiting_rooms.add(item.room_id)
    return first + later


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
        self.direct_users: dict[str, str] = {}  # direct room id -> its one recipient
        self.port: SchedulerPort = scheduler or ChangeRecorder()
        self.grace = parse_duration(config.limits.reminder_grace)
        self.dispatcher = Dispatcher(config, scheduler=scheduler, room_ids=self.room_ids)

    def bind_room(self, room_id: str, cell: str, table: Table) -> None:
        self.rooms[room_id] = RoomRef(cell, table)
        self.room_ids.setdefault(cell, {})[table] = room_id

    def language(self, cell: str) -> str:
        return self.config.cell(cell).language

    def handle(self, incoming: Incoming) -> bool:
        """Run one command exactly once; False when the event was handled before.

        If deciding or rendering fails unexpectedly, the command's effects are rolled back and
        it is answered with an error, so one bad command can never block the sync loop.
        """
        try:
            return self._handle(incoming)
        except Exception as exc:
            log.error("a command failed with %s at %s; answered with an error",
                      type(exc).__name__, where(exc))
            self._answer_failure(incoming)
            return True

    def _answer_failure(self, incoming: Incoming) -> None:
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(incoming.event_id):
                return
            now = self.clock()
            reply = Reply("msg:error.internal")
            for item in outbox_items(render, self.language(incoming.cell), [reply], incoming, incoming.room_id):
                repos.events.enqueue(
                    incoming.event_id, item.pop("room"), item.pop("kind"), item, now
                )
            repos.events.mark_processed(incoming.event_id, incoming.room_id, now)

    def _handle(self, incoming: Incoming) -> bool:
        lang = self.language(incoming.cell)
        changes = ChangeRecorder()
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(incoming.event_id):
                return False
            now = self.clock()
            outputs = self.dispatcher.dispatch(incoming, repos, now, scheduler=changes)
            outputs += self._recompute(repos, changes, now, incoming)
            for item in outbox_items(render, lang, outputs, incoming, incoming.room_id):
                repos.events.enqueue(
                    incoming.event_id, item.pop("room"), item.pop("kind"), item, now
                )
            repos.events.mark_processed(incoming.event_id, incoming.room_id, now)
        self._forward(changes)
        return True

    # ---- meetings and the cadence (spec §8) -----------------------------------------
    def table_room(self, cell: str, table: Table) -> str | None:
        return self.room_ids.get(cell, {}).get(table)

    def _forward(self, changes: ChangeRecorder) -> None:
        """After commit: the scheduler re-derives the jobs of the tables that changed."""
        for cell, table in dict.fromkeys(changes.changed):
            self.port.table_changed(cell, table)

    def _recompute(self, repos: Repositories, changes: ChangeRecorder, now: datetime,
                   incoming: Incoming | None) -> list[Output]:
        """Cadence, automatic meeting and announcements of every changed table, in the
        caller's transaction. A failure here never loses the command: the next recomputation
        (daily, or at start) catches up."""
        outputs: list[Output] = []
        for cell_id, table in dict.fromkeys(changes.changed):
            room = self.table_room(cell_id, table)
            if room is None and incoming is not None and (
                incoming.cell, incoming.table) == (cell_id, table):
                room = incoming.room_id
            try:
                with repos.savepoint():
                    produced = recompute_table(
                        repos, self.config.cell(cell_id), table, now, room)
            except Exception as exc:
                log.error("recomputing the cadence of %s/%s failed with %s", cell_id,
                          table.value, type(exc).__name__)
                continue
            if room is None:
                log.warning("no room bound for %s/%s: its announcements are dropped", cell_id,
                            table.value)
                continue
            outputs.extend(produced)
        return outputs

    def run_job(self, key: str, cell_id: str, table: Table, fn: JobFn, once: bool = True) -> bool:
        """A scheduled job's decision in one transaction, its messages in the outbox under the
        synthetic event id ``key``; with ``once`` it runs at most once (False when it ran)."""
        cell = self.config.cell(cell_id)
        room = self.table_room(cell_id, table)
        changes = ChangeRecorder()
        with self.db.unit_of_work() as repos:
            if once and repos.events.is_processed(key):
                return False
            now = self.clock()
            outputs = list(fn(repos, changes, now))
            outputs += self._recompute(repos, changes, now, None)
            if room is None:
                if outputs:
                    log.warning("no room bound for %s/%s: a job's messages are dropped",
                                cell_id, table.value)
            else:
                for item in outbox_items(render, cell.language, outputs, None, room):
                    repos.events.enqueue(key, item.pop("room"), item.pop("kind"), item, now)
            if once:
                repos.events.mark_processed(key, room or f"job:{cell_id}", now)
        self._forward(changes)
        return True

    def recompute_all(self) -> int:
        """Every table's cadence and automatic meeting (at start and daily); messages out."""
        cadence.prepare_holidays(self.clock().year)
        with self.db.unit_of_work() as repos:
            now = self.clock()
            produced = recompute_all(repos, self.config.cells, now, self.room_ids)
            count = 0
            for cell_id, outputs in produced.items():
                sendable = [o for o in outputs if not isinstance(o, Reply) or o.room_id]
                if len(sendable) < len(outputs):
                    log.warning("no room bound for a table of %s: announcements dropped",
                                cell_id)
                items = outbox_items(render, self.language(cell_id), sendable, None, "")
                for item in items:
                    repos.events.enqueue(f"recompute:{now.isoformat()}", item.pop("room"),
                                         item.pop("kind"), item, now)
                count += len(items)
        return count

    def job_plan(self, tables: set[tuple[str, Table]] | None = None) -> JobPlan:
        """The jobs the database calls for; missed reminders beyond the grace are dropped."""
        with self.db.unit_of_work() as repos:
            return job_plan(repos, self.config.cells, self.clock(), self.grace, tables)

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
                for item in outbox_items(render, cell.language, [reply], None, room_id):
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
            for item in outbox_items(render, self.language(ref.cell), [reply], incoming, room_id):
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
            for item in outbox_items(render, self.language(ref.cell), [reply], incoming, room_id):
                repos.events.enqueue(event_id, item.pop("room"), item.pop("kind"), item, now)
            repos.events.mark_processed(event_id, room_id, now)

    def pending(self) -> list[OutboxItem]:
        """The outbox in the order to send it (see :func:`send_order`)."""
        with self.db.reading() as repos:
            return send_order(repos.events.pending())

    def sent_many(self, items: Sequence[OutboxItem]) -> None:
        """Items the homeserver has: out of the outbox, in one transaction."""
        with self.db.unit_of_work() as repos:
            for item in items:
                repos.events.sent(item.id)

    def sync_token(self) -> str | None:
        with self.db.reading() as repos:
            return repos.events.sync_token()

    def save_sync_token(self, token: str) -> None:
        with self.db.unit_of_work() as repos:
            repos.events.set_sync_token(token)

    def is_processed(self, event_id: str) -> bool:
        with self.db.reading() as repos:
            return repos.events.is_processed(event_id)

    def forget_old_events(self, keep: timedelta = timedelta(days=30)) -> int:
        with self.db.unit_of_work() as repos:
            return repos.events.forget_processed_before(self.clock() - keep)

    def roster_user_ids(self, room_id: str) -> set[str]:
        """Users whose devices may receive this room's keys: the table's roster, or the one
        recipient of a direct room."""
        if room_id in self.direct_users:
            return {self.direct_users[room_id]}
        ref = self.rooms.get(room_id)
        if ref is None:
            return set()
        cell = self.config.cell(ref.cell)
        with self.db.reading() as repos:
            return {m.user_id for m in table_members(cell, repos, ref.table)}

    def cell_languages(self) -> Mapping[str, str]:
        return {c.id: c.language for c in self.config.cells}

    # ---- consensus polls and direct rooms (spec §9) ---------------------------------
    def poll_response(self, room_id: str, sender: str, event_id: str,
                      source: Mapping[str, Any]) -> None:
        """A native poll answer: the ballot of an eligible member, exactly once."""
        try:
            self._poll_response(room_id, sender, event_id, source)
        except Exception as exc:
            log.error("a poll answer failed with %s at %s; ignored", type(exc).__name__,
                      where(exc))
            with self.db.unit_of_work() as repos:
                if not repos.events.is_processed(event_id):
                    repos.events.mark_processed(event_id, room_id, self.clock())

    def _poll_response(self, room_id: str, sender: str, event_id: str,
                       source: Mapping[str, Any]) -> None:
        from commands.votes.closing import TableVotes, poll_ballot

        ref = self.rooms.get(room_id)
        if ref is None:
            return
        content = source.get("content", {})
        relates = content.get("m.relates_to") or {}
        answers = (content.get("org.matrix.msc3381.poll.response") or {}).get("answers") or []
        if relates.get("rel_type") != "m.reference" or not answers:
            return
        cell = self.config.cell(ref.cell)
        changes = ChangeRecorder()
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event_id):
                return
            now = self.clock()
            scope = TableVotes(cell, ref.table, repos, changes, now)
            outputs = poll_ballot(scope, str(relates.get("event_id", "")), sender,
                                  str(answers[0]))
            outputs += self._recompute(repos, changes, now, None)
            incoming = Incoming(ref.cell, ref.table, room_id, event_id, sender, "", now)
            for item in outbox_items(render, cell.language, outputs, incoming, room_id):
                repos.events.enqueue(event_id, item.pop("room"), item.pop("kind"), item, now)
            repos.events.mark_processed(event_id, room_id, now)
        self._forward(changes)

    def event_sent(self, item: OutboxItem, event_id: str) -> None:
        """Remember the poll event of a vote, so answers and the poll's end can refer to it."""
        vote_id = item.content.get("vote_id")
        if item.event_type == "poll_start" and vote_id is not None:
            with self.db.unit_of_work() as repos:
                repos.votes.update(int(vote_id), poll_event_id=event_id)

    def poll_event_of(self, vote_id: int) -> str | None:
        with self.db.reading() as repos:
            vote = repos.votes.get(vote_id)
            return vote.poll_event_id if vote and vote.poll_event_id else None

    def direct_room(self, cell: str, user_id: str) -> str | None:
        with self.db.reading() as repos:
            return repos.votes.direct_room(cell, user_id)

    def set_direct_room(self, cell: str, user_id: str, room_id: str) -> None:
        with self.db.unit_of_work() as repos:
            repos.votes.set_direct_room(cell, user_id, room_id)
        self.direct_users[room_id] = user_id
