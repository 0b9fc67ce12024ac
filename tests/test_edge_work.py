"""The edge's work per sync and per send (issue 21), with recorded syncs and no server: a
well-formed response is parsed once (by nio alone), the bot's own echoes are not decrypted,
and a room key share that nothing can have changed is not redone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nio import Event, SyncResponse

import bot.edge.inbound as inbound
from bot.edge.client import MatrixBot
from tests.factories import CHAIR
from tests.test_edge import OP, Member, command, edge, outbox, processed, recorded

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
