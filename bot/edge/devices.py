"""Device and key policy (spec §11): trust follows the roster's cross-signing, not the
homeserver.

:class:`KeySharing` owns the :class:`~bot.edge.trust.TrustCache`: filled at start from every
roster and the stored pins, invalidated by each sync's ``device_lists``, refreshed by ONE raw
``/keys/query`` per sync at most (the users nio wants and the stale ones; nio drops the
cross-signing keys, so the raw answer goes to the cache and to nio both). Room keys go only to
the trusted devices of the room's roster members (:meth:`KeySharing.share_keys`), never to
another device of the bot's own account.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from nio import (
    AsyncClient,
    KeysClaimResponse,
    KeysQueryResponse,
    Response,
    ShareGroupSessionResponse,
)
from nio.api import Api
from nio.crypto import OlmDevice, TrustState

from bot.edge.port import CorePort
from bot.edge.trust import AllowList, IdentityBlocked, IdentityPinned, TrustCache, TrustEvent

log = logging.getLogger(__name__)

#: How long the homeserver may wait for other servers in a key query (ms).
KEY_QUERY_TIMEOUT_MS = 10_000
#: Pins another process wrote (``livcr trust``) are seen within this many seconds.
PINS_REREAD_S = 10.0


async def exchange_keys(client: AsyncClient) -> None:
    """Upload, query and claim keys as nio asks, and send what waits for other devices
    (member clients; the bot uses :meth:`KeySharing.exchange`)."""
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


#: nio's methods that change a device's flags (verified, blacklisted, ignored).
DEVICE_FLAGS = ("verify_device", "unverify_device", "blacklist_device", "unblacklist_device",
                "ignore_device", "unignore_device")


@dataclass(frozen=True)
class _Shared:
    """What decided a room's last full key share, when its outbound session reached every
    device the allow-list permits: while all of it is the same, a share would change
    nothing (:meth:`KeySharing.share_keys`)."""

    allow: AllowList
    olm: Any
    store: Any  # the Olm machine's device store
    session: Any
    devices: int
    roster: frozenset[str]
    users: frozenset[str]


@dataclass
class KeySharing:
    """Which devices the bot trusts (inbound) and may encrypt for (outbound)."""

    client: AsyncClient
    core: CorePort
    trust: TrustCache = field(init=False)
    #: Who may receive each room's keys, per room, as of ``_rosters_generation``.
    _rosters: dict[str, set[str]] = field(default_factory=dict)
    _rosters_generation: int = -1
    #: Key queries made (one per sync at most; tests and the bench read it).
    queries: int = 0
    #: A block was announced to the chairs since the sync loop last looked.
    announced: bool = False
    #: Moves whenever the bot's device store can have changed: every key query or claim
    #: answer nio takes, every change of a device's flags.
    device_epoch: int = 0
    #: Key shares answered by the last one, nothing having changed (tests and the bench).
    reused: int = 0
    _everyone: set[str] | None = None
    _generation: int = -1
    _read_at: float = 0.0
    _shared: dict[str, _Shared] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trust = TrustCache(bot_user_id=self.client.user_id)
        self._watch_devices()

    def _watch_devices(self) -> None:
        """Move :attr:`device_epoch` on every path that can change the device store: any
        key query or claim answer handed to nio (:meth:`refresh`, nio's own ``keys_query``
        in ``room_send``...) and any device flag set, wherever it is done."""
        client = self.client
        receive = client.receive_response

        async def receive_response(response: Response) -> None:
            try:
                await receive(response)
            finally:
                if isinstance(response, KeysQueryResponse | KeysClaimResponse):
                    self.device_epoch += 1

        client.receive_response = receive_response  # type: ignore[method-assign]
        for name in DEVICE_FLAGS:
            setattr(client, name, self._moving(getattr(client, name)))

    def _moving(self, flag: Callable[[OlmDevice], bool]) -> Callable[[OlmDevice], bool]:
        def flagged(device: OlmDevice) -> bool:
            try:
                return flag(device)
            finally:
                self.device_epoch += 1
        return flagged

    def forget_rosters(self) -> None:
        """Rosters may have changed since the last flush: read them again."""
        self._rosters.clear()

    # ---- start --------------------------------------------------------------------------
    async def start(self) -> None:
        """Follow every roster user with their pin; clean up device flags of older stores."""
        self.trust = TrustCache(bot_user_id=self.client.user_id)
        self._everyone = None
        self._shared.clear()
        await self.follow_rosters()
        for user_id, devices in self.client.device_store.items():
            for device in devices.values():
                if device.trust_state == TrustState.ignored:
                    self.client.unignore_device(device)  # ignored devices get keys in nio
                if user_id == self.client.user_id and device.id != self.client.device_id and (
                        not device.blacklisted):
                    self.client.blacklist_device(device)

    async def follow_rosters(self) -> None:
        """Track every roster user (untrack those on none) with their stored pin. Read again
        only when this process committed a roster change or a pin (``members add/remove``,
        ``members trust``, a first-sight pin, a block) — not for every command — and at least
        every ``PINS_REREAD_S`` seconds for a pin another process wrote (``livcr trust``)."""
        generation = self.core.trust_generation()
        now = asyncio.get_running_loop().time()
        if (self._everyone is not None and generation == self._generation
                and now - self._read_at < PINS_REREAD_S):
            return
        self._generation, self._read_at = generation, now
        self._everyone = await asyncio.to_thread(self.core.everyone_on_a_roster)
        self._everyone.discard(self.client.user_id)
        users = set(self._everyone)
        pins = await asyncio.to_thread(self.core.identity_pins, users)  # one query
        gone = self.trust.tracked() - users
        if gone:
            self.trust.untrack(gone)
        # Who may receive each room's keys is read again at the next flush.
        self.forget_rosters()
        events: list[TrustEvent] = []
        for user_id in sorted(users):
            events += self.trust.track(user_id, pins.get(user_id))
        await self._persist(events)

    # ---- refreshing -----------------------------------------------------------------------
    async def exchange(self, changed: Iterable[str] = ()) -> None:
        """After a sync: invalidate who changed, upload/query/claim keys, send to-device."""
        await self.follow_rosters()
        self.trust.invalidate(changed)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.refresh()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        await self.client.send_to_device_messages()

    async def refresh(self) -> None:
        """The ONE combined ``/keys/query``: nio's users and the cache's stale ones. On
        failure both keep what they knew and are asked again next time."""
        users = set(self.client.users_for_key_query) if self.client.olm else set()
        users |= self.trust.stale()
        if not users:
            return
        method, path, _ = Api.keys_query(self.client.access_token, users)
        body = {"device_keys": {user: [] for user in sorted(users)},
                "timeout": KEY_QUERY_TIMEOUT_MS}
        self.queries += 1
        try:
            response = await self.client.send(method, path, Api.to_json(body))
            raw = await response.json()
            status = response.status
        except Exception as exc:
            log.warning("the key query failed (%s); asked again at the next sync",
                        type(exc).__name__)
            return
        if status != 200 or not isinstance(raw, dict):
            log.warning("the key query answered %s; asked again at the next sync", status)
            return
        parsed = KeysQueryResponse.from_dict(raw)
        if isinstance(parsed, KeysQueryResponse):
            await self.client.receive_response(parsed)
        await self._persist(self.trust.apply(raw))

    async def _persist(self, events: list[TrustEvent]) -> None:
        pins = [(e.user_id, e.master_key) for e in events if isinstance(e, IdentityPinned)]
        blocks = [(e.user_id, e.new_key) for e in events if isinstance(e, IdentityBlocked)]
        if not pins and not blocks:
            return
        if blocks:
            self.forget_rosters()
        if await asyncio.to_thread(self.core.identities_seen, pins, blocks):
            self.announced = True  # the chairs' notices wait in the outbox: flush it

    # ---- outbound -------------------------------------------------------------------------
    async def roster_of(self, room_id: str) -> set[str]:
        """The users of a room's roster, read again only after a committed roster change."""
        generation = self.core.trust_generation()
        if generation != self._rosters_generation:
            self._rosters.clear()
            self._rosters_generation = generation
        allowed = self._rosters.get(room_id)
        if allowed is None:
            allowed = await asyncio.to_thread(self.core.roster_user_ids, room_id)
            allowed.discard(self.client.user_id)
            self._rosters[room_id] = allowed
        return allowed

    async def share_keys(self, room_id: str) -> AllowList | None:
        """Share the room's key with the allow-list only, right before a send (no await may
        come between this and the ``room_send``). One frozen snapshot per share; device
        flags set and the key encrypted in one synchronous stretch, then a post-filter:
        a device the sync loop learns meanwhile cannot receive the key.

        The last full share of the room is reused when nothing that decides who gets the
        key changed since: the trust generation, the room's roster and users, the device
        store (:attr:`device_epoch`), and its outbound session, still the one that reached
        every permitted device, shared and not expired (see :meth:`_unchanged`)."""
        client = self.client
        room = client.rooms.get(room_id)
        olm = client.olm
        if room is None or not room.encrypted or olm is None:
            return None
        if not room.members_synced:  # members are lazy-loaded: fetch the full list once
            await client.joined_members(room_id)
        roster = await self.roster_of(room_id)
        same = self._unchanged(room_id, room, olm, roster)
        if same is not None:
            self.reused += 1
            return same
        self._shared.pop(room_id, None)
        users = frozenset(room.users)
        allow = self.trust.allow_list(roster & users)
        missing = {
            user: [d.id for d in olm.device_store.active_user_devices(user)
                   if allow.permits(user, d.id, d.curve25519, d.ed25519)
                   and olm.session_store.get(d.curve25519) is None]
            for user in allow.devices
        }
        missing = {user: ids for user, ids in missing.items() if ids}
        if missing:
            await client.keys_claim(missing)
        # ---- from here to the end of the post-filter: NO await ---------------------------
        permitted = {
            (user, d.id, d.curve25519)
            for user in allow.devices
            for d in olm.device_store.active_user_devices(user)
            if allow.permits(user, d.id, d.curve25519, d.ed25519)
        }
        wanted = {(user, device) for user, device, curve25519 in permitted
                  if olm.session_store.get(curve25519) is not None}
        session = olm.outbound_group_sessions.get(room_id)
        if session is not None and (allow.needs_rotation(session.users_shared_with)
                                    or not wanted <= set(session.users_shared_with)):
            olm.outbound_group_sessions.pop(room_id, None)  # left / blocked / new device
        for user_id in set(room.users) | {client.user_id}:
            for device in olm.device_store.active_user_devices(user_id):
                if user_id == client.user_id and device.id == client.device_id:
                    continue
                if allow.permits(user_id, device.id, device.curve25519, device.ed25519):
                    if not device.verified:
                        client.verify_device(device)
                elif not device.blacklisted:
                    client.blacklist_device(device)
        reach = {(user, device) for user, device, _ in permitted}
        if not olm.should_share_group_session(room_id):
            self._remember(room_id, reach, self._decided(room_id, allow, roster, users))
            return allow
        batches = list(olm.share_group_session_parallel(
            room_id, sorted(allow.devices), ignore_unverified_devices=False))
        # What this share was decided on (the device flags set just now included).
        decided = self._decided(room_id, allow, roster, users)
        pairs = allow.pairs()
        for sharing_with, to_device in batches:
            for user_id, device_id in list(sharing_with):
                if (user_id, device_id) not in pairs:
                    sharing_with.discard((user_id, device_id))
                    to_device["messages"].get(user_id, {}).pop(device_id, None)
        # ------------------------------------------------------------------------------------
        requests: list[Any] = []
        for sharing_with, to_device in batches:
            if not sharing_with:
                continue
            method, path, data = Api.to_device(client.access_token, "m.room.encrypted",
                                               to_device, uuid4())
            requests.append(client._send(ShareGroupSessionResponse, method, path, data,
                                         response_data=(room_id, sharing_with)))
        for response in await asyncio.gather(*requests, return_exceptions=True):
            if not isinstance(response, ShareGroupSessionResponse):
                log.warning("sharing a room key failed (%s)", type(response).__name__)
        current = olm.outbound_group_sessions.get(room_id)
        if current is not None:
            current.shared = True
        self._remember(room_id, reach, decided)
        return allow

    def _decided(self, room_id: str, allow: AllowList, roster: set[str],
                 users: frozenset[str]) -> _Shared:
        olm = self.client.olm
        assert olm is not None
        return _Shared(allow, olm, olm.device_store, olm.outbound_group_sessions.get(room_id),
                       self.device_epoch, frozenset(roster), users)

    def _remember(self, room_id: str, reach: set[tuple[str, str]], decided: _Shared) -> None:
        """Keep a full share for reuse only when its session is still the one shared then,
        and reached every device the allow-list permits and no other (a failed or partial
        share is redone next time)."""
        session = decided.session
        if (session is None or decided.olm.outbound_group_sessions.get(room_id) is not session
                or not session.shared or session.expired):
            return
        shared_with = set(session.users_shared_with)
        if reach <= shared_with and not decided.allow.needs_rotation(shared_with):
            self._shared[room_id] = decided

    def _unchanged(self, room_id: str, room: Any, olm: Any,
                   roster: set[str]) -> AllowList | None:
        """The allow-list of the room's last full share, when a share now would do nothing:
        nothing that decides who gets the key changed since. Anything in doubt: None."""
        last = self._shared.get(room_id)
        if last is None:
            return None
        session = olm.outbound_group_sessions.get(room_id)
        if (last.olm is not olm or last.store is not olm.device_store
                or session is not last.session or not session.shared
                or session.expired
                or last.allow.generation != self.trust.generation
                or last.devices != self.device_epoch
                or last.roster != roster
                or last.users != room.users.keys()):
            self._shared.pop(room_id, None)
            return None
        return last.allow

    def has_trusted_device(self, user_id: str) -> bool:
        return bool(self.trust.allow_list([user_id]).devices)
