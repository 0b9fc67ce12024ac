"""The second test layer: the Matrix edge fed with recorded sync responses (tests/data/*.json,
matrix-nio's own style), no homeserver.

Each response goes through a real nio client (``receive_response``: room state, decryption)
and the edge's sync handling into the real core and database; the test reads the outbox. The
encrypted command is encrypted here with a Megolm session handed to the bot's own olm
machine, so nio really decrypts it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from nio import SyncResponse
from nio.crypto import InboundGroupSession, OutboundGroupSession

from bot.core.app import Core
from bot.edge.client import MatrixBot
from commands.model import Table
from tests.factories import CHAIR, NOW, OUTSIDER, make_config, memory_db

DATA = Path(__file__).parent / "data"
OP = "!op:example.be"
CELL = "livc-r-voorbeeldstad"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[MatrixBot]:
    config = make_config("en")
    config = config.model_copy(update={
        "matrix": config.matrix.model_copy(update={"data_dir": tmp_path / "data"})})
    with memory_db() as db:
        core = Core(config, db, clock=lambda: NOW)
        core.bind_room(OP, CELL, Table.OPERATIONAL)
        core.bind_room("!strat:example.be", CELL, Table.STRATEGIC)
        bot = MatrixBot(core)
        bot.client.restore_login(config.matrix.user_id, "BOTDEVICE", "not-a-token")
        bot.keys.exchange = AsyncMock()  # type: ignore[method-assign]  # no key traffic
        yield bot


async def feed(bot: MatrixBot, data: dict[str, Any]) -> None:
    """One sync response as the sync loop handles it after the first one."""
    response = SyncResponse.from_dict(data)
    assert isinstance(response, SyncResponse)
    await bot.client.receive_response(response)
    await bot._after_sync(response, since="s1")


def outbox(bot: MatrixBot) -> list[Any]:
    return bot.core.pending()  # type: ignore[attr-defined, no-any-return]


def processed(bot: MatrixBot, event_id: str) -> bool:
    return bool(bot.core.is_processed(event_id))


async def test_a_decrypted_command_is_answered_in_reply_to_it(edge: MatrixBot) -> None:
    data = recorded("sync_encrypted_command.json")
    session = OutboundGroupSession()
    session.shared = True  # as if its key had gone to the bot
    assert edge.client.olm is not None
    sender_key, signing_key = "chair-curve25519-key", "chair-ed25519-key"
    edge.client.olm.inbound_group_store.add(
        InboundGroupSession(session.session_key, signing_key, sender_key, OP))
    event = data["rooms"]["join"][OP]["timeline"]["events"][0]
    event["content"].update({
        "sender_key": sender_key,
        "session_id": session.id,
        "ciphertext": session.encrypt(json.dumps({
            "type": "m.room.message", "room_id": OP,
            "content": {"msgtype": "m.text", "body": "!ack"}})),
    })
    await feed(edge, data)
    [reply] = outbox(edge)
    assert reply.source_event_id == "$cmd1"
    assert reply.room_id == OP
    assert reply.content["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd1"}}
    assert reply.content["content"]["msgtype"] == "m.notice"
    assert processed(edge, "$cmd1")


async def test_a_poll_answer_reaches_the_votes_as_a_plain_value(edge: MatrixBot) -> None:
    decided: list[Any] = []
    edge.core.decide = decided.append  # type: ignore[method-assign, assignment]
    await feed(edge, recorded("sync_poll_response.json"))
    [answer] = decided
    assert (answer.room_id, answer.event_id, answer.sender) == (OP, "$answer1", CHAIR)
    assert (answer.poll_event_id, answer.answer) == ("$poll1", "yes")


async def test_a_poll_answer_to_no_vote_is_recorded_and_answers_nothing(
        edge: MatrixBot) -> None:
    await feed(edge, recorded("sync_poll_response.json"))
    assert outbox(edge) == []
    assert processed(edge, "$answer1")


async def test_a_malformed_poll_answer_is_not_decided(edge: MatrixBot) -> None:
    data = recorded("sync_poll_response.json")
    content = data["rooms"]["join"][OP]["timeline"]["events"][0]["content"]
    del content["m.relates_to"]
    await feed(edge, data)
    assert not processed(edge, "$answer1")


async def test_an_undecryptable_command_is_held_then_its_sender_asked_to_resend(
        edge: MatrixBot) -> None:
    data = recorded("sync_undecryptable.json")
    await feed(edge, data)
    assert "$secret1" in edge.held
    assert (edge.data_dir / "held.json").exists()
    assert outbox(edge) == []
    edge.held.undecryptable_timeout = -1.0  # the key never came
    empty = copy.deepcopy(data)
    empty["rooms"]["join"][OP]["timeline"]["events"] = []
    await feed(edge, empty)
    [notice] = outbox(edge)
    assert notice.source_event_id == "$secret1"
    assert CHAIR in notice.content["content"]["body"]
    assert "$secret1" in edge.held  # kept a day: a late key is recognised as answered


async def test_an_outsider_joining_is_told_to_the_chair_once(edge: MatrixBot) -> None:
    data = recorded("sync_outsider_join.json")
    await feed(edge, data)
    await feed(edge, data)
    [notice] = outbox(edge)
    content = notice.content["content"]
    assert content["msgtype"] == "m.text"
    assert content["m.mentions"] == {"user_ids": [CHAIR]}
    assert OUTSIDER in content["body"]


async def test_a_command_in_an_unencrypted_room_is_refused_not_run(edge: MatrixBot) -> None:
    await feed(edge, recorded("sync_unencrypted_room.json"))
    [refusal] = outbox(edge)
    assert refusal.source_event_id == "$plain1"
    with edge.core.db.reading() as repos:  # type: ignore[attr-defined]
        assert not repos.acks.has_acked(CELL, "operational", CHAIR)
