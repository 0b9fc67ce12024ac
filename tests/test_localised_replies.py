"""Every value a member reads is in the cell's language (issue 20, item 10): phenomena,
indicators, context words, trajectories, statuses, transitions and recorded actions, while
the keys and values stay accepted in both the cell's language and English. Golden replies in
Dutch and French for `signal`, `case show`, `stats` and `meeting`; none of them may contain an
English internal value."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.render import vocabulary
from commands.model import Table
from tests.factories import MAYOR, PARTNER
from tests.meeting_harness import CODE, harness

GOLDEN = Path(__file__).parent / "golden"
#: Tuesday 24 November 2026, 10:00 in Brussels.
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
WORDS = {
    "nl": ("!signal fenomeen=vroeg indicatoren=isolement,online-propaganda getoetst=ja "
           "context=school,gezin", "problematisch", "psychosociaal"),
    "fr": ("!signal phenomene=precoce indicateurs=isolement,propagande-en-ligne evalue=oui "
           "context=ecole,famille", "problematique", "psychosocial"),
}


def _english_only(lang: str) -> set[str]:
    """The English internal values whose word in ``lang`` is a different one."""
    values = vocabulary(lang)[1]
    local = set(values)
    return {english for word, english in values.items() if english not in local}


def _replies(lang: str) -> dict[str, str]:
    signal, flag, scenario = WORDS[lang]
    with harness(T0, language=lang) as h:
        first = h.text(signal, sender=PARTNER)
        match = CODE.search(first)
        assert match, first
        code = match.group(0)
        h.say(f"!case flag {code} {flag}")
        h.say(f"!case scenario {code} {scenario}")
        replies = {
            "signal": first,
            "case_show": h.text(f"!case show {code}"),
            "meeting": h.text("!meeting"),
            "stats": h.text("!stats", sender=MAYOR, table=Table.STRATEGIC),
        }
    return {name: CODE.sub("C-XXXXX", text) for name, text in replies.items()}


@pytest.mark.parametrize("lang", ["nl", "fr"])
def test_replies_carry_no_english_internal_value(lang: str) -> None:
    english = _english_only(lang)
    assert {"early", "isolation", "family"} <= english  # the check below has teeth
    for name, text in _replies(lang).items():
        words = set(re.findall(r"[a-z_][a-z_\-]+", text.lower()))
        leaked = sorted(words & english)
        assert not leaked, f"{name} ({lang}) shows internal English values {leaked}:\n{text}"
        assert not re.search(r"\b(signalled|assessing|follow_up|not_retained)\b", text), text


@pytest.mark.parametrize("lang", ["nl", "fr"])
@pytest.mark.parametrize("name", ["signal", "case_show", "meeting", "stats"])
def test_replies_match_the_golden_files(lang: str, name: str) -> None:
    text = _replies(lang)[name]
    golden = GOLDEN / f"reply_{name}_{lang}.md"
    if os.environ.get("LIVCR_UPDATE_GOLDEN"):
        golden.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == golden.read_text(encoding="utf-8")


def _recorded_actions() -> set[str]:
    """Every action name the code can record in the audit trail (literal ones by reading the
    sources; the families built from enumerations from those enumerations)."""
    from commands.votes.consensus import Choice, Kind, State

    root = Path(__file__).resolve().parent.parent / "commands"
    literal = {m for path in root.rglob("*.py")
               for m in re.findall(r'action="([a-z_]+)"', path.read_text(encoding="utf-8"))}
    families = ({f"flag_{f}" for f in ("problematic", "normal")}
                | {f"vote_open_{k.value}" for k in Kind} | {k.value for k in Kind}
                | {f"vote_{s.value}" for s in State} | {f"ballot_{c.value}" for c in Choice})
    return literal | families | {"transition"}


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_every_recorded_action_has_a_word_in_each_language(lang: str) -> None:
    from bot.core.render import messages

    actions = _recorded_actions()
    assert {"signal", "ack", "meeting_start", "vote_adopted", "ballot_yes"} <= actions
    missing = sorted(a for a in actions if f"audit.{a}" not in messages(lang))
    assert not missing, missing
