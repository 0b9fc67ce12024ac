"""The domain side of trust (spec §11): ``members trust``, ``livcr trust``, roster pins and
the chair's notice of a block, without a homeserver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.core.app import Core
from bot.core.dispatcher import Dispatcher
from bot.core.service import trust_now
from bot.edge.trust import fingerprint
from commands.model import Table
from storage.db import Database
from tests.factories import CHAIR, NOW, PARTNER, ack_all, make_config, memory_db, say

OLD, NEW = "A" * 43, "B" * 43


@pytest.fixture
def db() -> Iterator[Database]:
    with memory_db() as database:
        yield database


def blocked(db: Database, user_id: str = PARTNER) -> None:
    with db.unit_of_work() as repos:
        repos.identities.pin(user_id, OLD, "tofu", NOW)
        repos.identities.block(user_id, NEW, NOW)


def test_the_chair_trusts_the_key_that_was_shown(db: Database) -> None:
    config = make_config("en")
    ack_all(db, config)
    blocked(db)
    dispatcher = Dispatcher(config)
    text = say(dispatcher, db, f"!members trust {PARTNER}")
    assert fingerprint(NEW) in text
    with db.reading() as repos:
        record = repos.identities.get(PARTNER)
    assert record is not None
    assert (record.master_key, record.blocked_key, record.pinned_how) == (
        NEW, None, f"chair:{CHAIR}")


def test_members_trust_is_for_the_chair_and_a_blocked_member_only(db: Database) -> None:
    config = make_config("en")
    ack_all(db, config)
    dispatcher = Dispatcher(config)
    assert "no changed identity" in say(dispatcher, db, f"!members trust {PARTNER}")
    blocked(db)
    assert "Only the chair" in say(dispatcher, db, f"!members trust {PARTNER}", sender=PARTNER)
    assert "not on the roster" in say(dispatcher, db, "!members trust @eve:example.be")
    with db.reading() as repos:
        assert repos.identities.get(PARTNER).blocked_key == NEW  # type: ignore[union-attr]


def test_the_operator_trusts_while_the_bot_runs(db: Database) -> None:
    config = make_config("en")
    assert trust_now(config, PARTNER, db=db, clock=lambda: NOW) is None
    blocked(db)
    assert trust_now(config, PARTNER, db=db, clock=lambda: NOW) == NEW
    with db.reading() as repos:
        assert repos.identities.pins([PARTNER]) == {PARTNER: NEW}


def test_a_block_mentions_the_chairs_of_every_table_of_the_member_once(db: Database) -> None:
    config = make_config("en")
    core = Core(config, db, clock=lambda: NOW)
    core.bind_room("!op:example.be", config.cells[0].id, Table.OPERATIONAL)
    core.bind_room("!strat:example.be", config.cells[0].id, Table.STRATEGIC)
    core.identities_seen([(CHAIR, OLD)], [])
    assert core.identities_seen([], [(CHAIR, NEW)]) == 2  # operational and strategic
    assert core.identities_seen([], [(CHAIR, NEW)]) == 0  # told once
    [op, _strat] = sorted(core.pending(), key=lambda item: item.room_id)
    body = op.content["content"]["body"]
    assert fingerprint(NEW) in body
    assert f"!members trust {CHAIR}" in body
    assert CHAIR in op.content["content"]["m.mentions"]["user_ids"]


def test_a_roster_master_key_is_pinned_and_a_stored_pin_wins(db: Database) -> None:
    raw_members = make_config("en").cells[0].members
    assert all(m.master_key == "" for m in raw_members)
    from bot.config import parse_config
    from tests.factories import raw_config
    raw = raw_config("en")
    raw["members"][2]["master_key"] = " ".join(OLD[i:i + 4] for i in range(0, 43, 4))
    config = parse_config(raw, environ={})
    core = Core(config, db, clock=lambda: NOW)
    assert core.identity_pins({PARTNER, CHAIR}) == {PARTNER: OLD}
    with db.unit_of_work() as repos:
        repos.identities.trust(PARTNER, NEW, "operator", NOW)
    assert core.identity_pins({PARTNER}) == {PARTNER: NEW}
