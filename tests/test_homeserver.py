"""The embedded Synapse used by the demo, the end-to-end tests and the benchmarks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from demo.homeserver import Homeserver, HomeserverError

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _get(hs: Homeserver, path: str, token: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(hs.url + path, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_register_login_whoami_survive_restart(tmp_path: Path) -> None:
    hs = Homeserver(tmp_path / "synapse")
    pids: list[int] = []
    try:
        await hs.start()
        assert hs.pid is not None
        pids.append(hs.pid)
        port = hs.port
        assert port is not None
        assert hs.url == f"http://127.0.0.1:{port}"

        alice = await hs.register("alice", "alice-password")
        bob = await hs.register("bob", "bob-password")
        assert (alice, bob) == ("@alice:livcr.test", "@bob:livcr.test")
        assert hs.user_id("bob") == bob
        assert await hs.register("alice", "alice-password") == alice  # idempotent

        token, device_id = await hs.login("alice", "alice-password", device_id="ALICEDEV")
        assert device_id == "ALICEDEV"
        status, whoami = await _get(hs, "/_matrix/client/v3/account/whoami", token)
        assert status == 200
        assert (whoami["user_id"], whoami["device_id"]) == (alice, "ALICEDEV")

        with pytest.raises(HomeserverError, match="403"):
            await hs.login("bob", "wrong-password")

        admin = await hs.admin_token()
        status, info = await _get(hs, f"/_synapse/admin/v2/users/{bob}", admin)
        assert status == 200
        assert info["admin"] is False

        await hs.restart()
        assert hs.port == port
        assert hs.pid is not None
        pids.append(hs.pid)
        assert not _alive(pids[0])

        status, whoami = await _get(hs, "/_matrix/client/v3/account/whoami", token)
        assert status == 200
        assert (whoami["user_id"], whoami["device_id"]) == (alice, "ALICEDEV")
        assert await hs.admin_token() == admin
    finally:
        await hs.stop()

    assert not hs.running
    assert hs.pid is None
    assert not any(_alive(pid) for pid in pids)
    assert not _listening(port)
    # The generated YAML is JSON after a comment line.
    text = (tmp_path / "synapse" / "homeserver.yaml").read_text(encoding="utf-8")
    config = json.loads(text.split("\n", 1)[1])
    assert [listener["bind_addresses"] for listener in config["listeners"]] == [["127.0.0.1"]]
    assert config["federation_domain_whitelist"] == []
    assert config["trusted_key_servers"] == []


async def test_context_manager_stops_the_server(tmp_path: Path) -> None:
    async with Homeserver(tmp_path / "synapse", server_name="other.test") as hs:
        assert await hs.register("Carol", "pw") == "@carol:other.test"
        pid = hs.pid
        port = hs.port
    assert pid is not None
    assert port is not None
    assert not _alive(pid)
    assert not _listening(port)
    await hs.stop()  # idempotent


async def test_failed_start_reports_the_output_tail(tmp_path: Path) -> None:
    hs = Homeserver(tmp_path / "synapse", extra_config={"database": {"name": "no-such-engine"}})
    with pytest.raises(HomeserverError, match="exited with status") as info:
        await hs.start(timeout=60)
    assert "no-such-engine" in str(info.value)
    assert not hs.running
