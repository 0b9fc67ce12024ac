"""Trust end to end: keys only for the roster, no secrets in logs, outages ridden out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from nio import (
    ForwardedRoomKeyEvent,
    MessageDirection,
    RoomKeyEvent,
    RoomMessagesResponse,
)
from nio.api import Api

from bot.config import load_config
from bot.core.service import Service
from commands.framework import Incoming
from commands.model import Table
from demo.homeserver import Homeserver
from demo.member import MemberClient
from storage.repositories import OutboxItem
from tests.world import PASSWORD, make_world

pytestmark = pytest.mark.e2e

CODE = re.compile(r"C-[0-9A-Z]{5}")


async def test_outsider_device_receives_only_undecryptable_events_from_the_bot(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, outsiders=("eve",))
    try:
        chair, eve = world.members["chair"], world.members["eve"]
        room = world.rooms["operational"]
        await chair.client.room_invite(room, eve.user_id)
        await eve.join(room)
        await world.ask("chair", "operational", "!ack")
        for body in ("!help", "!members", "!case list"):
            reply = await world.ask("chair", "operational", body)
            assert reply.decrypted
        await asyncio.sleep(2)
        from_bot = [s for s in eve.seen if s.sender == world.bot_user]
        assert len(from_bot) >= 4  # the outsider warning, ack and three answers
        assert all(not s.decrypted for s in from_bot), [s.type for s in from_bot]
        # The chair's own messages are keyed for the whole room by the chair's client:
        # the bot cannot control that; it only guarantees its own messages.
    finally:
        await world.close()


async def test_secrets_never_appear_in_logs_or_output(synapse: Homeserver,
                                                     tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        await world.ask("chair", "operational", "!ack")
        await world.ask("chair", "operational", "!help")
        assert world.bot is not None
        await world.bot.stop()
    finally:
        await world.close()
    session = json.loads((world.base / "data" / "session.json").read_text())
    token = session["access_token"]
    logs = [world.base / "data" / "livcr.log", *sorted(world.base.glob("bot-*.out"))]
    assert logs[0].exists()
    for path in logs:
        text = path.read_text(errors="replace")
        assert PASSWORD not in text, path
        assert token not in text, path
    assert PASSWORD not in world.config_path.read_text()


async def test_homeserver_outage_is_ridden_out_and_every_command_answered(
    tmp_path: Path,
) -> None:
    hs = Homeserver(tmp_path / "own-synapse")
    await hs.start()
    world = await make_world(hs, tmp_path)
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        before = [await chair.send(room, f"!help {name}") for name in ("ack", "members")]
        await hs.restart()
        await asyncio.sleep(3)  # the bot's sync fails meanwhile and backs off
        after = []
        for name in ("help", "case"):
            for _ in range(30):
                try:
                    after.append(await chair.send(room, f"!help {name}"))
                    break
                except Exception:
                    await asyncio.sleep(1)
        sent = before + after
        replies = {}
        for event_id in sent:
            replies[event_id] = await chair.reply_to(event_id, world.bot_user, timeout=90)
        await asyncio.sleep(1)
        duplicates = sum(
            len([s for s in chair.seen if s.in_reply_to == e]) - 1 for e in sent
        )
        print(f"outage: commands sent {len(sent)}, replies {len(replies)}, "
              f"duplicates {duplicates}, lost {len(sent) - len(replies)}")
        assert duplicates == 0
        assert len(replies) == len(sent)
    finally:
        await world.close()
        await hs.stop()


async def test_undecryptable_command_is_held_then_the_sender_is_asked_to_resend_once(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        # The chair's client withholds its room key from the bot's device.
        for device in chair.client.device_store.active_user_devices(world.bot_user):
            chair.client.blacklist_device(device)
        chair.client.olm.outbound_group_sessions.pop(room, None)
        secret = await chair.send(room, "!help")
        notice = await chair.reply_to(secret, world.bot_user, timeout=90)
        assert "could not decrypt your last message" in notice.body
        assert notice.content["msgtype"] == "m.notice"
        for device in chair.client.device_store.active_user_devices(world.bot_user):
            chair.client.unblacklist_device(device)
        chair.client.olm.outbound_group_sessions.pop(room, None)
        again = await world.ask("chair", "operational", "!help")
        assert "`!members`" in again.body
        await asyncio.sleep(6)
        assert len([s for s in chair.seen if s.in_reply_to == secret]) == 1
    finally:
        await world.close()


# ---- spec §11: only trusted devices of the roster, commands in and keys out ---------------
async def _quiet(member: MemberClient, event_id: str, seconds: float = 8) -> bool:
    """True when no answer to ``event_id`` arrives within ``seconds``."""
    try:
        await member.reply_to(event_id, timeout=seconds)
    except TimeoutError:
        return True
    return False


async def test_a_plaintext_command_with_a_members_own_token_is_not_obeyed(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        spy = synapse.user_id(f"{world.prefix}spy")
        method, path, data = Api.room_send(
            chair.client.access_token, room, "m.room.message",
            {"msgtype": "m.text", "body": f"!members add {spy} information_officer Politie"},
            str(uuid4()))
        response = await chair.client.send(method, path, data)  # NOT encrypted
        assert response.status == 200
        plain_id = (await response.json())["event_id"]
        assert await _quiet(chair, plain_id)
        roster = await world.ask("chair", "operational", "!members")
        assert roster.decrypted
        assert spy not in roster.body
    finally:
        await world.close()


async def test_an_unverified_second_login_gets_no_answer_and_no_keys(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    second: MemberClient | None = None
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        second = MemberClient(synapse.url, chair.user_id, PASSWORD,
                              world.base / "members" / "chair-second")
        await second.login(cross_sign=False, device_name="unverified")
        await second.start()
        await asyncio.sleep(2)  # the bot learns of the device through device_lists
        asked = await second.send(room, "!members")
        assert await _quiet(second, asked)
        # The member's cross-signed device keeps working, and the second one cannot read
        # what the bot sends after it appeared.
        reply = await world.ask("chair", "operational", "!members")
        assert reply.decrypted
        await asyncio.sleep(3)
        seen = [s for s in second.seen if s.event_id == reply.event_id]
        assert seen
        assert not any(s.decrypted for s in seen)
        from_bot = [s for s in second.seen if s.sender == world.bot_user]
        assert from_bot
        assert not any(s.decrypted for s in from_bot)
    finally:
        if second is not None:
            await second.stop()
        await world.close()


async def test_an_identity_reset_blocks_until_the_chair_trusts_the_shown_key(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        chair, ocmw = world.members["chair"], world.members["ocmw"]
        await world.ask("chair", "operational", "!ack")
        assert (await world.ask("ocmw", "operational", "!members")).decrypted
        new_key = await ocmw.reset_identity()
        shown = " ".join(new_key[i:i + 4] for i in range(0, len(new_key), 4))
        told = await chair.wait_for(
            lambda s: s.sender == world.bot_user and ocmw.user_id in s.body
            and shown in s.body, timeout=30)
        assert chair.user_id in (told.content.get("m.mentions") or {}).get("user_ids", [])
        # Blocked: no answer, and no readable case data.
        asked = await ocmw.send(world.rooms["operational"], "!members")
        assert await _quiet(ocmw, asked)
        listing = await world.ask("chair", "operational", "!case list")
        await asyncio.sleep(3)
        assert not any(s.decrypted for s in ocmw.seen if s.event_id == listing.event_id)
        # The chair accepts the key that was shown; the member is trusted again.
        trusted = await world.ask("chair", "operational", f"!members trust {ocmw.user_id}")
        assert shown in trusted.body
        await asyncio.sleep(2)
        again = await world.ask("ocmw", "operational", "!members")
        assert again.decrypted
    finally:
        await world.close()


async def test_a_forged_sender_session_mismatch_is_not_obeyed(
        synapse: Homeserver, tmp_path: Path) -> None:
    """Another roster member's Megolm ciphertext (a session the bot holds, from her trusted
    device) sent under the chair's account: it decrypts, but its session is not the chair's,
    so the chair-only command must not run. The chair's own command is the positive control."""
    world = await make_world(synapse, tmp_path)
    try:
        assert world.bot is not None
        chair, ocmw = world.members["chair"], world.members["ocmw"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        # ocmw's client shares her outbound session with the bot, which then decrypts her.
        assert (await world.ask("ocmw", "operational", "!members")).decrypted
        spy = synapse.user_id(f"{world.prefix}spy")
        command = f"!members add {spy} information_officer Politie"
        _, forged = ocmw.client.encrypt(room, "m.room.message",
                                        {"msgtype": "m.text", "body": command})
        assert forged["device_id"] == ocmw.client.device_id  # her session, her device
        gated = world.bot.log().count("did not act on a")
        method, path, data = Api.room_send(chair.client.access_token, room,
                                           "m.room.encrypted", forged, str(uuid4()))
        response = await chair.client.send(method, path, data)  # the CHAIR's token
        assert response.status == 200
        forged_id = (await response.json())["event_id"]
        # The bot decrypted it (ocmw's session) and the gate refused it.
        await world.bot.wait_line("did not act on a", timeout=90, after=gated)
        assert "not from a trusted device" in world.bot.log()
        roster = await world.ask("chair", "operational", "!members")
        assert roster.decrypted
        assert spy not in roster.body
        answers = [s for s in chair.seen if s.in_reply_to == forged_id]
        assert not any("roster" in s.body for s in answers), [s.body for s in answers]
        # Positive control: the same command from the chair's own device is obeyed.
        added = await world.ask("chair", "operational", command)
        assert "now on the roster" in added.body
        roster = await world.ask("chair", "operational", "!members")
        assert spy in roster.body
    finally:
        await world.close()


async def test_a_second_device_of_the_bots_own_account_receives_no_room_key(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    second: MemberClient | None = None
    try:
        ocmw = world.members["ocmw"]
        await world.ask("chair", "operational", "!ack")
        # Logged in with the bot's own password, in a store of its own: same account.
        second = MemberClient(synapse.url, world.bot_user, PASSWORD,
                              world.base / "bot-second-device")
        room_keys: list[tuple[str, str]] = []

        def on_key(event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
            room_keys.append((event.sender, event.room_id))

        second.client.add_to_device_callback(on_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
        await second.login(cross_sign=False, device_name="a second bot device")
        assert second.client.device_id != json.loads(
            (world.base / "data" / "session.json").read_text())["device_id"]
        await second.start()
        for room in world.rooms.values():  # the account is in the table rooms already
            assert room in second.client.rooms
        await asyncio.sleep(3)  # the bot learns of the device through device_lists
        # The bot's messages from now on: the members read them, the second device cannot.
        replies = [await world.ask("chair", "operational", "!members"),
                   await world.ask("ocmw", "operational", "!help"),
                   await world.ask("chair", "strategic", "!ack")]
        assert all(r.decrypted for r in replies)
        await asyncio.sleep(3)  # a late to-device message would arrive meanwhile
        for reply in replies:
            seen = [s for s in second.seen if s.event_id == reply.event_id]
            assert seen, reply.body  # the event reached the second device ...
            assert not any(s.decrypted for s in seen)  # ... which could not read it
        from_bot = [s for s in second.seen if s.sender == world.bot_user]
        assert from_bot
        assert not any(s.decrypted for s in from_bot)
        assert not [key for key in room_keys if key[0] == world.bot_user], room_keys
        bot_device = json.loads((world.base / "data" / "session.json").read_text())["device_id"]
        bot_key = ocmw.client.device_store[world.bot_user][bot_device].curve25519
        assert second.client.olm is not None
        assert not [s for s in second.client.olm.inbound_group_store if s.sender_key == bot_key]
        assert ocmw.user_id in replies[0].body
    finally:
        if second is not None:
            await second.stop()
        await world.close()


@dataclass
class _Clock:
    """The bot's injected clock, set by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def test_an_unencrypted_configured_room_gets_no_reminder_code_or_file(
        synapse: Homeserver, tmp_path: Path) -> None:
    """The operational table's configured room is a plain one. Members' commands there only
    get the refusal; what the core decides for that room anyway (a signal's code and cadence
    announcement with its ``.ics``, a planned meeting's ``.ics``, the reminder the scheduler
    sends on the injected clock) reaches the edge and is never sent: every event of the room's
    timeline from the bot is a refusal."""
    world = await make_world(synapse, tmp_path, with_bot=False)
    service: Service | None = None
    running: asyncio.Task[None] | None = None
    try:
        chair = world.members["chair"]
        names = ("chair", "io", "ocmw", "clb")
        created = await chair.client.room_create(
            invite=[world.bot_user, *(world.uid(n) for n in names[1:])])
        plain = str(created.room_id)  # type: ignore[union-attr]
        alias = f'room = "#{world.prefix}op:{synapse.server_name}"'
        text = world.config_path.read_text()
        assert alias in text
        world.config_path.write_text(text.replace(alias, f'room = "{plain}"'))
        world.rooms["operational"] = plain
        for name in names:
            await world.members[name].join(plain)
        assert not chair.client.rooms[plain].encrypted
        # The bot in this process, on a clock the test moves.
        config = load_config(world.config_path, environ={"LIVCR_MATRIX_PASSWORD": PASSWORD})
        clock = _Clock(datetime.now(UTC).replace(microsecond=0))
        service = Service(config, clock=clock)
        handed: list[dict[str, Any]] = []  # every item the edge was asked to send
        send = service.bot.outbox._send

        async def spy(item: OutboxItem) -> bool:
            if item.room_id == plain:
                handed.append(dict(item.content))
            return await send(item)

        service.bot.outbox._send = spy  # type: ignore[method-assign]
        running = asyncio.create_task(service.run())
        await asyncio.wait_for(service.bot.ready.wait(), timeout=120)

        refusal = await world.ask("chair", "operational", "!help", timeout=60)
        assert "not end-to-end encrypted" in refusal.body

        # What commands would have produced there, decided as if they had been obeyed.
        cell = config.cells[0]

        def decide(name: str, body: str) -> None:
            assert service is not None
            service.core.decide(Incoming(
                cell=cell.id, table=Table.OPERATIONAL, room_id=plain,
                event_id=f"$decided-{uuid4()}", sender=world.uid(name), body=body,
                timestamp=clock()))

        for name in ("chair", "ocmw", "clb"):
            await asyncio.to_thread(decide, name, "!ack")
        await asyncio.to_thread(decide, "ocmw",
                                "!signal phenomenon=early indicators=isolation assessed=yes")
        day = (clock.now.astimezone(cell.tz) + timedelta(days=3)).date()
        await asyncio.to_thread(decide, "chair", f"!meeting schedule {day} 10:00")
        service.bot.flush_soon()
        # The scheduler's reminder one hour before the meeting, on the injected clock.
        start = datetime.combine(day, time(10), cell.tz)
        clock.now = (start - timedelta(hours=1) + timedelta(seconds=30)).astimezone(UTC)
        await service.jobs.sync(None)

        def reminded() -> bool:
            return any("Reminder: meeting" in str(c.get("content", {}).get("body", ""))
                       for c in handed)

        for _ in range(600):  # everything decided reached the edge (no timing asserted)
            if reminded() and not await asyncio.to_thread(service.core.pending):
                break
            await asyncio.sleep(0.2)
        bodies = [str(c.get("content", {}).get("body", "")) for c in handed]
        assert reminded(), "\n".join(b[:160] for b in bodies)
        assert any(CODE.search(b) for b in bodies), bodies  # the signal's code
        assert sum("attachment" in c for c in handed) >= 2, bodies  # two .ics files
        assert not await asyncio.to_thread(service.core.pending)

        # The room's whole timeline: from the bot, only the refusal.
        probe = await world.ask("ocmw", "operational", "!case list", timeout=60)
        assert "not end-to-end encrypted" in probe.body
        history = await chair.client.room_messages(plain, start=chair.client.next_batch,
                                                   direction=MessageDirection.back,
                                                   limit=500)
        assert isinstance(history, RoomMessagesResponse)
        from_bot = [e.source for e in history.chunk if e.sender == world.bot_user]
        messages = [s for s in from_bot if s["type"] != "m.room.member"]
        assert len(messages) >= 2
        for source in messages:
            content = source.get("content", {})
            assert source["type"] == "m.room.message", source
            assert content.get("msgtype") == "m.notice", source
            assert "not end-to-end encrypted" in content.get("body", ""), source
            assert not CODE.search(json.dumps(content)), source
        # ... because the edge dropped all of it (only the refusals went out).
        refusals = sum(bool(c.get("refusal")) for c in handed)
        assert service.bot.outbox.dropped.get("message", 0) >= len(handed) - refusals
    finally:
        if service is not None:
            service.stop()
        if running is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, timeout=60)
        await world.close()
