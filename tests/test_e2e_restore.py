"""Secret storage, ``livcr restore`` and access-token login, against a real Synapse (SPEC §11
"The bot survives the loss of its machine", "Login").

The bot runs as real ``livcr`` processes. Signatures are checked independently of the bot's
code (``tests.test_cross_signing.check_chain``), the stored secrets with the js-sdk-tested
``bot.edge.secret_storage`` reader and with the recovery key as printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.edge import secret_storage
from demo.homeserver import Homeserver
from tests.backends import pg_url
from tests.test_cross_signing import check_chain, only_key, query_keys
from tests.world import PASSWORD, ROSTER, World

pytestmark = pytest.mark.e2e

RECOVERY_KEY_LINE = re.compile(r"^recovery key: ((?:[1-9A-HJ-NP-Za-km-z]{4} ){11}"
                               r"[1-9A-HJ-NP-Za-km-z]{4})$", re.MULTILINE)


async def livcr(world: World, *args: str, **env_extra: str) -> tuple[int, str]:
    """``livcr <args> -c config`` as a subprocess; the password only when given."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIVCR_MATRIX_PASSWORD", "LIVCR_MATRIX_ACCESS_TOKEN",
                        "LIVCR_RECOVERY_KEY")}
    env.update(env_extra, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, "-c", str(world.config_path),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")


async def new_world(hs: Homeserver, tmp: Path, **kwargs: Any) -> World:
    """A world whose database lives outside ``data_dir``: losing the machine's ``data_dir``
    is then what the test simulates, the database comes back from its own backup."""
    prefix = f"r{uuid.uuid4().hex[:6]}"
    world = World(hs=hs, base=tmp / prefix, prefix=prefix)
    if not pg_url():
        (world.base / "db").mkdir(parents=True)
        world.database_url = "sqlite:///" + str(world.base / "db" / "livcr.db")
    return await world.build(**kwargs)


async def account_data(hs: Homeserver, token: str, user_id: str, kind: str) -> Any:
    url = f"{hs.url}/_matrix/client/v3/user/{user_id}/account_data/{kind}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return await resp.json() if resp.status == 200 else None


async def put_account_data(hs: Homeserver, token: str, user_id: str, kind: str,
                           content: dict[str, Any]) -> None:
    url = f"{hs.url}/_matrix/client/v3/user/{user_id}/account_data/{kind}"
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, json=content, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        assert resp.status == 200


async def devices(hs: Homeserver, token: str) -> set[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{hs.url}/_matrix/client/v3/devices",
                    headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        assert resp.status == 200
        return {d["device_id"] for d in (await resp.json())["devices"]}


async def password_login(hs: Homeserver, user_id: str, device_id: str) -> str:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
            "password": PASSWORD, "device_id": device_id}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{hs.url}/_matrix/client/v3/login", json=body) as resp,
    ):
        assert resp.status == 200
        answer = await resp.json()
    assert answer["device_id"] == device_id
    return str(answer["access_token"])


def session_of(data_dir: Path) -> dict[str, str]:
    saved: dict[str, str] = json.loads((data_dir / "session.json").read_text())
    return saved


async def stored_secrets(world: World, token: str, recovery_key: str) -> dict[str, str]:
    kinds = [secret_storage.DEFAULT_KEY_TYPE, *secret_storage.CROSS_SIGNING_SECRETS]
    data = {k: await account_data(world.hs, token, world.bot_user, k) for k in kinds}
    key_id = data[secret_storage.DEFAULT_KEY_TYPE]["key"]
    key_kind = secret_storage.key_type(key_id)
    data[key_kind] = await account_data(world.hs, token, world.bot_user, key_kind)
    assert data[key_kind]["algorithm"] == secret_storage.ALGORITHM
    return secret_storage.open_store(data, recovery_key, secret_storage.CROSS_SIGNING_SECRETS)


async def test_setup_stores_the_identity_and_restore_brings_it_back(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await new_world(synapse, tmp_path)
    try:
        data_dir = world.base / "data"
        # ---- setup printed the recovery key once, as Element formats it -----------------
        keys = RECOVERY_KEY_LINE.findall(world.setup_output)
        assert len(keys) == 1, world.setup_output
        recovery_key = keys[0]
        assert "OFFLINE" in world.setup_output
        assert "".join(recovery_key.split()) not in (data_dir / "livcr.log").read_text()
        old = session_of(data_dir)
        identity = json.loads((data_dir / "cross_signing.json").read_text())
        master = identity["master_public"]
        # The account's secret storage holds exactly the local private keys.
        secrets = await stored_secrets(world, old["access_token"], recovery_key)
        assert secrets == {
            "m.cross_signing.master": identity["master"],
            "m.cross_signing.self_signing": identity["self_signing"],
            "m.cross_signing.user_signing": identity["user_signing"],
        }
        default = await account_data(synapse, old["access_token"], world.bot_user,
                                     secret_storage.DEFAULT_KEY_TYPE)

        # ---- setup again: nothing rotated, the key is not shown again --------------------
        assert world.bot is not None
        await world.bot.stop()
        rc, out = await livcr(world, "setup", LIVCR_MATRIX_PASSWORD=PASSWORD)
        assert rc == 0, out
        assert "secret storage: already stored" in out
        assert not RECOVERY_KEY_LINE.search(out)
        assert await account_data(synapse, old["access_token"], world.bot_user,
                                  secret_storage.DEFAULT_KEY_TYPE) == default

        # ---- the machine is lost: data_dir is gone (the database is restored apart) ------
        shutil.move(data_dir, world.base / "lost")
        devices_before = await devices(synapse, old["access_token"])

        # Without the recovery key the bot refuses to replace the published identity.
        rc, out = await livcr(world, "run", LIVCR_MATRIX_PASSWORD=PASSWORD)
        assert rc == 1, out
        assert "refusing to replace it" in out, out
        assert "livcr restore" in out, out
        answer = await query_keys(synapse.url, old["access_token"], world.bot_user)
        assert only_key(answer["master_keys"][world.bot_user]) == master  # untouched
        shutil.rmtree(data_dir)  # the device that run logged in, and its files

        # A mistyped key and a key of another store: one line, non-zero, nothing changed.
        devices_before = await devices(synapse, old["access_token"])
        rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD,
                              LIVCR_RECOVERY_KEY=recovery_key[:-1] + "x")
        assert rc == 2, out
        assert "restore failed: the recovery key is mistyped" in out, out
        other = secret_storage.encode_recovery_key(secret_storage.generate_key())
        rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD,
                              LIVCR_RECOVERY_KEY=other)
        assert rc == 1, out
        assert out.strip().splitlines()[-1] == (
            "restore failed: this recovery key is not the one of this account's secret storage"
        )
        assert not data_dir.exists() or not any(data_dir.iterdir())
        assert await devices(synapse, old["access_token"]) == devices_before
        rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD)
        assert rc == 2, out
        assert "restore needs the recovery key" in out, out

        # ---- restore with the key (spaces as printed, or none) ---------------------------
        rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD,
                              LIVCR_RECOVERY_KEY=recovery_key)
        assert rc == 0, out
        assert "restored the cross-signing identity" in out
        new = session_of(data_dir)
        assert new["device_id"] != old["device_id"]
        restored = json.loads((data_dir / "cross_signing.json").read_text())
        assert restored["master_public"] == master
        assert {k: restored[k] for k in ("master", "self_signing", "user_signing")} == {
            k: identity[k] for k in ("master", "self_signing", "user_signing")
        }
        assert (data_dir / "cross_signing.json").stat().st_mode & 0o777 == 0o600
        # The homeserver shows the same master key, and the new device signed under it.
        answer = await query_keys(synapse.url, new["access_token"], world.bot_user)
        assert check_chain(answer, world.bot_user, new["device_id"], owner=True) == master

        # A second restore is refused: the data directory is no longer empty.
        rc, out = await livcr(world, "restore", LIVCR_MATRIX_PASSWORD=PASSWORD,
                              LIVCR_RECOVERY_KEY=recovery_key)
        assert rc == 2, out
        assert "restore refused" in out, out

        # ---- the restored bot works: members' commands are answered ---------------------
        assert world.bot is not None
        await world.bot.start_ready(timeout=120)
        seen = await world.ask("chair", "operational", "!ack", timeout=90)
        assert "acknowledgement" in seen.body, seen.body
        assert session_of(data_dir)["device_id"] == new["device_id"]  # no further device
    finally:
        await world.close()


async def test_the_bot_runs_with_only_an_access_token(
    synapse: Homeserver, tmp_path: Path
) -> None:
    """As on a homeserver behind MAS: no password anywhere, a token issued for a device."""
    world = await new_world(synapse, tmp_path, with_bot=False)
    try:
        data_dir = world.base / "data"
        old = session_of(data_dir)
        # The token comes from a password login here (MAS: issue-compatibility-token).
        token = await password_login(synapse, world.bot_user, "TOKENDEVICE")
        shutil.rmtree(data_dir / "crypto")
        (data_dir / "session.json").unlink()
        env = {k: v for k, v in os.environ.items() if k != "LIVCR_MATRIX_PASSWORD"}
        env.update(LIVCR_MATRIX_ACCESS_TOKEN=token, PYTHONUNBUFFERED="1")
        assert world.bot is not None
        world.bot.env = env
        rc, out = await livcr(world, "check-config", LIVCR_MATRIX_ACCESS_TOKEN=token)
        assert rc == 0, out
        assert "configuration OK" in out, out
        await world.bot.start_ready(timeout=120)
        saved = session_of(data_dir)
        assert saved["device_id"] == "TOKENDEVICE" != old["device_id"]
        seen = await world.ask("chair", "operational", "!ack", timeout=90)
        assert "acknowledgement" in seen.body, seen.body
        # The token's device is cross-signed by the bot's identity (no password needed).
        answer = await query_keys(synapse.url, token, world.bot_user)
        check_chain(answer, world.bot_user, "TOKENDEVICE", owner=True)
        everything = "".join(p.read_text(errors="replace") for p in world.bot.outputs())
        assert token not in everything + world.bot.log()
    finally:
        await world.close()


async def test_setup_with_only_an_access_token_publishes_and_stores_the_identity(
    synapse: Homeserver, tmp_path: Path
) -> None:
    """The first setup on a homeserver behind MAS: no password to answer interactive auth;
    the first upload of cross-signing keys needs none, and secret storage needs none."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    world = World(hs=synapse, base=tmp_path / prefix, prefix=prefix)
    (world.base / "db").mkdir(parents=True)
    world.database_url = "sqlite:///" + str(world.base / "db" / "livcr.db")
    world.bot_user = await synapse.register(f"{prefix}bot", PASSWORD)
    token = await password_login(synapse, world.bot_user, "MASDEVICE")
    world.config_path = world.base / "config.toml"
    world.config_path.write_text(world.config_text())
    for name, *_ in ROSTER:  # setup refuses to invite users that do not exist
        await synapse.register(f"{prefix}{name}", PASSWORD)
    # Someone else's secret storage on the account (Element's "set up recovery"): setup does
    # not replace it, still sets up the rooms, and says so with a non-zero status.
    await put_account_data(synapse, token, world.bot_user, secret_storage.DEFAULT_KEY_TYPE,
                           {"key": "elementkey"})
    rc, out = await livcr(world, "setup", LIVCR_MATRIX_ACCESS_TOKEN=token)
    assert rc == 1, out
    assert "secret storage: NOT stored: the account already has a default secret" in out
    assert ": !" in out  # the rooms' lines
    assert not RECOVERY_KEY_LINE.search(out)
    await put_account_data(synapse, token, world.bot_user, secret_storage.DEFAULT_KEY_TYPE, {})
    rc, out = await livcr(world, "setup", LIVCR_MATRIX_ACCESS_TOKEN=token)
    assert rc == 0, out
    (recovery_key,) = RECOVERY_KEY_LINE.findall(out)
    data_dir = world.base / "data"
    assert session_of(data_dir)["device_id"] == "MASDEVICE"
    identity = json.loads((data_dir / "cross_signing.json").read_text())
    answer = await query_keys(synapse.url, token, world.bot_user)
    assert check_chain(answer, world.bot_user, "MASDEVICE", owner=True) == (
        identity["master_public"])
    secrets = await stored_secrets(world, token, recovery_key)
    assert secrets["m.cross_signing.master"] == identity["master"]
    assert token not in out

    # The machine is lost; the operator issues a new token for a new device and restores.
    shutil.move(data_dir, world.base / "lost")
    token2 = await password_login(synapse, world.bot_user, "MASDEVICE2")
    other = secret_storage.encode_recovery_key(secret_storage.generate_key())
    rc, out = await livcr(world, "restore", LIVCR_MATRIX_ACCESS_TOKEN=token2,
                          LIVCR_RECOVERY_KEY=other)
    assert rc == 1, out
    assert not data_dir.exists() or not any(data_dir.iterdir())
    # A configured token is not logged out on failure: it is the operator's to keep.
    assert "MASDEVICE2" in await devices(synapse, token2)
    rc, out = await livcr(world, "restore", LIVCR_MATRIX_ACCESS_TOKEN=token2,
                          LIVCR_RECOVERY_KEY="".join(recovery_key.split()))
    assert rc == 0, out
    assert session_of(data_dir)["device_id"] == "MASDEVICE2"
    answer = await query_keys(synapse.url, token2, world.bot_user)
    assert check_chain(answer, world.bot_user, "MASDEVICE2", owner=True) == (
        identity["master_public"])
    assert token2 not in out
