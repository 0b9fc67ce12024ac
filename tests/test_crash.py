"""Exactly once under crashes: a long session, the bot SIGKILLed at random moments.

Every command must get exactly one reply, and the final state must equal that of a reference
run of the same script without crashes (spec §11).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from demo.homeserver import Homeserver
from storage.db import Database
from storage.models import Acknowledgement, Audit, Dossier, RosterEntry
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

SENDERS = ("chair", "ocmw", "clb", "io")
PER_SENDER = 80  # 320 commands in all


def script(world: World, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    phenomena = ["HTF", "early", "HP", "FTF", "child"]
    indicators = ["isolation", "threats", "travel-plans", "sudden-change"]
    out: dict[str, list[str]] = {}
    for name in SENDERS:
        commands = []
        for i in range(PER_SENDER):
            roll = rng.random()
            if roll < 0.35:
                commands.append(
                    f"!signal phenomenon={rng.choice(phenomena)} "
                    f"indicators={rng.choice(indicators)} assessed=yes"
                )
            elif roll < 0.45 and name == "chair":
                commands.append(f"!members add @extra{i}:{world.hs.server_name} partner CAW")
            elif roll < 0.6:
                commands.append("!case list")
            elif roll < 0.7:
                commands.append("!signal phenomenon=HTF assessed=yes")  # refused: no indicator
            elif roll < 0.85:
                commands.append("!members")
            else:
                commands.append("!help case")
        out[name] = commands
    return out


def state(world: World) -> dict[str, Any]:
    db = Database(world.database_url)  # SQLite in data_dir, or PostgreSQL in the PG run
    try:
        with Session(db.engine) as s:  # read straight from the tables, not the repositories
            return {
                "dossiers": Counter((d.phenomenon, d.status, d.problematic, d.indicators)
                                    for d in s.exec(select(Dossier)).all()),
                "audit": Counter(a.action for a in s.exec(select(Audit)).all()),
                "roster": sorted(r.user_id.split(":")[0] for r in
                                 s.exec(select(RosterEntry)).all()),
                "acks": len(s.exec(select(Acknowledgement)).all()),
            }
    finally:
        db.dispose()


async def play(world: World, commands: dict[str, list[str]], kills: int,
               seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    room = world.rooms["operational"]
    sent: dict[str, list[str]] = {name: [] for name in SENDERS}
    done = asyncio.Event()

    async def member(name: str) -> None:
        client = world.members[name]
        for body in commands[name]:
            sent[name].append(await client.send(room, body))
            await asyncio.sleep(rng.uniform(0.02, 0.12))

    async def killer() -> None:
        assert world.bot is not None
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            world.bot.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            await world.bot.start_ready()
        done.set()

    tasks = [asyncio.create_task(member(n)) for n in SENDERS]
    if kills:
        tasks.append(asyncio.create_task(killer()))
    await asyncio.gather(*tasks)
    replies = 0
    for name in SENDERS:
        client = world.members[name]
        for event_id in sent[name]:
            await client.reply_to(event_id, world.bot_user, timeout=180)
            replies += 1
    await asyncio.sleep(2)  # give any duplicate time to arrive
    duplicates = 0
    for name in SENDERS:
        client = world.members[name]
        for event_id in sent[name]:
            duplicates += max(0, len([s for s in client.seen if s.in_reply_to == event_id]) - 1)
    return sum(len(v) for v in sent.values()), replies, duplicates


async def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    synapse: Homeserver, tmp_path: Path
) -> None:
    worlds = []
    try:
        reference = await make_world(synapse, tmp_path / "reference")
        worlds.append(reference)
        crashed = await make_world(synapse, tmp_path / "crashed")
        worlds.append(crashed)
        results = {}
        for label, world, kills in (("reference", reference, 0), ("crashed", crashed, 5)):
            for name in SENDERS:
                await world.ask(name, "operational", "!ack")
            commands = script(world, seed=7)
            sent, replies, duplicates = await play(world, commands, kills, seed=11)
            assert world.bot is not None
            await world.bot.stop()
            results[label] = state(world)
            print(f"{label}: commands sent {sent}, replies {replies}, duplicates {duplicates}, "
                  f"lost {sent - replies}, bot starts {world.bot.starts}")
            assert sent >= 300
            assert duplicates == 0
            assert replies == sent
        assert results["crashed"] == results["reference"]
        assert results["reference"]["audit"]["signal"] > 50
    finally:
        for world in worlds:
            await world.close()
