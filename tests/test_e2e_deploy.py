"""Deployable from the README alone (issue 20), against a real Synapse: the README's steps in a
scratch root (a read-only configuration folder, the secret in the EnvironmentFile, the state
directory as working directory, absolute paths) give a bot that answers, also when the
homeserver comes up 20 s after the bot; login and roster mistakes are one line and an exit
code; a roster change reaches the running bot by SIGHUP; a never-used installation can start
over."""

from __future__ import annotations

import asyncio
import configparser
import os
import re
import shlex
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.homeserver import Homeserver, free_port
from demo.member import MemberClient
from tests.processes import ROOT, LoggedProcess
from tests.test_cli_errors import one_line
from tests.world import PASSWORD, make_world

pytestmark = pytest.mark.e2e

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")
#: Generous: two Synapses and the bot share a loaded machine.
SLOW = 180.0


def _unit() -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ROOT / "deploy" / "livcr-bot.service").read_text(encoding="utf-8"))
    return parser["Service"]


async def livcr(args: list[str], env: dict[str, str], cwd: Path = ROOT,
                timeout: float = SLOW) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def base_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1"}


# ---- the README's deployment in a scratch root -------------------------------------------
@dataclass
class Deployment:
    """The README's installation with "/" moved to ``root``: /etc/livcr read-only for the bot,
    the secret in /etc/livcr/livcr-bot.env, everything written in /var/lib/livcr."""

    root: Path
    hs: Homeserver
    etc: Path
    state: Path
    config: Path
    env: dict[str, str]

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


async def deploy(root: Path, hs: Homeserver, localparts: dict[str, str]) -> Deployment:
    """Steps 2, 4 and 5 of README "Deploying" (the account of step 1 is ``bot`` in
    ``localparts``); the example configuration with the README's production paths."""
    unit = _unit()
    etc = root / "etc" / "livcr"
    etc.mkdir(parents=True)
    state = root / unit["WorkingDirectory"].lstrip("/")
    state.mkdir(parents=True, mode=0o700)  # StateDirectory=, StateDirectoryMode=0700
    data_dir = re.search(r'data_dir = "(/[^"]+)"', README)
    database_url = re.search(r'database_url = "sqlite:///(/[^"]+)"', README)
    assert data_dir
    assert database_url
    text = EXAMPLE
    text = re.sub(r'^data_dir = "[^"]*"', f'data_dir = "{root}{data_dir.group(1)}"', text,
                  flags=re.M)
    text = re.sub(r'^database_url = "[^"]*"',
                  f'database_url = "sqlite:///{root}{database_url.group(1)}"', text, flags=re.M)
    text = text.replace('"https://matrix.example.be"', f'"{hs.url}"')
    for old, new in localparts.items():
        text = text.replace(f"@{old}:example.be", hs.user_id(new))
    text = text.replace("#livcr-", f"#{localparts['livcr']}-").replace(
        ":example.be", f":{hs.server_name}")
    config = etc / "config.toml"
    config.write_text(text, encoding="utf-8")
    secret_file = etc / "livcr-bot.env"
    example = (ROOT / "deploy" / "livcr-bot.env.example").read_text(encoding="utf-8")
    secret_file.write_text(example.replace("change-me", PASSWORD), encoding="utf-8")
    # The service user may read the configuration, never write it (ProtectSystem=strict).
    config.chmod(0o440)
    secret_file.chmod(0o400)
    etc.chmod(0o550)
    env = base_env()
    for line in secret_file.read_text(encoding="utf-8").splitlines():  # EnvironmentFile=
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    for name in localparts.values():
        await hs.register(name, PASSWORD)
    return Deployment(root, hs, etc, state, config, env)


def exec_start(deployment: Deployment) -> list[str]:
    """The unit's ExecStart with its paths in the scratch root, run from this checkout."""
    argv = shlex.split(_unit()["ExecStart"])
    assert argv[0].endswith("/livcr")
    return [sys.executable, "-m", "bot.cli",
            *[str(deployment.path(a)) if a.startswith("/") else a for a in argv[1:]]]


def localparts(prefix: str) -> dict[str, str]:
    names = ("livcr", "an.peeters", "inspecteur.wouters", "sara.jacobs", "tom.maes",
             "burgemeester", "korpschef")
    return {name: f"{prefix}{name}" for name in names}


def nothing_written_under(folder: Path, before: set[Path]) -> None:
    assert set(folder.rglob("*")) == before


async def _setup_as_the_readme(d: Deployment) -> None:
    before = set(d.etc.rglob("*"))
    code, output = await livcr(["check-config", "-c", str(d.config)], d.env, cwd=d.state)
    assert code == 0, output
    code, output = await livcr(["setup", "-c", str(d.config)], d.env, cwd=d.state)
    assert code == 0, output
    assert "first setup of this installation" in output
    assert "Error validating response" not in output
    assert "Traceback" not in output
    nothing_written_under(d.etc, before)
    data = d.path(re.search(r'data_dir = "(/[^"]+)"', README).group(1))  # type: ignore[union-attr]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "livcr.db").is_file()


async def _chair_is_answered(d: Deployment, parts: dict[str, str], bot: LoggedProcess,
                             timeout: float = SLOW) -> None:
    chair = MemberClient(d.hs.url, d.hs.user_id(parts["an.peeters"]), PASSWORD,
                         d.root / "members" / "chair")
    await chair.login()
    await chair.start()
    try:
        await chair.accept_invite(timeout=60)
        room = next(iter(chair.client.rooms))
        reply = await chair.ask(room, "!help", d.hs.user_id(parts["livcr"]), timeout=timeout)
        assert reply.decrypted
        assert "!ack" in reply.body
    finally:
        await chair.stop()


async def test_the_readme_deployment_gives_a_bot_that_answers(
        synapse: Homeserver, tmp_path: Path) -> None:
    parts = localparts(f"r{os.getpid() % 1000}")
    d = await deploy(tmp_path / "root", synapse, parts)
    await _setup_as_the_readme(d)
    bot = LoggedProcess(exec_start(d), d.path("/var/lib/livcr/data/livcr.log"), tmp_path,
                        d.env, name="service")
    try:
        await bot.start_ready(timeout=SLOW)
        await _chair_is_answered(d, parts, bot)
    finally:
        await bot.stop()
    out = bot.outputs()[-1].read_text(errors="replace")
    assert "Traceback" not in out
    assert PASSWORD not in out + bot.log()


async def test_the_bot_waits_for_a_homeserver_that_comes_up_20_s_after_it(
        tmp_path: Path) -> None:
    hs = Homeserver(tmp_path / "hs", port=free_port())
    await hs.start()
    bot: LoggedProcess | None = None
    try:
        parts = localparts("late")
        d = await deploy(tmp_path / "root", hs, parts)
        await _setup_as_the_readme(d)
        await hs.stop()  # a reboot: the homeserver is not up yet when the bot starts
        bot = LoggedProcess(exec_start(d), d.path("/var/lib/livcr/data/livcr.log"), tmp_path,
                            d.env, name="service")
        bot.start()
        await bot.wait_line("trying again in", timeout=SLOW)
        await asyncio.sleep(20)
        assert bot.proc is not None
        assert bot.proc.poll() is None
        await hs.start()
        await bot.wait_line("first sync done", timeout=SLOW)
        await _chair_is_answered(d, parts, bot)
        log = bot.log()
        assert "cannot reach the homeserver at 127.0.0.1" in log
        assert "Traceback" not in log + bot.outputs()[-1].read_text(errors="replace")
    finally:
        if bot is not None:
            await bot.stop()
        await hs.stop()


# ---- login and roster mistakes -------------------------------------------------------------
def small_config(base: Path, hs: Homeserver, bot: str, members: dict[str, str],
                 homeserver: str | None = None) -> Path:
    lines = ["[matrix]", f'homeserver = "{homeserver or hs.url}"', f'user_id = "{bot}"',
             f'data_dir = "{base / "data"}"', "", "[storage]",
             f'database_url = "sqlite:///{base / "data" / "livcr.db"}"', "", "[cell]",
             'name = "LIVC-R Testdorp"', 'language = "nl"', "", "[tables.operational]",
             f'room = "#{bot[1:].split(":")[0]}-op:{hs.server_name}"']
    for user_id, role in members.items():
        lines += ["", "[[members]]", f'user_id = "{user_id}"', f'role = "{role}"',
                  'organisation = "X"', 'tables = ["operational"]']
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_login_and_roster_mistakes_are_one_line_and_an_exit_code(
        synapse: Homeserver, tmp_path: Path) -> None:
    prefix = f"m{os.getpid() % 1000}"
    bot = await synapse.register(f"{prefix}bot", PASSWORD)
    chair = await synapse.register(f"{prefix}chair", PASSWORD)
    io = await synapse.register(f"{prefix}io", PASSWORD)
    ghost = synapse.user_id(f"{prefix}ghost")  # never registered
    roster = {chair: "chair", io: "information_officer", ghost: "partner"}
    config = small_config(tmp_path, synapse, bot, roster)
    right = {**base_env(), "LIVCR_MATRIX_PASSWORD": PASSWORD}
    wrong = {**base_env(), "LIVCR_MATRIX_PASSWORD": "not-" + PASSWORD}

    code, output = await livcr(["setup", "-c", str(config)], wrong)
    assert code == 4, output
    one_line(output, "wrong password")
    code, output = await livcr(["check-config", "--online", "-c", str(config)], wrong)
    assert code == 4, output
    one_line(output, "wrong password")

    tls = small_config(tmp_path, synapse, bot, roster,
                       homeserver=synapse.url.replace("http://", "https://"))
    code, output = await livcr(["setup", "-c", str(tls)], right)
    assert code == 3, output
    one_line(output, "TLS handshake")
    config = small_config(tmp_path, synapse, bot, roster)

    code, output = await livcr(["check-config", "--online", "-c", str(config)], right)
    assert code == 2, output
    one_line(output, f"members[{ghost}]: no such user on the homeserver")

    code, output = await livcr(["setup", "-c", str(config)], right)
    assert code == 1, output
    one_line(output, f"error: members[{ghost}]: no such user")
    assert re.search(r"operational: !\S+ created, 2 invited", output), output
    assert "Error validating response" not in output
    assert "Error validating response" not in (tmp_path / "data" / "livcr.log").read_text()

    del roster[ghost]
    config = small_config(tmp_path, synapse, bot, roster)
    code, output = await livcr(["check-config", "--online", "-c", str(config)], right)
    assert code == 0, output
    assert "homeserver OK" in output
    code, output = await livcr(["status", "-c", str(config)], base_env())  # no secret
    assert code == 0, output


# ---- roster changes without a restart ----------------------------------------------------
async def test_a_member_added_to_the_config_is_answered_after_sighup(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        assert world.bot is not None
        newbie = await world.add_member("newbie", join=False)
        world.config_path.write_text(world.config_text(
            extra_members=(("newbie", "partner", "CLB", ("operational",)),)))
        before = world.bot.log().count("configuration reloaded")
        os.kill(world.bot.pid, signal.SIGHUP)
        await world.bot.wait_line("configuration reloaded: 1 roster entry added", timeout=SLOW,
                                  after=before)
        await newbie.join(world.rooms["operational"], timeout=SLOW)  # the bot invited them
        # Joined after things were said: mentioned once, told what waits.
        welcome = await newbie.wait_for(
            lambda s: s.sender == world.bot_user and "Welcome" in s.body, timeout=SLOW)
        assert welcome.decrypted
        assert welcome.content["m.mentions"] == {"user_ids": [newbie.user_id]}
        assert "`!ack`" in welcome.body
        reply = await world.ask("newbie", "operational", "!help", timeout=SLOW)
        assert reply.decrypted
        assert "!ack" in reply.body
        # A file with a problem leaves the running configuration as it was.
        world.config_path.write_text(world.config_text().replace("[cell]", "[cel]"))
        os.kill(world.bot.pid, signal.SIGHUP)
        await world.bot.wait_line("reload refused", timeout=SLOW)
        again = await world.ask("newbie", "operational", "!help", timeout=SLOW)
        assert again.decrypted
    finally:
        await world.close()


# ---- the first day: starting over ----------------------------------------------------------
async def test_start_over_on_a_never_used_installation_replaces_identity_and_devices(
        synapse: Homeserver, tmp_path: Path) -> None:
    prefix = f"s{os.getpid() % 1000}"
    bot = await synapse.register(f"{prefix}bot", PASSWORD)
    chair = await synapse.register(f"{prefix}chair", PASSWORD)
    io = await synapse.register(f"{prefix}io", PASSWORD)
    roster = {chair: "chair", io: "information_officer"}
    env = {**base_env(), "LIVCR_MATRIX_PASSWORD": PASSWORD}
    first = tmp_path / "first"
    first.mkdir()
    code, output = await livcr(["setup", "-c", str(small_config(first, synapse, bot, roster))],
                               env)
    assert code == 0, output
    # Day one, a fresh data_dir: the account's identity is not in it.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config = small_config(fresh, synapse, bot, roster)
    code, output = await livcr(["setup", "-c", str(config)], env)
    assert code == 1, output
    one_line(output, "already has a cross-signing identity")
    code, output = await livcr(["setup", "--start-over", "-c", str(config)], env)
    assert code == 0, output
    assert re.search(r"started over: new device \S+ with a new cross-signing identity; "
                     r"2 other device\(s\) of ", output), output
    code, output = await livcr(["setup", "-c", str(config)], env)
    assert code == 0, output  # the new identity is this installation's own
    # An installation in use is never started over.
    from storage.db import Database

    db = Database(f"sqlite:///{fresh / 'data' / 'livcr.db'}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO meeting (cell, table_name, starts_at, duration_minutes, status, kind, "
            "cancel_reason, sequence, uid, created_at, ics_posted_sequence) VALUES ('x', "
            "'operational', '2027-01-05 09:00:00', 90, 'planned', 'manual', '', 0, '', "
            "'2026-12-01 09:00:00', -1)")
    db.dispose()
    code, output = await livcr(["setup", "--start-over", "-c", str(config)], env)
    assert code == 1, output
    one_line(output, "--start-over refused: this installation already holds meetings")
    assert "livcr restore" in output
