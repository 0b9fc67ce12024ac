"""Builders shared by the tests: a valid configuration and an in-memory unit of work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bot.config import Config, parse_config
from bot.core.dispatcher import Dispatcher
from bot.core.render import render
from commands.dossiers.workflow import transition
from commands.framework import Incoming, Output, Reply
from commands.model import Table
from commands.votes.closing import TARGET
from commands.votes.consensus import Kind
from storage.db import Database
from tests.backends import database_url, default_backend

SERVER = "example.be"
CHAIR = f"@an.peeters:{SERVER}"
IO = f"@inspecteur.wouters:{SERVER}"
PARTNER = f"@sara.jacobs:{SERVER}"
SCHOOL = f"@tom.maes:{SERVER}"
MAYOR = f"@burgemeester:{SERVER}"
OUTSIDER = f"@eve:{SERVER}"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def raw_config(language: str = "nl", **cell_overrides: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "name": "LIVC-R Voorbeeldstad",
        "municipalities": ["Voorbeeldstad"],
        "language": language,
        "timezone": "Europe/Brussels",
    }
    cell.update(cell_overrides)
    return {
        "matrix": {
            "homeserver": "https://matrix.example.be",
            "user_id": f"@livcr:{SERVER}",
            "password": "not-a-real-secret",
        },
        "storage": {"database_url": "sqlite://"},
        "cell": cell,
        "tables": {
            "operational": {"room": f"!op:{SERVER}"},
            "strategic": {"room": f"!strat:{SERVER}"},
        },
        "members": [
            {"user_id": CHAIR, "role": "chair", "organisation": "Preventiedienst",
             "tables": ["operational", "strategic"]},
            {"user_id": IO, "role": "information_officer", "organisation": "Politiezone",
             "tables": ["operational"]},
            {"user_id": PARTNER, "role": "partner", "organisation": "OCMW",
             "tables": ["operational"]},
            {"user_id": SCHOOL, "role": "partner", "organisation": "CLB",
             "tables": ["operational"]},
            {"user_id": MAYOR, "role": "mayor", "organisation": "Stad",
             "tables": ["strategic"]},
        ],
    }


def make_config(language: str = "nl", **cell_overrides: Any) -> Config:
    return parse_config(raw_config(language, **cell_overrides), environ={})


@contextmanager
def memory_db(backend: str | None = None) -> Iterator[Database]:
    """A fresh, migrated database: in-memory SQLite, or a PostgreSQL database of its own when
    ``LIVCR_TEST_PG_URL`` is set (the whole suite then runs on PostgreSQL)."""
    with database_url(backend or default_backend()) as url:
        db = Database(url)
        try:
            db.migrate()
            yield db
        finally:
            db.dispose()


_counter = iter(range(10**9))


def incoming(
    body: str,
    sender: str = CHAIR,
    table: Table = Table.OPERATIONAL,
    cell: str = "livc-r-voorbeeldstad",
    at: datetime = NOW,
) -> Incoming:
    return Incoming(
        cell=cell,
        table=table,
        room_id=f"!{'op' if table is Table.OPERATIONAL else 'strat'}:{SERVER}",
        event_id=f"$ev{next(_counter)}",
        sender=sender,
        body=body,
        timestamp=at,
    )


def run(dispatcher: Dispatcher, db: Database, body: str, **kw: Any) -> list[Output]:
    """One command through the dispatcher, in its own unit of work, at ``NOW``."""
    with db.unit_of_work() as repos:
        return dispatcher.dispatch(incoming(body, **kw), repos, NOW)


def text_of(outputs: Sequence[Output], lang: str = "en") -> str:
    """What a member reads of the replies."""
    return "\n".join(render(lang, o.template, o.data).body for o in outputs
                     if isinstance(o, Reply))


def say(dispatcher: Dispatcher, db: Database, body: str, lang: str = "en", **kw: Any) -> str:
    return text_of(run(dispatcher, db, body, **kw), lang)


def ack_all(db: Database, config: Config) -> None:
    with db.unit_of_work() as repos:
        for cell in config.cells:
            for member in cell.members:
                for table in member.tables:
                    repos.acks.ack(cell.id, table.value, member.user_id, NOW)


def repos_of(db: Database) -> Any:
    return db.unit_of_work()





def decide(kind: str, repos: Any, scheduler: Any, cell: Any, code: str, **kwargs: Any) -> Any:
    """A consensus decision applied as the closing of an adopted vote applies it: the same
    target status (``commands.votes.closing.TARGET``) and action, through the workflow."""
    return transition(repos, scheduler, cell, code, TARGET[Kind(kind)], action=kind, **kwargs)
