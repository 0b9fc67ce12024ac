"""The Matrix edge: the only module that talks to the homeserver (through matrix-nio).

It keeps one device (session file + crypto store in ``data_dir``), syncs with a persisted
token, turns decrypted events into :class:`Incoming` values for :class:`bot.app.Core`, and sends
the outbox. Message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    MegolmEvent,
    MessageDirection,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomResolveAliasResponse,
    RoomSendResponse,
    SyncResponse,
    UnknownEvent,
    UnknownToDeviceEvent,
    WhoamiResponse,
)
from nio.crypto.attachments import encrypt_attachment

from bot.core.app import Core, is_reply
from bot.core.dispatcher import where
from bot.edge.content import POLL_END, POLL_RESPONSE, POLL_START
from bot.edge.cross_signing import ensure_cross_signing
from commands.framework import Incoming
from commands.model import Table
from storage.repositories import OutboxItem

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"
#: Long timelines per sync; a gap beyond this is back-filled through /messages. Members are
#: lazy-loaded (only the senders of the timeline's events): the full member list of a room is
#: fetched before the bot first encrypts for it (``_prepare_room``), so a bot in 1,200 rooms
#: does not receive and track about 10,000 memberships at every start. Presence, receipts,
#: typing and account data are of no use to the bot and would only wake its long poll.
SYNC_FILTER: dict[str, Any] = {
    "room": {
        "timeline": {"limit": 100},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}
#: The very first sync replays no history (spec §11), so it asks for none: it only learns the
#: rooms' state and the position to continue from.
FIRST_SYNC_FILTER: dict[str, Any] = {
    **SYNC_FILTER,
    "room": {**SYNC_FILTER["room"], "timeline": {"limit": 0}},
}
#: Room aliases resolved at once at start.
RESOLVE_CONCURRENCY = 16
GAP_PAGES = 50
HELD_FILE = "held.json"
#: Consecutive failed sends after which a reply is given up (logged, not silently).
GIVE_UP_ATTEMPTS = 50
#: A held event whose sender was already asked to resend is kept this long: if its key comes
#: late it is recognised as answered (not run twice); afterwards it is forgotten.
HELD_FORGET_SECONDS = 24 * 3600


class StartupError(RuntimeError):
    """The bot cannot start (login refused, room unknown...); the message says why."""


def secure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def protect_tree(path: Path) -> None:
    """Files 0600, folders 0700, under data_dir (the crypto store creates its own files)."""
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(Path(root) / name, 0o700)
        for name in files:
            os.chmod(Path(root) / name, 0o600)


@dataclass
class Held:
    """A command we could not decrypt yet: retried when keys arrive.

    Kept in ``data_dir/held.json`` (ciphertext only) so a restart does not lose it.
    """

    event: MegolmEvent
    room_id: str
    since: float  # seconds since the epoch, by the core's clock
    warned: bool = False


@dataclass
class MatrixBot:
    core: Core
    on_first_sync: Callable[[], Awaitable[None]] | None = None
    sync_timeout_ms: int = 30_000
    undecryptable_timeout: float = 30.0
    client: AsyncClient = field(init=False)
    held: dict[str, Held] = field(default_factory=dict)
    _keys_fresh: set[str] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _attempts: dict[int, int] = field(default_factory=dict)
    #: Who may receive each room's keys, read once per room and flush (``_prepare_room``).
    _rosters: dict[str, set[str]] = field(default_factory=dict)
    #: The background flush that sends replies while the next command of a sync is decided.
    _flusher: asyncio.Task[None] | None = None
    _flush_wanted: bool = False
    #: A flush stopped at an item that could not go yet: the next sync tries again.
    _stalled: bool = False

    def __post_init__(self) -> None:
        cfg = self.core.config.matrix
        self.data_dir = secure_dir(cfg.data_dir)
        self.store_dir = secure_dir(self.data_dir / "crypto")
        self.undecryptable_timeout = self.core.config.limits.undecryptable_timeout_seconds
        self.client = AsyncClient(
            cfg.homeserver,
            cfg.user_id,
            store_path=str(self.store_dir),
            config=AsyncClientConfig(
                encryption_enabled=True,
                store_sync_tokens=False,
                max_timeouts=0,
                request_timeout=60,
            ),
        )
        self.client.add_to_device_callback(self._on_to_device, (UnknownToDeviceEvent,))
        self._load_held()

    # ---- login, one device for life -------------------------------------------------
    async def login(self) -> None:
        cfg = self.core.config.matrix
        session_path = self.data_dir / SESSION_FILE
        if session_path.exists():
            saved = json.loads(session_path.read_text())
            if saved.get("user_id") != cfg.user_id:
                raise StartupError(f"{session_path} belongs to another user")
            self.client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        elif cfg.access_token:
            self.client.access_token = cfg.access_token
            who = await self.client.whoami()
            if not isinstance(who, WhoamiResponse) or not who.device_id:
                raise StartupError("the access token was refused by the homeserver")
            self.client.restore_login(cfg.user_id, who.device_id, cfg.access_token)
            self._save_session(who.device_id, cfg.access_token)
        else:
            response = await self.client.login(cfg.password or "", device_name=cfg.device_name)
            if not isinstance(response, LoginResponse):
                raise StartupError("login refused by the homeserver (check user_id and password)")
            self._save_session(response.device_id, response.access_token)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await ensure_cross_signing(self.client, self.data_dir, cfg.password)
        protect_tree(self.data_dir)
        log.info("logged in as device %s", self.client.device_id)

    def _save_session(self, device_id: str, token: str) -> None:
        write_secret(
            self.data_dir / SESSION_FILE,
            json.dumps(
                {
                    "user_id": self.core.config.matrix.user_id,
                    "device_id": device_id,
                    "access_token": token,
                }
            ),
        )

    # ---- rooms ----------------------------------------------------------------------
    async def resolve_rooms(self) -> None:
        """Bind every configured table to its room id; aliases are resolved concurrently."""
        tables = [(cell, table, table_cfg.room) for cell in self.core.config.cells
                  for table, table_cfg in cell.tables.items()]
        limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)

        async def resolve(room: str) -> Any:
            async with limit:
                return await self.client.room_resolve_alias(room)

        aliases = [room for _, _, room in tables if room.startswith("#")]
        resolved = dict(zip(aliases, await asyncio.gather(*map(resolve, aliases)), strict=True))
        for cell, table, room in tables:
            if room.startswith("#"):
                response = resolved[room]
                if not isinstance(response, RoomResolveAliasResponse):
                    raise StartupError(
                        f"room alias {room} of {cell.id}/{table.value} does not exist; "
                        "run `livcr setup` first"
                    )
                room = response.room_id
            self.core.bind_room(room, cell.id, table)

    async def _join_configured(self) -> None:
        for room_id in self.core.rooms:
            if room_id not in self.client.rooms:
                response = await self.client.join(room_id)
                if isinstance(response, JoinError):
                    log.warning("could not join configured room %s", room_id)

    # ---- sync loop ------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Sync until :meth:`stop`; rides out homeserver outages with backoff."""
        await self.login()
        await self.resolve_rooms()
        token = self.core.sync_token()
        first = token is None
        delay = 1.0
        while not self._stop.is_set():
            sync = asyncio.ensure_future(
                self.client.sync(
                    timeout=0 if first else self.sync_timeout_ms,
                    since=token,
                    full_state=first or not self.ready.is_set(),
                    set_presence="offline",
                    sync_filter=FIRST_SYNC_FILTER if first else SYNC_FILTER,
                )
            )
            stopper = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait({sync, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if sync not in done:
                sync.cancel()
                break
            stopper.cancel()
            try:
                response = sync.result()
            except Exception as exc:  # network errors: back off and retry
                response = exc
            if not isinstance(response, SyncResponse):
                log.warning("sync failed (%s); retrying in %.0f s", type(response).__name__,
                            delay)
                await self._sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = 1.0
            try:
                await self._after_sync(response, since=None if first else token)
            except Exception as exc:
                log.error("handling a sync failed with %s at %s; retrying",
                          type(exc).__name__, where(exc))
                await self._sleep(delay)
                continue
            token = response.next_batch
            await asyncio.to_thread(self.core.save_sync_token, token)
            first = False
            if not self.ready.is_set():
                await self._join_configured()
                self.ready.set()
                log.info("first sync done; %d table rooms", len(self.core.rooms))
                # The scheduler first (its jobs are part of being ready), then whatever the
                # outbox holds (replies from before a restart, start-up announcements) goes
                # out in the background: the sync loop goes on receiving commands.
                if self.on_first_sync is not None:
                    await self.on_first_sync()
                self.flush_soon()
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        await self.client.close()

    async def _sleep(self, seconds: float) -> None:
        jittered = seconds * (0.8 + random.random() / 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=jittered)

    async def _keys(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        await self.client.send_to_device_messages()

    async def _gap(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """Events a limited sync left out: back-paginate from its start to our last token."""
        events: list[Any] = []
        start = prev_batch
        for _ in range(GAP_PAGES):
            response = await self.client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back, limit=100
            )
            if not isinstance(response, RoomMessagesResponse) or not response.chunk:
                break
            events.extend(response.chunk)
            if not response.end or response.end == start:
                break
            start = response.end
        events.reverse()
        return events

    async def _after_sync(self, response: SyncResponse, since: str | None) -> None:
        await self._keys()
        worked = False
        for room_id in response.rooms.invite:
            if room_id in self.core.rooms:
                await self.client.join(room_id)
            else:
                log.info("declined an invite to an unconfigured room")
                await self.client.room_leave(room_id)
        for room_id, room_info in response.rooms.join.items():
            if room_id not in self.core.rooms:
                continue
            if since is None:
                continue  # the very first sync: history from before it is not replayed
            timeline = room_info.timeline
            events = list(timeline.events)
            if timeline.limited and timeline.prev_batch:
                missed = await self._gap(room_id, timeline.prev_batch, since)
                log.info("a limited sync left %d events out; fetched them", len(missed))
                events = missed + events
            for event in events:
                if getattr(event, "sender", None) != self.client.user_id:
                    worked = True
                await self._on_event(room_id, event)
        if await self._retry_held() or worked or self._stalled:
            # Whatever those events decided goes out in the background, and an item that
            # could not go yet is tried again (a new direct room is usable after a sync);
            # the sync loop never waits for a flush (at start it may be sending hundreds
            # of announcements).
            self._stalled = False
            self.flush_soon()

    async def _on_event(self, room_id: str, event: Any) -> None:
        if getattr(event, "sender", None) == self.client.user_id:
            return
        if isinstance(event, MegolmEvent):
            if event.event_id not in self.held and not await asyncio.to_thread(
                self.core.is_processed, event.event_id
            ):
                self.held[event.event_id] = Held(event, room_id, self.core.clock().timestamp())
                self._save_held()
                log.info("holding an undecryptable event until its room key arrives")
                try:
                    await self.client.request_room_key(event)
                except Exception as exc:
                    log.info("room key request not sent (%s)", type(exc).__name__)
            return
        if isinstance(event, RoomMemberEvent):
            if event.membership == "join" and event.state_key != self.client.user_id:
                await asyncio.to_thread(
                    self.core.outsider_joined, room_id, event.state_key, event.event_id
                )
            return
        if isinstance(event, RoomMessageNotice | InviteMemberEvent):
            return
        if isinstance(event, RoomMessageText):
            await self._on_text(room_id, event)
        elif isinstance(event, UnknownEvent) and event.type == POLL_RESPONSE:
            await self._on_poll_response(room_id, event)

    async def _on_text(self, room_id: str, event: RoomMessageText) -> None:
        ref = self.core.rooms[room_id]
        room = self.client.rooms.get(room_id)
        content = event.source.get("content", {})
        if room is not None and not room.encrypted:
            if event.body.lstrip().startswith(("!", "/")):
                await asyncio.to_thread(self.core.refuse_unencrypted, room_id, event.event_id)
            return
        relates = content.get("m.relates_to") or {}
        thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        incoming = Incoming(
            cell=ref.cell,
            table=ref.table,
            room_id=room_id,
            event_id=event.event_id,
            sender=event.sender,
            body=event.body,
            timestamp=datetime.fromtimestamp(event.server_timestamp / 1000, UTC),
            thread_root=thread_root,
        )
        await asyncio.to_thread(self.core.handle, incoming)
        self.flush_soon()

    async def _on_poll_response(self, room_id: str, event: UnknownEvent) -> None:
        await asyncio.to_thread(
            self.core.poll_response, room_id, event.sender, event.event_id, event.source
        )
        self.flush_soon()

    def _save_held(self) -> None:
        data = [
            {"room_id": h.room_id, "since": h.since, "warned": h.warned, "event": h.event.source}
            for h in self.held.values()
        ]
        write_secret(self.data_dir / HELD_FILE, json.dumps(data))

    def _load_held(self) -> None:
        path = self.data_dir / HELD_FILE
        if not path.exists():
            return
        try:
            for item in json.loads(path.read_text()):
                event = MegolmEvent.from_dict(item["event"])
                if isinstance(event, MegolmEvent):
                    event.room_id = item["room_id"]
                    self.held[event.event_id] = Held(event, item["room_id"], item["since"],
                                                     item["warned"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("held events file unreadable (%s); starting without it",
                        type(exc).__name__)

    def _on_to_device(self, event: UnknownToDeviceEvent) -> None:
        if event.type in ("m.room_key.withheld", "org.matrix.room_key.withheld"):
            code = event.source.get("content", {}).get("code", "unknown")
            log.warning("a sender withheld a room key from the bot (reason code %s)", code)

    async def _retry_held(self) -> bool:
        """Held events whose key arrived are handled; True when anything changed."""
        now = self.core.clock().timestamp()
        changed = False
        for event_id, held in list(self.held.items()):
            try:
                decrypted = self.client.decrypt_event(held.event)
            except Exception:
                decrypted = None
            if decrypted is not None and not isinstance(decrypted, MegolmEvent):
                del self.held[event_id]
                changed = True
                decrypted.room_id = held.room_id
                await self._on_event(held.room_id, decrypted)
            elif not held.warned and now - held.since > self.undecryptable_timeout:
                held.warned = True
                changed = True
                await asyncio.to_thread(
                    self.core.undecryptable, held.room_id, held.event.sender, event_id
                )
            elif held.warned and now - held.since > HELD_FORGET_SECONDS:
                del self.held[event_id]
                changed = True
        if changed:
            self._save_held()
        return changed

    # ---- sending --------------------------------------------------------------------
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
        while self._flush_wanted and not self._stop.is_set():
            self._flush_wanted = False
            try:
                await self._flush_outbox()
            except Exception as exc:  # the next sync tries again (_stalled)
                log.warning("sending replies failed with %s at %s", type(exc).__name__,
                            where(exc))
                self._flush_wanted = False
                self._stalled = True
                return

    async def _flush_outbox(self) -> None:
        """Send pending replies in order; stop at the first that cannot go yet.

        Nothing is dropped before the first sync (rooms are unknown until then). An item that
        keeps failing is given up after ``GIVE_UP_ATTEMPTS`` tries, so one broken room cannot
        block every other reply forever. Sent items leave the outbox in one transaction at
        the end (a crash before it resends them with the same transaction ids, which the
        homeserver deduplicates).
        """
        if not self.ready.is_set():
            return
        async with self._flush_lock:
            done: list[OutboxItem] = []
            self._rosters.clear()  # rosters may have changed since the last flush
            try:
                await self._send_pending(done)
            finally:
                if done:
                    await asyncio.to_thread(self.core.sent_many, done)

    async def _send_pending(self, done: list[OutboxItem]) -> None:
        """Send the outbox in order (``Core.pending``: replies to members first); what went
        out is appended to ``done``. A stop request ends a long flush (thousands of start-up
        announcements) between two items."""
        for item in await asyncio.to_thread(self.core.pending):
            if self._stop.is_set():
                return
            if self._flush_wanted and not is_reply(item):
                return  # a member's new reply goes first; this flush runs again after it
            try:
                ok = await self._send(item)
            except Exception as exc:
                log.warning("sending a reply failed (%s); will retry", type(exc).__name__)
                ok = False
            if not ok:
                tries = self._attempts.get(item.id, 0) + 1
                self._attempts[item.id] = tries
                if tries < GIVE_UP_ATTEMPTS:
                    self._stalled = True
                    return
                log.error("giving up on a reply to %s after %d attempts", item.room_id,
                          tries)
            self._attempts.pop(item.id, None)
            done.append(item)

    async def _prepare_room(self, room_id: str) -> None:
        """Keys only for the roster: blacklist every other device before encrypting."""
        room = self.client.rooms.get(room_id)
        if room is None or not room.encrypted or self.client.olm is None:
            return
        if not room.members_synced:  # members are lazy-loaded: fetch the full list once
            await self.client.joined_members(room_id)
        if room_id not in self._keys_fresh:
            self.client.olm.users_for_key_query.update(room.users)
            self._keys_fresh.add(room_id)
        if self.client.should_query_keys:
            await self.client.keys_query()
        allowed = self._rosters.get(room_id)
        if allowed is None:
            allowed = await asyncio.to_thread(self.core.roster_user_ids, room_id)
            allowed.add(self.client.user_id)
            self._rosters[room_id] = allowed
        rotate = False
        session = self.client.olm.outbound_group_sessions.get(room_id)
        for user_id in list(room.users):
            for device in self.client.device_store.active_user_devices(user_id):
                if user_id in allowed:
                    if self.client.olm.is_device_blacklisted(device):
                        self.client.unblacklist_device(device)
                elif not self.client.olm.is_device_blacklisted(device):
                    self.client.blacklist_device(device)
                    if session is not None and (user_id, device.id) in session.users_shared_with:
                        rotate = True
        if rotate:
            self.client.olm.outbound_group_sessions.pop(room_id, None)

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
            await self.client.room_redact(
                room_id, data["event_id"], reason=data.get("reason"), tx_id=item.txn_id
            )
            return True  # no power to redact is not an error worth retrying
        if data.get("direct_to"):
            direct = await self._direct_room(room_id, data["direct_to"])
            if direct is None:
                return False
            room_id = direct
        if room_id not in self.client.rooms:
            log.warning("a reply waits for a room the bot has not joined (yet)")
            return False
        await self._prepare_room(room_id)
        content = dict(data["content"])
        if item.event_type == "message":
            response = await self.client.room_send(
                room_id, "m.room.message", content, tx_id=item.txn_id,
                ignore_unverified_devices=True,
            )
            if not isinstance(response, RoomSendResponse):
                log.warning("the homeserver refused a reply (%s)", type(response).__name__)
                return False
            if "attachment" in data:
                await self._send_file(room_id, data["attachment"], item.txn_id + "-file")
            return True
        if item.event_type == "poll_start":
            response = await self.client.room_send(
                room_id, POLL_START, content, tx_id=item.txn_id, ignore_unverified_devices=True
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
            response = await self.client.room_send(
                room_id, POLL_END, content, tx_id=item.txn_id, ignore_unverified_devices=True
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
            filename=attachment["filename"],
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
        await self.client.room_send(
            room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True
        )


__all__ = ["MatrixBot", "StartupError", "Table"]
