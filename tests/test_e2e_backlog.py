"""A member's command is answered at once even while the bot works through a backlog of
announcements (a first start on a database with open dossiers announces a meeting for every
such table: at 1,200 rooms, minutes of sending)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from demo.homeserver import Homeserver
from storage.db import Database
from tests.world import make_world

pytestmark = pytest.mark.e2e

BACKLOG = 300


async def test_a_reply_overtakes_a_backlog_of_announcements_which_all_arrive_in_order(
    synapse: Homeserver, tmp_path: Path
) -> None:
    """The backlog is for the other table's room: within one room nothing changes order."""
    world = await make_world(synapse, tmp_path)
    try:
        await world.ask("chair", "operational", "!ack")
        assert world.bot is not None
        await world.bot.stop()
        other = world.rooms["strategic"]
        db = Database(world.database_url)
        try:
            with db.unit_of_work() as repos:
                for n in range(BACKLOG):
                    repos.events.enqueue(
                        "recompute:backlog", other, "message",
                        {"content": {"msgtype": "m.notice", "body": f"backlog {n}"}},
                        datetime.now(UTC))
        finally:
            db.dispose()
        await world.bot.start_ready()
        chair = world.members["chair"]
        await world.ask("chair", "operational", "!help", timeout=120)
        before = len([s for s in chair.seen if s.body.startswith("backlog ")])
        assert before < BACKLOG // 2, f"the reply came after {before} of {BACKLOG}"
        await chair.wait_for(lambda s: s.body == f"backlog {BACKLOG - 1}", timeout=300)
        backlog = [s.body for s in chair.seen if s.room_id == other
                   and s.body.startswith("backlog ")]
        assert backlog == [f"backlog {n}" for n in range(BACKLOG)]  # all, once, in order
    finally:
        await world.close()
