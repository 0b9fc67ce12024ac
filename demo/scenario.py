"""The scripted LIVC-R cycle of ``livcr demo``: the demo roster and every step with the reply
it expects (played by :mod:`demo.cycle`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.core.app import Core
from commands.meetings.cadence import next_working_day
from commands.model import Table
from demo.member import Seen
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
    reset_identity: bool = False  # the member first resets their cross-signing identity
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


#: The placeholder for the due date of the demo's action, filled when that step is played.
ACTION_DUE = "action_due"


def due_before(today: date, meeting_day: date) -> date:
    """A due date from ``today`` on (the bot refuses past ones) that has passed by
    ``meeting_day``: today itself, whenever the meeting is on a later day."""
    return min(today, meeting_day - timedelta(days=1)) if meeting_day > today else today


def overdue_by_next_meeting(core: Core, table: Table = Table.OPERATIONAL) -> date:
    """:func:`due_before` the table's next planned meeting (today when none is planned), so
    the demo's action shows as overdue on that meeting's agenda."""
    cell = core.config.cells[0]
    now = core.clock()
    today = now.astimezone(cell.tz).date()
    with core.db.reading() as repos:
        planned = sorted(m.starts_at for m in repos.meetings.of_table(
            cell.id, table.value, [PLANNED]) if m.starts_at > now)
    if not planned:
        return today
    return due_before(today, planned[0].astimezone(cell.tz).date())


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
        Step("an.peeters", "operational", "!meeting start",
             contains("geopend", "{code}", "458ter"),
             "the chair opens a meeting now, with its agenda and the confidentiality statement",
             also=True),
        Step("sara.jacobs", "operational", "!present", contains("aanwezig", "vertrouwelijkheid"),
             "members record that they take part (they are the ones who vote) and confirm "
             "the confidentiality of the meeting"),
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
        Step("tom.maes", "operational", "!recuse {code}", contains("niet deel", "{code}"),
             "the CLB takes no part in this case's votes in this meeting (no duty to speak)"),
        Step("an.peeters", "operational", "!vote ja", contains("Stem genoteerd"),
             "ballots"),
        Step("inspecteur.wouters", "operational", "!vote ja",
             contains("aangenomen", "verstuurd", "1 onthield zich"),
             "consensus: the fiche goes to the information officer in an encrypted direct "
             "room; the table only gets the confirmation", also=True),
        Step("an.peeters", "operational", "!meeting end",
             contains("Besluitenlijst", "{code}: traject psychosocial", "Aanwezig (4)",
                      "- CLB: @tom.maes", "Onthoudingen van deelname: {code}: @tom.maes",
                      "Volgende vergadering"),
             "the decision list: by code only, with who took part by organisation, the "
             "recusal and the next meeting"),
        Step("tom.maes", "operational",
             f'!action add {{code}} eigenaar=CLB tegen={{{ACTION_DUE}}} '
             '"Trajectbegeleiding opstarten"',
             contains("Actie {code}/1", "CLB"),
             "an action for the dossier: an organisation of the table, a due date, screened text"),
        Step("sara.jacobs", "operational", "!agenda",
             contains("Achterstallige acties: {code}/1"),
             "by the next meeting that action is overdue: it is on that meeting's agenda"),
        Step("sara.jacobs", "operational", "!action done {code}/1",
             contains("Alleen de voorzitter of een lid van CLB"),
             "only the chair or the owning organisation changes an action"),
        Step("tom.maes", "operational", "!action status {code}/1 niet-mogelijk",
             contains("niet mogelijk"),
             "the CLB could not do it: not possible (not the same as not attempted)"),
        Step("sara.jacobs", "operational", "!members", nothing,
             "Sara reset her cryptographic identity: the bot blocks her (no answer, no keys) "
             "and at once tells the chair the new key's fingerprint", silent=True,
             reset_identity=True),
        Step("an.peeters", "operational", f"!members trust @sara.jacobs:{SERVER}",
             contains("opnieuw vertrouwd"),
             "the chair checked the key with Sara by phone and accepts the key she was shown"),
        Step("sara.jacobs", "operational", "!members", contains("@sara.jacobs"),
             "trusted again: Sara's commands count and she reads the answers"),
    ]
