"""Fuzzing the dispatcher: no input crashes it, every member gets an answer, and rejected input
stores nothing (judged from the database: no audit entry, no other row changed).
``LIVCR_FUZZ_EXAMPLES`` sets the number of examples (``make fuzz``: 10,000).
"""

from __future__ import annotations

import os
import string

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel

from bot.core.dispatcher import Dispatcher, include_routers
from bot.core.parsing import command_text
from bot.core.render import render
from commands.framework import ChangeRecorder, Redact, Reply
from commands.model import Table
from storage.db import Database
from storage.models import Audit
from tests.factories import CHAIR, IO, MAYOR, NOW, PARTNER, ack_all, incoming, make_config

EXAMPLES = int(os.environ.get("LIVCR_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 300,
)

CONFIG = make_config(language="nl")
DB = Database("sqlite://")
DB.migrate()
ack_all(DB, CONFIG)
DISPATCHER = Dispatcher(CONFIG, scheduler=ChangeRecorder())
DISPATCHER.limiter.per_minute = 10**9

NAMES = sorted({c.name for r in include_routers() for c in r.commands} | {"frob", "case"})
SUBS = ["list", "show", "flag", "scenario", "add", "remove", "schedule", "start", "end", "open",
        "yes", "no", "set", "status", "", "alle"]
KEYS = ["phenomenon", "fenomeen", "indicators", "assessed", "getoetst", "context", "summary",
        "source", "review", "tables", "x", "=", ""]
VALUES = st.one_of(
    st.sampled_from(["HTF", "vroeg", "ja", "yes", "isolation,threats", "LTF", "4w", "C-7KQ2M",
                     "", '"', "problematic", "0470 12 34 56", "a" * 600]),
    st.text(max_size=40),
)
WORD = st.one_of(st.sampled_from([*SUBS, "C-7KQ2M", "c-00000", "@x:example.be", "partner"]),
                 st.text(alphabet=string.printable, max_size=12))


@st.composite
def commands(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["!", "/", "//", "", " !", "> quoted\n\n!"]))
    name = draw(st.one_of(st.sampled_from(NAMES), st.text(max_size=10)))
    words = draw(st.lists(WORD, max_size=4))
    options = draw(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=5))
    quoted = draw(st.booleans())
    parts = [prefix + name, *words]
    for key, value in options:
        parts.append(f'{key}="{value}"' if quoted else f"{key}={value}")
    return " ".join(parts)


SENDERS = st.sampled_from([(CHAIR, Table.OPERATIONAL), (PARTNER, Table.OPERATIONAL),
                           (IO, Table.OPERATIONAL), (MAYOR, Table.STRATEGIC),
                           (CHAIR, Table.STRATEGIC)])


def _snapshot() -> tuple[int, dict[str, list[tuple[object, ...]]]]:
    """The audit trail's length, and every other table's rows, read from the database."""
    with DB.engine.connect() as conn:
        tables = {
            name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
            for name, table in SQLModel.metadata.tables.items() if name != Audit.__tablename__
        }
        audited = conn.execute(sa.select(sa.func.count()).select_from(Audit)).scalar_one()
    return int(audited), tables


def _check(body: str, sender: str, table: Table) -> None:
    audited_before, before = _snapshot()
    with DB.unit_of_work() as repos:
        outputs = DISPATCHER.dispatch(incoming(body, sender=sender, table=table), repos, NOW)
    is_command = command_text(body) is not None
    if is_command:
        replies = [o for o in outputs if isinstance(o, Reply)]
        assert replies, body
        for reply in replies:
            rendered = render("nl", reply.template, reply.data)
            assert rendered.body.strip()
    else:
        assert outputs == []
    # Every change a command makes is audited (spec §14): input that left no audit entry was
    # rejected, and then nothing else in the database may have changed either. Refused
    # personal data is never stored at all.
    audited_after, after = _snapshot()
    if audited_after == audited_before or any(isinstance(o, Redact) for o in outputs):
        assert (audited_after, after) == (audited_before, before), body


@FUZZ
@given(body=commands(), who=SENDERS)
def test_structured_commands_never_crash_and_are_always_answered(body: str,
                                                                  who: tuple[str, Table]) -> None:
    _check(body, *who)


@FUZZ
@given(body=st.text(max_size=5000), who=SENDERS)
def test_arbitrary_unicode_never_crashes(body: str, who: tuple[str, Table]) -> None:
    _check(body, *who)


@FUZZ
@given(body=st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(lambda t: "!" + t),
       who=SENDERS)
def test_anything_after_a_prefix_gets_an_answer(body: str, who: tuple[str, Table]) -> None:
    _check(body, *who)
