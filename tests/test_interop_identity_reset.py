"""Interop with Element's crypto stack: a member resets their cryptographic identity.

A roster member (``clb``) on matrix-js-sdk with its Rust crypto (``tests/interop/
reset_identity.mjs``) first works with the bot, then does what Element's "Reset cryptographic
identity" does (``CryptoApi.resetEncryption``): a new cross-signing identity, this device
signed by it. SPEC §11: the bot blocks the member (no answer, no readable case data), tells
the chair at once with the new key's fingerprint, and a chair's ``members trust @user``
restores them.

Set-up as in ``tests/test_interop_element.py`` (``node`` and ``npm`` on PATH, else the test
fails saying what to install; ``tests/interop/node_modules`` rebuilt with ``npm ci`` when it
holds another matrix-js-sdk version). Never a silent skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from demo.homeserver import Homeserver
from tests.jsinterop import node
from tests.world import PASSWORD, World, make_world

pytestmark = pytest.mark.e2e

INTEROP = Path(__file__).parent / "interop"
SCRIPT = INTEROP / "reset_identity.mjs"
STEP_TIMEOUT_MS = 60_000  # each wait inside the Node client
LINE_TIMEOUT = 150  # seconds for one answer of the Node client
SILENCE_MS = 12_000  # how long a blocked member's command goes unanswered


class NodeMember:
    """The Node client, driven one operation (a JSON line) at a time."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, world: World, user: str, log: Path) -> NodeMember:
        env = {
            **os.environ,
            "INTEROP_HOMESERVER": world.hs.url,
            "INTEROP_USER": world.uid(user),
            "INTEROP_PASSWORD": PASSWORD,
            "INTEROP_ROOM": world.rooms["operational"],
            "INTEROP_BOT": world.bot_user,
            "INTEROP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
            "INTEROP_LOG_LEVEL": os.environ.get("INTEROP_LOG_LEVEL", "info"),
        }
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                node(), str(SCRIPT), cwd=INTEROP, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=stderr)
        return cls(proc, log)

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(LINE_TIMEOUT):
            while raw := await self.proc.stdout.readline():
                if not raw.startswith(b"{"):
                    continue
                line: dict[str, Any] = json.loads(raw)
                self.lines.append(line)
                if line["stage"] == "error":
                    raise AssertionError(f"the Node client failed: {line}")
                return line
        raise AssertionError(f"the Node client exited ({self.proc.returncode}): {self.lines}")

    async def op(self, **operation: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(operation) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(self.op(op="quit"), timeout=5)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _tails(world: World, log: Path) -> str:
    js = log.read_text(errors="replace")[-6000:] if log.exists() else ""
    bot = world.bot.log()[-4000:] if world.bot is not None else ""
    return f"--- Node client (stderr) ---\n{js}\n--- bot ---\n{bot}"


async def test_element_member_resetting_their_identity_is_blocked_until_the_chair_trusts_it(
    synapse: Homeserver, tmp_path: Path
) -> None:
    # clb's identity is created by the matrix-js-sdk client (Element), not by the Python one.
    world = await make_world(synapse, tmp_path, not_cross_signed=("clb",))
    log = tmp_path / "reset_identity.log"
    member: NodeMember | None = None
    try:
        chair = world.members["chair"]
        clb = world.uid("clb")
        await world.ask("chair", "operational", "!ack")
        member = await NodeMember.start(world, "clb", log)
        try:
            ready = await member.read()
            assert ready["stage"] == "ready"
            assert ready["cross_signing_ready"] is True
            assert ready["own_device_signed_by_owner"] is True
            first_key = ready["master_key"]
            ack = await member.op(op="send", body="!ack")
            assert ack["decrypted"] is True, ack
            assert "acknowledgement" in ack["body"]
            before = await member.op(op="send", body="!members")
            assert before["decrypted"] is True, before
            assert "Roster" in before["body"]

            # Element's "Reset cryptographic identity".
            reset = await member.op(op="reset")
            new_key = reset["master_key"]
            assert reset["previous_master_key"] == first_key
            assert new_key
            assert new_key != first_key
            assert reset["own_device_signed_by_owner"] is True
            shown = " ".join(new_key[i:i + 4] for i in range(0, len(new_key), 4))
            told = await chair.wait_for(
                lambda s: s.sender == world.bot_user and clb in s.body and shown in s.body,
                timeout=90)
            assert chair.user_id in (told.content.get("m.mentions") or {}).get("user_ids", [])

            # Blocked: the command goes unanswered and case data cannot be read.
            silence = await member.op(op="send", body="!members", silence_ms=SILENCE_MS)
            assert not [r for r in silence["replies"] if r["decrypted"]], silence
            listing = await world.ask("chair", "operational", "!case list")
            seen = await member.op(op="check", event_id=listing.event_id, wait_ms=8000)
            assert seen["seen"] is True, seen
            assert seen["decrypted"] is False, seen

            # The chair checked the fingerprint with the person and trusts the new key.
            trusted = await world.ask("chair", "operational", f"!members trust {clb}")
            assert shown in trusted.body
            again = await member.op(op="send", body="!members")
            assert again["decrypted"] is True, again
            assert "Roster" in again["body"]
            print("\n".join(json.dumps(line) for line in member.lines))
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{member.lines}\n{_tails(world, log)}") from None
    finally:
        if member is not None:
            await member.stop()
        await world.close()
