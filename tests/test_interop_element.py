"""Interop with Element's crypto stack: matrix-js-sdk with its Rust crypto, in Node.js.

A second device of a roster member (``clb``), run by ``tests/interop/element_client.mjs``,
works as Element does with "exclude insecure devices" on (``OnlySignedDevicesIsolationMode``,
MSC4153): it cross-signs its own user and device, sends commands in the encrypted operational
room, and must decrypt the bot's replies with no warning on them. In that mode matrix-js-sdk
neither sends room keys to, nor decrypts messages from, a device its owner has not
cross-signed; so the bot answering at all proves SPEC §11 (the bot's own device is
cross-signed). A negative control shows the mode is really in force: a message from a member
whose nio device is *not* cross-signed must fail to decrypt with ``UNSIGNED_SENDER_DEVICE``.

Set-up (never a silent skip):

* ``node`` and ``npm`` must be on PATH. When ``node`` is missing and we are root with
  ``apt-get`` (as in CI on a fresh Debian machine), Debian's ``nodejs`` and ``npm`` packages are
  installed. Otherwise, or if that fails, the test fails with a message saying what to install.
  matrix-js-sdk 43 declares Node >= 22; Node 20 works with the ``Promise.withResolvers``
  polyfill at the top of the client script (``npm`` warns ``EBADENGINE``, harmlessly), and so
  does Debian bookworm's Node 18 with the ``globalThis.crypto`` polyfill next to it.
* ``tests/interop/node_modules`` is (re)built with ``npm ci`` from the committed
  ``package-lock.json`` whenever it is missing or holds another matrix-js-sdk version than
  ``package.json`` pins. This is the one step that reaches the network (the npm registry); it
  runs in a subprocess, outside the tests' loopback-only guard, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from demo.homeserver import Homeserver
from tests.world import PASSWORD, World, make_world

pytestmark = pytest.mark.e2e

INTEROP = Path(__file__).parent / "interop"
SCRIPT = INTEROP / "element_client.mjs"
INSTALL_TIMEOUT = 900  # seconds, for apt-get and npm each
RUN_TIMEOUT = 150  # seconds, the whole Node client run
STEP_TIMEOUT_MS = 45_000  # each wait inside the Node client


def _run(cmd: list[str], what: str, **kwargs: Any) -> None:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{what} failed: {exc}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
            pytrace=False,
        )


def _ensure_node() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    missing = " and ".join(n for n, p in (("nodejs", node), ("npm", npm)) if not p)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            f"the Element interop test needs Node.js with npm ({missing} missing); install "
            "Node >= 20 (e.g. `apt-get install nodejs npm`) and run the tests again",
            pytrace=False,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], "apt-get update", env=env)
    packages = ["npm"] if node else ["nodejs", "npm"]
    _run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        f"apt-get install {' '.join(packages)}",
        env=env,
    )
    node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if not (node and npm):
        pytest.fail("Node.js and npm are still missing after apt-get install", pytrace=False)
    return node, npm


def _installed_version(package: str) -> str | None:
    manifest = INTEROP / "node_modules" / package / "package.json"
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads(manifest.read_text())["version"])
    return None


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with tests/interop's dependencies installed."""
    node, npm = _ensure_node()
    pinned = json.loads((INTEROP / "package.json").read_text())["dependencies"]
    if any(_installed_version(name) != version for name, version in pinned.items()):
        lock = (INTEROP / "package-lock.json").exists()
        started = time.monotonic()
        _run(
            [npm, "ci" if lock else "install", "--no-audit", "--no-fund", "--loglevel=error"],
            "installing tests/interop's npm dependencies",
            cwd=INTEROP,
        )
        print(f"npm installed tests/interop in {time.monotonic() - started:.1f} s")
    return node


async def _run_client(
    world: World, node: str, commands: list[str], log: Path
) -> list[dict[str, Any]]:
    room = world.rooms["operational"]
    env = {
        **os.environ,
        "INTEROP_HOMESERVER": world.hs.url,
        "INTEROP_USER": world.uid("clb"),  # a second device of a roster member
        "INTEROP_PASSWORD": PASSWORD,
        "INTEROP_ROOM": room,
        "INTEROP_BOT": world.bot_user,
        "INTEROP_CONTROL": world.uid("ocmw"),  # a device its owner never cross-signed
        "INTEROP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
        "INTEROP_LOG_LEVEL": os.environ.get("INTEROP_LOG_LEVEL", "info"),
    }
    lines: list[dict[str, Any]] = []
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            *commands,
            cwd=INTEROP,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                while raw := await proc.stdout.readline():
                    if not raw.startswith(b"{"):
                        continue  # not a protocol line (the SDK logs to stderr, but still)
                    message = json.loads(raw)
                    lines.append(message)
                    if message["stage"] == "control-wanted":
                        await world.members["ocmw"].send(room, "control: from an unsigned device")
                await proc.wait()
        except TimeoutError:
            pytest.fail(
                f"the Node client hung; so far {lines}\n{_logs(world, log)}", pytrace=False
            )
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, (
        f"Node client exited {proc.returncode}: {lines}\n{_logs(world, log)}"
    )
    return lines


def _tail(log: Path, chars: int = 6000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _logs(world: World, log: Path) -> str:
    bot_log = world.bot.log_path if world.bot is not None else log
    return f"--- Node client (stderr) ---\n{_tail(log)}\n--- bot ---\n{_tail(bot_log, 4000)}"


def _check(lines: list[dict[str, Any]], bot_device: str) -> None:
    assert [line["stage"] for line in lines] == [
        "ready",
        "reply",
        "reply",
        "control-wanted",
        "control",
    ]
    stages = {line["stage"]: line for line in lines}
    ready = stages["ready"]
    assert ready["isolation_mode"] == "OnlySignedDevicesIsolationMode"
    assert ready["cross_signing_ready"] is True  # its own user is cross-signed ...
    assert ready["own_device_signed_by_owner"] is True  # ... and so is its device

    replies = [line for line in lines if line["stage"] == "reply"]
    for reply in replies:
        assert reply["encrypted"] is True
        assert reply["decrypted"] is True
        assert reply["type"] == "m.room.message"
        assert reply["msgtype"] == "m.notice"
        assert reply["in_reply_to"]
        assert reply["sender_device"] == bot_device
        assert reply["sender_device_signed_by_owner"] is True
        # No warning of any kind: not "device not verified by its owner" (red), not
        # "unknown or deleted device", not "authenticity not guaranteed" (grey). The bot's
        # identity is merely not verified by this user, which Element does not flag.
        assert reply["shield_colour"] == "NONE", reply
        assert reply["shield_reason"] is None, reply
        assert reply["sender_identity_verified"] is False
        assert reply["sender_identity_needs_approval"] is False
    ack, help_ = replies
    assert ack["command"] == "!ack"
    assert "acknowledgement" in ack["body"]
    assert help_["command"] == "!help"
    assert "`!members`" in help_["body"]

    # The mode is really in force: a device not cross-signed by its owner is refused.
    control = stages["control"]
    assert control["decrypted"] is False, control
    assert control["failure_reason"] == "UNSIGNED_SENDER_DEVICE", control


async def test_element_excluding_insecure_devices_decrypts_the_bots_replies_without_warning(
    synapse: Homeserver, tmp_path: Path, node: str
) -> None:
    # clb's identity is created by the matrix-js-sdk client (Element), not by the Python one.
    world = await make_world(synapse, tmp_path, not_cross_signed=("clb", "ocmw"))
    try:
        log = tmp_path / "element_client.log"
        lines = await _run_client(world, node, ["!ack", "!help"], log)
        print("\n".join(json.dumps(line) for line in lines))
        session = json.loads((world.base / "data" / "session.json").read_text())
        try:
            _check(lines, session["device_id"])
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(world, log)}") from None
    finally:
        await world.close()

