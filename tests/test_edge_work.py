"""The edge's work per sync and per send (issue 21), with recorded syncs and no server: a
well-formed response is parsed once (by nio alone), the bot's own echoes are not decrypted,
and a room key share that nothing can have changed is not redone."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest
from nio import Event, KeysQueryResponse, SyncResponse
from nio.crypto import OlmAccount, OlmDevice, OutboundSession

import bot.edge.inbound as inbound
from bot.edge.client import MatrixBot
from bot.edge.signing_keys import CrossSigningKeys, public_b64
from storage.repositories import RosterChange
from tests.factories import CHAIR, NOW
from tests.test_edge import (
    CELL,
    OP,
    Member,
    command,
    device_entry,
    edge,
    outbox,
    processed,
    recorded,
)

__all__ = ["edge"]  # the fixture

TS = 1_764_000_000_000


class Transport:
    """What nio reads of an HTTP response, as aiohttp gives it: the bytes are kept, and
    each read is a fresh dict (nio's parsers may change the one they were given)."""

    content_type = "application/json"
    content_disposition = None
    status = 200

    def __init__(self, body: Any) -> None:
        self.raw = json.dumps(body)
        self.reads = 0

    async def json(self) -> Any:
        self.reads += 1
        return json.loads(self.raw)


async def respond(bot: MatrixBot, data: dict[str, Any]) -> tuple[SyncResponse, Transport]:
    """As ``AsyncClient.sync`` turns a body into its response (the edge's hook included)."""
    transport = Transport(data)
    response = await bot.client.create_matrix_response(
        SyncResponse, transport)  # type: ignore[arg-type]
    assert isinstance(response, SyncResponse), response
    return response, transport


async def handle(bot: MatrixBot, response: SyncResponse) -> None:
    await bot.client.receive_response(response)
    await bot._after_sync(response, since="s1")


# ---- 1. one parse of a well-formed response -----------------------------------------------
def count_parses(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[Any]]:
    """Spies on the edge's screening and on nio's event parser (calls on ``Event`` itself,
    the entry point of every room event)."""
    screened: list[int] = []
    parsed: list[Any] = []
    screen = inbound.screen_response

    def spy_screen(body: Any) -> int:
        count = screen(body)
        screened.append(count)
        return count

    parse = Event.__dict__["parse_event"].__func__

    def spy_parse(cls: type, event_dict: Any) -> Any:
        if cls is Event:
            parsed.append(event_dict.get("event_id") if isinstance(event_dict, dict)
                          else event_dict)
        return parse(cls, event_dict)

    monkeypatch.setattr(inbound, "screen_response", spy_screen)
    monkeypatch.setattr(Event, "parse_event", classmethod(spy_parse))
    return screened, parsed


async def test_a_well_formed_sync_is_parsed_once_by_nio_alone(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = recorded("sync_encrypted_command.json")
    chair.encrypt(edge, data, command("!help"))
    room = data["rooms"]["join"][OP]
    ids = [e["event_id"] for e in room["state"]["events"] + room["timeline"]["events"]]
    screened, parsed = count_parses(monkeypatch)
    response, transport = await respond(edge, data)
    assert screened == []  # not screened at all
    assert transport.reads == 1
    assert sorted(parsed) == sorted(ids)  # each event once
    await handle(edge, response)
    assert [item.source_event_id for item in outbox(edge)] == ["$cmd1"]
    assert not edge.malformed_events


@pytest.mark.parametrize("bad", [
    5,  # not an object: nio's parser raises (or its schema check gives a SyncError)
    {"type": "m.room.message", "event_id": "$ts", "sender": CHAIR,
     "origin_server_ts": "soon", "content": {}},
])
async def test_an_unparsable_timeline_entry_is_left_out_counted_and_the_rest_handled(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch, bad: Any) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = recorded("sync_encrypted_command.json")
    chair.encrypt(edge, data, command("!help"))
    data["rooms"]["join"][OP]["timeline"]["events"].insert(0, bad)
    screened, _ = count_parses(monkeypatch)
    response, transport = await respond(edge, data)
    assert screened == [1]  # screened only after nio failed, on a body read again
    assert transport.reads == 2
    assert edge.malformed_events == {"unparsable": 1}
    await handle(edge, response)
    assert [item.source_event_id for item in outbox(edge)] == ["$cmd1"]
    assert processed(edge, "$cmd1")


async def test_an_error_response_with_nothing_to_leave_out_stays_nios(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch) -> None:
    screened, _ = count_parses(monkeypatch)
    transport = Transport({"errcode": "M_UNKNOWN", "error": "no"})
    transport.status = 500
    response = await edge.client.create_matrix_response(
        SyncResponse, transport)  # type: ignore[arg-type]
    assert not isinstance(response, SyncResponse)
    assert screened == []  # an error the homeserver gave: nothing to screen
    transport = Transport({"rooms": {"join": []}})  # HTTP 200, but no sync at all
    response = await edge.client.create_matrix_response(
        SyncResponse, transport)  # type: ignore[arg-type]
    assert not isinstance(response, SyncResponse)
    assert screened == [0]
    assert not edge.malformed_events


# ---- 2. the bot's own echoes are not decrypted --------------------------------------------
async def test_the_bots_own_echoes_are_not_decrypted_nor_held(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch) -> None:
    olm = edge.client.olm
    assert olm is not None
    chair = Member(CHAIR)
    chair.known_to(edge)
    me = Member(edge.client.user_id, device_id="BOTDEVICE")  # its session: the bot holds it
    lost = Member(edge.client.user_id, device_id="BOTDEVICE")  # a session it lost
    data = recorded("sync_encrypted_command.json")
    events = data["rooms"]["join"][OP]["timeline"]["events"]
    for event_id in ("$own1", "$own2"):
        events.append({**events[0], "sender": edge.client.user_id, "event_id": event_id})
    chair.encrypt(edge, data, command("!help"), index=0)
    me.encrypt(edge, data, command("a reply of the bot"), index=1)
    store = olm.inbound_group_store
    olm.inbound_group_store = type(store)()
    lost.encrypt(edge, data, command("another reply"), index=2)  # the bot never gets it
    olm.inbound_group_store = store
    decrypted: list[str] = []
    decrypt = olm.decrypt_megolm_event

    def spy(event: Any, room_id: str | None = None) -> Any:
        decrypted.append(event.event_id)
        return decrypt(event, room_id)

    monkeypatch.setattr(olm, "decrypt_megolm_event", spy)
    response, _ = await respond(edge, data)
    await handle(edge, response)
    assert decrypted == ["$cmd1"]  # the member's event only
    timeline = response.rooms.join[OP].timeline.events
    assert [type(e).__name__ for e in timeline] == ["RoomMessageText", "MegolmEvent",
                                                    "MegolmEvent"]
    assert [item.source_event_id for item in outbox(edge)] == ["$cmd1"]
    assert not edge.held.events
    assert not edge.held.key_requests
    assert not olm.outgoing_key_requests
    assert not edge.malformed_events
    assert not edge.failed_events


# ---- 3. a key share that nothing can have changed is not redone ---------------------------
PHONE = (CHAIR, "CHAIRPHONE")
NEWCOMER = "@nieuw:example.be"


class Sharing:
    """The bot in the operational room with the chair, whose one device is trusted and has
    a real Olm session with the bot; the to-device sends answered as the homeserver would."""

    def __init__(self, bot: MatrixBot) -> None:
        self.bot = bot
        olm = bot.client.olm
        assert olm is not None
        self.olm = olm
        self.chair = Member(CHAIR)
        account = OlmAccount()
        self.chair.curve25519 = account.identity_keys["curve25519"]
        self.chair.devices = {"CHAIRPHONE": device_entry(
            CHAIR, "CHAIRPHONE", self.chair.device, self.chair.curve25519,
            self.chair.identity.self_signing)}
        self.chair.known_to(bot)
        olm.device_store.add(OlmDevice(CHAIR, "CHAIRPHONE", {
            "ed25519": public_b64(self.chair.device), "curve25519": self.chair.curve25519}))
        account.generate_one_time_keys(1)
        [one_time_key] = account.one_time_keys["curve25519"].values()
        olm.session_store.add(self.chair.curve25519, OutboundSession(
            olm.account, self.chair.curve25519, one_time_key))
        bot.client.keys_claim = AsyncMock()  # type: ignore[method-assign]
        bot.client._send = self._send  # type: ignore[method-assign]
        self.iterated = 0
        devices = olm.device_store.active_user_devices

        def active_user_devices(user_id: str) -> Any:
            self.iterated += 1
            return devices(user_id)

        olm.device_store.active_user_devices = active_user_devices  # type: ignore[method-assign]

    async def _send(self, response_class: Any, method: str, path: str, data: Any = None,
                    response_data: tuple[Any, ...] = (), **_: Any) -> Any:
        response = response_class.from_dict({}, *response_data)
        await self.bot.client.receive_response(response)
        return response

    async def start(self) -> None:
        data = recorded("sync_encrypted_command.json")
        data["rooms"]["join"][OP]["timeline"]["events"] = []
        response = SyncResponse.from_dict(data)
        assert isinstance(response, SyncResponse)
        await self.bot.client.receive_response(response)
        self.bot.client.rooms[OP].members_synced = True

    def session(self) -> Any:
        return self.olm.outbound_group_sessions.get(OP)

    async def share(self) -> tuple[Any, bool]:
        """One share: its allow-list and whether it was the full one (devices looked at)."""
        before, iterated = self.bot.keys.reused, self.iterated
        allow = await self.bot.keys.share_keys(OP)
        full = self.bot.keys.reused == before
        assert full == (self.iterated > iterated)
        return allow, full


@pytest.fixture
async def sharing(edge: MatrixBot) -> Sharing:
    rig = Sharing(edge)
    await rig.start()
    return rig


async def test_a_second_share_with_nothing_changed_is_the_first_one(
        sharing: Sharing) -> None:
    first, full = await sharing.share()
    assert full
    assert first is not None
    assert first.pairs() == {PHONE}
    session = sharing.session()
    assert session.shared
    assert session.users_shared_with == {PHONE}
    for _ in range(3):
        again, full = await sharing.share()
        assert not full
        assert again is first
        assert sharing.session() is session  # the same room key, nothing looked at
    assert sharing.bot.keys.reused == 3


async def new_device(rig: Sharing) -> None:
    """nio hears of a new (unverified) device of the chair; the trust cache not yet."""
    laptop = Member(CHAIR, device_id="NEWLAPTOP", cross_signed=False)
    devices = {**rig.chair.devices, "NEWLAPTOP": device_entry(
        CHAIR, "NEWLAPTOP", laptop.device, "NEWLAPTOP-curve25519", None)}
    answer = KeysQueryResponse.from_dict({"device_keys": {CHAIR: devices}, "failures": {}})
    assert isinstance(answer, KeysQueryResponse)
    await rig.bot.client.receive_response(answer)


async def queried_again(rig: Sharing) -> None:
    """A key query answer that changes nothing nio sees (it rotates for none): the device
    epoch moves all the same."""
    answer = KeysQueryResponse.from_dict({"device_keys": {CHAIR: rig.chair.devices},
                                          "failures": {}})
    assert isinstance(answer, KeysQueryResponse)
    await rig.bot.client.receive_response(answer)


async def unverified_elsewhere(rig: Sharing) -> None:
    """A device flag set outside the share (nio rotates the key too)."""
    rig.bot.client.unverify_device(rig.olm.device_store[CHAIR]["CHAIRPHONE"])


async def blocked(rig: Sharing) -> None:
    rig.bot.keys.trust.trust(CHAIR, public_b64(CrossSigningKeys.generate(CHAIR).master))
    assert rig.bot.keys.trust.blocked(CHAIR)


async def off_the_roster(rig: Sharing) -> None:
    with rig.bot.core.db.unit_of_work() as repos:  # type: ignore[attr-defined]
        repos.roster.put(RosterChange(cell=CELL, user_id=CHAIR, role="chair",
                                      organisation="Preventiedienst", tables=(),
                                      removed=True), CHAIR, NOW)


async def left(rig: Sharing) -> None:
    assert rig.bot.client.rooms[OP].remove_member(CHAIR)


async def joined(rig: Sharing) -> None:
    assert rig.bot.client.rooms[OP].add_member(NEWCOMER, None, None)


async def rotated(rig: Sharing) -> None:
    rig.olm.outbound_group_sessions.pop(OP)


async def used_up(rig: Sharing) -> None:
    session = rig.session()
    session.message_count = session.max_messages  # nio's limit of messages per key


@pytest.mark.parametrize(("change", "reach"), [
    (new_device, {PHONE}),  # the device epoch moved (nio rotates too); the laptop: nothing
    (queried_again, {PHONE}),  # the device epoch moved
    (unverified_elsewhere, {PHONE}),  # the device epoch moved
    (blocked, set()),  # the trust generation moved
    (off_the_roster, set()),
    (left, set()),
    (joined, {PHONE}),
    (rotated, {PHONE}),
    (used_up, {PHONE}),
])
async def test_whatever_decides_who_gets_the_key_forces_a_full_share(
        sharing: Sharing, change: Callable[[Sharing], Awaitable[None]],
        reach: set[tuple[str, str]]) -> None:
    await sharing.share()
    before = sharing.session()
    _, full = await sharing.share()
    assert not full
    await change(sharing)
    allow, full = await sharing.share()
    assert full
    assert allow is not None
    assert allow.pairs() == reach
    session = sharing.session()
    assert session.users_shared_with == reach
    assert session.users_shared_with <= allow.pairs()  # never a device it does not permit
    if change in (queried_again, joined):
        assert session is before  # nothing to rotate for: the newcomer is on no roster
    else:
        assert session is not before  # a new room key
    store = sharing.olm.device_store
    if change is new_device:
        assert store[CHAIR]["NEWLAPTOP"].blacklisted
    if change is unverified_elsewhere:
        assert store[CHAIR]["CHAIRPHONE"].verified  # set again by the full share
    if change is blocked:
        assert store[CHAIR]["CHAIRPHONE"].blacklisted
    again, full = await sharing.share()  # and then, nothing changed: the full one reused
    assert not full
    assert again is allow
