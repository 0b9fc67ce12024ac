"""``livcr doctor`` end to end (spec §14), as a ``livcr`` process against a real Synapse and the
running bot's deployment: a correct one exits 0; a member who never acknowledged is a warning
(exit 1); a room that allows guests, the bot without redaction power and an unencrypted table
room are failures (exit 2), each named with its fix. Doctor itself changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from demo.homeserver import Homeserver
from tests.world import PASSWORD, World, make_world

pytestmark = pytest.mark.e2e


async def doctor(world: World) -> tuple[int, list[str]]:
    env = {**os.environ, "LIVCR_MATRIX_PASSWORD": PASSWORD}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "doctor", "-c", str(world.config_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    text = output.decode()
    assert PASSWORD not in text
    assert proc.returncode is not None
    return proc.returncode, text.splitlines()


def token(world: World) -> str:
    return str(json.loads((world.base / "data" / "session.json").read_text())["access_token"])


async def as_bot(world: World, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request with the bot's own access token (what `livcr setup` or an admin would do)."""
    async with aiohttp.ClientSession() as http, http.request(
        method, world.hs.url + path, json=body,
        headers={"Authorization": f"Bearer {token(world)}"},
    ) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
        assert response.status == 200, answer
        return answer


async def state(world: World, table: str, kind: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(
        f"{world.hs.url}/_matrix/client/v3/rooms/{quote(world.rooms[table])}/state/{kind}",
        headers={"Authorization": f"Bearer {token(world)}"},
    ) as response:
        content: dict[str, Any] = await response.json(content_type=None)
        return content


async def put_state(world: World, table: str, kind: str, content: dict[str, Any]) -> None:
    await as_bot(world, "PUT",
                 f"/_matrix/client/v3/rooms/{quote(world.rooms[table])}/state/{kind}", content)


def lines_with(lines: list[str], *words: str) -> list[str]:
    return [line for line in lines if all(w in line for w in words)]


async def test_a_correct_deployment_passes_and_each_break_is_named_with_its_fix(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        for name, table in (("chair", "operational"), ("chair", "strategic"),
                            ("io", "operational"), ("ocmw", "operational"),
                            ("mayor", "strategic")):
            await world.ask(name, table, "!ack")
        status, lines = await doctor(world)
        assert status == 1, "\n".join(lines)
        [never] = lines_with(lines, "WARN", "never acknowledged")
        assert world.uid("clb") in never
        assert "operational" in never
        assert "fix:" in never
        assert "!ack" in never
        assert not lines_with(lines, "FAIL")

        await world.ask("clb", "operational", "!ack")
        power_before = await state(world, "strategic", "m.room.power_levels")
        status, lines = await doctor(world)
        assert status == 0, "\n".join(lines)
        assert lines[-1].startswith("doctor: all checks passed")
        assert lines_with(lines, "OK", "recovery key stored")  # `livcr setup` stored it
        assert lines_with(lines, "OK", "cross-signed")
        assert len(lines_with(lines, "OK", "encrypted")) == 2
        assert len(lines_with(lines, "OK", "the bot may redact")) == 2
        assert lines_with(lines, "OK", "database reachable at schema version")
        assert lines_with(lines, "OK", "data_dir")
        # Doctor only read: the rooms are as they were.
        assert await state(world, "strategic", "m.room.power_levels") == power_before

        await put_state(world, "operational", "m.room.guest_access",
                        {"guest_access": "can_join"})
        status, lines = await doctor(world)
        assert status == 2, "\n".join(lines)
        [guests] = lines_with(lines, "FAIL", "guests may join")
        assert "/operational" in guests
        assert "fix: run `livcr setup" in guests
        assert lines[-1].startswith("doctor: failures")
    finally:
        await world.close()


async def test_an_unencrypted_room_where_the_bot_may_not_redact_fails_with_the_fixes(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, unencrypted_strategic=True)
    try:
        status, lines = await doctor(world)
        assert status == 2, "\n".join(lines)
        [plain] = lines_with(lines, "FAIL", "not encrypted")
        assert "/strategic" in plain
        assert world.rooms["strategic"] in plain
        assert "fix:" in plain
        assert "new encrypted room" in plain
        assert lines_with(lines, "OK", "/operational", "encrypted")
        # The mayor created that room: the bot has the default level there.
        [redact] = lines_with(lines, "FAIL", "may not redact")
        assert "/strategic" in redact
        assert "fix:" in redact
        assert "power level" in redact
        assert lines_with(lines, "OK", "/operational", "the bot may redact")
    finally:
        await world.close()
