"""Metrics without a server (spec §14): ``[metrics]`` validation, and the dispatcher counting
commands by the bot's own command names and a fixed set of outcomes, never by member text."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config
from bot.core.dispatcher import Dispatcher
from bot.ops import metrics
from commands.framework import ChangeRecorder
from tests.factories import CHAIR, ack_all, make_config, memory_db, raw_config, run


def sample(command: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "livcr_commands_total", {"command": command, "outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize(("listen", "expected"), [("9464", ("127.0.0.1", 9464)),
                                                  ("127.0.0.1:9464", ("127.0.0.1", 9464)),
                                                  ("[::1]:9000", ("::1", 9000))])
def test_listen_forms(listen: str, expected: tuple[str, int]) -> None:
    raw = raw_config()
    raw["metrics"] = {"listen": listen}
    assert parse_config(raw, environ={}).metrics.listen == listen
    assert metrics.parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost:9464", "127.0.0.1:0", "127.0.0.1:http", "x"])
def test_bad_listen_is_refused_with_its_key(listen: str) -> None:
    raw = raw_config()
    raw["metrics"] = {"listen": listen}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    assert [key for key, _ in caught.value.problems] == ["metrics.listen"]


def test_metrics_are_off_by_default() -> None:
    assert make_config().metrics.listen == ""


def test_commands_are_counted_by_name_and_outcome_only() -> None:
    config = make_config(language="en")
    dispatcher = Dispatcher(config, scheduler=ChangeRecorder())
    with memory_db() as db:
        ack_all(db, config)
        before = {k: sample(*k) for k in [("help", "ok"), ("case list", "ok"),
                                          ("unknown", "unknown_command"),
                                          ("case show", "usage")]}
        run(dispatcher, db, "!help")
        run(dispatcher, db, "!case list")
        run(dispatcher, db, "!C-SECRET @someone:example.be")
        run(dispatcher, db, "!case show")
        run(dispatcher, db, "!help", sender="@eve:example.be")  # not on the roster
    assert {k: sample(*k) - v for k, v in before.items()} == {
        ("help", "ok"): 1, ("case list", "ok"): 1, ("unknown", "unknown_command"): 1,
        ("case show", "usage"): 1}
    exported = metrics.generate_latest(metrics.registry).decode()
    assert "SECRET" not in exported
    assert "@" not in exported
    assert CHAIR not in exported
