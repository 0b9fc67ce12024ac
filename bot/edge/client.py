"""The Matrix edge's client and sync loop: the only package that talks to the homeserver
(through matrix-nio).

It keeps one device (:mod:`bot.edge.session`), syncs with a persisted token, back-fills gaps,
turns events into plain values (:mod:`bot.edge.inbound`) for the core's one ``decide`` path,
holds undecryptable ones (:mod:`bot.edge.held`) and sends the outbox in the background
(:mod:`bot.edge.outbound`). Message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nio import (
    AsyncClient,
    JoinError,
    KeyVerificationEvent,
    MegolmEvent,
    MessageDirection,
    RoomGetStateResponse,
    RoomInviteError,
    RoomMessagesResponse,
    RoomResolveAliasResponse,
    SyncResponse,
    UnknownToDeviceEvent,
)

from bot.edge.devices import KeySharing
from bot.edge.files import secure_dir
from bot.edge.held import HeldEvents
from bot.edge.inbound import (
    EditedText,
    IgnoredInput,
    Inbound,
    MalformedInput,
    OutsiderJoined,
    PollAnswer,
    Undecryptable,
    UnencryptedCommand,
    UntrustedInput,
    guard_decryption,
    inbound_event,
    screen_bodies,
)
from bot.edge.outbound import OutboxSender
from bot.edge.port import CorePort
from bot.edge.session import StartupError, login, login_when_reachable, new_client
from bot.edge.shapes import event_id_ok
from bot.edge.verification import Verifications, judge_invite, only_the_two, silence_nio_sas
from bot.logsafe import where
from bot.ops import metrics
from commands.framework import Incoming

log = logging.getLogger(__name__)

#: Long timelines per sync; a gap beyond this is back-filled through /messages. Members are
#: lazy-loaded (only the senders of the timeline's events): the full member list of a room is
#: fetched before the bot first encrypts for it (``KeySharing.share_keys``), so a bot in 1,200
#: rooms does not receive and track about 10,000 memberships at every start. Presence, receipts,
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
#: The sync token is saved at most this often (and after the first sync, and at stop).
TOKEN_SAVE_S = 30.0


@dataclass
class MatrixBot:
    core: CorePort
    on_first_sync: Callable[[], Awaitable[None]] | None = None
    sync_timeout_ms: int = 30_000
    client: AsyncClient = field(init=False)
    held: HeldEvents = field(init=False)
    keys: KeySharing = field(init=False)
    outbox: OutboxSender = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _background: set[asyncio.Future[None]] = field(default_factory=set)
    #: Events not acted on, by kind (plaintext in an encrypted room, untrusted device...).
    refused: dict[str, int] = field(default_factory=dict)
    #: Events skipped for their shape (spec §11), by kind of defect (bot.edge.shapes): read by
    #: the metrics; ``total()`` is the count.
    malformed_events: Counter[str] = field(default_factory=Counter)
    #: Events whose handling raised (caught per event), by event class.
    failed_events: Counter[str] = field(default_factory=Counter)
    #: Encrypted events whose decryption raised inside nio (bot.edge.inbound.guard_decryption).
    _undecodable: set[str] = field(default_factory=set)
    verifications: Verifications = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.core.config.matrix
        self.data_dir = secure_dir(cfg.data_dir)
        self.client = new_client(cfg, self.data_dir)
        self.client.add_to_device_callback(self._on_to_device,
                                           (UnknownToDeviceEvent, KeyVerificationEvent))
        # Nothing a member sends can make nio raise out of a sync (spec §11).
        screen_bodies(self.client, self._unparsable)
        guard_decryption(self.client, self._undecodable)
        metrics.count_held(lambda: len(self.held.events))
        self.held = HeldEvents(self.client, self.data_dir,
                               self.core.config.limits.undecryptable_timeout_seconds,
                               roster_of=self.core.roster_user_ids)
        self.keys = KeySharing(self.client, self.core)
        self.outbox = OutboxSender(self.client, self.core, self.keys, self.ready, self._stop)
        self.verifications = Verifications(self.client, self.core, self.keys, self.data_dir)

    async def login(self) -> None:
        await login(self.client, self.core.config.matrix, self.data_dir)
        silence_nio_sas(self.client)  # verification is ours (bot.edge.verification)

    def rosters_reloaded(self) -> None:
        """The configuration's rosters changed (SIGHUP; the core moved its trust generation):
        who is tracked and who gets keys is read again at the next sync."""
        self.keys.forget_rosters()

    def invite_soon(self, invites: list[tuple[str, str]]) -> None:
        """Invite (room id, user id) pairs in the background: members added to a roster."""
        if invites:
            task = asyncio.ensure_future(self._invite(invites))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _invite(self, invites: list[tuple[str, str]]) -> None:
        for room_id, user_id in invites:
            response = await self.client.room_invite(room_id, user_id)
            if isinstance(response, RoomInviteError):
                log.warning("could not invite a new roster member to %s (%s)", room_id,
                            response.status_code)
            else:
                log.info("invited a new roster member to %s", room_id)

    def flush_soon(self) -> None:
        """Send the outbox in the background (see :meth:`OutboxSender.flush_soon`)."""
        self.outbox.flush_soon()

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
        await login_when_reachable(self.core.config.matrix, self.data_dir, self._stop,
                                   self.login)
        await self.resolve_rooms()
        await self.keys.start()
        token = self.core.sync_token()
        first = token is None
        delay = 1.0
        saving: asyncio.Future[None] | None = None
        saved, saved_at = token, 0.0
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
                metrics.sync_failed()
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
            metrics.sync_succeeded(self.core.clock())
            # Every event of this sync is decided and marked processed already, so an older
            # saved token only makes a restart read events again that the database skips:
            # the token is saved after the first sync (history before it is never replayed),
            # then at most every TOKEN_SAVE_S seconds and at stop — not after each sync
            # (the bot's own echoes alone are a sync each), and while the next sync waits.
            now = asyncio.get_running_loop().time()
            if first or now - saved_at >= TOKEN_SAVE_S:
                if saving is not None:
                    await saving
                saving = asyncio.ensure_future(
                    asyncio.to_thread(self.core.save_sync_token, token))
                saved, saved_at = token, now
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
                self.outbox.flush_soon()
        if saving is not None:
            await saving
        if token is not None and token != saved:
            await asyncio.to_thread(self.core.save_sync_token, token)
        await self.outbox.finish()
        await self.held.saved()
        await self.client.close()

    async def _sleep(self, seconds: float) -> None:
        jittered = seconds * (0.8 + random.random() / 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=jittered)

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
        # Trust is refreshed before this sync's events are judged: device lists that changed
        # are queried at once (one query for nio and the trust cache together).
        changes = response.device_list
        await self.keys.exchange([*changes.changed, *changes.left])
        worked, self.keys.announced = self.keys.announced, False
        for room_id, invite in response.rooms.invite.items():
            if room_id in self.core.rooms:
                await self.client.join(room_id)
            else:
                await self._direct_invite(room_id, invite.invite_state)
        await self.verifications.handle_to_device()
        for room_id, room_info in response.rooms.join.items():
            if since is None:
                continue  # the very first sync: history from before it is not replayed
            if room_id not in self.core.rooms:
                try:
                    await self._direct_room_events(room_id, room_info.timeline.events)
                except Exception as exc:  # one room's events never stop the sync (§11)
                    self.failed_events["direct_room"] += 1
                    log.error("handling a direct room's events failed with %s at %s",
                              type(exc).__name__, where(exc))
                continue
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
        await self.verifications.tick()
        retried = await self.held.retry(self.core.clock().timestamp(), self._on_event,
                                        self._undecryptable)
        if retried or worked or self.outbox.stalled:
            # Whatever those events decided goes out in the background, and an item that
            # could not go yet is tried again (a new direct room is usable after a sync);
            # the sync loop never waits for a flush (at start it may be sending hundreds
            # of announcements).
            self.outbox.stalled = False
            self.outbox.flush_soon()

    async def _direct_invite(self, room_id: str, invite_state: list[Any]) -> None:
        """Join a roster member's direct room (verification and fiches), decline the rest
        without a word (spec §11)."""
        verdict = judge_invite(invite_state, self.client.user_id, self.keys.trust.tracked())
        if not verdict.accept or verdict.inviter is None:
            log.info("declined an invite to an unconfigured room (%s)", verdict.why)
            await self.client.room_leave(room_id)
            return
        joined = await self.client.join(room_id)
        if isinstance(joined, JoinError):
            log.warning("could not join a member's direct room")
            return
        member = verdict.inviter
        # The invitation's state shows the inviter and the bot only; the room's full state,
        # read once joined, must too (a third person invited at creation is not in it).
        state = await self.client.room_get_state(room_id)
        events = state.events if isinstance(state, RoomGetStateResponse) else None
        present = {e.get("state_key") for e in events or []
                   if e.get("type") == "m.room.member"
                   and (e.get("content") or {}).get("membership") in ("join", "invite", "knock")}
        if events is None or not only_the_two(present, self.client.user_id, member):
            log.info("left an invited room: %s", "its state could not be read"
                     if events is None else "it holds someone else")
            await self.client.room_leave(room_id)
            return
        self.core.direct_users[room_id] = member
        if any(e.get("type") == "m.room.encryption" and e.get("content") for e in events):
            # Fiches go only to an encrypted room; verification works in any.
            for cell in await asyncio.to_thread(self.core.cells_of, member):
                await asyncio.to_thread(self.core.set_direct_room, cell, member, room_id)
        log.info("joined a roster member's direct room")

    async def _direct_room_events(self, room_id: str, events: list[Any]) -> None:
        """A room that is not a table's: in a member's direct room only verification events
        are acted on (and nothing is answered); any other room is ignored."""
        member = await asyncio.to_thread(self.core.direct_room_user, room_id)
        if member is None:
            return
        room = self.client.rooms.get(room_id)
        if room is not None and not only_the_two(room.users, self.client.user_id, member):
            log.warning("a direct room holds someone else: verification refused there")
            return
        for event in events:
            source = getattr(event, "source", None)
            if isinstance(source, dict) and not isinstance(event, MegolmEvent):
                await self.verifications.on_room_event(room_id, member, source)

    async def _on_event(self, room_id: str, event: Any) -> None:
        """One timeline event, on its own (spec §11): whatever it holds, an exception while
        handling it is logged (event id and type, never content) and counted, and the other
        events, rooms and the sync loop go on; the sync token advances past it."""
        try:
            await self._handle_event(room_id, event)
        except Exception as exc:
            kind = type(event).__name__
            self.failed_events[kind] += 1
            event_id = getattr(event, "event_id", None)
            log.error("handling event %s (%s) failed with %s at %s",
                      event_id if event_id_ok(event_id) else "(no valid id)", kind,
                      type(exc).__name__, where(exc))

    async def _handle_event(self, room_id: str, event: Any) -> None:
        """Held when undecryptable, skipped (counted, marked processed) when malformed,
        else its plain value decided."""
        if getattr(event, "sender", None) == self.client.user_id:
            return
        if isinstance(event, MegolmEvent) and event.event_id in self._undecodable:
            self._undecodable.discard(event.event_id)
            inbound: Inbound | MalformedInput | None = MalformedInput(
                room_id, event.event_id if event_id_ok(event.event_id) else None, "decryption")
        elif isinstance(event, MegolmEvent):
            if event.event_id not in self.held and not await asyncio.to_thread(
                self.core.is_processed, event.event_id
            ):
                await self.held.hold(event, room_id, self.core.clock().timestamp())
            return
        else:
            room = self.client.rooms.get(room_id)
            inbound = inbound_event(self.core.rooms[room_id], room_id, event,
                                    bot_user=self.client.user_id,
                                    encrypted=room is None or room.encrypted)
        if inbound is None:
            return
        if isinstance(inbound, MalformedInput):
            self.malformed_events[inbound.reason] += 1
            log.info("skipped a malformed %s (%s)", type(event).__name__, inbound.reason)
            if inbound.event_id is None:
                return  # no id to remember; the sync token moves past it all the same
            inbound = IgnoredInput(room_id, inbound.event_id)
        elif isinstance(inbound, Incoming | PollAnswer | EditedText):
            inbound = self._trusted(room_id, event, inbound)
        await asyncio.to_thread(self.core.decide, inbound)
        if not isinstance(inbound, OutsiderJoined | UnencryptedCommand | IgnoredInput):
            self.outbox.flush_soon()

    def _unparsable(self, count: int) -> None:
        self.malformed_events["unparsable"] += count
        log.warning("left %d event(s) out of a response: matrix-nio cannot parse them", count)

    def _refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1

    def _trusted(self, room_id: str, event: Any,
                 inbound: Incoming | PollAnswer | EditedText) -> Inbound:
        """The gate of spec §11: act only on what the bot decrypted from a Megolm session
        that belongs to a TRUSTED device of the sender (never on plaintext, a forwarded key
        or another user's session), else a value that is only marked processed (and may
        tell the member and the chair once). Bodies are never logged."""
        kind = type(event).__name__
        if not getattr(event, "decrypted", False):
            self._refuse("plaintext")
            log.warning("ignored a plaintext %s in an encrypted table room", kind)
            return IgnoredInput(room_id, inbound.event_id)
        sender: str = event.sender
        sender_key = getattr(event, "sender_key", None) or ""
        olm = self.client.olm
        session = None
        if olm is not None and sender_key:
            session = olm.inbound_group_store.get(room_id, sender_key,
                                                  getattr(event, "session_id", "") or "")
        if session is not None and not session.forwarding_chain and (
                self.keys.trust.trusted_session_device(sender, sender_key,
                                                       ed25519=session.ed25519)):
            return inbound
        blocked = self.keys.trust.blocked(sender)
        device = self.client.device_store.device_from_sender_key(sender, sender_key) if (
            sender_key and session is not None and not session.forwarding_chain) else None
        self._refuse("blocked" if blocked else "untrusted")
        log.warning("did not act on a %s: %s", kind,
                    "the sender is blocked" if blocked else "not from a trusted device")
        return UntrustedInput(room_id, inbound.event_id, sender,
                              device.id if device is not None else None, blocked)

    async def _undecryptable(self, room_id: str, sender: str, event_id: str) -> None:
        await asyncio.to_thread(self.core.decide, Undecryptable(room_id, event_id, sender))

    def _on_to_device(self, event: UnknownToDeviceEvent | KeyVerificationEvent) -> None:
        self.verifications.queue_to_device(event.source)
        withheld = ("m.room_key.withheld", "org.matrix.room_key.withheld")
        if isinstance(event, UnknownToDeviceEvent) and event.type in withheld:
            code = event.source.get("content", {}).get("code", "unknown")
            log.warning("a sender withheld a room key from the bot (reason code %s)", code)


__all__ = ["MatrixBot", "StartupError"]
