"""``livcr doctor`` without a server (spec §14): room settings judged from room state, the
database without upgrading it, data_dir modes, an unreachable homeserver. The same checks
against a real Synapse are in tests/test_e2e_doctor.py."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.config import Config, parse_config
from bot.edge.inspect import RoomLook
from bot.ops.doctor import Level, data_dir_checks, database_checks, matrix_checks, room_checks
from commands.model import Table
from demo.homeserver import free_port
from storage.db import Database
from storage.migrations import STEPS
from tests.factories import CHAIR, IO, ack_all, raw_config

BOT = "@livcr:example.be"


def config(tmp_path: Path, **matrix: Any) -> Config:
    raw = raw_config("en")
    raw["storage"]["database_url"] = f"sqlite:///{tmp_path / 'livcr.db'}"
    raw["matrix"].update({"data_dir": str(tmp_path / "data"), **matrix})
    return parse_config(raw, environ={})


def good_state(**changes: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
    state: dict[tuple[str, str], dict[str, Any] | None] = {
        ("m.room.create", ""): {"room_version": "10"},
        ("m.room.encryption", ""): {"algorithm": "m.megolm.v1.aes-sha2"},
        ("m.room.join_rules", ""): {"join_rule": "invite"},
        ("m.room.history_visibility", ""): {"history_visibility": "joined"},
        ("m.room.guest_access", ""): {"guest_access": "forbidden"},
        ("m.room.power_levels", ""): {"users": {BOT: 100, CHAIR: 50}, "redact": 50},
    }
    for user in (CHAIR, IO, "@sara.jacobs:example.be", "@tom.maes:example.be"):
        state[("m.room.member", user)] = {"membership": "join"}
    for key, value in changes.items():
        state[(f"m.room.{key}", "")] = value
    return {k: v for k, v in state.items() if v is not None}


def judged(tmp_path: Path, state: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Level]:
    cell = config(tmp_path).cells[0]
    look = RoomLook("!op:example.be", True, state)
    return {c.what.split(": ", 1)[1]: c.level for c in room_checks(
        cell, Table.OPERATIONAL, "!op:example.be", look, BOT)}


def test_a_room_set_up_as_livcr_setup_does_is_all_ok(tmp_path: Path) -> None:
    assert set(judged(tmp_path, good_state()).values()) == {Level.OK}


def test_each_wrong_room_setting_is_its_own_failure(tmp_path: Path) -> None:
    cases = {
        "not encrypted": good_state(encryption=None),
        "not invite-only": good_state(join_rules={"join_rule": "public"}),
        "not 'joined'": good_state(history_visibility={"history_visibility": "shared"}),
        "guests may join": good_state(guest_access={"guest_access": "can_join"}),
        "the bot may not redact": good_state(power_levels={"users": {BOT: 40, CHAIR: 50},
                                                           "redact": 50}),
    }
    for words, state in cases.items():
        levels = judged(tmp_path, state)
        failed = [what for what, level in levels.items() if level is Level.FAIL]
        assert len(failed) == 1, (words, levels)
        assert words in failed[0]


def test_a_chair_without_moderator_power_and_absent_members_are_warnings(tmp_path: Path) -> None:
    state = good_state(power_levels={"users": {BOT: 100}, "redact": 50})
    del state[("m.room.member", IO)]
    warned = [w for w, level in judged(tmp_path, state).items() if level is Level.WARN]
    assert len(warned) == 2
    assert any(CHAIR in w and "moderator" in w for w in warned)
    assert any(IO in w and "not joined" in w for w in warned)


def test_room_version_12_creators_have_all_power(tmp_path: Path) -> None:
    state = good_state(create={"room_version": "12"},
                       power_levels={"users": {CHAIR: 50}, "redact": 50})
    cell = config(tmp_path).cells[0]
    look = RoomLook("!op:example.be", True, state, creator=BOT)
    checks = room_checks(cell, Table.OPERATIONAL, "!op:example.be", look, BOT)
    assert {c.level for c in checks} == {Level.OK}


def test_the_database_is_judged_without_being_created_or_upgraded(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    [missing] = database_checks(cfg)
    assert missing.level is Level.FAIL
    assert not (tmp_path / "livcr.db").exists()
    engine = sa.create_engine(cfg.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
    engine.dispose()
    [old] = database_checks(cfg)
    assert old.level is Level.FAIL
    assert f"needs {len(STEPS)}" in old.what
    assert "livcr run" in old.fix
    (tmp_path / "livcr.db").unlink()
    db = Database(cfg.database_url)
    db.migrate()
    ack_all(db, cfg)
    db.dispose()
    checks = database_checks(cfg)
    assert [c.level for c in checks] == [Level.OK] * len(checks)
    assert "5 not yet seen" in checks[-1].what


def test_data_dir_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert data_dir_checks(data)[0].level is Level.FAIL
    data.mkdir(mode=0o700)
    (data / "livcr.log").write_text("")
    os.chmod(data / "livcr.log", 0o600)
    assert data_dir_checks(data)[0].level is Level.OK
    os.chmod(data / "livcr.log", 0o644)
    [loose] = data_dir_checks(data)
    assert loose.level is Level.FAIL
    assert "livcr.log" in loose.what
    assert "chmod" in loose.fix
    os.chmod(data / "livcr.log", 0o600)
    os.chmod(data, 0o755)
    assert data_dir_checks(data)[0].level is Level.FAIL


def test_an_unreachable_homeserver_is_one_failure(tmp_path: Path) -> None:
    cfg = config(tmp_path, homeserver=f"http://127.0.0.1:{free_port()}")
    [check] = asyncio.run(matrix_checks(cfg))
    assert check.level is Level.FAIL
    assert "unreachable" in check.what
