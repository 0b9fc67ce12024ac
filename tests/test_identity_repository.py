"""Pinned identities (storage.identities), on every backend: SQLite always, PostgreSQL when
``LIVCR_TEST_PG_URL`` is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.db import Database
from storage.identities import HOW_OPERATOR, HOW_ROSTER, HOW_TOFU, IdentityRecord
from tests.backends import backend_params, database_url, migrated_database

CHAIR = "@chair:example.be"
OFFICER = "@officer:example.be"
OLD = "Xc9DEmpR2gHzbqWq7QeJ5zL1mbYyQ3u7mQe1xJ0u8kE"
NEW = "pK2n8Qy0m7cVdT4rW6aLb3sZ1eH9fJ5uG8xC2vB7nMo"
NEWER = "a" * 43
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
BRUSSELS = timezone(timedelta(hours=2))


@pytest.fixture(params=backend_params())
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path) as database:
        yield database


def test_first_sight_pins_and_a_second_pin_keeps_the_first(db: Database) -> None:
    with db.unit_of_work() as repos:
        assert repos.identities.get(OFFICER) is None
        record = repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
    assert isinstance(record, IdentityRecord)
    assert record.master_key == OLD
    assert record.pinned_how == "tofu"
    assert record.pinned_at == T0
    assert not record.blocked
    with pytest.raises(FrozenInstanceError):
        record.master_key = NEW  # type: ignore[misc]
    with db.unit_of_work() as repos:
        again = repos.identities.pin(OFFICER, NEW, HOW_TOFU, T0 + timedelta(days=1))
    assert again.master_key == OLD
    assert again.pinned_at == T0
    with db.reading() as repos:
        stored = repos.identities.get(OFFICER)
    assert stored == record


def test_times_are_aware_utc_whatever_zone_they_were_given_in(db: Database) -> None:
    at = datetime(2026, 6, 1, 14, 0, tzinfo=BRUSSELS)
    with db.unit_of_work() as repos:
        repos.identities.pin(CHAIR, OLD, HOW_ROSTER, at)
    with db.reading() as repos:
        record = repos.identities.get(CHAIR)
    assert record is not None
    assert record.pinned_at == at
    assert record.pinned_at is not None
    assert record.pinned_at.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive"), db.unit_of_work() as repos:
        repos.identities.pin(OFFICER, OLD, HOW_TOFU, datetime(2026, 6, 1, 14, 0))  # noqa: DTZ001


def test_pins_are_read_in_one_query_for_the_roster(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.identities.pin(CHAIR, OLD, HOW_TOFU, T0)
        repos.identities.pin(OFFICER, NEW, HOW_ROSTER, T0)
        repos.identities.mark_chair_notified("@nopin:example.be", T0)  # a row, no pin
    with db.reading() as repos:
        assert repos.identities.pins() == {CHAIR: OLD, OFFICER: NEW}
        assert repos.identities.pins([CHAIR, "@other:example.be"]) == {CHAIR: OLD}
        assert repos.identities.pins([]) == {}
        unpinned = repos.identities.get("@nopin:example.be")
    assert unpinned is not None
    assert unpinned.master_key is None
    assert unpinned.chair_notified


def test_block_then_trust_repins_and_clears_the_block(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
        assert repos.identities.block(OFFICER, NEW, T0 + timedelta(hours=1))
        assert repos.identities.mark_chair_notified(OFFICER, T0 + timedelta(hours=1))
    with db.unit_of_work() as repos:
        # Seen again (another sync, a restart): not news, the chair is not told twice.
        assert not repos.identities.block(OFFICER, NEW, T0 + timedelta(hours=2))
        assert not repos.identities.mark_chair_notified(OFFICER, T0 + timedelta(hours=2))
        record = repos.identities.get(OFFICER)
        assert record is not None
        assert record.blocked
        assert record.blocked_key == NEW
        assert record.blocked_at == T0 + timedelta(hours=1)
        assert record.master_key == OLD  # the pin is not touched by a block
        assert [r.user_id for r in repos.identities.list_blocked()] == [OFFICER]
    with db.unit_of_work() as repos:
        # Changed once more before anybody trusted it: news again, the chair told again.
        assert repos.identities.block(OFFICER, NEWER, T0 + timedelta(hours=3))
        blocked = repos.identities.get(OFFICER)
        assert blocked is not None
        assert blocked.blocked_key == NEWER
        assert not blocked.chair_notified
        assert repos.identities.mark_chair_notified(OFFICER, T0 + timedelta(hours=3))
    with db.unit_of_work() as repos:
        trusted = repos.identities.trust(
            OFFICER, NEWER, f"chair:{CHAIR}", T0 + timedelta(hours=4)
        )
    assert trusted.master_key == NEWER
    assert trusted.pinned_how == f"chair:{CHAIR}"
    assert trusted.pinned_at == T0 + timedelta(hours=4)
    assert not trusted.blocked
    assert trusted.blocked_at is None
    assert not trusted.chair_notified
    with db.reading() as repos:
        assert repos.identities.list_blocked() == []
        assert repos.identities.pins([OFFICER]) == {OFFICER: NEWER}


def test_block_needs_a_pin_and_another_key(db: Database) -> None:
    with db.unit_of_work() as repos:
        with pytest.raises(KeyError):
            repos.identities.block(OFFICER, NEW, T0)
        repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
        with pytest.raises(ValueError, match="pinned key"):
            repos.identities.block(OFFICER, OLD, T0)


def test_the_operator_can_pin_someone_never_seen(db: Database) -> None:
    with db.unit_of_work() as repos:
        record = repos.identities.trust(CHAIR, NEW, HOW_OPERATOR, T0)
    assert record.master_key == NEW
    assert record.pinned_how == "operator"


def test_unknown_ways_of_pinning_are_refused(db: Database) -> None:
    with db.unit_of_work() as repos:
        for how in ("", "chair", "chair:", "chair:bob", "TOFU", "tofu ", "chair:@a b:c"):
            with pytest.raises(ValueError, match="pinning"):
                repos.identities.pin(OFFICER, OLD, how, T0)
            with pytest.raises(ValueError, match="pinning"):
                repos.identities.trust(OFFICER, OLD, how, T0)
        assert repos.identities.get(OFFICER) is None


def test_each_device_is_told_once_and_survives_trust(db: Database) -> None:
    with db.unit_of_work() as repos:
        assert repos.identities.mark_device_told(OFFICER, "NEWLOGIN", T0)
        assert not repos.identities.mark_device_told(OFFICER, "NEWLOGIN", T0)
        assert repos.identities.mark_device_told(OFFICER, "TABLET", T0)
        assert repos.identities.mark_device_told(CHAIR, "NEWLOGIN", T0)  # per user
    with db.unit_of_work() as repos:
        assert not repos.identities.mark_device_told(OFFICER, "TABLET", T0)
        record = repos.identities.get(OFFICER)
        assert record is not None
        assert record.master_key is None  # told before any pin: a record all the same
        assert record.told_devices == {"NEWLOGIN", "TABLET"}
        repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
        repos.identities.block(OFFICER, NEW, T0)
        repos.identities.trust(OFFICER, NEW, HOW_OPERATOR, T0)
    with db.reading() as repos:
        after = repos.identities.get(OFFICER)
    assert after is not None
    assert after.told_devices == {"NEWLOGIN", "TABLET"}


def test_a_failed_unit_of_work_leaves_no_pin_behind(db: Database) -> None:
    def failing_handler() -> None:
        with db.unit_of_work() as repos:
            repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
            repos.identities.mark_device_told(OFFICER, "D", T0)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        failing_handler()
    with db.reading() as repos:
        assert repos.identities.get(OFFICER) is None


@pytest.mark.parametrize("backend", backend_params())
def test_concurrent_first_sights_keep_one_pin(backend: str, tmp_path: Path) -> None:
    """Two units of work pinning the same user at once (two workers): one pin, which both
    see; the device is told once. SQLite in a file, so there are two connections."""
    with database_url(backend, tmp_path) as url:
        database = Database(url)
        try:
            database.migrate()
            _race(database)
        finally:
            database.dispose()


def _race(database: Database) -> None:
    results: list[str | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(key: str) -> None:
        try:
            barrier.wait()
            with database.unit_of_work() as repos:
                results.append(repos.identities.pin(OFFICER, key, HOW_TOFU, T0).master_key)
                repos.identities.mark_device_told(OFFICER, "D", T0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (OLD, NEW)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.reading() as repos:
        stored = repos.identities.get(OFFICER)
    assert stored is not None
    assert errors == []
    assert results == [stored.master_key, stored.master_key]
    assert stored.told_devices == {"D"}


def test_a_row_created_meanwhile_is_found_after_the_conflict(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path of the losing worker, made deterministic: the first look misses a row that
    a concurrent unit of work committed; the INSERT conflicts and the row is used."""
    with db.unit_of_work() as repos:
        repos.identities.pin(OFFICER, OLD, HOW_TOFU, T0)
    with db.unit_of_work() as repos:
        real = type(repos.identities)._row
        looks: list[str] = []

        def first_look_misses(self: object, user_id: str, lock: bool = False) -> object:
            looks.append(user_id)
            return None if len(looks) == 1 else real(repos.identities, user_id, lock)

        monkeypatch.setattr(type(repos.identities), "_row", first_look_misses)
        record = repos.identities.pin(OFFICER, NEW, HOW_TOFU, T0)
        assert record.master_key == OLD
        assert repos.identities.mark_chair_notified(OFFICER, T0)
    assert len(looks) >= 2
