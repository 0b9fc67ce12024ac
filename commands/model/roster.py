"""Tables, roles, members and cells, and the guideline's roster rules (spec §5).

The one model: frozen, validated values that depend on nothing of ours. ``bot/config.py``
turns TOML into them; every package reads them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from commands.model.dossier import DEFAULT_IDEOLOGIES, DEFAULT_PHENOMENA
from commands.model.durations import parse_duration


class Table(enum.StrEnum):
    """The two tables of a LIVC-R."""

    OPERATIONAL = "operational"
    STRATEGIC = "strategic"


class Role(enum.StrEnum):
    """Roster roles (spec §5)."""

    MAYOR = "mayor"
    CHAIR = "chair"
    INFORMATION_OFFICER = "information_officer"
    ALDERMAN = "alderman"
    PARTNER = "partner"
    CITY_SERVICE = "city_service"
    POLICE_CHIEF = "police_chief"
    PUBLIC_PROSECUTOR = "public_prosecutor"


class Who(enum.Enum):
    """Who may use a command."""

    MEMBER = "member"
    OPERATIONAL_MEMBER = "operational_member"
    STRATEGIC_MEMBER = "strategic_member"
    CHAIR = "chair"
    PRESENT_MEMBER = "present_member"


def chair_role(table: Table) -> Role:
    """Who chairs a table: the chair at the operational one, the mayor at the strategic one.

    The one place that answers it (permissions, room power levels, mentions, reminders).
    """
    return Role.MAYOR if table is Table.STRATEGIC else Role.CHAIR


def chairs_among(members: Iterable[Member], table: Table) -> tuple[str, ...]:
    """The user ids of those who chair ``table`` among ``members``."""
    role = chair_role(table)
    return tuple(m.user_id for m in members if m.role is role)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

DEFAULT_INDICATORS = (
    "violence-glorification",
    "extremist-contacts",
    "travel-plans",
    "propaganda-online",
    "sudden-change",
    "isolation",
    "threats",
    "weapons-interest",
    "radical-discourse",
)

#: Standard follow-up trajectories and their review interval in weeks.
DEFAULT_SCENARIOS: Mapping[str, int] = {
    "education": 6,
    "work-training": 8,
    "psychosocial": 4,
    "family": 6,
    "leisure": 8,
    "mentoring": 4,
}

#: Organisation names that point at a security or intelligence service (spec §5).
INTELLIGENCE_PATTERNS = (
    r"\bvsse\b",
    r"\badiv\b",
    r"\bsgrs\b",
    r"\bocam\b",
    r"\bocad\b",
    r"veiligheid van de staat",
    r"staatsveiligheid",
    r"s[uû]ret[eé] de l'[eé]tat",
    r"inlichting",
    r"renseignement",
    r"intelligence",
    r"state security",
)

POLICE_PATTERNS = (r"\bpolitie", r"\bpolice\b", r"\bpolizei", r"\bpz\b", r"\bzp\b")

#: A Matrix user id, ``@name:server``.
USER_ID = re.compile(r"@[^:\s]+:[^\s]+")


def matrix_user_id(value: str) -> str:
    """A validator: ``value`` when it looks like a Matrix user id."""
    if not USER_ID.fullmatch(value):
        raise ValueError("must look like @name:server")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class CadenceConfig(Strict):
    """Meeting intervals per mode; the defaults are the guideline's."""

    weekly_every_weeks: int = Field(default=1, ge=1, le=4)
    monthly_every_months: int = Field(default=1, ge=1, le=3)
    ad_hoc_if_next_meeting_beyond_days: int = Field(default=7, ge=1)


class TableConfig(Strict):
    room: str
    meeting_weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "tuesday"
    meeting_time: str = "10:00"
    duration_minutes: int = Field(default=90, ge=15, le=600)
    monthly_week: int = Field(default=1, ge=1, le=5)
    reminders: tuple[str, ...] = ("24h", "1h")
    skip_public_holidays: bool = True
    cadence: CadenceConfig = CadenceConfig()
    #: Optional room retention policy (m.room.retention): the homeserver deletes messages
    #: older than this, when its retention support is enabled. None: no policy set.
    message_retention_days: int | None = Field(default=None, ge=1, le=3650)
    #: A consensus needs a table (spec §9): a vote opens only with at least ``quorum``
    #: participating members from at least ``quorum_organisations`` organisations.
    quorum: int = Field(default=3, ge=1, le=100)
    quorum_organisations: int = Field(default=2, ge=1, le=100)
    #: After this the bot mentions, once, the eligible members who have not voted.
    vote_reminder: str = "10m"
    #: Aftercare reviews after a dossier closes (spec §13): ``6mo``, ``4w``, ``10d``; empty
    #: disables them.
    aftercare_reviews: tuple[str, ...] = ("6mo", "12mo")

    @field_validator("room")
    @classmethod
    def _room(cls, value: str) -> str:
        if not re.fullmatch(r"(![^\s]+|#[^:\s]+:[^\s]+)", value):
            raise ValueError("must be a room id (!id:server) or alias (#name:server)")
        return value

    @field_validator("meeting_time")
    @classmethod
    def _time(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError("must be a time HH:MM between 00:00 and 23:59")
        return value

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_duration(item)
        return value

    @field_validator("aftercare_reviews")
    @classmethod
    def _aftercare(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"\s*([1-9]\d{0,2})\s*(mo|w|d)\s*", item):
                raise ValueError("aftercare_reviews are periods like 6mo, 12mo, 4w or 10d")
        return value

    @field_validator("vote_reminder")
    @classmethod
    def _vote_reminder(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def vote_reminder_after(self) -> timedelta:
        return parse_duration(self.vote_reminder)

    @property
    def time_of_day(self) -> time:
        hours, minutes = self.meeting_time.split(":")
        return time(int(hours), int(minutes))

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.meeting_weekday)

    @property
    def reminder_offsets(self) -> tuple[timedelta, ...]:
        return tuple(parse_duration(item) for item in self.reminders)


class Member(Strict):
    user_id: str
    role: Role
    organisation: str = ""
    tables: tuple[Table, ...] = (Table.OPERATIONAL,)
    #: The member's cross-signing master key (unpadded base64, as Element shows it, spaces
    #: allowed), checked out of band: pinned instead of trusting the first key seen.
    master_key: str = ""

    _user_id = field_validator("user_id")(matrix_user_id)

    @field_validator("master_key")
    @classmethod
    def _master_key(cls, value: str) -> str:
        key = "".join(value.split())
        if key and not re.fullmatch(r"[A-Za-z0-9+/]{43}", key):
            raise ValueError("master_key must be an Ed25519 key in unpadded base64 (43 chars)")
        return key

    @property
    def is_police(self) -> bool:
        return self.role in (Role.INFORMATION_OFFICER, Role.POLICE_CHIEF)


class Cell(Strict):
    id: str = ""
    name: str
    municipalities: tuple[str, ...] = ()
    language: Literal["nl", "fr", "en"] = "nl"
    timezone: str = "Europe/Brussels"
    retention_days_after_close: int = Field(default=0, ge=0, le=3650)
    indicators: tuple[str, ...] = DEFAULT_INDICATORS
    #: What a signal's ``phenomenon=`` may be (spec §13; Strategy T.E.R. by default).
    phenomena: tuple[str, ...] = DEFAULT_PHENOMENA
    #: What an optional ``ideology=`` may be.
    ideologies: tuple[str, ...] = DEFAULT_IDEOLOGIES
    min_indicators: int = Field(default=1, ge=1)
    scenarios: Mapping[str, int] = Field(default_factory=lambda: dict(DEFAULT_SCENARIOS))
    tables: Mapping[Table, TableConfig]
    members: tuple[Member, ...] = ()

    @field_validator("phenomena", "ideologies")
    @classmethod
    def _words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one value")
        for item in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,15}", item):
                raise ValueError(f"{item!r}: one word of at most 16 letters, digits, - or _")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def members_of(self, table: Table) -> tuple[Member, ...]:
        return tuple(m for m in self.members if table in m.tables)

    def member(self, user_id: str) -> Member | None:
        for member in self.members:
            if member.user_id == user_id:
                return member
        return None


def _matches(patterns: tuple[str, ...], text: str) -> bool:
    lowered = text.lower()
    return any(re.search(pattern, lowered) for pattern in patterns)


#: The roster rules by message, so chat can answer in the cell's language
#: (``members.rule.<code>`` in templates/<lang>/messages).
RULE_CODES = {
    "the operational table needs at least one chair": "needs_chair",
    "the operational table needs at least one information_officer": "needs_officer",
    "the strategic table is chaired by the mayor": "mayor_chairs",
    "security and intelligence services have no place in a LIVC-R": "intelligence",
    "the police never chair a table": "police_chair",
    "a police_chief may sit only at the strategic table": "strategic_only",
    "a public_prosecutor may sit only at the strategic table": "strategic_only",
}


def rule_code(message: str) -> str:
    """The code of a roster rule message; ``other`` for messages about a single key."""
    return RULE_CODES.get(message, "other")


def roster_problems(cell: Cell, prefix: str) -> list[tuple[str, str]]:
    """The guideline's roster rules (spec §5) for one cell."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, member in enumerate(cell.members):
        key = f"{prefix}members[{index}]"
        if member.user_id in seen:
            problems.append((f"{key}.user_id", f"{member.user_id} is listed twice"))
        seen.add(member.user_id)
        problems.extend(member_problems(cell, member, key))
    if Table.OPERATIONAL in cell.tables:
        op = cell.members_of(Table.OPERATIONAL)
        if not any(m.role is Role.CHAIR for m in op):
            problems.append(
                (f"{prefix}members", "the operational table needs at least one chair")
            )
        if not any(m.role is Role.INFORMATION_OFFICER for m in op):
            problems.append(
                (
                    f"{prefix}members",
                    "the operational table needs at least one information_officer",
                )
            )
    if Table.STRATEGIC in cell.tables and not any(
        m.role is Role.MAYOR for m in cell.members_of(Table.STRATEGIC)
    ):
        problems.append((f"{prefix}members", "the strategic table is chaired by the mayor"))
    return problems


def member_problems(cell: Cell, member: Member, key: str) -> list[tuple[str, str]]:
    """Rules for one roster entry; also used by the ``members add`` command."""
    problems: list[tuple[str, str]] = []
    if _matches(INTELLIGENCE_PATTERNS, member.organisation):
        problems.append(
            (
                f"{key}.organisation",
                "security and intelligence services have no place in a LIVC-R",
            )
        )
    for table in member.tables:
        if table not in cell.tables:
            problems.append((f"{key}.tables", f"table {table.value!r} is not configured"))
    if member.role in (Role.POLICE_CHIEF, Role.PUBLIC_PROSECUTOR) and (
        Table.OPERATIONAL in member.tables
    ):
        problems.append(
            (f"{key}.tables", f"a {member.role.value} may sit only at the strategic table")
        )
    if member.role is Role.CHAIR and _matches(POLICE_PATTERNS, member.organisation):
        problems.append((f"{key}.role", "the police never chair a table"))
    if member.role is Role.CHAIR and Table.STRATEGIC in member.tables and (
        Table.OPERATIONAL not in member.tables
    ):
        problems.append((f"{key}.role", "the strategic table is chaired by the mayor"))
    return problems
