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

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from bot.config import Config
from bot.core import render
from bot.core.dispatcher import Dispatcher
from bot.core.outbox import OutboxMirror
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
from bot.ops import metrics
from commands.framework import ChangeRecorder, Incoming, Output, Reply, SchedulerPort
from commands.meetings import cadence
from commands.meetings.common import next_planned, when
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


#: How long a notice about outsiders waits for more joins of the same batch, and how close
#: to its sending time it no longer takes one (the edge may be sending it).
OUTSIDER_BATCH = timedelta(seconds=5)
OUTSIDER_MERGE_MARGIN = timedelta(seconds=1)


def joined_notice(cell: Cell, table: Table, user_id: str, repos: Repositories,
                  now: datetime) -> Reply:
    """A roster member joined the table's room: history before the join is not theirs to
    read, so mentions they were sent are lost to them. One short message mentions them and
    says what is waiting (open votes, the next meeting and its agenda, the !ack)."""
    votes = len(repos.votes.open_votes(cell.id, table.value))
    upcoming = next_planned(repos, cell, table, now)
    return Reply("msg:joined.welcome", {
        "user_id": user_id,
        "votes": votes,
        "next": when(upcoming.starts_at, cell) if upcoming else None,
        "acked": repos.acks.has_acked(cell.id, table.value, user_id),
    }, notify=True, mentions=(user_id,), in_reply=False)


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
    waiting_lanes: set[str] = set()
    for item in items:
        if item.answers_member and item.lane not in waiting_lanes:
            first.append(item)
        else:
            later.append(item)
            waiting_lanes.add(item.lane)
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
        #: The outbox in memory; every write unit of work of the core goes through it.
        self.outbox = OutboxMirror(db)
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
        with self.outbox.unit_of_work() as repos:
            now = self.clock()
            if not repos.events.claim(event.event_id, event.room_id, now):
                return False  # decided before (a resent or replayed event)
            outputs, answering = self._outputs(cell, ref, event, repos, changes, now)
            outputs += self._recompute(repos, changes, now, event if isinstance(
                event, Incoming) else None)
            self._enqueue(repos, cell.language, event.event_id, outputs, answering,
                          event.room_id, now)
        self._forward(changes, repos)
        if isinstance(event, Incoming) and outputs:
            metrics.replied_after((now - event.timestamp).total_seconds())
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
            # Only a roster member of this table is asked to resend (spec §11): nobody else
            # hears from the bot.
            if event.sender not in {m.user_id for m in table_members(cell, repos, ref.table)}:
                return [], None
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
            return [joined_notice(cell, ref.table, event.user_id, repos, now)], None
        self._outsider(repos, cell, ref, event, now)
        return [], None

    def _outsider(self, repos: Repositories, cell: Cell, ref: RoomRef, event: OutsiderJoined,
                  now: datetime) -> None:
        """A non-roster user is in a table room: the chairs are told once per user and room
        (a display-name or avatar change, also a join event, pings nobody), and the joins
        of one batch in one message (spec §11): the notice waits ``OUTSIDER_BATCH`` for
        others in a lane of its own (it holds back no reply)."""
        told = "outsider:" + hashlib.sha256(
            f"{event.room_id}\x00{event.user_id}".encode()).hexdigest()[:40]
        if repos.events.is_processed(told):
            return
        repos.events.mark_processed(told, event.room_id, now)
        log.warning("a non-roster user joined a table room %s", event.room_id)
        waiting = repos.events.waiting(event.room_id, "outsiders", now + OUTSIDER_MERGE_MARGIN)
        users = [*waiting[1].get("users", []), event.user_id] if waiting else [event.user_id]
        chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
        reply = (Reply("msg:members.outsider", {"user_id": users[0]}, notify=True,
                       mentions=chairs, in_reply=False) if len(users) == 1 else
                 Reply("msg:outbox.outsiders", {"users": users}, notify=True,
                       mentions=chairs, in_reply=False))
        [item] = outbox_items(render, cell.language, [reply], None, event.room_id)
        item.pop("room")
        item.pop("kind")
        item.update({"users": users, "lane": "outsiders"})
        if waiting:
            repos.events.replace_content(waiting[0], item)
        else:
            repos.events.enqueue(event.event_id, event.room_id, "message", item, now,
                                 purpose="outsiders", next_try_at=now + OUTSIDER_BATCH)

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
        with self.outbox.unit_of_work() as repos:
            chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
            reply = Reply("msg:fiche.not_delivered", {"user_id": user_id}, notify=True,
                          mentions=chairs, in_reply=False)
            self._enqueue(repos, cell.language, f"undelivered:{key}", [reply], None,
                          origin_room, self.clock())

    # ---- the outbox: backoff, dead letters, deliveries (spec §11) ------------------
    def retry_later(self, item: OutboxItem, attempts: int, next_try_at: datetime) -> None:
        """A send failed: the item is tried again not before ``next_try_at``."""
        with self.outbox.unit_of_work() as repos:
            repos.events.retry_later(item.id, attempts, next_try_at)

    def dead_letter(self, item: OutboxItem, attempts: int) -> None:
        """Give an item up after its last attempt: kept in the outbox (never sent, counted),
        logged without its body, and the chairs of its table told (a fiche as "NOT
        delivered"). A notice about a dead letter that dies itself is only logged."""
        ref = self.rooms.get(item.room_id)
        with self.outbox.unit_of_work() as repos:
            now = self.clock()
            if not repos.events.dead_letter(item.id, attempts, now):
                return
            log.error("dead-lettered an outbox %s after %d attempts (room %s)",
                      item.event_type, attempts, item.room_id)
            if ref is None or item.source_event_id.startswith("dead:"):
                return
            cell = self.config.cell(ref.cell)
            if item.content.get("delivery") and item.content.get("direct_to"):
                outputs = self._delivery_outputs(repos, cell, ref, item, False, "failed",
                                                 attempts, now)
                key = f"delivery:{item.content['delivery']['group']}"
            else:
                chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
                outputs = [Reply("msg:outbox.dead_letter", {"attempts": attempts},
                                 notify=True, mentions=chairs, in_reply=False)]
                key = f"dead:{item.id}"
            self._enqueue(repos, cell.language, key, outputs, None, item.room_id, now)

    def dead_letters(self) -> int:
        with self.db.reading() as repos:
            return repos.events.dead_letters()

    def delivery_outcome(self, item: OutboxItem, delivered: bool,
                         reason: str = "failed") -> None:
        """One direct message of a delivery was sent (``delivered``) or will never be
        (``reason``: ``untrusted`` recipient or ``failed`` sends). A failure is told to the
        table's chairs at once; when every message of the delivery has an outcome, the
        table hears how many went out ("sent to N" only for those that did)."""
        ref = self.rooms.get(item.room_id)
        if ref is None or not item.content.get("delivery") or not item.content.get(
                "direct_to"):
            if not delivered and item.content.get("direct_to"):
                self.not_delivered(item.room_id, item.content["direct_to"], item.txn_id)
            return
        cell = self.config.cell(ref.cell)
        with self.outbox.unit_of_work() as repos:
            now = self.clock()
            outputs = self._delivery_outputs(repos, cell, ref, item, delivered, reason,
                                             item.attempts + 1, now)
            self._enqueue(repos, cell.language, f"delivery:{item.content['delivery']['group']}",
                          outputs, None, item.room_id, now)

    def _delivery_outputs(self, repos: Repositories, cell: Cell, ref: RoomRef,
                          item: OutboxItem, delivered: bool, reason: str, attempts: int,
                          now: datetime) -> list[Output]:
        info = item.content["delivery"]
        user_id = str(item.content["direct_to"])
        if not repos.events.record_delivery(info["group"], user_id, delivered, now):
            return []  # recorded before (a resend after a crash)
        chairs = chairs_among(table_members(cell, repos, ref.table), ref.table)
        outputs: list[Output] = []
        if not delivered and reason == "untrusted":
            outputs.append(Reply("msg:fiche.not_delivered", {"user_id": user_id},
                                 notify=True, mentions=chairs, in_reply=False))
        elif not delivered:
            outputs.append(Reply("msg:outbox.fiche_failed",
                                 {"code": info["code"], "user_id": user_id,
                                  "attempts": attempts},
                                 notify=True, mentions=chairs, in_reply=False))
        outcomes = repos.events.delivery_outcomes(info["group"])
        if len(outcomes) >= int(info["total"]):
            count = sum(outcomes.values())
            outputs.append(
                Reply("msg:fiche.delivered", {"code": info["code"], "count": count},
                      in_reply=False) if count else
                Reply("msg:outbox.delivered_none", {"code": info["code"],
                                                    "total": info["total"]},
                      notify=True, mentions=chairs, in_reply=False))
        return outputs

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
            with self.outbox.unit_of_work() as repos:
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
        with self.outbox.unit_of_work() as repos:
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
        with self.outbox.unit_of_work() as repos:
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
        # The direct messages of one delivery (an adopted fiche to each officer) form a
        # group; the table is told once every one of them was sent or given up.
        codes = [str(i["delivery"]) for i in items if i.get("delivery")]
        order = list(dict.fromkeys(codes))
        for item in items:
            if item.get("delivery"):
                code = str(item["delivery"])
                item["delivery"] = {"group": f"{key}/{order.index(code)}", "code": code,
                                    "total": codes.count(code)}
        for item in items:
            repos.events.enqueue(key, item.pop("room"), item.pop("kind"), item, now)
        return len(items)

    # ---- meetings and the cadence (spec §8) -----------------------------------------
    def _forward(self, changes: ChangeRecorder, repos: Repositories) -> None:
        """After commit: the scheduler re-derives the jobs of the tables that changed, when
        the unit wrote what jobs are derived from (a signal changes a table's case load, and
        its cadence is recomputed, but its meetings, votes and reminders mostly stay: no
        second transaction and thread hop behind every signal)."""
        if not repos.schedule_changed:
            return
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
        with self.outbox.unit_of_work() as repos:
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
        self._forward(changes, repos)
        return True

    def recompute_all(self) -> int:
        """Every table's cadence and automatic meeting (at start and daily); messages out."""
        cadence.prepare_holidays(self.clock().year)
        with self.outbox.unit_of_work() as repos:
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
        with self.outbox.unit_of_work() as repos:
            return job_plan(repos, self.config.cells, self.clock(), self.grace, tables)

    # ---- what the edge reads and records --------------------------------------------
    def pending(self) -> list[OutboxItem]:
        """The outbox in the order to send it (see :func:`send_order`), from memory."""
        return send_order(self.outbox.pending())

    def sent_many(self, items: Sequence[OutboxItem]) -> None:
        """Items the homeserver has: out of the outbox (the rows go with the next unit of
        work, or :meth:`forget_sent`; see :mod:`bot.core.outbox`). No transaction here."""
        self.outbox.sent([item.id for item in items])

    def forget_sent(self) -> int:
        """Delete the rows of sent items now (when the edge is quiet, and at stop)."""
        return self.outbox.forget_sent()

    def sync_token(self) -> str | None:
        with self.db.reading() as repos:
            return repos.events.sync_token()

    def save_sync_token(self, token: str) -> None:
        with self.outbox.unit_of_work() as repos:
            repos.events.set_sync_token(token)

    def is_processed(self, event_id: str) -> bool:
        with self.db.reading() as repos:
            return repos.events.is_processed(event_id)

    def forget_old_events(self, keep: timedelta = timedelta(days=30)) -> int:
        with self.outbox.unit_of_work() as repos:
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
            with self.outbox.unit_of_work() as repos:
                repos.votes.update(int(vote_id), poll_event_id=event_id)

    def poll_event_of(self, vote_id: int) -> str | None:
        with self.db.reading() as repos:
            vote = repos.votes.get(vote_id)
            return vote.poll_event_id if vote and vote.poll_event_id else None

    def direct_room(self, cell: str, user_id: str) -> str | None:
        with self.db.reading() as repos:
            return repos.direct_rooms.get(cell, user_id)

    def set_direct_room(self, cell: str, user_id: str, room_id: str) -> None:
        with self.outbox.unit_of_work() as repos:
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
