"""Member text is text (issue 15, spec §11): escaping is the default of every template,
values shown as code are safe code spans, and mention pills are built from checked ids."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import jinja2.meta
import pytest

from bot.core.render import (
    LANGUAGES,
    Safe,
    _environment,
    _html,
    code_span,
    escape_markdown,
    messages,
    render,
)
from bot.edge.content import mention_pill
from tests.factories import CHAIR, PARTNER
from tests.meeting_harness import harness

HOSTILE = ("x`[click](https://evil.example/)` <b>bold</b> *em* _u_ ![i](https://evil.example/i.png)"
           " <https://evil.example/> @eve:evil.example &lt;i&gt; # h\n- item\n> quote ``` ~~s~~"
           " | a | b |")
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.hrefs.extend(v or "" for k, v in attrs if k in ("href", "src"))


def tags(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


def test_code_span_survives_backticks_and_never_links() -> None:
    for value in ("plain", "a`b", "``", "`x`[click](https://evil.example/)`", " lead", "x\ny"):
        html = _html(f"see {code_span(value)} end")
        found = tags(html)
        assert found.tags["code"] == 1, (value, html)
        assert "a" not in found.tags, html
    assert code_span("") == ""
    assert code_span("abc") == "`abc`"


def test_the_markdown_engine_passes_no_raw_html_and_no_script_link() -> None:
    """The last line of defence behind escaping: Markdown that did carry raw HTML or a
    ``javascript:`` link (a template mistake) still yields neither in ``formatted_body``."""
    html = _html('<b>x</b> <script>alert(1)</script> <img src=x onerror=alert(1)>\n'
                 '[l](javascript:alert(1)) ![i](data:text/html;base64,PHNjcmlwdD4=) '
                 '<a href="https://evil.example/">a</a>')
    found = tags(html)
    assert not {"b", "script", "iframe"} & set(found.tags), html
    assert "onerror" not in html
    assert "evil.example" not in html
    # The Markdown link and image stay, with their targets removed.
    assert found.tags["a"] == 1, html
    assert found.tags["img"] == 1, html
    assert found.hrefs == ["", ""], html


def test_line_breaks_and_tables_render_as_a_member_reads_them() -> None:
    html = _html("one\ntwo\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "one<br />\ntwo" in html
    assert tags(html).tags["td"] == 2


def test_escaping_is_idempotent_for_safe_values_and_keeps_one_line() -> None:
    once = escape_markdown("*x*\n# y")
    assert once == "\\*x\\* \\# y"
    assert escape_markdown(once) is once
    assert isinstance(code_span("a"), Safe)


def _variables(lang: str, source: str) -> set[str]:
    env = _environment(lang)
    return set(jinja2.meta.find_undeclared_variables(env.parse(source))) - {"msg", "loop"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_catalogue_entry_carries_markup_from_a_hostile_value(lang: str) -> None:
    """Every message filled with a hostile value renders the same HTML tags as with a plain
    one: the value adds no link, image, emphasis, HTML or list."""
    checked = 0
    for key, source in messages(lang).items():
        names = _variables(lang, source)
        if not names:
            continue
        try:
            plain = render(lang, f"msg:{key}", dict.fromkeys(names, "plain"))
            hostile = render(lang, f"msg:{key}", dict.fromkeys(names, HOSTILE))
        except (KeyError, TypeError, jinja2.UndefinedError):
            continue  # a value that names another entry (a state, a kind) or a number
        checked += 1
        before, after = tags(plain.html), tags(hostile.html)
        assert after.tags == before.tags, (key, hostile.html)
        assert not any("evil.example" in h for h in after.hrefs), (key, hostile.html)
    assert checked >= 50


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(("template", "data"), [
    ("members", {"table": "operational", "members": [
        {"user_id": HOSTILE, "role": "partner", "organisation": HOSTILE, "acked": True}]}),
    ("usage_error", {"error_key": "error.unknown_command", "error_data": {"name": HOSTILE},
                     "help": None}),
    ("vote_status", {"id": 1, "kind": "accept", "code": "C-7KQ2M", "state": "open",
                     "yes": [HOSTILE], "no": [HOSTILE], "abstain": [], "missing": [HOSTILE],
                     "eligible": 3}),
])
def test_templates_with_hostile_names_carry_no_markup(lang: str, template: str,
                                                      data: dict[str, object]) -> None:
    rendered = render(lang, template, data)
    found = tags(rendered.html)
    assert not {"a", "img", "b", "em", "blockquote", "h1", "table"} & set(found.tags), \
        rendered.html
    assert not found.hrefs


def test_the_help_probe_yields_no_link_in_formatted_body() -> None:
    with harness(T0) as h:
        for body in ("!help x`[click](https://evil.example/)`",
                     "!x`[click](https://evil.example/)`",
                     "!members <b>x</b>=[click](https://evil.example/)",
                     "!vote *open* [click](https://evil.example/)"):
            h.clock.now += timedelta(seconds=10)
            sent = h.say(body, sender=CHAIR)
            assert sent, body
            for item in sent:
                found = tags(item.content["formatted_body"])
                assert "a" not in found.tags, item.content["formatted_body"]
                assert "b" not in found.tags
                assert not found.hrefs


def test_hostile_agenda_text_is_shown_as_text(tmp_path: object) -> None:
    with harness(T0) as h:
        h.say('!agenda add "[click](https://evil.example/) <b>x</b> @eve:evil.example"',
              sender=PARTNER)
        h.clock.now += timedelta(seconds=10)
        for item in h.say("!agenda"):
            found = tags(item.content["formatted_body"])
            assert "a" not in found.tags
            assert not found.hrefs


def test_mention_pill_escapes_and_refuses_what_is_not_a_user_id() -> None:
    assert mention_pill("@an.peeters:example.be") == (
        '<a href="https://matrix.to/#/@an.peeters:example.be">@an.peeters:example.be</a>')
    pill = mention_pill("@a&b:example.be")
    assert "&amp;" in pill
    assert tags(pill).hrefs == ["https://matrix.to/#/@a%26b:example.be"]
    for bad in ('@x:y"><script>', "@x y:example.be", "eve", "@:example.be",
                '@a:example.be" onmouseover="x', "@x:example.be/<b>"):
        with pytest.raises(ValueError, match="not a Matrix user id"):
            mention_pill(bad)
