"""One process for every Belgian LIVC-R (spec §12): ready time, peak RSS and reply latency at
1,200 table rooms against 2.

Run as a plain script from the repository (inside .venv)::

    python bench/scale.py [--sizes 2 200 1200] [--rounds 10] [--keep DIR]

A size is a number of table rooms: half as many cells, each with an operational and a
strategic table (Belgium has 581 municipalities, so about 600 cells and 1,200 table rooms
serve every LIVC-R), 8 members per table (13 people per cell) and 3 open dossiers per
operational table. Each size gets a fresh Synapse on loopback, provisioned through the admin
API with concurrency: users created by ``PUT /_synapse/admin/v2/users``, rooms created by the
bot's account (encrypted, history "joined", no guests, the power levels ``livcr setup`` sets,
an alias each), members joined by ``POST /_synapse/admin/v1/join`` (the join rule is public
during provisioning and invite-only afterwards). Only three members of the first cell's
operational table have live E2EE clients; the others are joined server-side and have no
devices. Dossiers are written into the bot's database before it starts.

Then:

* cold start, per size as soon as it is provisioned: ``livcr run`` with an empty data folder
  (login, keys, cross-signing, first sync): seconds from process start to "first sync done"
  and to "scheduler started" (jobs derived from the database), and until the start-up
  announcements in the outbox are sent (a first start plans a meeting for every table with
  open dossiers); meanwhile a live member sends ``!help`` and times the reply ("cold reply":
  a member's reply must not wait behind that backlog);
* warm start, per size: the same bot stopped and started again (its usual restart); it then
  keeps running, and so does every size's homeserver;
* reply latency of each size's bot and of ``bench/echo_bot.py`` (the floor, in a room of its
  own on the same homeserver with the same three members): the live members send ``!help``,
  ``!case list``, ``!members`` and ``!signal ...``, one at a time and all at once; the sizes
  take turns round by round, so that a change in the shared machine's speed affects every
  size alike;
* peak RSS of the bot process (VmHWM) over both starts and the latency rounds.

``--keep DIR`` keeps the homeservers; ``--keep DIR --reuse`` measures them again without
provisioning (warm start and latency only). Prints one table and the verdicts; never fails
on time: machines differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    COMMANDS,
    PASSWORD,
    Api,
    Homeserver,
    LoggedProcess,
    TimedMember,
    bot_process,
    echo_process,
    flatten,
    gather_limited,
    machine,
    measure_pairs,
    print_table,
    proc_status,
    stats,
    toml_value,
)

READY_TARGET_S = 60.0
RSS_TARGET_MB = 300.0
LATENCY_TARGET_RATIO = 1.5
CONCURRENCY = 16
DOSSIERS_PER_TABLE = 3
LIVE = ("chair", "io", "p1")
#: What a later ``--reuse`` run needs to know about a provisioned homeserver.
PROVISIONED = "provisioned.json"

#: The operational roster (8) and the strategic one (8); 13 people per cell.
OPERATIONAL = (("chair", "chair", "Preventiedienst"),
               ("io", "information_officer", "Politiezone"),
               ("p1", "partner", "OCMW"), ("p2", "partner", "CLB"), ("p3", "partner", "CAW"),
               ("p4", "partner", "VDAB"), ("p5", "partner", "Jeugddienst"),
               ("p6", "partner", "Justitiehuis"))
STRATEGIC = (("mayor", "mayor", "Stad"), ("chair", "chair", "Preventiedienst"),
             ("io", "information_officer", "Politiezone"),
             ("alderman", "alderman", "Stad"), ("korpschef", "police_chief", "Politiezone"),
             ("pk", "public_prosecutor", "Parket"), ("city", "city_service", "Stad"),
             ("p1", "partner", "OCMW"))

log = logging.getLogger("scale")


def cell_id(index: int) -> str:
    return f"c{index:04d}"


def people(index: int) -> dict[str, tuple[str, list[str]]]:
    """localpart name -> (role, organisation, tables) of one cell."""
    roster: dict[str, Any] = {}
    for table, members in (("operational", OPERATIONAL), ("strategic", STRATEGIC)):
        for name, role, org in members:
            entry = roster.setdefault(name, [role, org, []])
            entry[2].append(table)
    return roster


def localpart(index: int, name: str) -> str:
    return f"{cell_id(index)}-{name}"


def config_text(hs: Homeserver, base: Path, bot: str, cells: int) -> str:
    rng = random.Random(11)
    lines = [
        "[matrix]",
        f"homeserver = {toml_value(hs.url)}",
        f"user_id = {toml_value(bot)}",
        'device_name = "livcr-bot"',
        f"data_dir = {toml_value(str(base / 'data'))}",
        "",
        "[storage]",
        f"database_url = {toml_value('sqlite:///' + str(base / 'data' / 'livcr.db'))}",
        "",
        "[limits]",
        "commands_per_minute = 100000",
    ]
    for index in range(cells):
        language = "en" if index == 0 else rng.choice(("nl", "nl", "nl", "fr", "fr"))
        lines += [
            "",
            "[[cells]]",
            f'id = "{cell_id(index)}"',
            f'name = "LIVC-R Gemeente {index + 1}"',
            f'municipalities = ["Gemeente {index + 1}"]',
            f'language = "{language}"',
            'timezone = "Europe/Brussels"',
        ]
        for table, short in (("operational", "op"), ("strategic", "strat")):
            lines += [
                "",
                f"[cells.tables.{table}]",
                f'room = "#{cell_id(index)}-{short}:{hs.server_name}"',
                f'meeting_weekday = "{rng.choice(("monday", "tuesday", "thursday"))}"',
                f'meeting_time = "{rng.choice(("09:00", "10:00", "14:00"))}"',
            ]
        for name, (role, org, tables) in people(index).items():
            lines += [
                "",
                "[[cells.members]]",
                f"user_id = {toml_value(hs.user_id(localpart(index, name)))}",
                f"role = {toml_value(role)}",
                f"organisation = {toml_value(org)}",
                f"tables = {toml_value(tables)}",
            ]
    return "\n".join(lines) + "\n"


@dataclass
class Provisioned:
    bot_user: str
    config: Path
    live_room: str
    echo_room: str
    echo_user: str
    echo_token: str
    echo_device: str
    seconds: float
    detail: str


async def provision(hs: Homeserver, base: Path, rooms: int) -> Provisioned:
    from bot.config import load_config
    from bot.core import render
    from bot.edge.rooms import _desired_state, room_name

    began = time.monotonic()
    cells = max(1, rooms // 2)
    admin = await hs.admin_token()
    bot_user = await hs.register("livcr", PASSWORD)
    config = base / "config.toml"
    config.write_text(config_text(hs, base, bot_user, cells))
    loaded = load_config(config, {"LIVCR_MATRIX_PASSWORD": PASSWORD})
    bot_token, _ = await hs.login("livcr", PASSWORD)  # a provisioning device, logged out below
    timings: list[str] = []
    async with Api(hs) as api:
        mark = time.monotonic()
        users = [(hs.user_id(localpart(i, name)), (i == 0 and name in LIVE))
                 for i in range(cells) for name in people(i)]
        await gather_limited(CONCURRENCY, (
            api.create_user(admin, user_id, PASSWORD if live else None)
            for user_id, live in users))
        timings.append(f"{len(users)} users {time.monotonic() - mark:.0f} s")

        mark = time.monotonic()
        specs = [(cell, table) for cell in loaded.cells for table in cell.tables]

        async def create(cell: Any, table: Any) -> str:
            desired = _desired_state(None, cell, table)
            alias = cell.tables[table].room[1:].split(":", 1)[0]
            state = [{"type": t, "state_key": "", "content": c} for t, c in desired.items()
                     if t not in ("m.room.power_levels", "m.room.join_rules")]
            state.append({"type": "m.room.join_rules", "state_key": "",
                          "content": {"join_rule": "public"}})
            body = await api.call("POST", "/_matrix/client/v3/createRoom", bot_token, {
                "preset": "private_chat", "name": room_name(cell, table, render),
                "room_alias_name": alias, "initial_state": state,
                "power_level_content_override": desired["m.room.power_levels"],
            })
            return str(body["room_id"])

        room_ids = await gather_limited(CONCURRENCY, (create(c, t) for c, t in specs))
        timings.append(f"{len(room_ids)} rooms {time.monotonic() - mark:.0f} s")

        mark = time.monotonic()
        # Member-major order: concurrent joins go to different rooms (Synapse serialises
        # the events of one room).
        per_room = [[(room_id, m.user_id) for m in cell.members_of(table)]
                    for (cell, table), room_id in zip(specs, room_ids, strict=True)]
        joins = [room[k] for k in range(max(map(len, per_room))) for room in per_room
                 if k < len(room)]
        await gather_limited(CONCURRENCY, (api.admin_join(admin, r, u) for r, u in joins))
        await gather_limited(CONCURRENCY, (api.lock(bot_token, r) for r in room_ids))
        timings.append(f"{len(joins)} joins {time.monotonic() - mark:.0f} s")
        await api.logout(bot_token)

        echo_user = await hs.register("echo", PASSWORD)
        echo_token, echo_device = await hs.login("echo", PASSWORD)
        echo_room = await api.create_room(
            echo_token, "Echo floor", invite=[hs.user_id(localpart(0, n)) for n in LIVE])

    mark = time.monotonic()
    dossiers = insert_dossiers(loaded)
    timings.append(f"{dossiers} dossiers {time.monotonic() - mark:.1f} s")
    return Provisioned(bot_user, config, room_ids[0], echo_room, echo_user, echo_token,
                       echo_device, time.monotonic() - began, ", ".join(timings))


def insert_dossiers(config: Any) -> int:
    """A few open dossiers per operational table, straight into the bot's database."""
    import sqlalchemy as sa

    from storage.db import Database
    from storage.models import Dossier

    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    rng = random.Random(5)
    now = datetime.now(UTC)
    rows = []
    codes: set[str] = set()
    for cell in config.cells:
        for n in range(DOSSIERS_PER_TABLE):
            code = ""
            while not code or code in codes:
                code = "C-" + "".join(rng.choice(alphabet) for _ in range(5))
            codes.add(code)
            status = ("signalled", "assessing", "follow_up")[n % 3]
            rows.append({
                "code": code, "cell": cell.id, "table_name": "operational",
                "phenomenon": "HTF", "indicators": "isolation", "context": "",
                "source": "OCMW", "summary": "", "status": status, "problematic": False,
                "scenario": "education" if status == "follow_up" else "",
                "next_evaluation": (now + timedelta(days=30)).date()
                if status == "follow_up" else None,
                "signalled_by": next(m.user_id for m in cell.members
                                     if m.role.value == "partner"),
                "created_at": now - timedelta(days=20), "updated_at": now - timedelta(days=2),
                "version": 0,
            })
    database = Database(config.database_url)
    try:
        database.migrate()
        with database.engine.begin() as conn:
            conn.execute(sa.insert(Dossier.__table__), rows)  # type: ignore[attr-defined]
    finally:
        database.dispose()
    return len(rows)


def outbox_count(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


async def drained(database: Path, started: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if outbox_count(database) == 0:
                return time.monotonic() - started
        except sqlite3.Error:
            pass
        if time.monotonic() > deadline:
            return float("nan")
        await asyncio.sleep(0.2)


@dataclass
class Size:
    """One size's homeserver, bot, echo floor and live members, and what was measured."""

    rooms: int
    base: Path
    hs: Homeserver
    prov: Provisioned | None = None
    bot: LoggedProcess | None = None
    echo: LoggedProcess | None = None
    members: list[TimedMember] = field(default_factory=list)
    cold_sync_s: float = math.nan
    cold_ready_s: float = math.nan
    cold_drained_s: float = math.nan
    cold_reply_s: float = math.nan
    warm_sync_s: float = math.nan
    warm_ready_s: float = math.nan
    peak_kb: int = 0
    seq: dict[str, list[float]] = field(default_factory=lambda: {"bot": [], "floor": []})
    conc: dict[str, list[float]] = field(default_factory=lambda: {"bot": [], "floor": []})

    @property
    def cells(self) -> int:
        return max(1, self.rooms // 2)

    def all(self, label: str) -> list[float]:
        return self.seq[label] + self.conc[label]

    async def stop(self) -> None:
        for process in (self.bot, self.echo):
            if process is not None:
                await process.stop()
        for member in self.members:
            await member.stop()
        await self.hs.stop()


async def provision_and_cold_start(size: Size, reuse: bool) -> None:
    """Provision (or reuse) the homeserver of one size, then time the bot's first start."""
    saved = size.base / PROVISIONED
    if reuse and saved.exists():
        info = json.loads(saved.read_text())
        size.hs.port = info.pop("port")
        await size.hs.start()
        size.prov = Provisioned(**{**info, "config": Path(info["config"])})
        print(f"  reusing the {size.rooms} rooms provisioned before in {size.base}", flush=True)
        return
    await size.hs.start()
    prov = size.prov = await provision(size.hs, size.base, size.rooms)
    saved.write_text(json.dumps({**asdict(prov), "config": str(prov.config),
                                 "port": size.hs.port}))
    print(f"  {size.rooms} rooms provisioned in {prov.seconds:.0f} s ({prov.detail})",
          flush=True)
    await join_live(size)
    data = size.base / "data"
    bot = bot_process(prov.config, data, "cold")
    bot.start()
    try:
        size.cold_sync_s = await bot.wait_line("first sync done", 900)
        size.cold_ready_s = await bot.wait_line("scheduler started", 900)
        # A member asks while the start-up announcements are still going out.
        size.cold_reply_s = await size.members[0].ask(prov.live_room, "!help", timeout=900)
        size.cold_drained_s = await drained(data / "livcr.db", bot.started_at, 900)
        size.peak_kb = proc_status(bot.pid, "VmHWM")
    finally:
        await bot.stop()
    print(f"  cold start: first sync {size.cold_sync_s:.1f} s, scheduler "
          f"{size.cold_ready_s:.1f} s, a reply meanwhile {size.cold_reply_s:.1f} s, outbox "
          f"drained {size.cold_drained_s:.1f} s, VmHWM "
          f"{size.peak_kb / 1024:.0f} MB", flush=True)


async def join_live(size: Size) -> None:
    """The live members' E2EE clients, in the first table room and the echo room (once)."""
    prov = size.prov
    assert prov is not None
    if size.members:
        return
    for name in LIVE:
        user_id = size.hs.user_id(localpart(0, name))
        member = await TimedMember.create(size.hs, user_id, size.base / "members" / name)
        size.members.append(member)
        await member.member.join(prov.live_room)
        await member.member.join(prov.echo_room)


async def warm_start(size: Size, reuse: bool) -> None:
    """Live members, the bot's restart (timed), the echo floor, warm-up messages."""
    prov = size.prov
    assert prov is not None
    await join_live(size)
    data = size.base / "data"
    bot = size.bot = bot_process(prov.config, data, "warm")
    before = bot.log().count("first sync done")
    bot.start()
    size.warm_sync_s = await bot.wait_line("first sync done", 900, after=before)
    size.warm_ready_s = await bot.wait_line("scheduler started", 900, after=before)
    await drained(data / "livcr.db", bot.started_at, 900)
    print(f"  {size.rooms} rooms, warm start: first sync {size.warm_sync_s:.1f} s, scheduler "
          f"{size.warm_ready_s:.1f} s", flush=True)
    echo_store = size.base / "echo"
    if reuse:  # a fresh device: the members' devices are new too
        prov.echo_token, prov.echo_device = await size.hs.login("echo", PASSWORD)
        echo_store = size.base / f"echo-{prov.echo_device}"
    size.echo = echo_process(size.hs, prov.echo_user, prov.echo_token, prov.echo_device,
                             echo_store)
    size.echo.start()
    await size.echo.wait_line("first sync done", 300)
    await asyncio.gather(*(m.ask(prov.live_room, "!ack", timeout=120) for m in size.members))
    await asyncio.gather(*(m.ask(prov.echo_room, "warm-up", timeout=120)
                           for m in size.members))
    await asyncio.gather(*(m.ask(prov.live_room, "!help", timeout=120) for m in size.members))


async def measure(sizes: list[Size], rounds: int, concurrent_rounds: int) -> None:
    """Every size's bot and floor, round by round, the sizes taking turns: a drift of the
    shared machine's speed affects every size alike."""
    for concurrent, count in ((False, rounds), (True, concurrent_rounds)):
        for round_ in range(count):
            order = sizes if round_ % 2 == 0 else sizes[::-1]
            for size in order:
                assert size.prov is not None
                targets = {"bot": (size.prov.live_room,), "floor": (size.prov.echo_room,)}
                result = await measure_pairs(targets, 1, size.members, concurrent,
                                             first_round=round_)
                into = size.conc if concurrent else size.seq
                for label in targets:
                    into[label] += flatten(result[label])
    for size in sizes:
        assert size.bot is not None
        size.peak_kb = max(size.peak_kb, proc_status(size.bot.pid, "VmHWM"))


def _s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


async def run(args: argparse.Namespace, base: Path) -> int:
    print(f"machine: {machine()}")
    sizes: list[Size] = []
    try:
        for rooms in args.sizes:
            print(f"size {rooms} table rooms ({max(1, rooms // 2)} cells):", flush=True)
            folder = base / f"size-{rooms}"
            size = Size(rooms, folder, Homeserver(folder / "hs"))
            sizes.append(size)
            await provision_and_cold_start(size, args.reuse)
        print("warm starts (every homeserver and bot stays up for the latency rounds):",
              flush=True)
        for size in sizes:
            await warm_start(size, args.reuse)
        print(f"latency: {args.rounds} sequential rounds of {len(COMMANDS)} commands and "
              f"{args.concurrent_rounds} rounds of {len(LIVE)} members at once, per size, "
              "the sizes taking turns", flush=True)
        await measure(sizes, args.rounds, args.concurrent_rounds)
    finally:
        for size in sizes:
            await size.stop()

    reference = min(sizes, key=lambda z: z.rooms)
    base_median = stats(reference.all("bot"))[0]
    rows = []
    for z in sizes:
        bot_med, bot_p95, bot_max = stats(z.all("bot"))
        floor_med = stats(z.all("floor"))[0]
        rows.append([
            str(z.rooms), str(z.cells), _s(z.cold_sync_s), _s(z.cold_ready_s),
            _s(z.cold_reply_s), _s(z.cold_drained_s), _s(z.warm_sync_s), _s(z.warm_ready_s),
            f"{z.peak_kb / 1024:.0f}", f"{stats(z.seq['bot'])[0]:.0f}",
            f"{stats(z.conc['bot'])[0]:.0f}", f"{bot_med:.0f}", f"{bot_p95:.0f}",
            f"{bot_max:.0f}", f"{floor_med:.0f}", f"{bot_med / floor_med:.2f}",
            f"{bot_med / base_median:.2f}",
        ])
    print()
    print("scale: ready time (s from process start), peak RSS (MB), reply latency (ms)")
    print_table(["rooms", "cells", "cold sync", "cold ready", "cold reply", "cold drained",
                 "warm sync",
                 "warm ready", "peak RSS", "seq med", "conc med", "bot med", "bot p95",
                 "bot max", "floor med", "bot/floor", f"vs {reference.rooms}"], rows)
    print()
    biggest = max(sizes, key=lambda z: z.rooms)
    readies = [v for v in (biggest.cold_ready_s, biggest.warm_ready_s) if not math.isnan(v)]
    ready = max(readies)
    ratio = stats(biggest.all("bot"))[0] / base_median
    peak = biggest.peak_kb / 1024
    for text, ok in (
        (f"ready at {biggest.rooms} rooms: {ready:.1f} s (cold or warm, worst; target "
         f"< {READY_TARGET_S:.0f} s)", ready < READY_TARGET_S),
        (f"peak RSS at {biggest.rooms} rooms: {peak:.0f} MB (target < {RSS_TARGET_MB:.0f} MB)",
         peak < RSS_TARGET_MB),
        (f"median latency at {biggest.rooms} rooms / at {reference.rooms}: {ratio:.2f} "
         f"(target <= {LATENCY_TARGET_RATIO})", ratio <= LATENCY_TARGET_RATIO),
    ):
        print(f"{text}: {'OK' if ok else 'MISSED'}")
    for z in sizes:
        if z.prov is not None:
            print(f"provisioning {z.rooms} rooms: {z.prov.seconds:.0f} s ({z.prov.detail})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 200, 1200],
                        help="numbers of table rooms (even; the smallest is the reference)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="sequential rounds of the command sequence")
    parser.add_argument("--concurrent-rounds", type=int, default=10,
                        help="rounds in which the three live members send at once")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (logs) instead of a temporary one")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: reuse the homeservers provisioned by an earlier run "
                             "there (no provisioning, no cold start; warm start and latency)")
    args = parser.parse_args(argv)
    if any(size < 2 or size % 2 for size in args.sizes):
        parser.error("sizes are even numbers of table rooms, at least 2")
    if args.reuse and args.keep is None:
        parser.error("--reuse needs --keep DIR")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args, args.keep.resolve()))
    with tempfile.TemporaryDirectory(prefix="livcr-scale-") as folder:
        return asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())
