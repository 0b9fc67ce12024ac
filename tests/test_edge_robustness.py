"""One bad event never stops a table (issue 15, spec §11), at the edge with recorded syncs:
the poison events that stopped the sync loop on main are skipped, counted and marked
processed, and the chair's command after them is answered; an exception while handling one
event stops nothing else; edits are screened and never run; the privacy refusal says
"removed" only when the redaction succeeded."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any
from unittest.mock import AsyncMock

from nio import RoomRedactError, RoomRedactResponse, RoomSendResponse, SyncResponse

from bot.edge.client import MatrixBot
from tests.factories import CHAIR
from tests.test_edge import OP, Member, command, edge, feed, outbox, processed, recorded

__all__ = ["edge"]  # the fixture

TS = 1_764_000_000_000


def timeline(count: int) -> dict[str, Any]:
    """The recorded encrypted-command sync with ``count`` timeline events $e0, $e1..."""
    data = recorded("sync_encrypted_command.json")
    events = data["rooms"]["join"][OP]["timeline"]["events"]
    template = events[0]
    events[:] = [{**copy.deepcopy(template), "event_id": f"$e{i}"} for i in range(count)]
    return data


def message(**content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "content": {"msgtype": "m.text", **content}}


POISON = [
    message(body="!help", **{"m.relates_to": "x"}),
    message(body="!help", **{"m.relates_to": 5}),
    message(body="!help", **{"m.relates_to": ["m.thread"]}),
    message(body=["!help"]),
    message(body={"nested": [{"garbage": None}]}),
    message(body="!help", **{"m.relates_to": {"rel_type": "m.thread", "event_id": 7}}),
]


async def test_poison_events_are_skipped_counted_and_the_next_command_answered(
        edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = timeline(len(POISON) + 2)
    for index, payload in enumerate(POISON):
        chair.encrypt(edge, data, payload, index=index)
    events = data["rooms"]["join"][OP]["timeline"]["events"]
    huge = len(POISON)
    chair.encrypt(edge, data, command("!help"), index=huge)
    events[huge]["origin_server_ts"] = 10**17  # "year 3170843 is out of range" on main
    chair.encrypt(edge, data, command("!help"), index=huge + 1)
    await feed(edge, data)
    answered = {item.source_event_id for item in outbox(edge)}
    assert answered == {f"$e{huge + 1}"}
    for index in range(huge + 2):
        assert processed(edge, f"$e{index}")
    assert edge.malformed_events.total() == len(POISON) + 1
    assert edge.malformed_events["timestamp"] == 1
    assert not edge.failed_events


async def test_plaintext_garbage_and_unparsable_entries_never_reach_the_core(
        edge: MatrixBot) -> None:
    data = timeline(1)
    events = data["rooms"]["join"][OP]["timeline"]["events"]
    events[0] = {"type": "m.room.message", "event_id": "$plain", "sender": CHAIR,
                 "origin_server_ts": TS, "content": {"msgtype": "m.text", "body": 5}}
    events += [5, {"type": "m.room.message", "event_id": "$ts", "sender": CHAIR,
                   "origin_server_ts": "soon", "content": {}}]
    response = await edge.client.create_matrix_response(
        SyncResponse, _Transport(data))  # type: ignore[arg-type]
    assert isinstance(response, SyncResponse)  # nio's own parser raised here on main
    await edge.client.receive_response(response)
    await edge._after_sync(response, since="s1")
    assert processed(edge, "$plain")
    assert edge.malformed_events == {"body": 1, "unparsable": 2}
    assert outbox(edge) == []


class _Transport:
    content_type = "application/json"
    content_disposition = None
    status = 200

    def __init__(self, body: Any) -> None:
        self.raw = json.dumps(body)

    async def json(self) -> Any:
        return json.loads(self.raw)  # as aiohttp: a fresh dict at each read


async def test_an_event_whose_handling_raises_stops_nothing_else(edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = timeline(2)
    for index in range(2):
        chair.encrypt(edge, data, command("!help"), index=index)
    real = edge.core.decide

    def decide(event: Any) -> bool:
        if event.event_id == "$e0":
            raise RuntimeError("a bug")
        return real(event)

    edge.core.decide = decide  # type: ignore[method-assign]
    await feed(edge, data)
    assert [item.source_event_id for item in outbox(edge)] == ["$e1"]
    assert edge.failed_events == {"RoomMessageText": 1}


def edit(body: str, fallback: str | None = None, new: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": "m.text", "body": fallback if fallback is not None else f"* {body}",
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$original"}}
    if new:
        content["m.new_content"] = {"msgtype": "m.text", "body": body}
    return {"type": "m.room.message", "content": content}


async def test_an_edit_is_never_run_whatever_its_fallback(edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = timeline(3)
    chair.encrypt(edge, data, edit("!ack"), index=0)
    chair.encrypt(edge, data, edit("!ack", fallback="!ack"), index=1)  # no "* " on main
    chair.encrypt(edge, data, edit("", fallback="!ack", new=False), index=2)
    await feed(edge, data)
    assert outbox(edge) == []
    for index in range(3):
        assert processed(edge, f"$e{index}")
    with edge.core.db.reading() as repos:  # type: ignore[attr-defined]
        assert not repos.acks.has_acked("livc-r-voorbeeldstad", "operational", CHAIR)


async def test_personal_data_in_an_edit_is_redacted_and_refused(edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = timeline(2)
    chair.encrypt(edge, data, edit('!agenda add "gesprek met meneer Janssens"'), index=0)
    chair.encrypt(edge, data, edit("!help", fallback="* tel 0470 12 34 56", new=False),
                  index=1)
    await feed(edge, data)
    items = outbox(edge)
    assert [(i.source_event_id, i.event_type) for i in items] == [("$e0", "redact")]
    [item] = items
    assert item.content["event_id"] == "$e0"  # the edit itself goes
    assert "personal data" in item.content["content"]["body"]
    assert "Janssens" not in str(item.content)
    # An edit whose text is no command says nothing, like a new message.
    assert processed(edge, "$e1")


async def test_the_refusal_says_removed_only_when_the_redaction_succeeded(
        edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    data = timeline(1)
    chair.encrypt(edge, data, command('!agenda add "gesprek met meneer Janssens"'))
    await feed(edge, data)
    [item] = outbox(edge)
    assert item.event_type == "redact"
    assert "removed the message" in item.content["content"]["body"]
    assert "could not remove" in item.content["notice_if_failed"]["body"]
    sent: list[dict[str, Any]] = []

    async def room_send(room_id: str, event_type: str, content: Any, **kw: Any) -> Any:
        sent.append({"content": content, "tx_id": kw["tx_id"]})
        return RoomSendResponse("$reply", room_id)

    edge.client.room_send = room_send  # type: ignore[method-assign, assignment]
    edge.keys.share_keys = AsyncMock()  # type: ignore[method-assign]
    edge.client.room_redact = AsyncMock(  # type: ignore[method-assign]
        return_value=RoomRedactError("no power", "M_FORBIDDEN"))
    assert await edge.outbox._send(item) is True
    [failed] = sent
    assert "could not remove" in failed["content"]["body"]
    assert "removed the message" not in failed["content"]["body"]
    assert failed["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$e0"}}
    assert failed["tx_id"] != item.txn_id
    sent.clear()
    edge.client.room_redact = AsyncMock(  # type: ignore[method-assign]
        return_value=RoomRedactResponse("$redaction", OP))
    assert await edge.outbox._send(replace(item)) is True
    [done] = sent
    assert "removed the message" in done["content"]["body"]
