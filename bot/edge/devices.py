"""Device and key policy: a room's keys go to the roster's devices only (spec §11)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nio import AsyncClient

from bot.edge.port import CorePort


async def exchange_keys(client: AsyncClient) -> None:
    """Upload, query and claim keys as nio asks, and send what waits for other devices."""
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


@dataclass
class KeySharing:
    """Which devices may read what the bot encrypts, decided before every send."""

    client: AsyncClient
    core: CorePort
    _keys_fresh: set[str] = field(default_factory=set)
    #: Who may receive each room's keys, read once per room and flush (``prepare_room``).
    _rosters: dict[str, set[str]] = field(default_factory=dict)

    def forget_rosters(self) -> None:
        """Rosters may have changed since the last flush: read them again."""
        self._rosters.clear()

    async def exchange(self) -> None:
        await exchange_keys(self.client)

    async def prepare_room(self, room_id: str) -> None:
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
