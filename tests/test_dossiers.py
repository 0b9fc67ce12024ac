"""Signals and dossiers through the dispatcher, without a server (spec §6, §7, §10)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest

from bot.config import Config
from bot.core.dispatcher import Dispatcher
from bot.core.render import render
from commands.dossiers import workflow as dossiers
from commands.framework import ChangeRecorder, Output, Redact, Refusal, Reply
from commands.model import Table
from storage.db import Database
from tests.factories import (
    CHAIR,
    IO,
    MAYOR,
    NOW,
    OUTSIDER,
    PARTNER,
    ack_all,
    decide,
    make_config,
    memory_db,
    run,
    say,
)

VALID = "!signal phenomenon=HTF indicators=isolation,threats assessed=yes context=school"
CELL = "livc-r-voorbeeldstad"


@pytest.fixture
def config() -> Config:
    return make_config(language="en")


@pytest.fixture
def db(config: Config) -> Iterator[Database]:
    with memory_db() as database:
        ack_all(database, config)
        yield database


@pytest.fixture
def dispatcher(config: Config) -> Dispatcher:
    return Dispatcher(config, scheduler=ChangeRecorder())


def count(db: Database) -> int:
    with db.unit_of_work() as repos:
        return len(repos.dossiers.list(CELL))


def new_case(dispatcher: Dispatcher, db: Database) -> str:
    answer = say(dispatcher, db, VALID, sender=PARTNER)
    match = re.search(r"C-[0-9A-Z]{5}", answer)
    assert match, answer
    return match.group(0)


def test_valid_signal_gets_a_code_that_case_list_shows(dispatcher: Dispatcher,
                                                       db: Database) -> None:
    code = new_case(dispatcher, db)
    assert re.fullmatch(r"C-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{5}", code)
    listing = say(dispatcher, db, "!case list", sender=IO)
    assert code in listing
    assert "signalled" in listing
    shown = say(dispatcher, db, f"!case show {code.lower()}")
    assert "HTF" in shown
    assert "OCMW" in shown
    with db.unit_of_work() as repos:
        audit = repos.audit.for_code(CELL, code)
    assert [a.action for a in audit] == ["signal"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("!signal indicators=isolation assessed=yes", "`phenomenon=` is missing"),
        ("!signal phenomenon=XYZ indicators=isolation assessed=yes", "Unknown phenomenon"),
        ("!signal phenomenon=HTF assessed=yes", "at least 1 indicator"),
        ("!signal phenomenon=HTF indicators=weird assessed=yes", "Unknown indicator"),
        ("!signal phenomenon=HTF indicators=isolation", "first dealt with the behaviour"),
        ("!signal phenomenon=HTF indicators=isolation assessed=no", "first dealt with"),
        ("!signal phenomenon=HTF indicators=isolation assessed=yes context=moon",
         "Unknown context"),
        ("!signal phenomenon=HTF indicators=isolation assessed=yes source=LTF",
         "Only the information officer"),
        ("!signal phenomenon=HTF indicators=isolation assessed=yes source=school",
         "can only be `LTF`"),
        ('!signal phenomenon=HTF indicators=isolation assessed=yes summary="' + "x" * 501 + '"',
         "at most 500"),
        ("!signal phenomenon=HTF indicators=isolation assessed=yes colour=red",
         "key `colour`"),
        ('!signal phenomenon=HTF indicators=isolation assessed=yes summary="mevrouw Janssens"',
         "personal data"),
        ("!signal phenomenon=HTF indicators=isolation assessed=yes summary=0470123456",
         "a phone number"),
    ],
)
def test_each_invalid_signal_gets_its_own_refusal_and_creates_nothing(
    dispatcher: Dispatcher, db: Database, body: str, fragment: str
) -> None:
    answer = say(dispatcher, db, body, sender=PARTNER)
    assert fragment in answer
    assert count(db) == 0


def test_signal_refused_at_the_strategic_table_and_for_non_members(
    dispatcher: Dispatcher, db: Database
) -> None:
    assert "cannot be used at the strategic table" in say(dispatcher, db, VALID, sender=CHAIR,
                                                          table=Table.STRATEGIC)
    assert run(dispatcher, db, VALID, sender=OUTSIDER) == []
    assert run(dispatcher, db, VALID, sender=MAYOR) == []  # not at the operational table
    assert count(db) == 0


def test_personal_data_is_redacted_and_never_echoed(dispatcher: Dispatcher, db: Database) -> None:
    outputs = run(dispatcher, db,
                  '!signal phenomenon=HTF indicators=isolation assessed=yes '
                  'summary="woont Kerkstraat 12, tel 0470 12 34 56"', sender=PARTNER)
    assert any(isinstance(o, Redact) for o in outputs)
    text = "\n".join(render("en", o.template, o.data).body for o in outputs
                     if isinstance(o, Reply))
    assert "Kerkstraat" not in text
    assert "0470" not in text
    assert "a street address" in text
    assert "a phone number" in text


def test_ltf_source_for_the_information_officer(dispatcher: Dispatcher, db: Database) -> None:
    answer = say(dispatcher, db, VALID + " source=LTF", sender=IO)
    code = re.search(r"C-[0-9A-Z]{5}", answer)
    assert code
    assert "LTF" in say(dispatcher, db, f"!case show {code.group(0)}")


def test_dutch_keys_and_values(db: Database) -> None:
    config = make_config(language="nl")
    dispatcher = Dispatcher(config)
    answer = say(dispatcher, db,
                 "!signal fenomeen=vroeg indicatoren=isolement,bedreigingen getoetst=ja "
                 "context=gezin", "nl", sender=PARTNER)
    assert "Signaal aangemeld" in answer
    # Stored in English (the keys stay accepted in both), shown in the cell's language.
    assert "Fenomeen vroeg; indicatoren: isolement, bedreigingen" in answer
    assert "isolation" not in answer
    with db.unit_of_work() as repos:
        [record] = repos.dossiers.list(config.cells[0].id)
    assert (record.phenomenon, list(record.indicators)) == ("early", ["isolation", "threats"])


def test_flag_and_scenario_are_chair_only_and_set_dates(dispatcher: Dispatcher,
                                                        db: Database) -> None:
    code = new_case(dispatcher, db)
    assert "Only the chair" in say(dispatcher, db, f"!case flag {code} problematic",
                                   sender=PARTNER)
    assert "now marked problematic" in say(dispatcher, db, f"!case flag {code} problematic")
    assert "already marked" in say(dispatcher, db, f"!case flag {code} problematic")
    assert "Use `problematic` or `normal`" in say(dispatcher, db, f"!case flag {code} meh")
    answer = say(dispatcher, db, f"!case scenario {code} psychosocial review=2w")
    assert (NOW + timedelta(weeks=2)).date().isoformat() in answer
    assert "Unknown scenario" in say(dispatcher, db, f"!case scenario {code} astrology")
    assert "between 1d and 52w" in say(dispatcher, db, f"!case scenario {code} family review=9y")
    assert "looks like `C-7KQ2M`" in say(dispatcher, db, "!case show 12345")
    assert "no dossier C-00000" in say(dispatcher, db, "!case show C-00000")


def test_workflow_transitions_and_refusals_list_the_allowed(config: Config, db: Database,
                                                            dispatcher: Dispatcher) -> None:
    code = new_case(dispatcher, db)
    cell = config.cells[0]
    scheduler = ChangeRecorder()
    with db.unit_of_work() as repos:
        decide("accept", repos, scheduler, cell, code, actor=CHAIR, at=NOW, decision_ref="v1")
    with db.unit_of_work() as repos, pytest.raises(Refusal) as info:
        decide("reject", repos, scheduler, cell, code, actor=CHAIR, at=NOW, decision_ref="v2")
    assert info.value.data["allowed"] == "evaluation, closed"
    with db.unit_of_work() as repos:
        decide("close", repos, scheduler, cell, code, actor=CHAIR, at=NOW, decision_ref="v3")
        assert [a.to_status for a in repos.audit.for_code(CELL, code)] == [
            "signalled", "follow_up", "closed"]
    assert scheduler.changed == [(CELL, Table.OPERATIONAL)] * 2
    assert "can no longer be changed" in say(dispatcher, db, f"!case flag {code} problematic")


def test_retention_leaves_only_an_anonymous_statistic(config: Config, db: Database,
                                                      dispatcher: Dispatcher) -> None:
    code = new_case(dispatcher, db)
    cell = config.cells[0]
    with db.unit_of_work() as repos:
        decide("reject", repos, ChangeRecorder(), cell, code, actor=CHAIR, at=NOW,
                        decision_ref="v1")
        assert dossiers.apply_retention(cell, repos, NOW) == 1
        assert repos.dossiers.get(cell.id, code) is None
        assert repos.audit.for_code(cell.id, code) == []
        [stat] = repos.dossiers.statistics(cell.id)
    assert (stat.phenomenon, stat.outcome, stat.month_opened) == ("HTF", "not_retained",
                                                                  "2026-11")


def test_retention_period_keeps_recent_closures(db: Database) -> None:
    config = make_config(language="en", retention_days_after_close=30)
    dispatcher = Dispatcher(config)
    code = new_case(dispatcher, db)
    cell = config.cells[0]
    with db.unit_of_work() as repos:
        decide("reject", repos, ChangeRecorder(), cell, code, actor=CHAIR, at=NOW,
                        decision_ref="v1")
        assert dossiers.apply_retention(cell, repos, NOW + timedelta(days=29)) == 0
        assert dossiers.apply_retention(cell, repos, NOW + timedelta(days=31)) == 1


def test_stats_at_the_strategic_table_show_counts_never_codes(
    config: Config, dispatcher: Dispatcher, db: Database
) -> None:
    codes = [new_case(dispatcher, db) for _ in range(3)]
    with db.unit_of_work() as repos:
        decide("reject", repos, ChangeRecorder(), config.cells[0], codes[0], actor=CHAIR, at=NOW,
                        decision_ref="v")
        dossiers.apply_retention(config.cells[0], repos, NOW)
    answer = say(dispatcher, db, "!stats", sender=MAYOR, table=Table.STRATEGIC)
    assert "Open dossiers: 2" in answer
    assert "HTF 3" in answer
    assert "2026-11: 3" in answer
    assert "not retained 1" in answer
    assert not re.search(r"C-[0-9A-Z]{5}", answer)
    assert "cannot be used at the operational table" in say(dispatcher, db, "!stats")


def _bodies(outputs: Sequence[Output]) -> list[str]:
    return [o.template for o in outputs if isinstance(o, Reply)]


def test_help_and_refusals_name_the_indicators_and_trajectories_the_cell_configured() -> None:
    """A cell that configures its own lists sees those, not the defaults (spec §5)."""
    config = make_config(language="nl", indicators=["online-hate", "isolation"],
                         scenarios={"mentoring": 4, "sport-club": 8})
    dispatcher = Dispatcher(config, scheduler=ChangeRecorder())
    with memory_db() as db:
        ack_all(db, config)
        signal_help = say(dispatcher, db, "!help signal", sender=PARTNER)
        assert "online-hate, isolement" in signal_help
        assert "geweldverheerlijking" not in signal_help
        case_help = say(dispatcher, db, "!help case", sender=CHAIR)
        assert "begeleiding, sport-club" in case_help
        assert "onderwijs" not in case_help
        refused = say(dispatcher, db, "!signal fenomeen=HTF indicatoren=reisplannen getoetst=ja",
                      sender=PARTNER)
        assert "online-hate, isolement" in refused
        assert count(db) == 0
