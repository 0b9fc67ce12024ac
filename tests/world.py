"""An end-to-end world: a real Synapse, the bot as a real ``livcr run`` process, members with
real E2EE clients. Each world has its own users and rooms, so tests never share state.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.homeserver import Homeserver
from demo.member import MemberClient, Seen
from tests.backends import create_pg_database, drop_pg_database, pg_url
from tests.processes import LoggedProcess, livcr_run, toml_value

PASSWORD = "correct-horse-battery-staple"
_worlds = itertools.count(1)

ROSTER = (
    ("chair", "chair", "Preventiedienst", ("operational", "strategic")),
    ("io", "information_officer", "Politiezone Voorbeeldstad", ("operational",)),
    ("ocmw", "partner", "OCMW", ("operational",)),
    ("clb", "partner", "CLB", ("operational",)),
    ("mayor", "mayor", "Stad Voorbeeldstad", ("strategic",)),
)


@dataclass
class World:
    hs: Homeserver
    base: Path
    prefix: str
    members: dict[str, MemberClient] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    bot: LoggedProcess | None = None
    bot_user: str = ""
    config_path: Path = field(init=False)
    #: SQLite in the world's data_dir; a PostgreSQL database of its own when the run has one.
    database_url: str = ""
    #: what ``livcr setup`` printed (room lines, the recovery key once)
    setup_output: str = ""

    def uid(self, name: str) -> str:
        return self.hs.user_id(f"{self.prefix}{name}")

    def config_text(self, cadence: dict[str, Any] | None = None,
                    extra_members: tuple[tuple[str, str, str, tuple[str, ...]], ...] = ()) -> str:
        server = self.hs.server_name
        lines = [
            "[matrix]",
            f"homeserver = {toml_value(self.hs.url)}",
            f"user_id = {toml_value(self.bot_user)}",
            'device_name = "livcr-bot"',
            f"data_dir = {toml_value(str(self.base / 'data'))}",
            "",
            "[storage]",
            f"database_url = {toml_value(self.database_url)}",
            "",
            "[limits]",
            "commands_per_minute = 1000",
            "undecryptable_timeout_seconds = 15",
            "",
            "[cell]",
            'name = "LIVC-R Voorbeeldstad"',
            'municipalities = ["Voorbeeldstad"]',
            'language = "en"',
            'timezone = "Europe/Brussels"',
            "",
            "[tables.operational]",
            f'room = "#{self.prefix}op:{server}"',
            "",
            "[tables.strategic]",
            f'room = "#{self.prefix}strat:{server}"',
        ]
        for key, value in (cadence or {}).items():
            lines.insert(lines.index("[tables.strategic]") - 1, f"{key} = {toml_value(value)}")
        for name, role, org, tables in ROSTER + extra_members:
            lines += [
                "",
                "[[members]]",
                f"user_id = {toml_value(self.uid(name))}",
                f"role = {toml_value(role)}",
                f"organisation = {toml_value(org)}",
                f"tables = {toml_value(list(tables))}",
            ]
        return "\n".join(lines) + "\n"

    async def build(
        self,
        with_bot: bool = True,
        outsiders: tuple[str, ...] = (),
        unencrypted_strategic: bool = False,
        not_cross_signed: tuple[str, ...] = (),
    ) -> World:
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = (
                create_pg_database() if pg_url()
                else "sqlite:///" + str(self.base / "data" / "livcr.db")
            )
        self.bot_user = await self.hs.register(f"{self.prefix}bot", PASSWORD)
        self.config_path = self.base / "config.toml"
        self.config_path.write_text(self.config_text())
        env = {**os.environ, "LIVCR_MATRIX_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        env.pop("LIVCR_MATRIX_ACCESS_TOKEN", None)
        for name, *_ in ROSTER:  # setup refuses to invite users that do not exist
            await self.hs.register(f"{self.prefix}{name}", PASSWORD)
        setup = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "setup", "-c", str(self.config_path),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await setup.communicate()
        if setup.returncode != 0:
            raise RuntimeError(f"livcr setup failed: {output.decode(errors='replace')}")
        self.setup_output = output.decode(errors="replace")
        for line in output.decode().splitlines():
            if ": !" in line:
                key, rest = line.split(": ", 1)
                self.rooms[key.split("/")[1]] = rest.split()[0]
        for name, *_ in ROSTER:
            await self.add_member(name, cross_sign=name not in not_cross_signed)
        for name in outsiders:
            await self.add_member(name, join=False)
        if unencrypted_strategic:
            await self._replace_strategic_with_plain_room()
        self.bot = livcr_run(self.config_path, self.base / "data", env)
        if with_bot:
            await self.bot.start_ready()
        return self

    async def _replace_strategic_with_plain_room(self) -> None:
        """A configured room without encryption: the bot must refuse to work there."""
        mayor = self.members["mayor"].client
        response = await mayor.room_create(invite=[self.bot_user])
        room_id = str(response.room_id)
        text = self.config_path.read_text()
        text = text.replace(f'room = "#{self.prefix}strat:{self.hs.server_name}"',
                            f'room = "{room_id}"')
        self.config_path.write_text(text)
        self.rooms["strategic"] = room_id
        await self.members["mayor"].join(room_id)

    async def add_member(self, name: str, join: bool = True,
                         cross_sign: bool = True) -> MemberClient:
        """A member's client; it cross-signs itself as Element does unless ``cross_sign`` is
        False (then another client, e.g. the matrix-js-sdk one, creates the identity)."""
        user_id = await self.hs.register(f"{self.prefix}{name}", PASSWORD)
        client = MemberClient(self.hs.url, user_id, PASSWORD, self.base / "members" / name)
        await client.login(cross_sign=cross_sign)
        await client.start()
        self.members[name] = client
        if join:
            for table, room_id in self.rooms.items():
                if any(n == name and table in t for n, _, _, t in ROSTER):
                    await client.join(room_id)
        return client

    async def ask(self, name: str, table: str, body: str, timeout: float = 30) -> Seen:
        return await self.members[name].ask(self.rooms[table], body, self.bot_user, timeout)

    async def close(self) -> None:
        if self.bot is not None:
            await self.bot.stop()
        for client in self.members.values():
            await client.stop()
        if self.database_url.startswith("postgresql"):
            drop_pg_database(self.database_url)
            self.database_url = ""

    def written_files(self) -> list[Path]:
        return [p for p in (self.base / "data").rglob("*") if p.is_file()]


async def make_world(hs: Homeserver, tmp: Path, **kwargs: Any) -> World:
    prefix = f"w{next(_worlds)}{os.getpid() % 1000}"
    world = World(hs=hs, base=tmp / prefix, prefix=prefix)
    return await world.build(**kwargs)
