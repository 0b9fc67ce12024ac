"""The meeting repository and the cadence recomputation on every backend: SQLite always,
PostgreSQL when ``LIVCR_TEST_PG_URL`` is set (STYLE.md, "Storage and migrations")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.model import Table
from storage.meetings import CANCELLED, ENDED, LAPSED, PLANNED, STARTED
from tests.backends import backend_params, database_url
from tests.factories import CHAIR, PARTNER
from tests.meeting_harness import Harness, harness

CELL = "livc-r-voorbeeldstad"
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Belgium moves to summer time


@pytest.fixture(params=backend_params())
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with database_url(request.param, tmp_path) as url, harness(T0, url=url) as value:
        yield value


def test_meetings_round_trip_with_aware_times(h: Harness) -> None:
    with h.repos() as repos:
        first = repos.meetings.create(cell=CELL, table="operational",
                                      starts_at=T0 + timedelta(days=2), duration_minutes=90,
                                      kind="auto", at=T0, ics_posted=True)
        second = repos.meetings.create(cell=CELL, table="operational",
                                       starts_at=T0 + timedelta(days=1), duration_minutes=60,
                                       kind="adhoc", at=T0)
        other = repos.meetings.create(cell="elders", table="strategic", starts_at=T0,
                                      duration_minutes=30, kind="adhoc", at=T0)
    assert first.uid == f"meeting-{first.id}-{CELL}@livcr"
    with h.repos() as repos:
        listed = repos.meetings.of_table(CELL, "operational", [PLANNED])
        assert [m.id for m in listed] == [second.id, first.id]  # by start
        assert listed[1].starts_at == T0 + timedelta(days=2)
        assert listed[1].starts_at.tzinfo is not None
        assert [m.id for m in repos.meetings.planned_all()] == [other.id, second.id, first.id]
        assert repos.meetings.planned_all()[2] == listed[1]  # bulk rows equal ORM records
        moved = repos.meetings.update(first.id, starts_at=T0 + timedelta(days=3), sequence=1)
        assert moved.sequence == 1
        repos.meetings.update(second.id, status=STARTED, started_at=T0)
    with h.repos() as repos:
        assert repos.meetings.in_progress(CELL, "operational").id == second.id
        repos.meetings.update(second.id, status=ENDED, ended_at=T0 + timedelta(hours=1))
        repos.meetings.update(first.id, status=CANCELLED, cancel_reason="chair")
        repos.meetings.update(other.id, status=LAPSED)
    with h.repos() as repos:
        assert repos.meetings.in_progress(CELL, "operational") is None
        assert repos.meetings.last_held_all() == {(CELL, "operational"): T0 + timedelta(days=1)}
        taken = repos.meetings.recent_auto_all(T0)
        assert [(m.id, m.cancel_reason) for m in taken] == [(first.id, "chair")]


def test_attendance_items_state_and_decisions(h: Harness) -> None:
    with h.repos() as repos:
        meeting = repos.meetings.create(cell=CELL, table="operational", starts_at=T0,
                                        duration_minutes=90, kind="adhoc", at=T0)
        assert repos.meetings.add_attendance(meeting.id, CHAIR, T0)
        assert repos.meetings.add_attendance(meeting.id, PARTNER, T0 + timedelta(minutes=1))
        assert not repos.meetings.add_attendance(meeting.id, CHAIR, T0 + timedelta(minutes=2))
        before = repos.meetings.add_item(cell=CELL, table="operational", text="punt één",
                                         author=PARTNER, at=T0)
        repos.meetings.add_item(cell=CELL, table="operational", text="tijdens", author=CHAIR,
                                at=T0, meeting_id=meeting.id)
        repos.meetings.add_item(cell=CELL, table="strategic", text="elders", author=CHAIR,
                                at=T0)
    with h.repos() as repos:
        assert repos.meetings.attendees(meeting.id) == [CHAIR, PARTNER]
        assert [i.text for i in repos.meetings.items(CELL, "operational")] == ["punt één",
                                                                               "tijdens"]
        assert repos.meetings.close_items(CELL, "operational", meeting.id) == 1
    with h.repos() as repos:
        [kept] = repos.meetings.items(CELL, "operational")
        assert (kept.text, kept.meeting_id) == ("tijdens", None)
        assert kept.id != before.id
        assert len(repos.meetings.items(CELL, "strategic")) == 1
        assert repos.meetings.state(CELL, "operational") is None
        repos.meetings.put_state(CELL, "operational", T0, mode="weekly")
        repos.meetings.put_state(CELL, "operational", T0 + timedelta(hours=1), met_once=True)
    with h.repos() as repos:
        state = repos.meetings.states_all()[(CELL, "operational")]
        assert (state.mode, state.met_once, state.created_at, state.updated_at) == (
            "weekly", True, T0, T0 + timedelta(hours=1))
        repos.audit.record(cell=CELL, actor=CHAIR, action="flag_problematic", at=T0,
                           code="C-12345")
        repos.audit.record(cell=CELL, actor=CHAIR, action="ack", at=T0)
        repos.audit.record(cell=CELL, actor=CHAIR, action="scenario", at=T0 + timedelta(days=1),
                           code="C-12345")
    with h.repos() as repos:
        decisions = repos.meetings.decisions_between(CELL, T0, T0 + timedelta(hours=1))
        assert [(d.code, d.action) for d in decisions] == [("C-12345", "flag_problematic")]


def test_the_cadence_cycle_on_this_backend(h: Harness) -> None:
    code = h.signal()
    h.say(f"!case flag {code} problematic")
    with h.repos() as repos:
        [meeting] = repos.meetings.of_table(CELL, "operational", [PLANNED])
        assert repos.meetings.state(CELL, "operational").mode == "weekly"
    # Sunday 29 March 2026, 02:30 local does not exist; the next Tuesday is in summer time.
    assert meeting.starts_at == datetime(2026, 3, 31, 8, 0, tzinfo=UTC)
    h.clock.now = meeting.starts_at - timedelta(minutes=30)
    assert {s.kind for s in h.core.job_plan().jobs} >= {"reminder", "lapse", "first_meeting"}
    h.say("!meeting start")
    h.say("!present", sender=PARTNER)
    assert "Present (2)" in h.text("!meeting end")
    h.core.recompute_all()
    with h.repos() as repos:
        [following] = repos.meetings.of_table(CELL, "operational", [PLANNED])
    assert following.starts_at == datetime(2026, 4, 7, 8, 0, tzinfo=UTC)
    assert (CELL, Table.OPERATIONAL) in h.port.changed
