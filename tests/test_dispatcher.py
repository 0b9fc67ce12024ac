"""The dispatcher without a server: prefixes, parsing, who may ask, and an answer for all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from bot.config import Config
from bot.core.dispatcher import Dispatcher, include_routers
from bot.core.parsing import command_text, parse, tokenize
from commands.framework import Args, CommandContext, Output, Router, UsageError
from commands.model import Table
from storage.db import Database
from tests.factories import (
    CHAIR,
    IO,
    MAYOR,
    OUTSIDER,
    PARTNER,
    ack_all,
    make_config,
    memory_db,
    run,
    text_of,
)


@pytest.fixture
def config() -> Config:
    return make_config(language="en")


@pytest.fixture
def db() -> Iterator[Database]:
    with memory_db() as database:
        yield database


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!help", "help"),
        ("/help", "help"),
        ("//help", "help"),
        ("  !help members", "help members"),
        ("> <@a:b> earlier\n\n!help", "help"),
        ("hello !help", None),
        ("!", None),
        ("/ help", None),
        ("!!help", None),
        ("", None),
    ],
)
def test_prefixes_and_reply_fallback(body: str, expected: str | None) -> None:
    assert command_text(body) == expected


def test_tokenize_quotes_keys_and_lists() -> None:
    parsed = parse('signal phenomenon=HTF indicators=isolation,threats summary="a b  c" x')
    assert parsed.name == "signal"
    assert parsed.options == {"phenomenon": "HTF", "indicators": "isolation,threats",
                              "summary": "a b  c"}
    assert parsed.words == ("x",)
    assert tokenize('agenda add "stand van zaken"') == ["agenda", "add", "stand van zaken"]
    assert tokenize("agenda add “typografisch”") == ["agenda", "add", "typografisch"]
    assert tokenize('x ""') == ["x", ""]


def test_until_ack_every_command_gets_only_the_request(config: Config, db: Database) -> None:
    dispatcher = Dispatcher(config)
    for body in ("!help", "!members", "!help members"):
        assert "send `!ack`" in text_of(run(dispatcher, db, body))
    assert "recorded" in text_of(run(dispatcher, db, "!ack"))
    assert "already" in text_of(run(dispatcher, db, "!ack"))
    assert "`!members`" in text_of(run(dispatcher, db, "!help"))


def test_acknowledgement_is_per_table(config: Config, db: Database) -> None:
    dispatcher = Dispatcher(config)
    run(dispatcher, db, "!ack")
    assert "send `!ack`" in text_of(run(dispatcher, db, "!help", table=Table.STRATEGIC))


def test_non_roster_sender_and_wrong_table_member_get_silence(config: Config,
                                                              db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    assert run(dispatcher, db, "!help", sender=OUTSIDER) == []
    assert run(dispatcher, db, "!help", sender=IO, table=Table.STRATEGIC) == []
    assert run(dispatcher, db, "just chatting", sender=CHAIR) == []


def test_unknown_command_and_bad_input_get_a_clear_answer(config: Config, db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    assert "do not know the command `frobnicate`" in text_of(run(dispatcher, db, "!frobnicate"))
    assert "not closed" in text_of(run(dispatcher, db, '!help "members'))
    answer = text_of(run(dispatcher, db, "!help members extra words"))
    assert "more than this command takes" in answer
    assert "Usage" in answer
    assert "no help on `nothing`" in text_of(run(dispatcher, db, "!help nothing"))
    assert "key `colour`" in text_of(run(dispatcher, db, "!members colour=red"))


def test_chair_only_commands_are_refused_to_others(config: Config, db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    answer = text_of(run(dispatcher, db, "!members add @x:example.be partner CAW",
                         sender=PARTNER))
    assert "Only the chair" in answer
    assert "is now on the roster" in text_of(
        run(dispatcher, db, "!members add @x:example.be partner CAW"))
    assert "x:example.be" in text_of(run(dispatcher, db, "!members", sender=PARTNER))


def test_strategic_chair_is_the_mayor(config: Config, db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    refused = run(dispatcher, db, "!members add @y:example.be alderman Stad", sender=CHAIR,
                  table=Table.STRATEGIC)
    assert "Only the chair" in text_of(refused)
    done = run(dispatcher, db, "!members add @y:example.be alderman Stad", sender=MAYOR,
               table=Table.STRATEGIC)
    assert "is now on the roster" in text_of(done)


def test_members_add_applies_the_roster_rules(config: Config, db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    assert "intelligence" in text_of(run(dispatcher, db,
                                         '!members add @z:example.be partner "VSSE"'))
    assert "strategic" in text_of(run(dispatcher, db,
                                      "!members add @z:example.be police_chief Politie"))
    assert "at least one chair" in text_of(run(dispatcher, db, f"!members remove {CHAIR}"))
    assert "Unknown role" in text_of(run(dispatcher, db, "!members add @z:example.be spy X"))
    assert "looks like" in text_of(run(dispatcher, db, "!members add zed partner X"))


def test_dutch_cell_accepts_dutch_values(db: Database) -> None:
    config = make_config(language="nl")
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    answer = text_of(run(dispatcher, db, "!members add @d:example.be stadsdienst Jeugddienst"),
                     "nl")
    assert "stadsdienst" in answer


def test_rate_limit_gives_one_notice_then_silence(config: Config, db: Database) -> None:
    ack_all(db, config)
    ticks = iter(float(i) / 100 for i in range(10_000))
    dispatcher = Dispatcher(config, rate_clock=lambda: next(ticks))
    answers = [run(dispatcher, db, "!help") for _ in range(config.limits.commands_per_minute)]
    assert all(answers)
    assert "more than 20 commands" in text_of(run(dispatcher, db, "!help"))
    assert run(dispatcher, db, "!help") == []


def test_input_over_the_limit_is_refused(config: Config, db: Database) -> None:
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    answer = text_of(run(dispatcher, db, "!help " + "x" * 4001))
    assert "longer than 4000" in answer


def test_handler_crash_is_answered_and_rolled_back_without_logging_input(
    config: Config, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ack_all(db, config)
    router = Router("boom")

    @router.command("boom", max_positional=1)
    def boom(ctx: CommandContext, args: Args) -> Sequence[Output]:
        ctx.repos.acks.ack(ctx.cell.id, "operational", "@new:example.be", ctx.now)
        raise RuntimeError(f"secret input {args.positional}")

    @router.command("usage", max_positional=1)
    def usage(ctx: CommandContext, args: Args) -> Sequence[Output]:
        ctx.repos.acks.ack(ctx.cell.id, "operational", "@other:example.be", ctx.now)
        raise UsageError("error.missing_argument")

    dispatcher = Dispatcher(config, routers=[*include_routers(), router])
    answer = text_of(run(dispatcher, db, "!boom Janssens"))
    assert "nothing was changed" in answer
    assert "Janssens" not in caplog.text
    assert "RuntimeError" in caplog.text
    run(dispatcher, db, "!usage x")
    with db.unit_of_work() as repos:
        assert not repos.acks.has_acked("livc-r-voorbeeldstad", "operational", "@new:example.be")
        assert not repos.acks.has_acked("livc-r-voorbeeldstad", "operational",
                                        "@other:example.be")


def test_roster_rule_refusals_speak_the_cell_language(db: Database) -> None:
    config = make_config(language="nl")
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    answer = text_of(run(dispatcher, db, f"!members remove {CHAIR}"), "nl")
    assert "minstens één voorzitter" in answer
    assert "operational table" not in answer
