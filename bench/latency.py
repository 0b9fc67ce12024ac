"""Reply latency of the bot against the echo floor (spec §12: median within 1.15×).

Run as a plain script from the repository (inside .venv)::

    python bench/latency.py [--members 3 10] [--rounds 20] [--concurrent-rounds 10]

Starts a throw-away Synapse on loopback, provisions one cell (an encrypted operational table
room made by ``livcr setup``) and, for the floor, an encrypted room of ``bench/echo_bot.py``
(a bare matrix-nio E2EE bot answering every text); both rooms have the same members, each a
real E2EE client. The bot runs as ``livcr run`` and the echo bot as a subprocess too, at the
same time, on the same homeserver. After ``!ack`` (and a warm-up message each, so every
megolm session is shared before timing starts) the members send the same commands to both:
read-only ones (``!help``, ``!case list``, ``!members``) and a state-changing one
(``!signal ...``), first one at a time with members taking turns, then every member at once.
Bot and floor alternate which goes first. "Latency" is command sent → the decrypted reply
relating to it received by its sender. Prints median, p95 and max for both and the ratio of
the medians; reports a verdict but never fails on time: machines differ.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    COMMANDS,
    PASSWORD,
    READ_ONLY,
    STATE_CHANGING,
    Api,
    Homeserver,
    TimedMember,
    bot_process,
    cpu_seconds,
    echo_process,
    flatten,
    machine,
    measure_pairs,
    print_table,
    run_setup,
    stats,
    toml_value,
)

TARGET_RATIO = 1.15


def config_text(hs: Homeserver, base: Path, bot: str, members: list[tuple[str, str, str]]
                ) -> str:
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
        "",
        "[cell]",
        'name = "LIVC-R Benchstad"',
        'municipalities = ["Benchstad"]',
        'language = "en"',
        'timezone = "Europe/Brussels"',
        "",
        "[tables.operational]",
        f'room = "#bench-op:{hs.server_name}"',
    ]
    for user_id, role, org in members:
        lines += ["", "[[members]]", f"user_id = {toml_value(user_id)}",
                  f"role = {toml_value(role)}", f"organisation = {toml_value(org)}",
                  'tables = ["operational"]']
    return "\n".join(lines) + "\n"


def roster(hs: Homeserver, count: int) -> list[tuple[str, str, str]]:
    people = [("chair", "chair", "Preventiedienst"),
              ("io", "information_officer", "Politiezone Benchstad")]
    orgs = ("OCMW", "CLB", "CAW", "VDAB", "Jeugddienst", "Justitiehuis", "Ziekenhuis", "School")
    for index in range(max(0, count - 2)):
        people.append((f"partner{index + 1}", "partner", orgs[index % len(orgs)]))
    return [(hs.user_id(f"bench{name}"), role, org) for name, role, org in people[:count]]


async def run(args: argparse.Namespace, base: Path, size: int) -> tuple[float, float]:
    """One measurement with ``size`` members; returns the median ratios (sequential,
    concurrent)."""
    hs = Homeserver(base / "hs")
    print(f"machine: {machine()}; {size} members")
    began = time.monotonic()
    await hs.start()
    processes = []
    members: list[TimedMember] = []
    try:
        async with Api(hs) as api:
            bot_user = await hs.register("benchbot", PASSWORD)
            echo_user = await hs.register("benchecho", PASSWORD)
            people = roster(hs, size)
            for user_id, *_ in people:
                await hs.register(user_id[1:].split(":")[0], PASSWORD)
            config = base / "config.toml"
            config.write_text(config_text(hs, base, bot_user, people))
            output = await run_setup(config)
            bot_room = next(line.split(": ", 1)[1].split()[0]
                            for line in output.splitlines() if ": !" in line)
            echo_token, echo_device = await hs.login("benchecho", PASSWORD)
            echo_room = await api.create_room(echo_token, "Echo floor",
                                              invite=[u for u, *_ in people])
            for user_id, *_ in people:
                member = await TimedMember.create(hs, user_id, base / "members" / user_id[1:])
                members.append(member)
                await member.member.join(bot_room)
                await member.member.join(echo_room)

        bot = bot_process(config, base / "data", "latency")
        echo = echo_process(hs, echo_user, echo_token, echo_device, base / "echo")
        processes = [bot, echo]
        bot.start()
        echo.start()
        await bot.wait_line("scheduler started", 120)
        await echo.wait_line("first sync done", 120)
        # Warm-up: confidentiality acknowledged, every megolm session shared both ways.
        await asyncio.gather(*(m.ask(bot_room, "!ack") for m in members))
        await asyncio.gather(*(m.ask(echo_room, "warm-up") for m in members))
        await asyncio.gather(*(m.ask(bot_room, "!help") for m in members))
        print(f"set-up took {time.monotonic() - began:.0f} s; measuring "
              f"{args.rounds} sequential rounds of {len(COMMANDS)} commands and "
              f"{args.concurrent_rounds} rounds of {len(members)} members at once")
        targets = {"bot": (bot_room,), "floor": (echo_room,)}
        cpu_before = {"bot": cpu_seconds(bot.pid), "floor": cpu_seconds(echo.pid)}
        profile = args.profile
        if profile is not None and len(args.members) > 1:
            profile = profile.with_name(f"{profile.name}.{size}")
        profiler = await start_profiler(profile, bot.pid)
        sequential = await measure_pairs(targets, args.rounds, members[:size],
                                         concurrent=False)
        concurrent = await measure_pairs(targets, args.concurrent_rounds, members,
                                         concurrent=True)
        cpu = {"bot": cpu_seconds(bot.pid) - cpu_before["bot"],
               "floor": cpu_seconds(echo.pid) - cpu_before["floor"]}
        await stop_profiler(profiler)
    finally:
        for process in processes:
            await process.stop()
        for member in members:
            await member.stop()
        await hs.stop()

    rows = []
    overall: dict[str, list[float]] = {"bot": [], "floor": []}
    for phase, data in ((f"sequential (1 of {len(members)})", sequential),
                        (f"concurrent ({len(members)} at once)", concurrent)):
        for kind, only in (("read-only", READ_ONLY), ("state-changing", STATE_CHANGING),
                           ("all", None)):
            bot_values = flatten(data["bot"], only)
            floor_values = flatten(data["floor"], only)
            if only is None:
                overall["bot"] += bot_values
                overall["floor"] += floor_values
            rows.append(_row(f"{phase}, {kind}", bot_values, floor_values))
        for command in COMMANDS:  # what the bot adds over the floor, per command kind
            label = " ".join(word for word in command.split() if "=" not in word)
            rows.append(_row(f"  {label}", flatten(data["bot"], (command,)),
                             flatten(data["floor"], (command,))))
    print()
    print("reply latency, command sent -> decrypted reply received (ms)")
    print_table(["commands", "n", "bot med", "bot p95", "bot max", "floor med", "floor p95",
                 "floor max", "ratio med", "added med"], rows)
    replies = len(overall["bot"])
    print()
    print(f"CPU time per reply (process user+system): bot {cpu['bot'] / replies * 1000:.1f} ms, "
          f"floor {cpu['floor'] / replies * 1000:.1f} ms")
    seq_ratio = (stats(flatten(sequential["bot"]))[0]
                 / stats(flatten(sequential["floor"]))[0])
    conc_ratio = (stats(flatten(concurrent["bot"]))[0]
                  / stats(flatten(concurrent["floor"]))[0])
    seq_extra = stats(flatten(sequential["bot"]))[0] - stats(flatten(sequential["floor"]))[0]
    conc_extra = (stats(flatten(concurrent["bot"]))[0]
                  - stats(flatten(concurrent["floor"]))[0])
    print(f"median ratio bot/floor: sequential {seq_ratio:.2f} ({seq_extra:+.0f} ms), "
          f"concurrent {conc_ratio:.2f} ({conc_extra:+.0f} ms); target <= {TARGET_RATIO}: "
          f"{'OK' if max(seq_ratio, conc_ratio) <= TARGET_RATIO else 'MISSED'}")
    return seq_ratio, conc_ratio


async def start_profiler(output: Path | None, pid: int) -> asyncio.subprocess.Process | None:
    """py-spy sampling the bot (every thread, idle time included) while it is measured."""
    if output is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(pid), "--rate", "250", "--threads", "--idle",
        "--format", "raw", "--output", str(output),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def stop_profiler(profiler: asyncio.subprocess.Process | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await profiler.wait()


def _row(name: str, bot: list[float], floor: list[float]) -> list[str]:
    if not bot or not floor:
        return [name, str(len(bot)), *(["-"] * 8)]
    b, f = stats(bot), stats(floor)
    return [name, str(len(bot)), *(f"{v:.1f}" for v in b), *(f"{v:.1f}" for v in f),
            f"{b[0] / f[0]:.2f}", f"{b[0] - f[0]:+.1f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, nargs="+", default=[3, 10],
                        help="member counts (>= 2), each measured on its own homeserver: "
                             "3 is a fast homeserver's case, 10 a busy table")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy's samples of the bot (raw, collapsed stacks) here")
    parser.add_argument("--rounds", type=int, default=20,
                        help="sequential rounds of the command sequence")
    parser.add_argument("--concurrent-rounds", type=int, default=10,
                        help="rounds in which every member sends at once")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (logs) instead of a temporary one")
    args = parser.parse_args(argv)
    if min(args.members) < 2 or args.rounds < 1 or args.concurrent_rounds < 1:
        parser.error("--members must be at least 2, the rounds at least 1")
    summary: list[tuple[int, float, float]] = []
    for size in args.members:
        if args.keep is not None:
            folder = args.keep / f"members-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            ratios = asyncio.run(run(args, folder.resolve(), size))
        else:
            with tempfile.TemporaryDirectory(prefix="livcr-latency-") as tmp:
                ratios = asyncio.run(run(args, Path(tmp), size))
        summary.append((size, *ratios))
        print()
    if len(summary) > 1:
        print_table(["members", "sequential ratio", "concurrent ratio"],
                    [[str(n), f"{a:.2f}", f"{b:.2f}"] for n, a, b in summary])
    return 0


if __name__ == "__main__":
    sys.exit(main())
