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
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nio import SyncResponse
from nio.crypto import InboundGroupSession, OutboundGroupSession

from bot.core.app import Core
from bot.edge.client import MatrixBot
from bot.edge.signing_keys import CrossSigningKeys, public_b64, sign_json
from commands.model import Table
from storage.repositories import RosterChange
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


def device_entry(user_id: str, device_id: str, device: Ed25519PrivateKey,
                 curve25519: str, ssk: Ed25519PrivateKey | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "user_id": user_id, "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device_id}": public_b64(device),
                 f"curve25519:{device_id}": curve25519},
    }
    signatures = {f"ed25519:{device_id}": sign_json(device, entry)}
    if ssk is not None:
        signatures[f"ed25519:{public_b64(ssk)}"] = sign_json(ssk, entry)
    return {**entry, "signatures": {user_id: signatures}}


def keys_answer(user_id: str, identity: CrossSigningKeys,
                devices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A /keys/query answer for one user, as Synapse gives it (cross-signing included)."""
    body = identity.upload_body()
    return {"device_keys": {user_id: devices},
            "master_keys": {user_id: body["master_key"]},
            "self_signing_keys": {user_id: body["self_signing_key"]}, "failures": {}}


class Member:
    """A roster member's identity and one device, trusted (cross-signed) or not."""

    def __init__(self, user_id: str, device_id: str = "CHAIRPHONE",
                 cross_signed: bool = True) -> None:
        self.user_id, self.device_id = user_id, device_id
        self.identity = CrossSigningKeys.generate(user_id)
        self.device = Ed25519PrivateKey.generate()
        self.curve25519 = f"{device_id}-curve25519-key"
        self.session: OutboundGroupSession | None = None
        self.devices = {device_id: device_entry(
            user_id, device_id, self.device, self.curve25519,
            self.identity.self_signing if cross_signed else None)}

    def answer(self) -> dict[str, Any]:
        return keys_answer(self.user_id, self.identity, self.devices)

    def known_to(self, bot: MatrixBot) -> None:
        """The bot's trust cache got this member's key query answer."""
        bot.keys.trust.track(self.user_id, None)
        bot.keys.trust.apply(self.answer())

    def encrypt(self, bot: MatrixBot, data: dict[str, Any], payload: dict[str, Any],
                index: int = 0) -> None:
        """Encrypt a timeline event of ``data`` with a Megolm session of this device."""
        assert bot.client.olm is not None
        if self.session is None:
            self.session = OutboundGroupSession()
            self.session.shared = True
            bot.client.olm.inbound_group_store.add(InboundGroupSession(
                self.session.session_key, public_b64(self.device), self.curve25519, OP))
        session = self.session
        event = data["rooms"]["join"][OP]["timeline"]["events"][index]
        payload = {**payload, "room_id": OP}
        event["type"] = "m.room.encrypted"
        event["content"] = {
            "algorithm": "m.megolm.v1.aes-sha2", "sender_key": self.curve25519,
            "session_id": session.id, "device_id": self.device_id,
            "ciphertext": session.encrypt(json.dumps(payload))}


def outbox(bot: MatrixBot) -> list[Any]:
    return bot.core.pending()  # type: ignore[attr-defined, no-any-return]


def processed(bot: MatrixBot, event_id: str) -> bool:
    return bool(bot.core.is_processed(event_id))


def command(body: str) -> dict[str, Any]:
    return {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body}}


async def test_a_decrypted_command_is_answered_in_reply_to_it(edge: MatrixBot) -> None:
    data = recorded("sync_encrypted_command.json")
    chair = Member(CHAIR)
    chair.known_to(edge)
    chair.encrypt(edge, data, command("!ack"))
    await feed(edge, data)
    [reply] = outbox(edge)
    assert reply.source_event_id == "$cmd1"
    assert reply.room_id == OP
    assert reply.content["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd1"}}
    assert reply.content["content"]["msgtype"] == "m.notice"
    assert processed(edge, "$cmd1")


def poll_payload(data: dict[str, Any]) -> dict[str, Any]:
    event = data["rooms"]["join"][OP]["timeline"]["events"][0]
    return {"type": event["type"], "content": event["content"]}


async def test_a_poll_answer_reaches_the_votes_as_a_plain_value(edge: MatrixBot) -> None:
    decided: list[Any] = []
    edge.core.decide = decided.append  # type: ignore[method-assign, assignment]
    data = recorded("sync_poll_response.json")
    chair = Member(CHAIR)
    chair.known_to(edge)
    chair.encrypt(edge, data, poll_payload(data))
    await feed(edge, data)
    [answer] = decided
    assert (answer.room_id, answer.event_id, answer.sender) == (OP, "$answer1", CHAIR)
    assert (answer.poll_event_id, answer.answer) == ("$poll1", "yes")


# ---- the trust gate (spec §11): only trusted encrypted input counts ----------------------
async def test_a_plaintext_command_in_an_encrypted_room_is_ignored_and_marked_processed(
        edge: MatrixBot) -> None:
    Member(CHAIR).known_to(edge)
    data = recorded("sync_encrypted_command.json")
    event = data["rooms"]["join"][OP]["timeline"]["events"][0]
    event["type"] = "m.room.message"
    event["content"] = {"msgtype": "m.text",
                        "body": "!members add @spy:example.be information_officer Politie"}
    await feed(edge, data)
    assert outbox(edge) == []
    assert processed(edge, "$cmd1")
    assert edge.refused == {"plaintext": 1}


async def test_a_plaintext_poll_answer_is_not_a_ballot(edge: MatrixBot) -> None:
    decided: list[Any] = []
    edge.core.decide = decided.append  # type: ignore[method-assign, assignment]
    await feed(edge, recorded("sync_poll_response.json"))
    assert [type(d).__name__ for d in decided] == ["IgnoredInput"]


async def test_an_unverified_device_of_a_member_is_not_obeyed_and_told_once(
        edge: MatrixBot) -> None:
    chair = Member(CHAIR, device_id="NEWLAPTOP", cross_signed=False)
    chair.known_to(edge)
    edge.client.device_store.add(_olm_device(chair))
    for event_id in ("$cmd1", "$cmd2"):
        data = recorded("sync_encrypted_command.json")
        data["rooms"]["join"][OP]["timeline"]["events"][0]["event_id"] = event_id
        data["next_batch"] = f"s-{event_id}"
        chair.encrypt(edge, data, command("!meeting start"))
        await feed(edge, data)
        assert processed(edge, event_id)
    texts = [item.content["content"]["body"] for item in outbox(edge)]
    assert len(texts) == 2, texts  # the member once (this device), the chair once
    assert "Verify this session from one of your verified sessions" in texts[0]
    assert edge.refused == {"untrusted": 2}


async def test_another_users_session_under_the_chairs_name_is_not_obeyed(
        edge: MatrixBot) -> None:
    chair, eve = Member(CHAIR), Member(OUTSIDER, device_id="EVE")
    chair.known_to(edge)
    eve.known_to(edge)
    data = recorded("sync_encrypted_command.json")
    eve.encrypt(edge, data, command("!vote open x"))  # outer sender stays the chair
    await feed(edge, data)
    assert processed(edge, "$cmd1")
    assert all("vote" not in i.content["content"].get("body", "") for i in outbox(edge))
    assert edge.refused == {"untrusted": 1}


async def test_a_blocked_member_gets_nothing_done_and_nothing_said(edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    edge.keys.trust.track(CHAIR, public_b64(CrossSigningKeys.generate(CHAIR).master))
    edge.keys.trust.apply(chair.answer())  # another master key than the pinned one
    assert edge.keys.trust.blocked(CHAIR)
    data = recorded("sync_encrypted_command.json")
    chair.encrypt(edge, data, command("!ack"))
    await feed(edge, data)
    assert processed(edge, "$cmd1")
    assert outbox(edge) == []
    assert edge.refused == {"blocked": 1}


def _olm_device(member: Member) -> Any:
    from nio.crypto import OlmDevice
    return OlmDevice(member.user_id, member.device_id,
                     {"ed25519": public_b64(member.device), "curve25519": member.curve25519})


async def test_a_poll_answer_to_no_vote_is_recorded_and_answers_nothing(
        edge: MatrixBot) -> None:
    await feed(edge, recorded("sync_poll_response.json"))
    assert outbox(edge) == []
    assert processed(edge, "$answer1")


async def test_a_malformed_poll_answer_is_skipped_counted_and_marked_processed(
        edge: MatrixBot) -> None:
    decided: list[Any] = []
    real_decide = edge.core.decide
    edge.core.decide = lambda e: decided.append(e) or real_decide(e)  # type: ignore[method-assign]
    data = recorded("sync_poll_response.json")
    content = data["rooms"]["join"][OP]["timeline"]["events"][0]["content"]
    del content["m.relates_to"]
    await feed(edge, data)
    assert [type(d).__name__ for d in decided] == ["IgnoredInput"]  # never a ballot
    assert processed(edge, "$answer1")
    assert edge.malformed_events == {"relation": 1}


async def test_an_undecryptable_command_is_held_then_its_sender_asked_to_resend(
        edge: MatrixBot) -> None:
    data = recorded("sync_undecryptable.json")
    await feed(edge, data)
    assert "$secret1" in edge.held
    await edge.held.saved()  # written in a thread, debounced
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


# ---- the outbound allow-list (spec §11): keys only for trusted devices of the roster -----
async def test_room_keys_are_shared_only_with_trusted_devices_of_the_roster(
        edge: MatrixBot) -> None:
    data = recorded("sync_encrypted_command.json")
    data["rooms"]["join"][OP]["timeline"]["events"] = []
    response = SyncResponse.from_dict(data)
    assert isinstance(response, SyncResponse)
    await edge.client.receive_response(response)
    room = edge.client.rooms[OP]
    room.members_synced = True
    chair = Member(CHAIR)
    laptop = Member(CHAIR, device_id="NEWLAPTOP", cross_signed=False)
    laptop.identity = chair.identity
    laptop.devices = {"NEWLAPTOP": device_entry(CHAIR, "NEWLAPTOP", laptop.device,
                                                laptop.curve25519, None)}
    chair.devices.update(laptop.devices)
    chair.known_to(edge)
    bot_other = Member(edge.client.user_id, device_id="BOTSECOND")
    for device in (_olm_device(chair), _olm_device(laptop), _olm_device(bot_other)):
        edge.client.device_store.add(device)
    claimed: list[Any] = []
    edge.client.keys_claim = AsyncMock(side_effect=claimed.append)  # type: ignore[method-assign]
    allow = await edge.keys.share_keys(OP)
    assert allow is not None
    assert allow.pairs() == {(CHAIR, "CHAIRPHONE")}
    assert claimed == [{CHAIR: ["CHAIRPHONE"]}]  # an Olm session only for the trusted one
    store = edge.client.device_store
    assert store[CHAIR]["CHAIRPHONE"].verified
    assert store[CHAIR]["NEWLAPTOP"].blacklisted
    assert store[edge.client.user_id]["BOTSECOND"].blacklisted
    session = edge.client.olm.outbound_group_sessions[OP]  # type: ignore[union-attr]
    assert session.users_shared_with <= allow.pairs()


async def test_a_member_blocked_after_a_share_forces_a_new_room_key(edge: MatrixBot) -> None:
    chair = Member(CHAIR)
    chair.known_to(edge)
    allow = edge.keys.trust.allow_list([CHAIR])
    assert not allow.needs_rotation({(CHAIR, "CHAIRPHONE")})
    edge.keys.trust.trust(CHAIR, public_b64(CrossSigningKeys.generate(CHAIR).master))
    assert edge.keys.trust.blocked(CHAIR)
    assert edge.keys.trust.allow_list([CHAIR]).needs_rotation({(CHAIR, "CHAIRPHONE")})


async def test_an_unencrypted_room_gets_only_the_refusal(edge: MatrixBot) -> None:
    await feed(edge, recorded("sync_unencrypted_room.json"))
    [refusal] = outbox(edge)
    assert refusal.content.get("refusal") is True
    sent: list[Any] = []

    async def room_send(room_id: str, event_type: str, content: Any, **kw: Any) -> Any:
        sent.append(content)
        return object()

    edge.client.room_send = room_send  # type: ignore[method-assign, assignment]
    edge.keys.share_keys = AsyncMock()  # type: ignore[method-assign]
    reminder = replace(refusal, content={k: v for k, v in refusal.content.items()
                                         if k != "refusal"})
    poll = replace(refusal, event_type="poll_start", content={"content": {}})
    file = replace(reminder, content={**reminder.content, "attachment": {"data": ""}})
    for item in (reminder, poll, file):
        assert await edge.outbox._send(item) is True  # dropped, never retried
    assert sent == []
    assert edge.outbox.dropped == {"message": 2, "poll_start": 1}
    await edge.outbox._send(refusal)
    assert len(sent) == 1


# ---- rosters and pins are read again when they changed, not for every command ---------------
async def test_rosters_and_pins_are_read_again_only_after_a_trust_change(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch) -> None:
    core = edge.core
    reads: list[int] = []
    everyone = core.everyone_on_a_roster

    def counted() -> set[str]:
        reads.append(1)
        return everyone()

    monkeypatch.setattr(core, "everyone_on_a_roster", counted)
    await edge.keys.follow_rosters()
    await edge.keys.follow_rosters()
    assert len(reads) == 1
    data = recorded("sync_encrypted_command.json")
    chair = Member(CHAIR)
    chair.known_to(edge)
    chair.encrypt(edge, data, command("!ack"))  # decided, but no roster or pin changes
    await feed(edge, data)
    assert outbox(edge)
    await edge.keys.follow_rosters()
    assert len(reads) == 1
    # A pin committed by this process (first sight, `members trust`, a block) moves the
    # generation: read again at the next sync.
    core.identities_seen([(CHAIR, public_b64(chair.identity.master))], [])
    await edge.keys.follow_rosters()
    assert len(reads) == 2
    # A pin written by another process (`livcr trust`) is seen by the periodic re-read.
    monkeypatch.setattr("bot.edge.devices.PINS_REREAD_S", 0.0)
    await edge.keys.follow_rosters()
    assert len(reads) == 3


def test_only_roster_and_pin_writes_move_the_trust_generation() -> None:
    with memory_db() as db:
        before = db.trust_generation
        with db.unit_of_work() as repos:
            repos.events.mark_processed("$e", OP, NOW)
        assert db.trust_generation == before
        with db.unit_of_work() as repos:
            repos.identities.pin(CHAIR, "a-master-key", "roster", NOW)
        assert db.trust_generation == before + 1
        with db.reading() as repos:
            assert repos.identities.pins({CHAIR}) == {CHAIR: "a-master-key"}
        assert db.trust_generation == before + 1


async def test_a_rooms_key_recipients_are_read_again_only_after_a_roster_change(
        edge: MatrixBot, monkeypatch: pytest.MonkeyPatch) -> None:
    core = edge.core
    reads: list[str] = []
    of_room = core.roster_user_ids

    def counted(room_id: str) -> set[str]:
        reads.append(room_id)
        return of_room(room_id)  # type: ignore[no-any-return]

    monkeypatch.setattr(core, "roster_user_ids", counted)
    first = await edge.keys.roster_of(OP)
    assert await edge.keys.roster_of(OP) == first
    assert reads == [OP]
    with core.db.unit_of_work() as repos:  # type: ignore[attr-defined]
        repos.roster.put(RosterChange(cell=CELL, user_id="@nieuw:example.be", role="partner",
                                      organisation="OCMW", tables=("operational",),
                                      removed=False), CHAIR, NOW)
    assert "@nieuw:example.be" in await edge.keys.roster_of(OP)
    assert reads == [OP, OP]
