"""Every connection and login mistake an operator makes is one actionable line and an exit
code, never a traceback or "Unclosed client session" (issue 20, item 4/5/8/9). Real sockets on
loopback: a closed port, a plain-http server asked for https, a web server that is no
homeserver, a homeserver that rate-limits logins. The mistakes that need a real Synapse are in
tests/test_e2e_deploy.py."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.factories import CHAIR, IO, MAYOR, PARTNER, SCHOOL

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = ((CHAIR, "chair", ["operational", "strategic"]),
           (IO, "information_officer", ["operational"]),
           (PARTNER, "partner", ["operational"]),
           (SCHOOL, "partner", ["operational"]),
           (MAYOR, "mayor", ["strategic"]))


def write_config(base: Path, homeserver: str) -> Path:
    lines = [
        "[matrix]", f'homeserver = "{homeserver}"', 'user_id = "@livcr:example.be"',
        f'data_dir = "{base / "data"}"', "",
        "[storage]", f'database_url = "sqlite:///{base / "data" / "livcr.db"}"', "",
        "[cell]", 'name = "LIVC-R Voorbeeldstad"', 'language = "nl"', "",
        "[tables.operational]", 'room = "#op:example.be"', "",
        "[tables.strategic]", 'room = "#strat:example.be"',
    ]
    for user_id, role, tables in MEMBERS:
        quoted = ", ".join(f'"{t}"' for t in tables)
        lines += ["", "[[members]]", f'user_id = "{user_id}"', f'role = "{role}"',
                  'organisation = "X"', f"tables = [{quoted}]"]
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def livcr(*args: str, password: bool = True, timeout: float = 120) -> tuple[int, str]:
    env = {"PATH": "", "PYTHONPATH": str(ROOT)}
    if password:
        env["LIVCR_MATRIX_PASSWORD"] = "not-the-password"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode(errors="replace")


def one_line(output: str, fragment: str) -> None:
    """The error is said once, in one line, without a traceback or aiohttp's complaint."""
    assert "Traceback" not in output, output
    assert "Unclosed" not in output, output
    hits = [line for line in output.splitlines() if fragment in line]
    assert len(hits) == 1, output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


@pytest.fixture
async def stub() -> AsyncIterator[tuple[str, list[str]]]:
    """A plain-http server on loopback: /_matrix/client/versions like a homeserver, logins
    rate-limited for 292.6 s, /nothing/... a 404 like any web server."""
    seen: list[str] = []

    async def versions(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"versions": ["v1.11"]})

    async def login(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
                                  "retry_after_ms": 292600}, status=429)

    app = web.Application()
    app.router.add_get("/_matrix/client/versions", versions)
    app.router.add_post("/_matrix/client/v3/login", login)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.mark.parametrize("command", [["setup"], ["check-config", "--online"], ["run"]])
async def test_a_wrong_port_is_one_line_with_exit_3(tmp_path: Path, command: list[str]) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    code, output = await livcr(*command, "-c", str(config))
    assert code == 3, output
    one_line(output, "connection refused")
    assert "is it running, and are the host and port in matrix.homeserver right?" in output


async def test_https_against_a_plain_http_server_says_to_use_http(
        tmp_path: Path, stub: tuple[str, list[str]]) -> None:
    config = write_config(tmp_path, f"https://{stub[0]}")
    code, output = await livcr("setup", "-c", str(config))
    assert code == 3, output
    one_line(output, "TLS handshake")
    assert "use http://" in output


async def test_a_web_server_that_is_no_homeserver_is_named(
        tmp_path: Path, stub: tuple[str, list[str]]) -> None:
    config = write_config(tmp_path, f"http://{stub[0]}/nothing")
    code, output = await livcr("check-config", "--online", "-c", str(config))
    assert code == 3, output
    one_line(output, "is not a Matrix homeserver's client API (HTTP 404")


async def test_a_url_ending_in_the_client_api_path_is_a_configuration_error(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:8008/_matrix/client")
    code, output = await livcr("setup", "-c", str(config))
    assert code == 2, output
    one_line(output, "matrix.homeserver")
    assert "without '/_matrix/client'" in output


async def test_a_rate_limited_login_says_how_long_to_wait_at_once(
        tmp_path: Path, stub: tuple[str, list[str]]) -> None:
    config = write_config(tmp_path, f"http://{stub[0]}")
    code, output = await livcr("setup", "-c", str(config))
    assert code == 75, output
    one_line(output, "rate-limits logins")
    assert "try again in 293 s" in output
    assert stub[1].count("/_matrix/client/v3/login") == 1  # asked once, no silent retries


async def test_verbose_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    code, output = await livcr("setup", "-c", str(config), "-v")
    assert code == 3
    assert "Traceback" in output
    code, output = await livcr("-v", "setup", "-c", str(config))
    assert code == 3
    assert "Traceback" in output


@pytest.mark.parametrize("command", ["status", "purge"])
async def test_status_and_purge_need_no_secret_and_refuse_a_database_that_does_not_exist(
        tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    code, output = await livcr(command, "-c", str(config), password=False)
    assert code == 1, output
    one_line(output, "no database at")
    assert "matrix.password" not in output
    assert not (tmp_path / "data").exists()  # nothing created, not even the folder
    from storage.db import Database

    (tmp_path / "data").mkdir()
    db = Database(f"sqlite:///{tmp_path / 'data' / 'livcr.db'}")
    db.migrate()
    db.dispose()
    code, output = await livcr(command, "-c", str(config), password=False)
    assert code == 0, output
    assert "Traceback" not in output


def test_nios_silent_429_sleep_is_logged_with_its_length_and_end() -> None:
    import logging

    from bot.cli import RateLimitNotice

    record = logging.LogRecord("nio.client.async_client", logging.WARNING, __file__, 1,
                               "Got 429 response (ratelimited), sleeping for %dms", (292600,),
                               None)
    record.created = 0.0
    assert RateLimitNotice().filter(record)
    message = record.getMessage()
    assert message.startswith("the homeserver rate-limits the bot (HTTP 429): waiting 293 s, "
                              "until ")
    assert "then it goes on by itself" in message
