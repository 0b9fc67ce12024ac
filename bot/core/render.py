"""Every word a person reads comes from ``templates/<lang>/``; this module renders it.

Templates are Markdown (``*.md.j2``) or short entries of ``messages.toml``. The Markdown is the
plain ``body``; cmark-gfm (GitHub's CommonMark parser, in C, through ``cmarkgfm``) turns it into
the HTML ``formatted_body`` in its safe mode: raw HTML is left out and links with a dangerous
scheme (``javascript:``, ``data:`` …) lose their target. Line breaks are kept, tables enabled.

Member text is text (spec §11): every value a template prints is escaped by default (Jinja's
``finalize``), so no link, emphasis, HTML or mention can be injected through it. Only Markdown
the bot builds itself is printed as is: :class:`Safe` values (the results of ``msg()``, ``|md``
and ``|code``). Values shown as code go through ``|code``, which builds a CommonMark code span
whose fence is longer than any run of backticks in the value (backslash escapes do not work
inside code spans).
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cmarkgfm
import jinja2
from cmarkgfm.cmark import Options

from commands.meetings.calendar import meeting_ics

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
LANGUAGES = ("nl", "fr", "en")

#: Safe mode is cmark's default (no ``CMARK_OPT_UNSAFE``); HARDBREAKS keeps a template's line
#: breaks as a member reads them in the plain body.
_MARKDOWN_OPTIONS = Options.CMARK_OPT_HARDBREAKS
_MARKDOWN_EXTENSIONS = ("table",)


class Safe(str):
    """Markdown the bot built itself (a rendered message, an escaped value, a code span):
    printed as is, never escaped again."""

    __slots__ = ()


def escape_markdown(value: Any) -> Safe:
    """Neutralise Markdown in member-typed text so it shows as typed (and stays one line: a
    line break could start a heading, a list or a quote)."""
    if isinstance(value, Safe):
        return value
    out = " ".join(str(value).splitlines())
    for char in "\\`*_{}[]<>#|~&":
        out = out.replace(char, "\\" + char)
    return Safe(out)


def code_span(value: Any) -> Safe:
    """``value`` as a CommonMark code span, whatever backticks it holds: the fence is one
    backtick longer than its longest run, padded with spaces (stripped by CommonMark)."""
    text = " ".join(str(value).splitlines())
    if not text:
        return Safe("")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return Safe(f"{fence} {text} {fence}" if longest or text.startswith(" ")
                or text.endswith(" ") else f"{fence}{text}{fence}")


def _finalize(value: Any) -> Any:
    """Every printed value: the bot's own Markdown as is, everything else escaped."""
    if isinstance(value, (Safe, bool, int, float)) or value is None:
        return "" if value is None else value
    return escape_markdown(value)


@dataclass(frozen=True)
class Rendered:
    body: str
    html: str


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(f"{name}.", value, out)
        else:
            out[name] = str(value)


def _catalogue_files(lang: str, folder: str) -> list[Path]:
    return sorted((TEMPLATES / lang / folder).glob("*.toml"))


@cache
def messages(lang: str) -> Mapping[str, str]:
    """The flat ``section.key -> text`` catalogue of a language (``messages/*.toml``)."""
    out: dict[str, str] = {}
    for path in _catalogue_files(lang, "messages"):
        with path.open("rb") as handle:
            _flatten("", tomllib.load(handle), out)
    return out


@cache
def vocabulary(lang: str) -> tuple[Mapping[str, str], Mapping[str, str]]:
    """(keys, values): words of the cell language mapped to their English names
    (``vocabulary/*.toml``)."""
    keys: dict[str, str] = {}
    values: dict[str, str] = {}
    for path in _catalogue_files(lang, "vocabulary"):
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
        keys.update({k.lower(): v for k, v in raw.get("keys", {}).items()})
        values.update({k.lower(): v for k, v in raw.get("values", {}).items()})
    return keys, values


@cache
def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / lang)),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=_finalize,
    )
    env.globals["msg"] = lambda name, /, **data: text(lang, name, **data)
    env.filters["md"] = escape_markdown
    env.filters["code"] = code_span
    env.filters["local"] = lambda value: local_word(lang, value)
    return env


@cache
def _local_words(lang: str) -> Mapping[str, str]:
    """English enumerated value -> the first word the language's vocabulary gives for it."""
    local: dict[str, str] = {}
    for word, name in vocabulary(lang)[1].items():
        local.setdefault(name, word)
    return local


def local_word(lang: str, value: Any) -> str:
    """An enumerated value (phenomenon, indicator, context, trajectory) as the cell's language
    writes it; a value the vocabulary does not know (a code such as FTF, a cell's own word) is
    shown as it is. Members read their language, never the internal English names."""
    text = str(value)
    return _local_words(lang).get(text.lower(), text)


def text(lang: str, key: str, /, **data: Any) -> Safe:
    """One catalogue entry, filled (``{{ name }}`` placeholders, escaped)."""
    catalogue = messages(lang)
    try:
        source = catalogue[key]
    except KeyError:
        source = messages("en")[key]
    return Safe(_compiled(lang, source).render(**data))


@cache
def _compiled(lang: str, source: str) -> jinja2.Template:
    """A catalogue entry compiled once (compiling costs far more than rendering)."""
    return _environment(lang).from_string(source)


def markdown(lang: str, template: str, data: Mapping[str, Any]) -> str:
    """The Markdown source of a template or catalogue entry (``msg:`` prefix)."""
    if template.startswith("msg:"):
        return text(lang, template.removeprefix("msg:"), **data)
    return _environment(lang).get_template(f"{template}.md.j2").render(**data).strip()


def render(lang: str, template: str, data: Mapping[str, Any] | None = None) -> Rendered:
    """A reply's body and HTML. Templates are pure functions of their data (no clock, no
    state), so the same data rendered again is taken from a cache: the help, usage errors,
    refusals and unchanged lists cost no Jinja and no Markdown parse the second time."""
    key = _frozen(data or {})
    if key is None:
        return _render(lang, template, data or {})
    return _render_frozen(lang, template, key, data or {})


def _render(lang: str, template: str, data: Mapping[str, Any]) -> Rendered:
    source = markdown(lang, template, data)
    return Rendered(body=source, html=_html(source))


_cached: dict[tuple[str, str, Any], Rendered] = {}
_CACHE_LIMIT = 1024


_cache_lock = threading.Lock()


def _render_frozen(lang: str, template: str, key: Any, data: Mapping[str, Any]) -> Rendered:
    slot = (lang, template, key)
    hit = _cached.get(slot)
    if hit is None:
        hit = _render(lang, template, data)
        with _cache_lock:
            if len(_cached) >= _CACHE_LIMIT:
                _cached.pop(next(iter(_cached)))  # the oldest entry
            _cached[slot] = hit
    return hit


#: Values that print the same whenever their type and repr are the same (``True == 1``,
#: ``0.0 == -0.0`` and one instant in two time zones are equal but print differently).
_ATOMS = (int, float, bool, type(None), datetime, date, time, timedelta, Enum)


def _frozen(value: Any) -> Any:
    """A hashable copy of template data that tells apart whatever renders differently, or
    None when the data hold something else (then the reply is rendered every time)."""
    if type(value) is str:
        return value  # nothing else freezes to a plain str
    if isinstance(value, str):
        return (type(value), str(value))
    if isinstance(value, _ATOMS):
        return (type(value), repr(value))
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            frozen = _frozen(item)
            if frozen is None or type(key) is not str:
                return None
            items.append((key, frozen))
        # In their order: a template that loops over a mapping prints it in that order.
        return (dict, tuple(items))
    if isinstance(value, list | tuple | frozenset | set):
        parts = []
        for item in (sorted(value, key=repr) if isinstance(value, set | frozenset) else value):
            frozen = _frozen(item)
            if frozen is None:
                return None
            parts.append(frozen)
        return (type(value), tuple(parts))
    return None


@lru_cache(maxsize=512)
def _html(source: str) -> str:
    """Markdown to HTML, remembered: most replies (help, usage, refusals) repeat verbatim.

    In C: a dossier listing of 45 cases took 3.3 ms in markdown-it-py (pure Python, and
    growing with every case), 0.12 ms here, with the same HTML for every reply the tests
    render."""
    html: str = cmarkgfm.markdown_to_html_with_extensions(
        source, options=_MARKDOWN_OPTIONS, extensions=list(_MARKDOWN_EXTENSIONS))
    return html.strip()


def template_files(lang: str) -> set[str]:
    base = TEMPLATES / lang
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}


def attachment_bytes(lang: str, template: str, data: Mapping[str, Any]) -> bytes:
    """The bytes of an attachment a command named: an iCalendar file or a Markdown document."""
    if template == "calendar":
        table_name = text(lang, f"table.{data['table']}")
        return meeting_ics(
            uid=data["uid"],
            sequence=data["sequence"],
            method=data["method"],
            start=data["start"],
            duration=data["duration"],
            tz=ZoneInfo(data["timezone"]),
            summary=text(lang, "meeting.ics_summary", cell=data["cell"], table=table_name),
            description=text(lang, "meeting.ics_description", table=table_name),
            organizer=data["organizer"],
            now=data["now"],
        )
    return markdown(lang, template, data).encode()


@cache
def _cli_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / "cli")),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def cli_lines(template: str, data: Mapping[str, Any]) -> list[str]:
    """An operator's command-line text (``templates/cli/<template>.txt.j2``, English), as
    lines."""
    rendered = _cli_environment().get_template(f"{template}.txt.j2").render(**data)
    return [line for line in rendered.splitlines() if line.strip()]
