"""Outbound, second half: the outbox sent to the homeserver (notices, replies, attachments
encrypted and uploaded, polls, redactions, direct rooms created on first use).

Replies to members go first; one flush at a time, in the background, never blocking the sync
loop. Contents were built by :mod:`bot.edge.content` when the core decided.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from nio import (
    AsyncClient,
    RoomCreateResponse,
    RoomPreset,
    RoomRedactResponse,
    RoomSendResponse,
)
from nio.crypto.attachments import encrypt_attachment

from bot.edge.content import POLL_END, POLL_START, fit_event
from bot.edge.devices import KeySharing
from bot.edge.port import CorePort
from bot.logsafe import where
from bot.ops import metrics
from storage.repositories import OutboxItem

log = logging.getLogger(__name__)

#: The longest wait between two tries of one item (the first is ``outbox_retry_seconds``,
#: doubling).
MAX_RETRY_SECONDS = 300.0
#: Sent items leave the outbox table this many seconds after the first of them was sent, in
#: one transaction (bot.core.outbox).
FORGET_SENT_S = 2.0
#: The marker of a body shortened at send time (the core shortens with a localised one when
#: it renders; this is the last safety net, e.g. for a poll's outcome).
SHORTENED = "[…]"

#: The file name the homeserver sees in an upload request (spec §11 "Nothing left behind"):
#: never the real one (it holds a case code and a date); that one is only inside the
#: encrypted ``m.file`` event.
NEUTRAL_UPLOAD_NAMES = {"text/markdown": "document.md", "text/calendar": "meeting.ics"}


def neutral_upload_name(mimetype: str) -> str:
    return NEUTRAL_UPLOAD_NAMES.get(mimetype.split(";")[0].strip().lower(), "attachment.bin")


@dataclass
class OutboxSender:
    """Sends the outbox; ``ready`` once the first sync knows the rooms, ``stop`` ends it.

    Spec §11 "One failed send never blocks the others": items keep their order per *lane*
    (a room, or one recipient's direct room); an item that fails is tried again with its
    own exponential backoff (kept in the database, so a restart does not reset it) and
    only its lane waits for it; after ``outbox_attempts`` tries it becomes a dead letter
    (kept, counted, logged without its body) and the table's chairs are told.
    """

    client: AsyncClient
    core: CorePort
    keys: KeySharing
    ready: asyncio.Event
    stop: asyncio.Event
    _flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The background flush that sends replies while the next command of a sync is decided.
    _flusher: asyncio.Task[None] | None = None
    _flush_wanted: bool = False
    #: The timer that flushes again when the earliest backoff is over.
    _wake: asyncio.TimerHandle | None = None
    #: The timer that deletes the rows of sent items when no unit of work did.
    _forget: asyncio.TimerHandle | None = None
    _forgetting: asyncio.Future[int] | None = None
    #: An item waits for its backoff: the next sync tries again too.
    stalled: bool = False
    #: Items not sent on purpose, by kind (unencrypted room, untrusted recipient).
    dropped: dict[str, int] = field(default_factory=dict)
    #: Items given up (dead letters) since the start, and failed sends.
    dead_letters: int = 0
    failures: int = 0

    @property
    def max_attempts(self) -> int:
        return self.core.config.limits.outbox_attempts

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed send of an item."""
        first = self.core.config.limits.outbox_retry_seconds
        return float(min(first * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))

    async def finish(self) -> None:
        """Wait for a flush under way (at stop)."""
        if self._wake is not None:
            self._wake.cancel()
        if self._flusher is not None:
            try:
                await self._flusher
            except Exception as exc:
                log.info("the last flush ended with %s", type(exc).__name__)
        if self._forget is not None:
            self._forget.cancel()
        if self._forgetting is not None:
            await asyncio.wait([self._forgetting])
        try:
            await asyncio.to_thread(self.core.forget_sent)
        except Exception as exc:  # resent after the restart, deduplicated by the server
            log.warning("could not delete sent outbox items at stop (%s)", type(exc).__name__)

    def _forget_soon(self) -> None:
        """Delete the rows of sent items in FORGET_SENT_S seconds, with whatever is sent
        meanwhile (a timer already set is kept: under a steady load, one delete every
        FORGET_SENT_S seconds)."""
        if self._forget is None:
            self._forget = asyncio.get_running_loop().call_later(FORGET_SENT_S,
                                                                 self._forget_now)

    def _forget_now(self) -> None:
        self._forget = None
        if self._forgetting is None or self._forgetting.done():
            self._forgetting = asyncio.ensure_future(asyncio.to_thread(self.core.forget_sent))
            self._forgetting.add_done_callback(_log_failure)

    def flush_soon(self) -> None:
        """Send the outbox in the background: a reply just decided while the next command of
        the same sync is decided (ten members at once do not wait for each other's turns),
        what a job decided, the start-up announcements. One flush at a time; a flush asked
        for while one runs makes it run again, replies to members first (a backlog of
        announcements yields to them). The sync loop never waits for a flush."""
        self._flush_wanted = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_while_wanted())

    async def _flush_while_wanted(self) -> None:
        while self._flush_wanted and not self.stop.is_set():
            self._flush_wanted = False
            try:
                await self._flush_outbox()
            except Exception as exc:  # the next sync tries again (stalled)
                log.warning("sending replies failed with %s at %s", type(exc).__name__,
                            where(exc))
                self._flush_wanted = False
                self.stalled = True
                return

    async def _flush_outbox(self) -> None:
        """Send what is due, lane by lane (see :meth:`_send_pending`).

        Nothing is sent before the first sync (rooms are unknown until then). Sent items
        leave the core's outbox at once and its table with the next unit of work (a crash
        before that resends them with the same transaction ids, which the homeserver
        deduplicates; bot.core.outbox).
        """
        if not self.ready.is_set():
            return
        async with self._flush_lock:
            done: list[OutboxItem] = []
            try:
                await self._send_pending(done)
            finally:
                if done:
                    self.core.sent_many(done)
                    self._forget_soon()

    async def _send_pending(self, done: list[OutboxItem]) -> None:
        """Send the outbox in order (``Core.pending``: replies to members first); what went
        out is appended to ``done``. An item still in its backoff, or one that fails now,
        holds back only the later items of its lane. A stop request ends a long flush
        (thousands of start-up announcements) between two items."""
        now = self.core.clock()
        held_lanes: set[str] = set()
        wake: datetime | None = None
        for item in self.core.pending():  # in memory (bot.core.outbox): no transaction
            if self.stop.is_set():
                return
            if self._flush_wanted and not item.answers_member:
                return  # a member's new reply goes first; this flush runs again after it
            if item.lane in held_lanes:
                continue
            if item.next_try_at is not None and item.next_try_at > now:
                held_lanes.add(item.lane)
                wake = item.next_try_at if wake is None else min(wake, item.next_try_at)
                continue
            try:
                ok = await self._send(item)
            except Exception as exc:
                log.warning("sending a reply failed (%s at %s); will retry",
                            type(exc).__name__, where(exc))
                ok = False
            if ok:
                done.append(item)
                continue
            self.failures += 1
            held_lanes.add(item.lane)
            attempts = item.attempts + 1
            if attempts >= self.max_attempts:
                self.dead_letters += 1
                metrics.dead_letter()
                await asyncio.to_thread(self.core.dead_letter, item, attempts)
                self._flush_wanted = True  # the chair's notice, and the lane's next items
                continue
            retry_at = now + timedelta(seconds=self.backoff(attempts))
            await asyncio.to_thread(self.core.retry_later, item, attempts, retry_at)
            wake = retry_at if wake is None else min(wake, retry_at)
        self.stalled = wake is not None
        self._wake_at(wake, now)

    def _wake_at(self, wake: datetime | None, now: datetime) -> None:
        """Flush again when the earliest backoff is over (syncs flush too, when stalled)."""
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if wake is not None and not self.stop.is_set():
            delay = max((wake - now).total_seconds(), 0.05)
            self._wake = asyncio.get_running_loop().call_later(delay, self.flush_soon)

    async def _direct_room(self, origin_room: str, user_id: str) -> str | None:
        """The encrypted direct room with ``user_id``: reused, created on first use.

        A new room is only usable after the next sync; None means "try again then".
        """
        ref = self.core.rooms.get(origin_room)
        if ref is None:
            return None
        room_id = await asyncio.to_thread(self.core.direct_room, ref.cell, user_id)
        if room_id is not None:
            self.core.direct_users[room_id] = user_id
            return room_id if room_id in self.client.rooms else None
        response = await self.client.room_create(
            is_direct=True,
            invite=[user_id],
            preset=RoomPreset.trusted_private_chat,
            initial_state=[
                {"type": "m.room.encryption", "state_key": "",
                 "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                {"type": "m.room.history_visibility", "state_key": "",
                 "content": {"history_visibility": "invited"}},
                {"type": "m.room.guest_access", "state_key": "",
                 "content": {"guest_access": "forbidden"}},
            ],
        )
        if not isinstance(response, RoomCreateResponse):
            log.warning("could not create a direct room (%s)", type(response).__name__)
            return None
        await asyncio.to_thread(self.core.set_direct_room, ref.cell, user_id,
                                str(response.room_id))
        log.info("created an encrypted direct room for an information officer")
        return None

    async def _send(self, item: OutboxItem) -> bool:
        data = item.content
        room_id = item.room_id
        if item.event_type == "redact":
            redacted = await self.client.room_redact(
                room_id, data["event_id"], reason=data.get("reason"), tx_id=item.txn_id
            )
            # No power to redact is not an error worth retrying; a refusal sent with the
            # redaction says "removed" only when it was (spec §11).
            notice = data.get("content") if isinstance(redacted, RoomRedactResponse) else (
                data.get("notice_if_failed"))
            if notice is None:
                return True
            return await self._send(replace(item, event_type="message",
                                            source_event_id=f"{item.source_event_id}#notice",
                                            content={"content": notice}))
        if data.get("direct_to") and not self.keys.has_trusted_device(data["direct_to"]):
            # Fiches go only to officers with a trusted device (spec §11); the table is told.
            log.warning("a direct message was not sent: its recipient has no trusted device")
            self.dropped["untrusted_recipient"] = self.dropped.get("untrusted_recipient", 0) + 1
            await asyncio.to_thread(self.core.delivery_outcome, item, False, "untrusted")
            self._flush_wanted = True  # the table's notice goes out in the same round
            return True
        if data.get("direct_to"):
            direct = await self._direct_room(room_id, data["direct_to"])
            if direct is None:
                return False
            room_id = direct
        if room_id not in self.client.rooms:
            log.warning("a reply waits for a room the bot has not joined (yet)")
            return False
        room = self.client.rooms[room_id]
        if not room.encrypted and not data.get("refusal"):
            # An unencrypted configured room gets only the refusal (spec §11): no reminder,
            # announcement, code or file in clear.
            log.warning("dropped a %s for an unencrypted room", item.event_type)
            self.dropped[item.event_type] = self.dropped.get(item.event_type, 0) + 1
            return True
        await self.keys.share_keys(room_id)
        content = dict(data["content"])
        if item.event_type == "message":
            content = fit_event("m.room.message", content, SHORTENED, room_id)
            response = await self.client.room_send(
                room_id, "m.room.message", content, tx_id=item.txn_id,
                ignore_unverified_devices=False,
            )
            if not isinstance(response, RoomSendResponse):
                log.warning("the homeserver refused a reply (%s)", type(response).__name__)
                return False
            if "attachment" in data:
                await self._send_file(room_id, data["attachment"], item.txn_id + "-file")
            if data.get("delivery"):
                # Sent: now the table may hear it (spec §11), with the others of its group.
                await asyncio.to_thread(self.core.delivery_outcome, item, True)
                self._flush_wanted = True
            return True
        if item.event_type == "poll_start":
            response = await self.client.room_send(
                room_id, POLL_START, content, tx_id=item.txn_id, ignore_unverified_devices=False
            )
            if not isinstance(response, RoomSendResponse):
                return False
            await asyncio.to_thread(self.core.event_sent, item, response.event_id)
            return True
        if item.event_type == "poll_end":
            poll = await asyncio.to_thread(self.core.poll_event_of, int(data["vote_id"]))
            if poll is None:
                return True  # the poll never went out: nothing to end
            content["m.relates_to"] = {"rel_type": "m.reference", "event_id": poll}
            content[POLL_END] = {}
            content = fit_event(POLL_END, content, SHORTENED, room_id)
            await self.keys.share_keys(room_id)  # the lookup awaited: share again, then send
            response = await self.client.room_send(
                room_id, POLL_END, content, tx_id=item.txn_id, ignore_unverified_devices=False
            )
            return isinstance(response, RoomSendResponse)
        log.warning("unknown outbox kind %s dropped", item.event_type)
        return True

    async def _send_file(self, room_id: str, attachment: dict[str, str], txn: str) -> None:
        raw = base64.b64decode(attachment["data"])
        ciphertext, keys = encrypt_attachment(raw)
        upload, _ = await self.client.upload(
            lambda *_: ciphertext,
            content_type="application/octet-stream",
            filename=neutral_upload_name(attachment["mimetype"]),
            encrypt=False,
            filesize=len(ciphertext),
        )
        url = getattr(upload, "content_uri", None)
        if url is None:
            log.warning("attachment upload failed")
            return
        content = {
            "msgtype": "m.file",
            "body": attachment["filename"],
            "filename": attachment["filename"],
            "info": {"mimetype": attachment["mimetype"], "size": len(raw)},
            "file": {
                "url": url,
                "key": keys["key"],
                "iv": keys["iv"],
                "hashes": keys["hashes"],
                "v": "v2",
                "mimetype": attachment["mimetype"],
            },
            "m.mentions": {},
        }
        # The upload awaited: share again (the allow-list may have changed meanwhile), with
        # no await between this and the send.
        await self.keys.share_keys(room_id)
        await self.client.room_send(
            room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=False
        )


def _log_failure(future: asyncio.Future[int]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("deleting sent outbox items failed (%s); the next unit of work tries again",
                    type(future.exception()).__name__)
