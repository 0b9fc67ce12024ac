"""The outbox and the holds at the edge (spec §11): per-lane order with per-item backoff,
dead letters with a notice to the chair, "sent to N" only after delivery, replies sized to
the event limit, neutral upload names, bounded holds, coalesced outsider notices.

A real core and database, a real nio client without a homeserver: the homeserver's
answers are what ``room_send`` / ``room_create`` return here.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from nio import MatrixRoom, MegolmEvent, RoomCreateError, RoomSendError, RoomSendResponse

from bot.core.app import Core
from bot.edge import held as held_module
from bot.edge.client import MatrixBot
from bot.edge.content import EVENT_LIMIT, event_size, fit_event
from bot.edge.inbound import OutsiderJoined
from bot.edge.outbound import neutral_upload_name
from commands.framework import Attachment, Reply
from commands.model import Table
from tests.factories import CHAIR, IO, NOW, OUTSIDER, PARTNER, make_config, memory_db

OP = "!op:example.be"
STRAT = "!strat:example.be"
DIRECT = "!direct-io:example.be"
CELL = "livc-r-voorbeeldstad"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Homeserver:
    """What the bot's sends get: a room listed in ``broken`` refuses every event."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.broken: set[str] = set()
        self.uploads: list[str] = []

    async def room_send(self, room_id: str, event_type: str, content: dict[str, Any],
                        **_: Any) -> Any:
        if room_id in self.broken:
            return RoomSendError("M_FORBIDDEN", "403")
        self.sent.append((room_id, content))
        return RoomSendResponse(f"$sent{len(self.sent)}", room_id)

    async def room_create(self, **_: Any) -> Any:
        return RoomCreateError("M_FORBIDDEN", "403")

    async def upload(self, _data: Any, content_type: str, filename: str, **_: Any) -> Any:
        self.uploads.append(filename)
        return type("Upload", (), {"content_uri": "mxc://example.be/x"})(), None

    def bodies(self, room_id: str | None = None) -> list[str]:
        return [c.get("body", "") for r, c in self.sent if room_id in (None, r)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hs() -> Homeserver:
    return Homeserver()


@pytest.fixture
def edge(tmp_path: Path, clock: Clock, hs: Homeserver) -> Iterator[MatrixBot]:
    config = make_config("en")
    config = config.model_copy(update={
        "matrix": config.matrix.model_copy(update={"data_dir": tmp_path / "data"}),
        "limits": config.limits.model_copy(update={"outbox_attempts": 3,
                                                   "outbox_retry_seconds": 2.0})})
    with memory_db() as db:
        core = Core(config, db, clock=clock)
        core.bind_room(OP, CELL, Table.OPERATIONAL)
        core.bind_room(STRAT, CELL, Table.STRATEGIC)
        bot = MatrixBot(core)
        bot.client.restore_login(config.matrix.user_id, "BOTDEVICE", "not-a-token")
        for room_id in (OP, STRAT, DIRECT):
            room = MatrixRoom(room_id, bot.client.user_id)
            room.encrypted = True
            bot.client.rooms[room_id] = room
        bot.client.room_send = hs.room_send  # type: ignore[method-assign, assignment]
        bot.client.room_create = hs.room_create  # type: ignore[method-assign, assignment]
        bot.client.upload = hs.upload  # type: ignore[method-assign, assignment]
        bot.keys.share_keys = AsyncMock()  # type: ignore[method-assign]
        bot.keys.has_trusted_device = lambda user_id: True  # type: ignore[method-assign]
        bot.ready.set()
        yield bot


def queue(bot: MatrixBot, key: str, room: str, *replies: Reply) -> None:
    core: Core = bot.core  # type: ignore[assignment]
    with core.db.unit_of_work() as repos:
        core._enqueue(repos, "en", key, list(replies), None, room, core.clock())


async def flush(bot: MatrixBot) -> None:
    await bot.outbox._flush_outbox()
    while bot.outbox._flush_wanted:
        bot.outbox._flush_wanted = False
        await bot.outbox._flush_outbox()


def pending(bot: MatrixBot) -> list[Any]:
    return bot.core.pending()


def notice(text: str = "an answer") -> Reply:
    return Reply("msg:fiche.delivered", {"code": text, "count": 1}, in_reply=False)


# ---- lanes, backoff, dead letters -----------------------------------------------------
async def test_a_failing_item_holds_back_only_its_own_room(edge: MatrixBot,
                                                          hs: Homeserver) -> None:
    hs.broken.add(STRAT)
    queue(edge, "$cmd1", STRAT, notice("first-strat"))
    queue(edge, "$cmd2", STRAT, notice("second-strat"))
    queue(edge, "$cmd3", OP, notice("op-answer"))
    queue(edge, "job:1", OP, notice("op-job"))
    await flush(edge)
    assert [b for b in hs.bodies() if "op-" in b] == hs.bodies()
    assert len(hs.bodies(OP)) == 2  # the other room and its later items went on
    waiting = pending(edge)
    assert [i.room_id for i in waiting] == [STRAT, STRAT]
    assert waiting[0].attempts == 1  # the first failed once, with its own backoff
    assert waiting[0].next_try_at == NOW + timedelta(seconds=2)
    assert waiting[1].attempts == 0  # the second waits behind it, in order
    assert edge.outbox.stalled


async def test_backoff_is_respected_then_the_room_resumes_in_order(
        edge: MatrixBot, hs: Homeserver, clock: Clock) -> None:
    hs.broken.add(STRAT)
    queue(edge, "$cmd1", STRAT, notice("first"))
    queue(edge, "$cmd2", STRAT, notice("second"))
    await flush(edge)
    await flush(edge)  # still within the backoff: not tried again
    assert pending(edge)[0].attempts == 1
    hs.broken.clear()
    clock.now += timedelta(seconds=3)
    await flush(edge)
    assert ["first" in hs.bodies(STRAT)[0], "second" in hs.bodies(STRAT)[1]] == [True, True]
    assert pending(edge) == []


async def test_after_its_last_attempt_an_item_is_a_dead_letter_and_the_chair_is_told(
        edge: MatrixBot, hs: Homeserver, clock: Clock) -> None:
    hs.broken.add(STRAT)
    queue(edge, "$cmd1", STRAT, notice("doomed"))
    for _ in range(3):
        await flush(edge)
        clock.now += timedelta(minutes=10)
    assert edge.outbox.dead_letters == 1
    assert edge.core.dead_letters() == 1  # kept, not deleted
    [told] = pending(edge)  # the chair's notice, for the same room
    assert told.source_event_id.startswith("dead:")
    assert "could not be sent after 3 attempts" in told.content["content"]["body"]
    assert "doomed" not in json.dumps(told.content)
    for _ in range(3):  # the notice dies too (the room stays broken): no notice about it
        await flush(edge)
        clock.now += timedelta(minutes=10)
    assert pending(edge) == []
    assert edge.core.dead_letters() == 2


async def test_a_dead_letter_is_logged_without_its_body(
        edge: MatrixBot, hs: Homeserver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    hs.broken.add(OP)
    queue(edge, "$cmd1", OP, notice("SECRET-BODY"))
    for _ in range(3):
        await flush(edge)
        clock.now += timedelta(minutes=10)
    assert "dead-lettered" in caplog.text
    assert "SECRET-BODY" not in caplog.text


# ---- deliveries: "sent to N" only after it was ----------------------------------------
def fiche(to: str, code: str = "C-12345") -> Reply:
    return Reply("msg:fiche.delivered", {"code": "FICHE-TEXT", "count": 0}, direct_to=to,
                 in_reply=False, delivery=code)


async def test_the_table_hears_of_a_fiche_only_once_it_went_out(edge: MatrixBot,
                                                               hs: Homeserver) -> None:
    with edge.core.db.unit_of_work() as repos:  # type: ignore[attr-defined]
        repos.direct_rooms.set(CELL, IO, DIRECT)
    queue(edge, "$vote", OP, fiche(IO))
    assert [i.content.get("direct_to") for i in pending(edge)] == [IO]  # no "sent to" yet
    await flush(edge)
    assert len(hs.bodies(DIRECT)) == 1
    assert any("C-12345 was sent to 1 information officer" in b for b in hs.bodies(OP))
    assert pending(edge) == []


async def test_a_fiche_whose_delivery_fails_is_reported_as_not_delivered(
        edge: MatrixBot, hs: Homeserver, clock: Clock) -> None:
    queue(edge, "$vote", OP, fiche(IO), notice("a later answer"))  # no direct room yet
    await flush(edge)
    assert any("a later answer" in b for b in hs.bodies(OP))  # the table room went on
    for _ in range(3):  # the direct room cannot be created
        await flush(edge)
        clock.now += timedelta(minutes=10)
    await flush(edge)
    table = hs.bodies(OP)
    assert not any("C-12345 was sent to" in b for b in table)
    assert any(f"C-12345 was NOT delivered to {IO}" in b for b in table), table
    assert any("NOT delivered to any of the 1 information officer" in b for b in table)
    assert hs.bodies(DIRECT) == []


async def test_one_officer_delivered_one_not_says_one(edge: MatrixBot, hs: Homeserver,
                                                     clock: Clock) -> None:
    with edge.core.db.unit_of_work() as repos:  # type: ignore[attr-defined]
        repos.direct_rooms.set(CELL, IO, DIRECT)
    edge.keys.has_trusted_device = lambda user_id: user_id == IO  # type: ignore[method-assign]
    queue(edge, "$vote", OP, fiche(IO), fiche(PARTNER))
    await flush(edge)
    table = hs.bodies(OP)
    assert any("NOT delivered" in b and PARTNER in b for b in table), table
    assert any("was sent to 1 information officer" in b for b in table), table


async def test_attachments_are_uploaded_under_a_neutral_name(
        edge: MatrixBot, hs: Homeserver, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.core import render
    monkeypatch.setattr(render, "attachment_bytes", lambda *_: b"# the fiche")
    with edge.core.db.unit_of_work() as repos:  # type: ignore[attr-defined]
        repos.direct_rooms.set(CELL, IO, DIRECT)
    reply = Reply("msg:fiche.delivered", {"code": "C-1", "count": 0}, direct_to=IO,
                  in_reply=False, delivery="C-1",
                  attachment=Attachment("fiche-C-12345-2026-11-24.md", "text/markdown",
                                        "calendar", {}))
    queue(edge, "$vote", OP, reply)
    await flush(edge)
    assert hs.uploads == ["document.md"]
    file_event = [c for r, c in hs.sent if r == DIRECT and c.get("msgtype") == "m.file"]
    assert file_event[0]["filename"] == "fiche-C-12345-2026-11-24.md"  # encrypted only
    assert neutral_upload_name("text/calendar") == "meeting.ics"
    assert neutral_upload_name("application/pdf") == "attachment.bin"


# ---- the event limit -------------------------------------------------------------------
def test_a_reply_that_fits_is_untouched_and_a_huge_one_is_shortened_with_a_marker() -> None:
    small = {"msgtype": "m.notice", "body": "ok", "format": "x", "formatted_body": "<b>ok</b>"}
    assert fit_event("m.room.message", small, "[cut]") == small
    huge = {"msgtype": "m.notice", "body": "é" * 60_000, "formatted_body": "<p>" + "é" * 60_000}
    fitted = fit_event("m.room.message", huge, "[cut]")
    assert event_size("m.room.message", fitted) <= EVENT_LIMIT
    assert fitted["body"].endswith("[cut]")
    assert len(fitted["body"]) > 10_000  # shortened, not emptied
    assert "<p>" not in fitted["formatted_body"]  # no markup cut in half


def test_a_reply_to_a_huge_message_is_sent_without_quoting_it() -> None:
    quote = "> " + "x" * 50_000
    content = {"msgtype": "m.notice", "body": f"{quote}\n\nthe answer",
               "formatted_body": f"<mx-reply>{'x' * 50_000}</mx-reply>the answer",
               "m.relates_to": {"m.in_reply_to": {"event_id": "$root"}}}
    fitted = fit_event("m.room.message", content, "[cut]")
    assert fitted["body"] == "the answer"
    assert fitted["formatted_body"] == "the answer"
    assert fitted["m.relates_to"] == content["m.relates_to"]


# ---- holds ------------------------------------------------------------------------------
def garbage(n: int, sender: str, size: int = 1000) -> MegolmEvent:
    event = MegolmEvent.from_dict({
        "type": "m.room.encrypted", "event_id": f"$g{sender[1:4]}{n}", "sender": sender,
        "origin_server_ts": 1, "room_id": OP,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "k" * 43,
                    "session_id": f"s{n}", "device_id": "DEV", "ciphertext": "A" * size}})
    assert isinstance(event, MegolmEvent)
    return event


async def test_a_non_member_flood_is_not_held_asked_for_keys_or_answered(
        edge: MatrixBot) -> None:
    edge.client.request_room_key = AsyncMock()  # type: ignore[method-assign]
    for n in range(300):
        await edge.held.hold(garbage(n, OUTSIDER), OP, NOW.timestamp())
    assert len(edge.held.events) == 0
    assert edge.held.refused == {"outsider": 300}
    edge.client.request_room_key.assert_not_called()


async def test_holds_are_bounded_per_sender_and_key_requests_limited(
        edge: MatrixBot) -> None:
    edge.client.request_room_key = AsyncMock()  # type: ignore[method-assign]
    for n in range(300):
        await edge.held.hold(garbage(n, CHAIR), OP, NOW.timestamp())
    assert len(edge.held.events) == held_module.MAX_PER_SENDER
    assert "$gan.299" in edge.held  # the newest kept
    assert edge.client.request_room_key.await_count == held_module.MAX_KEY_REQUESTS_PER_SENDER
    await edge.held.saved()
    path = edge.data_dir / "held.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(json.loads(path.read_text())) == held_module.MAX_PER_SENDER
    assert path.stat().st_size < 100_000


async def test_holds_are_bounded_in_bytes(edge: MatrixBot,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    edge.client.request_room_key = AsyncMock()  # type: ignore[method-assign]
    monkeypatch.setattr(held_module, "MAX_TOTAL_BYTES", 200_000)
    for n in range(20):
        await edge.held.hold(garbage(n, CHAIR, size=30_000), OP, NOW.timestamp())
    assert edge.held.total_bytes <= 200_000
    assert 0 < len(edge.held.events) < 20


async def test_a_non_member_is_never_told_their_message_could_not_be_decrypted(
        edge: MatrixBot) -> None:
    from bot.edge.inbound import Undecryptable
    assert edge.core.decide(Undecryptable(OP, "$x1", OUTSIDER))
    assert pending(edge) == []
    assert edge.core.decide(Undecryptable(OP, "$x2", CHAIR))
    assert len(pending(edge)) == 1


# ---- membership notices --------------------------------------------------------------------
async def test_outsider_joins_of_one_batch_make_one_notice_and_renames_ping_nobody(
        edge: MatrixBot, hs: Homeserver, clock: Clock) -> None:
    other = "@mallory:example.be"
    edge.core.decide(OutsiderJoined(OP, "$j1", OUTSIDER))
    edge.core.decide(OutsiderJoined(OP, "$j2", other))
    edge.core.decide(OutsiderJoined(OP, "$j3", OUTSIDER))  # a display-name change
    queue(edge, "$cmd", OP, notice("an answer meanwhile"))
    await flush(edge)
    assert any("an answer meanwhile" in b for b in hs.bodies(OP))  # not held back
    assert not any(OUTSIDER in b for b in hs.bodies(OP))  # the batch is still collecting
    clock.now += timedelta(seconds=10)
    await flush(edge)
    [told] = [b for b in hs.bodies(OP) if OUTSIDER in b]
    assert other in told
    assert told.startswith(CHAIR)
    edge.core.decide(OutsiderJoined(OP, "$j4", other))  # an avatar change later
    clock.now += timedelta(seconds=10)
    await flush(edge)
    assert len([b for b in hs.bodies(OP) if other in b]) == 1
