"""The application core: every inbound event decided in one transaction, replies through the
outbox.

:meth:`Core.decide` is the one path for every inbound kind (commands, poll answers,
undecryptable holds, outsider joins, unencrypted-room refusals): the effect, the rendered
replies and the processed event id are committed together by the one enqueue step
(:meth:`Core._enqueue`). The edge sends the outbox afterwards and deletes each item once the
homeserver has it; a crash in between resends with the same transaction id, which the
homeserver deduplicates. No nio here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from bot.config import Config
from bot.core import render
from bot.core.dispatcher import Dispatcher
from bot.edge.content import outbox_items
from bot.edge.inbound import (
    EditedText,
    IgnoredInput,
    Inbound,
    OutsiderJoined,
    PollAnswer,
    RoomRef,
    Undecryptable,
    UnencryptedCommand,
    UntrustedInput,
)
from bot.edge.trust import fingerprint
from bot.logsafe import where
from commands.framework import ChangeRecorder, Incoming, Output, Reply, SchedulerPort
from commands.meetings import cadence
from commands.meetings.recompute import recompute_all, recompute_table
from commands.meetings.reminders import JobPlan, job_plan
from commands.members.roster import effective_member, effective_roster, table_members
from commands.model import Cell, Table, chairs_among, parse_duration
from commands.votes.closing import TableVotes, poll_ballot
from storage.db import Database
from storage.repositories import OutboxItem, Repositories

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: A scheduled job's decision: repositories, the port for tables it changes, and "now".
JobFn = Callable[[Repositories, SchedulerPort, datetime], Sequence[Output]]


def system_clock() -> datetime:
    return datetime.now(UTC)  # the wall clock: read here and nowhere else in the bot


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
        if item.answers_member and item.room_id not in waiting_rooms:
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
        self.words = render  # the edge's verification notices are worded here
        self.port: SchedulerPort = scheduler or ChangeRecorder()
        self.grace = parse_duration(config.limits.reminder_grace)
        self.dispatcher = Dispatcher(config, scheduler=scheduler, room_ids=self.room_ids)

    def bind_room(self, room_id: str, cell: str, table: Table) -> None:
        self.rooms[room_id] = RoomRef(cell, table)
        self.room_ids.setdefault(cell, {})[table] = room_id

    def language(self, cell: str) -> str:
        return self.config.cell(cell).language

    def table_room(self, cell: str, table: Table) -> str | None:
        return self.room_ids.get(cell, {}).get(table)

    # ---- the one path of every inbound event ----------------------------------------
    def decide(self, event: Inbound) -> bool:
        """Decide one inbound event exactly once; False when it was decided before (or its
        room is not a table's).

        A command whose decision fails unexpectedly has its effects rolled back and is
        answered with an error, a failing poll answer is dropped, so one bad event can never
        block the sync loop.
        """
        ref = RoomRef(event.cell, event.table) if isinstance(event, Incoming) else (
            self.rooms.get(event.room_id))
        if ref is None:
            return False
        if not isinstance(event, Incoming | PollAnswer | EditedText):
            return self._decide(ref, event)
        try:
            return self._decide(ref, event)
        except Exception as exc:
            log.error("deciding a %s failed with %s at %s", type(event).__name__,
                      type(exc).__name__, where(exc))
            self._failed(ref, event)
            return True

    def _decide(self, ref: RoomRef, event: Inbound) -> bool:
        cell = self.config.cell(ref.cell)
        changes = ChangeRecorder()
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event.event_id):
                return False
            now = self.clock()
            outputs, answering = self._outputs(cell, ref, event, repos, changes, now)
            outputs += self._recompute(repos, changes, now, event if isinstance(
                event, Incoming) else None)
            self._enqueue(repos, cell.language, event.event_id, outputs, answering,
                          event.room_id, now)
            repos.events.mark_processed(event.event_id, event.room_id, now)
        self._forward(changes)
        return True

    def _outputs(self, cell: Cell, ref: RoomRef, event: Inbound, repos: Repositories,
                 changes: ChangeRecorder, now: datetime) -> tuple[list[Output], Incoming | None]:
        """What an event decides, and the event its replies answer (None: no reply relation)."""
        if isinstance(event, Incoming):
            return self.dispatcher.dispatch(event, repos, now, scheduler=changes), event
        sender = event.sender if isinstance(event, PollAnswer | Undecryptable) else ""
        answering = Incoming(ref.cell, ref.table, event.room_id, event.event_id, sender, "", now)
        if isinstance(event, EditedText):
            # Never run, whatever its text (spec §11); screened like a new command.
            edit = Incoming(ref.cell, ref.table, event.room_id, event.event_id, event.sender,
                            event.body, event.timestamp)
            return self.dispatcher.screen_edit(edit, repos, now), edit
        if isinstance(event, PollAnswer):
            votes = TableVotes(cell, ref.table, repos, changes, now)
            return poll_ballot(votes, event.poll_event_id, event.sender, event.answer), answering
        if isinstance(event, Undecryptable):
            return [Reply("msg:error.undecryptable", {"sender": event.sender})], answering
        if isinstance(event, UnencryptedCommand):
            return [Reply("msg:error.unencrypted")], answering
        if isinstance(event, IgnoredInput):
            return [], None
        if isinstance(event, UntrustedInput):
            return self._untrusted(cell, ref, event, repos, now), None
        assert isinstance(event, OutsiderJoined)
        member = effective_member(cell, repos, event.user_id)
        if member is not None and ref.table in member.tables:
            return [], None
        log.warning("a non-roster user joined a table room %s", event.room_id)
        chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
        return [Reply("msg:members.outsider", {"user_id": event.user_id}, notify=True,
                      mentions=chairs, in_reply=False)], None

    def _untrusted(self, cell: Cell, ref: RoomRef, event: UntrustedInput,
                   repos: Repositories, now: datetime) -> list[Output]:
        """Not acted on (spec §11). A roster member is told once per device, in this room
        (only their trusted devices get its key), and the chair once; a blocked member and a
        non-member are told nothing."""
        members = table_members(cell, repos, ref.table)
        if event.blocked or event.sender not in {m.user_id for m in members}:
            return []
        outputs: list[Output] = []
        if event.device_id is not None and repos.identities.mark_device_told(
                event.sender, event.device_id, now):
            outputs.append(Reply("msg:trust.untrusted_device", {"sender": event.sender},
                                 in_reply=False))
            if repos.identities.mark_chair_notified(event.sender, now):
                chairs = chairs_among(members, ref.table)
                outputs.append(Reply("msg:trust.untrusted_device_chair",
                                     {"user_id": event.sender}, notify=True, mentions=chairs,
                                     in_reply=False))
        return outputs

    def not_delivered(self, origin_room: str, user_id: str, key: str) -> None:
        """A direct message (a fiche) the edge did not send: its recipient has no trusted
        device. The table is told, so the delivery report stays honest."""
        ref = self.rooms.get(origin_room)
        if ref is None:
            return
        cell = self.config.cell(ref.cell)
        with self.db.unit_of_work() as repos:
            chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
            reply = Reply("msg:fiche.not_delivered", {"user_id": user_id}, notify=True,
                          mentions=chairs, in_reply=False)
            self._enqueue(repos, cell.language, f"undelivered:{key}", [reply], None,
                          origin_room, self.clock())

    # ---- identities (spec §11) ------------------------------------------------------
    def trust_generation(self) -> int:
        """Moves whenever this process committed a roster change or an identity pin."""
        return self.db.trust_generation

    def everyone_on_a_roster(self) -> set[str]:
        """Every user on the roster of any table of any cell (the trust cache follows them)."""
        users: set[str] = set()
        with self.db.reading() as repos:
            for cell in self.config.cells:
                users |= {m.user_id for m in effective_roster(cell, repos)}
        return users

    def identity_pins(self, user_ids: set[str]) -> dict[str, str]:
        """The pinned master key of each user that has one. A ``master_key`` in a roster
        entry is pinned (``roster``) when nothing is stored yet; a stored pin wins. Read at
        every sync: a write transaction only when a roster key is to be pinned."""
        with self.db.reading() as repos:
            pins = repos.identities.pins(user_ids)
        wanted = {m.user_id: m.master_key for cell in self.config.cells for m in cell.members
                  if m.master_key and m.user_id in user_ids and m.user_id not in pins}
        if wanted:
            with self.db.unit_of_work() as repos:
                now = self.clock()
                for user_id, key in wanted.items():
                    record = repos.identities.pin(user_id, key, "roster", now)
                    if record.master_key:
                        pins[user_id] = record.master_key
        return pins

    def identities_seen(self, pins: Sequence[tuple[str, str]],
                        blocks: Sequence[tuple[str, str]]) -> int:
        """Persist first-sight pins and blocks in one unit of work; for a block that is news,
        mention the chairs of every table with that member at once, with the new key's
        fingerprint. Returns how many messages were queued."""
        queued = 0
        with self.db.unit_of_work() as repos:
            now = self.clock()
            for user_id, key in pins:
                repos.identities.pin(user_id, key, "tofu", now)
            for user_id, key in blocks:
                try:
                    news = repos.identities.block(user_id, key, now)
                except (KeyError, ValueError):
                    continue
                if not news or not repos.identities.mark_chair_notified(user_id, now):
                    continue
                log.warning("a roster member's cross-signing identity changed: blocked")
                for cell in self.config.cells:
                    for table in cell.tables:
                        members = table_members(cell, repos, table)
                        room = self.table_room(cell.id, table)
                        if room is None or user_id not in {m.user_id for m in members}:
                            continue
                        reply = Reply("msg:trust.blocked",
                                      {"user_id": user_id, "fingerprint": fingerprint(key)},
                                      notify=True, mentions=chairs_among(members, table),
                                      in_reply=False)
                        queued += self._enqueue(repos, cell.language,
                                                f"identity:{user_id}:{key}", [reply], None,
                                                room, now)
        return queued

    def _failed(self, ref: RoomRef, event: Incoming | PollAnswer | EditedText) -> None:
        """After a failed decision: a command is answered with an error, a poll answer is only
        marked as processed (it is never retried)."""
        outputs: list[Output] = [Reply("msg:error.internal")] if isinstance(
            event, Incoming) else []
        with self.db.unit_of_work() as repos:
            if repos.events.is_processed(event.event_id):
                return
            now = self.clock()
            if isinstance(event, Incoming):
                self._enqueue(repos, self.language(ref.cell), event.event_id, outputs, event,
                              event.room_id, now)
            repos.events.mark_processed(event.event_id, event.room_id, now)

    def _enqueue(self, repos: Repositories, lang: str, key: str, outputs: Sequence[Output],
                 answering: Incoming | None, room: str, now: datetime) -> int:
        """The one enqueue step: outputs rendered into Matrix contents, into the outbox under
        ``key``, in the caller's transaction. Returns how many items were queued."""
        items = outbox_items(render, lang, outputs, answering, room)
        for item in items:
            repos.events.enqueue(key, item.pop("room"), item.pop("kind"), item, now)
        return len(items)

    # ---- meetings and the cadence (spec §8) -----------------------------------------
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
                self._enqueue(repos, cell.language, key, outputs, None, room, now)
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
                count += self._enqueue(repos, self.language(cell_id), f"recompute:"
                                       f"{now.isoformat()}", sendable, None, "", now)
        return count

    def job_plan(self, tables: set[tuple[str, Table]] | None = None) -> JobPlan:
        """The jobs the database calls for; missed reminders beyond the grace are dropped."""
        with self.db.unit_of_work() as repos:
            return job_plan(repos, self.config.cells, self.clock(), self.grace, tables)

    # ---- what the edge reads and records --------------------------------------------
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
            return repos.direct_rooms.get(cell, user_id)

    def set_direct_room(self, cell: str, user_id: str, room_id: str) -> None:
        with self.db.unit_of_work() as repos:
            repos.direct_rooms.set(cell, user_id, room_id)
        self.direct_users[room_id] = user_id

    def direct_room_user(self, room_id: str) -> str | None:
        """The one member of a stored direct room (fiches, verification), or None."""
        if room_id in self.direct_users:
            return self.direct_users[room_id]
        with self.db.reading() as repos:
            owner = repos.direct_rooms.owner(room_id)
        if owner is None:
            return None
        self.direct_users[room_id] = owner[1]
        return owner[1]

    def cells_of(self, user_id: str) -> list[str]:
        """The cells on whose roster (any table) ``user_id`` is, in configuration order."""
        with self.db.reading() as repos:
            return [cell.id for cell in self.config.cells
                    if any(m.user_id == user_id for m in effective_roster(cell, repos))]
