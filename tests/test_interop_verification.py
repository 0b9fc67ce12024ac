"""Members verify the bot with emoji (SAS) from Element's crypto stack (spec §11, issue 16).

matrix-js-sdk 43 with its Rust crypto (``tests/interop/verify_bot.mjs``) against the real bot
process on a real Synapse, one world for the module, a different member per scenario (once a
member has verified the bot, their identity trusts it for good):

1. ``clb`` verifies the bot as Element's "Verify user" does: a direct room created with the
   bot invited, then an in-room request. ``ocmw`` verifies it as "Verify session" does:
   to-device. Afterwards js-sdk reports the bot's identity as verified, the bot's emoji
   notice shows the emoji js-sdk showed, and the bot signed the member's master key with
   its user-signing key.
2. Then, with ``globalBlacklistUnverifiedDevices`` on, the member's command is answered. The
   negative control: ``io``, same setting, no verification, gets no answer to the command
   (its client withholds the room key from the bot, code ``m.unverified``, which the bot
   logs; at most the bot says it could not decrypt the message).
4. ``mayor`` asks from a new device that its owner never cross-signed: the bot cancels
   (``m.user``) and js-sdk reports the bot as the one who cancelled.

Set-up as in ``tests/test_interop_element.py`` (its ``node`` fixture: never a silent skip).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio import RoomMemberEvent, RoomMessagesResponse

from bot.edge.signing_keys import KEYS_FILE, CrossSigningKeys, key_id
from demo.homeserver import Homeserver
from tests.test_interop_element import node as node  # the fixture (npm deps installed)
from tests.world import PASSWORD, World, make_world

pytestmark = pytest.mark.e2e

INTEROP = Path(__file__).parent / "interop"
SCRIPT = INTEROP / "verify_bot.mjs"
RUN_TIMEOUT = 300  # seconds, one whole Node client run
STEP_TIMEOUT_MS = 120_000  # each wait inside the Node client (the machine may be loaded)
NO_REPLY_WAIT_MS = 45_000  # the negative control's wait for a reply that must not come


@pytest.fixture(scope="module")
async def world(synapse: Homeserver, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[World]:
    # These members' identities are created by the js-sdk client (Element), not by nio.
    w = await make_world(synapse, tmp_path_factory.mktemp("verification"),
                         not_cross_signed=("clb", "ocmw", "io"))
    try:
        yield w
    finally:
        await w.close()


async def run(world: World, node: str, member: str, table: str, *, verify: str,
              commands: tuple[str, ...] = (), cross_sign: bool = True,
              blacklist: bool = False, reply_wait_ms: int = STEP_TIMEOUT_MS,
              ) -> dict[str, Any]:
    """One js-sdk client run; its protocol lines by stage (``reply``/``no-reply`` lists)."""
    env = {
        **os.environ,
        "INTEROP_HOMESERVER": world.hs.url,
        "INTEROP_USER": world.uid(member),
        "INTEROP_PASSWORD": PASSWORD,
        "INTEROP_ROOM": world.rooms[table],
        "INTEROP_BOT": world.bot_user,
        "INTEROP_VERIFY": verify,
        "INTEROP_CROSS_SIGN": "1" if cross_sign else "0",
        "INTEROP_BLACKLIST": "1" if blacklist else "0",
        "INTEROP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
        "INTEROP_REPLY_WAIT_MS": str(reply_wait_ms),
        "INTEROP_LOG_LEVEL": os.environ.get("INTEROP_LOG_LEVEL", "info"),
    }
    log = world.base / f"verify-{member}-{verify}.log"
    lines: list[dict[str, Any]] = []
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), *commands, cwd=INTEROP, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                while raw := await proc.stdout.readline():
                    if raw.startswith(b"{"):
                        lines.append(json.loads(raw))
                await proc.wait()
        except TimeoutError:
            pytest.fail(f"the Node client hung; so far {lines}\n{_logs(world, log)}",
                        pytrace=False)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, f"exit {proc.returncode}: {lines}\n{_logs(world, log)}"
    stages: dict[str, Any] = {"lines": lines, "reply": [], "no-reply": []}
    for line in lines:
        if line["stage"] in ("reply", "no-reply"):
            stages[line["stage"]].append(line)
        else:
            stages[line["stage"]] = line
    return stages


def _logs(world: World, log: Path) -> str:
    node_log = log.read_text(errors="replace")[-6000:] if log.exists() else ""
    bot_log = world.bot.log()[-4000:] if world.bot is not None else ""
    return f"--- Node client ---\n{node_log}\n--- bot ---\n{bot_log}"


async def master_key_signatures(world: World, member: str) -> dict[str, str]:
    """The signatures on ``member``'s published master key, by the bot's account. Asked as
    the bot: a user-signing signature is shown only to the user who made it."""
    token = json.loads((world.base / "data" / "session.json").read_text())["access_token"]
    async with aiohttp.ClientSession() as session, session.post(
        world.hs.url + "/_matrix/client/v3/keys/query",
        json={"device_keys": {world.uid(member): []}},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        answer = await response.json()
    master = answer["master_keys"][world.uid(member)]
    signatures: dict[str, str] = master.get("signatures", {}).get(world.bot_user, {})
    return signatures


def bot_user_signing_key_id(world: World) -> str:
    keys = CrossSigningKeys.load(world.base / "data" / KEYS_FILE, world.bot_user)
    assert keys is not None
    return key_id(keys.user_signing)


def _check_verified(result: dict[str, Any], world: World, member: str, how: str) -> None:
    try:
        _check_verified_flow(result)
    except AssertionError as exc:
        log = world.base / f"verify-{member}-{how}.log"
        raise AssertionError(f"{exc}\n{_logs(world, log)}") from None


def _check_verified_flow(result: dict[str, Any]) -> None:
    ready, verification = result["ready"], result["verification"]
    assert ready["cross_signing_ready"] is True
    assert ready["bot_verified_before"] is False
    assert verification["phase"] == "Done", verification
    assert verification["cancellation_code"] is None
    assert verification["bot_verified"] is True
    assert verification["bot_cross_signing_verified"] is True
    shown = result["sas"]["emoji"]
    assert len(shown) == 7


async def test_member_verifies_the_bot_in_a_direct_room(world: World, node: str) -> None:
    result = await run(world, node, "clb", "operational", verify="dm", blacklist=True,
                       commands=("!ack",))
    print(json.dumps(result["lines"], ensure_ascii=False))
    _check_verified(result, world, "clb", "dm")
    # The bot posted the same seven emoji, with their (English: the cell's language) names.
    notice = next(n for n in result["verification"]["notices"] if result["sas"]["emoji"][0][0]
                  in n)
    for symbol, name in result["sas"]["emoji"]:
        assert f"{symbol} {name}".lower() in notice.lower(), (symbol, name, notice)
    # Keys only for verified sessions: the command is still answered.
    assert [r["command"] for r in result["reply"]] == ["!ack"], result["lines"]
    assert "acknowledgement" in result["reply"][0]["body"]
    # The bot vouched for clb's identity with its user-signing key.
    assert bot_user_signing_key_id(world) in await master_key_signatures(world, "clb")


async def test_member_verifies_the_bot_to_device(world: World, node: str) -> None:
    result = await run(world, node, "ocmw", "operational", verify="to-device", blacklist=True,
                       commands=("!ack",))
    print(json.dumps(result["lines"], ensure_ascii=False))
    _check_verified(result, world, "ocmw", "to-device")
    assert [r["command"] for r in result["reply"]] == ["!ack"], result["lines"]
    assert bot_user_signing_key_id(world) in await master_key_signatures(world, "ocmw")


async def test_without_verification_keys_only_for_verified_sessions_get_no_answer(
    world: World, node: str
) -> None:
    assert world.bot is not None
    withheld_before = world.bot.log().count("withheld a room key from the bot (reason code "
                                            "m.unverified)")
    result = await run(world, node, "io", "operational", verify="none", blacklist=True,
                       commands=("!help",), reply_wait_ms=NO_REPLY_WAIT_MS)
    print(json.dumps(result["lines"], ensure_ascii=False))
    # The command was not run: no help text. At most the bot's notice that it could not
    # decrypt the message (its undecryptable timeout may come before the client stops
    # waiting).
    answered = result["reply"] + result["no-reply"]
    assert [r["command"] for r in answered] == ["!help"], result["lines"]
    for reply in result["reply"]:
        assert "`!members`" not in reply["body"], result["lines"]
        assert "could not decrypt your last message" in reply["body"], result["lines"]
    # Why: the member's client withheld the room key from the unverified bot.
    await world.bot.wait_line("withheld a room key from the bot (reason code m.unverified)",
                              60, after=withheld_before)


async def test_a_device_its_owner_never_cross_signed_is_refused(world: World, node: str
                                                               ) -> None:
    result = await run(world, node, "mayor", "strategic", verify="to-device", cross_sign=False)
    print(json.dumps(result["lines"], ensure_ascii=False))
    verification = result["verification"]
    assert verification["phase"] == "Cancelled", verification
    assert verification["cancellation_code"] == "m.user"
    assert verification["cancelling_user"] == world.bot_user
    assert verification["bot_verified"] is False
    assert "sas" not in result


async def _bot_membership_becomes(world: World, inviter: str, room_id: str, wanted: str,
                                  timeout: float = 90) -> None:
    client = world.members[inviter].client
    async with asyncio.timeout(timeout):
        while True:
            state = await client.room_get_state_event(room_id, "m.room.member", world.bot_user)
            if getattr(state, "content", {}).get("membership") == wanted:
                return
            await asyncio.sleep(0.5)


async def test_only_a_roster_members_room_with_the_two_of_them_is_joined(world: World) -> None:
    """Invitations from anyone else, or to a room with a third person, are declined (the
    bot leaves) and nothing is said there."""
    eve = await world.add_member("eve", join=False)  # on no roster
    outsider_dm = await eve.client.room_create(is_direct=True, invite=[world.bot_user])
    chair = world.members["chair"].client
    crowded = await chair.room_create(is_direct=True, invite=[world.bot_user, eve.user_id])
    for inviter, response in (("eve", outsider_dm), ("chair", crowded)):
        room_id = str(response.room_id)
        await _bot_membership_becomes(world, inviter, room_id, "leave")
        history = await world.members[inviter].client.room_messages(room_id, limit=50)
        assert isinstance(history, RoomMessagesResponse), history
        said = [e for e in history.chunk if getattr(e, "sender", None) == world.bot_user
                and not isinstance(e, RoomMemberEvent)]
        assert said == []  # only its join/leave, not a word
