"""Every word in three languages: the same templates and the same catalogue keys."""

from __future__ import annotations

import pytest

from bot.core.dispatcher import include_routers
from bot.core.render import LANGUAGES, messages, render, template_files, vocabulary
from commands.help import help_data
from tests.factories import make_config


def test_every_template_exists_in_nl_fr_and_en() -> None:
    files = {lang: template_files(lang) for lang in LANGUAGES}
    assert files["nl"] == files["fr"] == files["en"]


def test_every_message_key_exists_in_nl_fr_and_en() -> None:
    keys = {lang: set(messages(lang)) for lang in LANGUAGES}
    assert keys["nl"] == keys["fr"] == keys["en"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_command_has_help_and_a_summary(lang: str) -> None:
    cell = make_config(lang).cells[0]
    values = vocabulary(lang)[1]
    for router in include_routers():
        for command in router.commands:
            assert f"help/{command.help_template}.md.j2" in template_files(lang)
            assert f"summary.{command.help_template}" in messages(lang)
            rendered = render(lang, f"help/{command.help_template}", help_data(cell, values))
            assert rendered.body
            assert rendered.html


@pytest.mark.parametrize("lang", LANGUAGES)
def test_vocabulary_maps_to_english_names(lang: str) -> None:
    keys, values = vocabulary(lang)
    assert all(k == k.lower() for k in keys)
    assert all(v == v.strip() for v in values.values())


def test_html_never_carries_markup_typed_by_a_member() -> None:
    rendered = render("en", "members", {"table": "operational", "members": [
        {"user_id": "@a:b", "role": "partner", "organisation": "<script>x</script>",
         "acked": True}]})
    assert "<script>" not in rendered.html


@pytest.mark.parametrize(("lang", "default_word"), [("nl", "isolement"), ("fr", "isolement"),
                                                     ("en", "isolation")])
def test_help_lists_the_default_indicators_in_the_cell_language(lang: str,
                                                                default_word: str) -> None:
    cell = make_config(lang).cells[0]
    data = help_data(cell, vocabulary(lang)[1])
    assert default_word in data["indicators"].split(", ")
    assert len(data["indicators"].split(", ")) == len(cell.indicators)
    assert len(data["scenarios"].split(", ")) == len(cell.scenarios)
