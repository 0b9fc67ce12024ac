"""``livcr restore`` seen from Element's crypto stack (matrix-js-sdk + Rust crypto, in Node.js):
issue 16, "What it must show" 3.

A roster member (``clb``, a js-sdk device that creates clb's identity) runs in Element's
"Never send encrypted messages to unverified sessions" mode (``globalBlacklistUnverifiedDevices``):

1. before it has verified the bot, its command is not readable by the bot (the bot's
   "could not decrypt" notice comes instead of a reply): the mode is in force;
2. it verifies the bot's identity (signs the bot's master key with its user-signing key, the
   result of an emoji verification) and its command is answered;
3. the bot loses its ``data_dir`` and is brought back with ``livcr restore`` and the recovery key
   ``livcr setup`` printed: a new device, the same master key. The member's client, which kept
   running, reports no identity change (``needsUserApproval`` false, still verified), the new
   device cross-signed and verified, and its next command is answered by the new device with
   no warning.

The same run in Element's "exclude insecure devices" mode (``OnlySignedDevicesIsolationMode``,
MSC4153), without verifying the bot: after the restore the new device is signed by the same
identity, so that member keeps working too, with no identity-change warning.

Node set-up as in ``tests/test_interop_element.py`` (its ``node`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from demo.homeserver import Homeserver
from tests.test_e2e_restore import RECOVERY_KEY_LINE, livcr, new_world, session_of
from tests.test_interop_element import INTEROP, node  # noqa: F401  (the fixture)
from tests.world import PASSWORD, World

pytestmark = pytest.mark.e2e

SCRIPT = INTEROP / "restore_client.mjs"
RUN_TIMEOUT = 420  # seconds, the whole run, restore included
STEP_TIMEOUT_MS = 90_000


async def _restore(world: World, recovery_key: str) -> str:
    """The machine is lost: data_dir goes; ``livcr restore``; the bot runs again. Returns the
    new device id."""
    assert world.bot is not None
    await world.bot.stop()
    data_dir = world.base / "data"
    shutil.move(data_dir, world.base / "lost")
    rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD,
                          LIVCR_RECOVERY_KEY=recovery_key)
    assert rc == 0, out
    await world.bot.start_ready(timeout=120)
    return session_of(data_dir)["device_id"]


async def _drive(world: World, node_bin: str, recovery_key: str, log: Path,
                 mode: str) -> tuple[list[dict[str, Any]], str]:
    env = {
        "INTEROP_MODE": mode,
        **os.environ,
        "INTEROP_HOMESERVER": world.hs.url,
        "INTEROP_USER": world.uid("clb"),
        "INTEROP_PASSWORD": PASSWORD,
        "INTEROP_ROOM": world.rooms["operational"],
        "INTEROP_BOT": world.bot_user,
        "INTEROP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
        "INTEROP_LOG_LEVEL": os.environ.get("INTEROP_LOG_LEVEL", "info"),
    }
    lines: list[dict[str, Any]] = []
    new_device = ""
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            node_bin, str(SCRIPT), cwd=INTEROP, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                while raw := await proc.stdout.readline():
                    if not raw.startswith(b"{"):
                        continue
                    message = json.loads(raw)
                    lines.append(message)
                    if message["stage"] == "restore-wanted":
                        new_device = await _restore(world, recovery_key)
                        proc.stdin.write(new_device.encode() + b"\n")
                        await proc.stdin.drain()
                await proc.wait()
        except TimeoutError:
            pytest.fail(f"the Node client hung; so far {lines}\n{_logs(world, log)}",
                        pytrace=False)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, f"Node client exited {proc.returncode}: {lines}\n" + _logs(
        world, log)
    return lines, new_device


def _logs(world: World, log: Path) -> str:
    tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
    bot = world.bot.log()[-4000:] if world.bot is not None else ""
    return f"--- Node client (stderr) ---\n{tail}\n--- bot ---\n{bot}"


def _check(lines: list[dict[str, Any]], old_device: str, new_device: str, master: str,
           mode: str) -> None:
    blacklist = mode == "blacklist"
    stages = ["ready", "unverified", "verified"] if blacklist else ["ready"]
    assert [line["stage"] for line in lines] == [*stages, "reply", "restore-wanted", "reply"]
    ready, before, after = lines[0], lines[-3], lines[-1]
    assert ready["cross_signing_ready"] is True
    if blacklist:
        unverified, verified = lines[1], lines[2]
        assert ready["blacklist_unverified"] is True
        assert ready["isolation_mode"] == "AllDevicesIsolationMode"
        # The mode is in force: unverified, the bot could not read the command.
        assert "could not decrypt" in unverified["body"]
        assert verified["master_key"] == master
    else:
        assert ready["isolation_mode"] == "OnlySignedDevicesIsolationMode"
    assert before["in_reply_to"] is True
    assert "acknowledgement" in before["body"]
    assert before["sender_device"] == old_device
    # After the restore: the same master key, no identity change, a new device signed by it.
    assert new_device != old_device
    assert after["in_reply_to"] is True
    assert "`!members`" in after["body"]
    assert after["sender_device"] == new_device
    for reply in (before, after):
        assert reply["master_key"] == master
        assert reply["identity_needs_approval"] is False
        assert reply["identity_verified"] is blacklist  # verified only where the member did
        assert reply["identity_was_verified"] is blacklist
        assert reply["sender_device_signed_by_owner"] is True
        assert reply["sender_device_cross_signing_verified"] is blacklist
        assert reply["sender_device_verified"] is blacklist
        assert reply["shield_colour"] == "NONE", reply
        assert reply["shield_reason"] is None, reply


@pytest.mark.parametrize("mode", ["blacklist", "only-signed"])
async def test_element_sees_no_identity_change_after_livcr_restore(
    synapse: Homeserver, tmp_path: Path, node: str, mode: str  # noqa: F811
) -> None:
    world = await new_world(synapse, tmp_path, not_cross_signed=("clb",))
    try:
        (recovery_key,) = RECOVERY_KEY_LINE.findall(world.setup_output)
        data_dir = world.base / "data"
        old_device = session_of(data_dir)["device_id"]
        master = json.loads((data_dir / "cross_signing.json").read_text())["master_public"]
        log = tmp_path / "restore_client.log"
        lines, new_device = await _drive(world, node, recovery_key, log, mode)
        print("\n".join(json.dumps(line) for line in lines))
        try:
            _check(lines, old_device, new_device, master, mode)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{lines}\n{_logs(world, log)}") from None
    finally:
        await world.close()
