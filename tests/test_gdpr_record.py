"""``livcr gdpr-record`` (spec §14): the art. 30 GDPR record in nl, fr and en from the
configuration, compared with golden files; it names no member."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import Config, parse_config
from bot.ops.gdpr import record
from tests.factories import raw_config
from tests.processes import toml_value

GOLDEN = Path(__file__).parent / "golden"


def supra_local(language: str = "nl") -> dict[str, Any]:
    raw = raw_config(language, municipalities=["Voorbeeldstad", "Andergem"],
                     retention_days_after_close=30)
    raw["tables"]["operational"]["message_retention_days"] = 365
    return raw


def config(language: str = "nl") -> Config:
    return parse_config(supra_local(language), environ={})


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_the_record_matches_the_golden_file(lang: str) -> None:
    text = record(config(), lang)
    golden = GOLDEN / f"gdpr_record_{lang}.md"
    if os.environ.get("LIVCR_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_the_record_names_no_member_and_states_the_configured_facts(lang: str) -> None:
    cfg = config()
    text = record(cfg, lang)
    for member in cfg.cells[0].members:
        assert member.user_id not in text
        assert member.user_id.split(":")[0] not in text
    assert "30 " in text  # retention_days_after_close
    assert "365" in text  # the operational room's retention policy
    assert "Andergem" in text
    assert "458ter" in text
    assert {"nl": "30 juli 2018", "fr": "30 juillet 2018", "en": "30 July 2018"}[lang] in text


def test_retention_zero_is_said_as_deleted_at_closure() -> None:
    raw = raw_config("en")
    text = record(parse_config(raw, environ={}))
    assert "deleted as soon as the dossier is closed" in text
    assert "the municipality of Voorbeeldstad," in text


def test_the_command_prints_the_cell_language_or_the_one_asked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    lines = [
        "[matrix]", 'homeserver = "https://matrix.example.be"', 'user_id = "@livcr:example.be"',
        'password = "not-a-real-secret"', f"data_dir = {toml_value(str(tmp_path / 'data'))}",
        "[cell]", 'name = "LIVC-R Voorbeeldstad"',
        'municipalities = ["Voorbeeldstad", "Andergem"]', 'language = "nl"',
        "retention_days_after_close = 30",
        "[tables.operational]", 'room = "!op:example.be"', "message_retention_days = 365",
        "[tables.strategic]", 'room = "!strat:example.be"',
    ]
    for member in supra_local()["members"]:
        lines += ["[[members]]"] + [f"{k} = {toml_value(v)}" for k, v in member.items()]
    path.write_text("\n".join(lines) + "\n")
    for argv, lang in ((["gdpr-record", "-c", str(path)], "nl"),
                       (["gdpr-record", "-c", str(path), "--language", "fr"], "fr"),
                       (["gdpr-record", "-c", str(path), "--lang", "en"], "en")):
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(argv) == 0
        assert out.getvalue() == (GOLDEN / f"gdpr_record_{lang}.md").read_text(encoding="utf-8")
    assert not (tmp_path / "data").exists()  # it reads the configuration only
