"""``livcr demo``: an embedded Synapse, the bot, a demo roster and a scripted LIVC-R cycle.

Everything is real: the homeserver, end-to-end encryption, the bot process logic. The script
is played by member clients; the transcript shows what a member sees in the table rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from icalendar import Calendar

from bot.config import load_config
from bot.core import render
from bot.core.app import Core
from bot.core.service import Service
from bot.edge.rooms import setup_rooms
from commands.meetings.cadence import next_working_day
from commands.model import Table
from demo.homeserver import Homeserver, free_port
from demo.member import MemberClient, Seen
from storage.meetings import PLANNED

PASSWORD = "livcr-demo-2026"
SERVER = "livcr.demo"

#: name, display, role, organisation, tables
ROSTER = (
    ("an.peeters", "An Peeters", "chair", "Preventiedienst", ("operational", "strategic")),
    ("inspecteur.wouters", "Insp. Wouters", "information_officer", "Politiezone Voorbeeldstad",
     ("operational",)),
    ("sara.jacobs", "Sara Jacobs", "partner", "OCMW", ("operational",)),
    ("tom.maes", "Tom Maes", "partner", "CLB", ("operational",)),
    ("burgemeester", "Burgemeester", "mayor", "Stad Voorbeeldstad", ("strategic",)),
)
OUTSIDER = ("eve.buiten", "Eve (not on the roster)")


@dataclass
class Step:
    """One line of the scenario: who says what where, and what must come back."""

    who: str
    table: str
    say: str
    expect: Callable[[list[Seen]], bool]
    why: str
    silent: bool = False  # expect no answer at all
    also: bool = False  # also collect what the bot posts besides the reply (announcements, files)
    capture: str | None = None  # remember the first case code of the answer under this name
    result: list[Seen] = field(default_factory=list)
    ok: bool = False


@dataclass(frozen=True)
class Contains:
    """The bot's messages contain every needle (case-insensitive); ``{name}`` in a needle is
    a value captured by an earlier step; ``file`` also asks for an encrypted attachment."""

    needles: tuple[str, ...]
    file: bool = False

    def __call__(self, replies: list[Seen]) -> bool:
        text = "\n".join(r.body for r in replies).lower()
        if self.file and not any(r.content.get("msgtype") == "m.file" for r in replies):
            return False
        return all(n.lower() in text for n in self.needles)

    def filled(self, found: dict[str, str]) -> Contains:
        return Contains(tuple(n.format_map(found) for n in self.needles), self.file)


def contains(*needles: str) -> Contains:
    return Contains(needles)


def nothing(replies: list[Seen]) -> bool:
    return not replies


def with_file(check: Contains) -> Contains:
    """``check`` and an encrypted calendar attachment among the messages."""
    return Contains(check.needles, file=True)


#: The scenario's placeholder for the extra meeting's date, filled when that step is played.
EXTRA_MEETING = "extra_meeting"


def free_day(core: Core, table: Table = Table.OPERATIONAL) -> date:
    """The first working day at least a week after today (by the bot's clock, in the cell's
    zone) on which the table has no meeting planned: the extra meeting the chair schedules
    can never fall on a cadence meeting, whatever the day of the week and the cadence."""
    cell = core.config.cells[0]
    day = core.clock().astimezone(cell.tz).date() + timedelta(days=7)
    with core.db.reading() as repos:
        taken = {m.starts_at.astimezone(cell.tz).date()
                 for m in repos.meetings.of_table(cell.id, table.value, [PLANNED])}
    day = next_working_day(day)
    while day in taken:
        day = next_working_day(day + timedelta(days=1))
    return day


def scenario() -> list[Step]:
    """The scripted cycle; later capabilities add their steps here."""
    return [
        Step("an.peeters", "operational", "!help", contains("!ack"),
             "before acknowledging confidentiality, only the request to ack"),
        Step("an.peeters", "operational", "!ack", contains("genoteerd"),
             "the chair acknowledges the confidentiality of the table"),
        Step("sara.jacobs", "operational", "/ack", contains("genoteerd"),
             "a partner acknowledges, with / as prefix"),
        Step("inspecteur.wouters", "operational", "!ack", contains("genoteerd"),
             "the information officer acknowledges"),
        Step("tom.maes", "operational", "!ack", contains("genoteerd"),
             "the school's CLB acknowledges"),
        Step("an.peeters", "operational", "!help", contains("!members"),
             "the list of commands"),
        Step("sara.jacobs", "operational", "/help members", contains("members add"),
             "help on one command, with usage and example"),
        Step("an.peeters", "operational", "!members",
             contains("Ledenlijst", "informatieambtenaar"),
             "the roster of the operational table"),
        Step("tom.maes", "operational", "!vergadering", contains("ken ik niet"),
             "an unknown command gets a clear answer, never silence"),
        Step(OUTSIDER[0], "operational", "!help", nothing,
             "someone who is not on the roster gets no answer", silent=True),
        Step("burgemeester", "strategic", "!ack", contains("genoteerd"),
             "the mayor acknowledges at the strategic table"),
        Step("sara.jacobs", "operational",
             '!signal fenomeen=vroeg indicatoren=isolement,online-propaganda getoetst=ja '
             'context=school samenvatting="Trekt zich terug op school en deelt extremistische '
             'filmpjes"',
             with_file(contains("Signaal aangemeld", "C-", "maandelijks", "slaapstand")),
             "a partner signals a case: a code, never a name; the sleeping table wakes up "
             "(monthly, with its calendar invitation) and the chair is asked for a meeting",
             also=True, capture="code"),
        Step("tom.maes", "operational",
             '!signal fenomeen=vroeg indicatoren=isolement getoetst=ja '
             'samenvatting="Gesprek met mevrouw Janssens, tel 0470 12 34 56"',
             contains("persoonsgegevens", "telefoonnummer"),
             "a signal carrying personal data is refused, stored nowhere and redacted"),
        Step("an.peeters", "operational", "!case list", contains("{code}", "aangemeld"),
             "dossiers by code and status only"),
        Step("an.peeters", "operational", "!case flag {code} problematisch",
             contains("problematisch", "vergadert nu wekelijks"),
             "a problematic dossier: the cadence becomes weekly and the table is told",
             also=True),
        Step("tom.maes", "operational", "!meeting", contains("Ritme: wekelijks"),
             "the next meeting, the cadence and why"),
        Step("an.peeters", "operational", f"!meeting schedule {{{EXTRA_MEETING}}} 10:00",
             with_file(contains("Vergadering gepland", "10:00")),
             "the chair plans an extra meeting; its invitation (.ics) is an encrypted file",
             also=True),
        Step("tom.maes", "operational", "!agenda", contains("Agenda", "{code}"),
             "the generated agenda: new signals, evaluations, fiches, problematic dossiers"),
        Step("an.peeters", "operational", "!meeting start", contains("geopend", "{code}"),
             "the chair opens a meeting now, with its agenda"),
        Step("sara.jacobs", "operational", "!present", contains("aanwezig"),
             "members record that they take part (they are the ones who vote)"),
        Step("inspecteur.wouters", "operational", "!present", contains("aanwezig"),
             "the information officer takes part"),
        Step("tom.maes", "operational", "!present", contains("4 aanwezig"),
             "the school's CLB takes part"),
        Step("an.peeters", "operational", "!case scenario {code} psychosociaal",
             contains("psychosocial", "volgende evaluatie"),
             "the table attaches a follow-up trajectory and its evaluation date"),
        Step("an.peeters", "operational", "!vote open aanvaarden {code}",
             contains("Stemming #1", "{code}"),
             "the chair proposes to accept the dossier for follow-up; a poll appears too",
             also=True),
        Step("sara.jacobs", "operational", "!vote ja", contains("Stem genoteerd"),
             "ballots from the members present"),
        Step("tom.maes", "operational", "!vote nee", contains("nee 1"),
             "one no blocks the proposal until it is changed"),
        Step("inspecteur.wouters", "operational", "!vote ja", contains("Stem genoteerd"),
             "the information officer votes"),
        Step("an.peeters", "operational", "!vote status", contains("Nee: @tom.maes"),
             "who voted what, who is still missing"),
        Step("an.peeters", "operational", "!vote ja", contains("nog te stemmen 0"),
             "the chair votes; still blocked by the no"),
        Step("tom.maes", "operational", "!vote ja", contains("aangenomen", "alle aanwezige"),
             "the CLB changes its ballot: every member present said yes — consensus",
             also=True),
        Step("an.peeters", "operational",
             "!fiche {code} set effectiviteit=positief bereidheid=matig "
             "distantiering=gedeeltelijk voortzetten=ja opties=ja paraatheid=geen-aanwijzingen "
             'andere="Begeleiding via school en jeugdwerk loopt"',
             contains("volledig"),
             "the table fills in the feedback fiche for the Local Task Force"),
        Step("an.peeters", "operational", "!vote open fiche {code}",
             contains("458ter"),
             "a fiche vote reminds everyone of professional secrecy", also=True),
        Step("tom.maes", "operational", "!vote onthouding", contains("onthouding 1"),
             "an abstention blocks the fiche"),
        Step("an.peeters", "operational", "!vote close",
             contains("niet aangenomen", "Er verandert niets"),
             "closed without consensus: the fiche is not sent", also=True),
        Step("an.peeters", "operational", "!vote open fiche {code}", contains("Stemming #3"),
             "a new fiche vote", also=True),
        Step("sara.jacobs", "operational", "!vote ja", contains("Stem genoteerd"),
             "ballots"),
        Step("tom.maes", "operational", "!vote ja", contains("Stem genoteerd"),
             "ballots"),
        Step("an.peeters", "operational", "!vote ja", contains("Stem genoteerd"),
             "ballots"),
        Step("inspecteur.wouters", "operational", "!vote ja",
             contains("aangenomen", "verstuurd"),
             "consensus: the fiche goes to the information officer in an encrypted direct "
             "room; the table only gets the confirmation", also=True),
        Step("an.peeters", "operational", "!meeting end",
             contains("Besluitenlijst", "{code}: traject psychosocial", "Aanwezig (4)",
                      "Volgende vergadering"),
             "the decision list: by code only, with who took part and the next meeting"),
    ]


def _short(text: str, width: int = 96) -> str:
    lines = []
    for line in text.strip().splitlines():
        lines.extend(textwrap.wrap(line, width) or [""])
    return "\n".join("      " + line for line in lines)


def write_config(base: Path, hs: Homeserver) -> Path:
    members = []
    for name, _display, role, org, tables in ROSTER:
        members.append(
            "\n[[members]]\n"
            f'user_id = "@{name}:{SERVER}"\nrole = "{role}"\norganisation = "{org}"\n'
            f"tables = [{', '.join(repr(t).replace(chr(39), chr(34)) for t in tables)}]\n"
        )
    text = f"""# Generated by `livcr demo`: a demo cell on an embedded homeserver.
[matrix]
homeserver = "{hs.url}"
user_id = "@livcr:{SERVER}"
device_name = "livcr-bot"
data_dir = "bot-data"

[storage]
database_url = "sqlite:///bot-data/livcr.db"

[cell]
name = "LIVC-R Voorbeeldstad"
municipalities = ["Voorbeeldstad"]
language = "nl"
timezone = "Europe/Brussels"

[tables.operational]
room = "#livcr-operationeel:{SERVER}"
meeting_weekday = "tuesday"
meeting_time = "10:00"

[tables.strategic]
room = "#livcr-strategisch:{SERVER}"
""" + "".join(members)
    path = base / "config.toml"
    path.write_text(text)
    return path


async def _play(step: Step, clients: dict[str, MemberClient], rooms: dict[str, str],
                bot: str, found: dict[str, str]) -> None:
    client = clients[step.who]
    step.say = step.say.format_map(found)
    if isinstance(step.expect, Contains):
        step.expect = step.expect.filled(found)
    room = rooms[step.table]
    mark = len(client.seen)
    event_id = await client.send(room, step.say)

    def collected(first: Seen) -> list[Seen]:
        return [first] + [
            s for s in client.seen[mark:]
            if s.sender == bot and s is not first and s.room_id == room
            and (s.in_reply_to == event_id or step.also)
        ]

    if step.silent:
        await asyncio.sleep(3)
        step.result = [s for s in client.seen if s.in_reply_to == event_id]
    else:
        try:
            first = await client.reply_to(event_id, bot, timeout=30)
            await asyncio.sleep(0.3)  # a command may produce more than one message
            step.result = collected(first)
            # Announcements and attachments follow the reply: wait for them a little.
            deadline = asyncio.get_running_loop().time() + (10 if step.also else 0)
            while not step.expect(step.result) and (
                    asyncio.get_running_loop().time() < deadline):
                await asyncio.sleep(0.2)
                step.result = collected(first)
            if step.also:
                await asyncio.sleep(0.5)
                step.result = collected(first)
        except TimeoutError:
            step.result = []
    step.ok = step.expect(step.result)
    if step.capture and step.result:
        match = re.search(r"C-[0-9A-Z]{5}", "\n".join(r.body for r in step.result))
        if match:
            found[step.capture] = match.group(0)


async def _describe_file(client: MemberClient, seen: Seen) -> str:
    """What a member's calendar would show of an encrypted ``.ics`` attachment."""
    name = seen.content.get("body", "file")
    try:
        calendar = Calendar.from_ical(await client.download(seen))
        event = calendar.walk("VEVENT")[0]
        start = event.decoded("DTSTART")
        return (f"{name}: METHOD {calendar['METHOD']}, {start:%A %Y-%m-%d %H:%M} "
                f"({start.tzinfo}), UID {event['UID']}, SEQUENCE {event['SEQUENCE']}")
    except Exception as exc:  # the transcript says so; the step's check decides
        return f"{name}: could not be read ({type(exc).__name__})"


async def _officer_inbox(officer: MemberClient, bot: str) -> bool:
    """The information officer accepts the bot's direct room and reads the fiche there."""
    invite = await officer.accept_invite()
    if invite is None:
        print("The information officer got no direct room.")
        return False
    try:
        fiche = await officer.wait_for(
            lambda s: s.room_id == invite and s.sender == bot and "Terugkoppelingsfiche" in s.body,
            timeout=30)
        attachment = await officer.wait_for(
            lambda s: s.room_id == invite and s.content.get("msgtype") == "m.file", timeout=30)
    except TimeoutError:
        print("The fiche did not arrive in the direct room.")
        return False
    print("\n=== The information officer's encrypted direct room with the bot ===\n")
    print(f"    livcr-bot (message, decrypted={fiche.decrypted}):")
    print(_short(fiche.body))
    print(f"    livcr-bot (file): {attachment.content.get('body')}, "
          f"{len(await officer.download(attachment))} bytes, decrypted")
    return True


async def run_demo(base: Path, once: bool = False) -> int:
    await asyncio.to_thread(_fresh_dir, base)
    port = 8008 if _port_free(8008) else free_port()
    hs = Homeserver(base / "synapse", server_name=SERVER, port=port)
    print(f"Starting an embedded Synapse on {hs.url} ...", flush=True)
    await hs.start()
    clients: dict[str, MemberClient] = {}
    service: Service | None = None
    task: asyncio.Task[None] | None = None
    try:
        await hs.register("livcr", PASSWORD)
        config_path = write_config(base, hs)
        import os

        os.environ["LIVCR_MATRIX_PASSWORD"] = PASSWORD
        config = load_config(config_path)
        service = Service(config)
        await service.bot.login()
        results = await setup_rooms(service.bot.client, config, render)
        rooms = {r.table.value: r.room_id for r in results}
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.bot.ready.wait(), 60)
        for name, *_ in (*ROSTER, OUTSIDER):
            await hs.register(name, PASSWORD)
            client = MemberClient(hs.url, f"@{name}:{SERVER}", PASSWORD, base / "members" / name)
            await client.login()
            await client.start()
            clients[name] = client
        for name, _d, _r, _o, tables in ROSTER:
            for table in tables:
                await clients[name].join(rooms[table])
        chair = clients["an.peeters"]
        await chair.client.room_invite(rooms["operational"], f"@{OUTSIDER[0]}:{SERVER}")
        await clients[OUTSIDER[0]].join(rooms["operational"])
        bot = config.matrix.user_id
        steps = scenario()
        found: dict[str, str] = {}
        displays = {n: d for n, d, *_ in ROSTER} | {OUTSIDER[0]: OUTSIDER[1]}
        print("\n=== LIVC-R Voorbeeldstad — transcript as a member sees it ===\n")
        for step in steps:
            if f"{{{EXTRA_MEETING}}}" in step.say:
                day = await asyncio.to_thread(free_day, service.core)
                found[EXTRA_MEETING] = day.isoformat()
            await _play(step, clients, rooms, bot, found)
            mark = "ok " if step.ok else "FAIL"
            print(f"[{mark}] #{step.table:<11} {displays[step.who]}: {step.say}")
            print(f"       ({step.why})")
            for reply in step.result:
                msgtype = reply.content.get("msgtype")
                if msgtype == "m.file":
                    described = await _describe_file(clients[step.who], reply)
                    print(f"    livcr-bot (encrypted file, decrypted={reply.decrypted}):")
                    print(_short(described))
                    continue
                kind = "notice" if msgtype == "m.notice" else "message"
                mentions = reply.content.get("m.mentions", {}).get("user_ids")
                also = "" if reply.in_reply_to else ", not a reply"
                ping = f", mentions {', '.join(mentions)}" if mentions else ""
                print(f"    livcr-bot ({kind}{also}{ping}, decrypted={reply.decrypted}):")
                print(_short(reply.body))
            if step.silent and not step.result:
                print("    (no answer)")
            print()
        warning = [s for s in chair.seen if s.sender == bot and OUTSIDER[0] in s.body]
        if warning:
            print("The chair was told about the outsider:")
            print(_short(warning[0].body))
        delivered = await _officer_inbox(clients["inspecteur.wouters"], bot)
        failed = [s for s in steps if not s.ok] + ([] if delivered else ["fiche"])
        print(f"\n{len(steps) - len([s for s in steps if not s.ok])} of {len(steps)} steps got "
              f"their expected reply; the fiche {'reached' if delivered else 'did NOT reach'} "
              "the information officer.")
        if once:
            return 1 if failed else 0
        print(f"\nThe homeserver keeps running at {hs.url} (server name {SERVER}).")
        print("Log in with any Matrix client (e.g. Element) using that homeserver URL:")
        for name, display, role, *_ in ROSTER:
            print(f"  @{name}:{SERVER}  password {PASSWORD}  ({display}, {role})")
        print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        return 0
    finally:
        for client in clients.values():
            await client.stop()
        if service is not None:
            service.stop()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        await hs.stop()


def _fresh_dir(base: Path) -> None:
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


__all__ = ["re", "run_demo", "scenario"]
