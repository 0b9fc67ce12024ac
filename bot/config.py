"""Configuration: TOML loaded into frozen, validated models (spec §4, roster rules §5).

Loading has no side effects: no directories are created, nothing is logged. Every problem is
reported with the key it belongs to, and all problems are reported at once.
"""

from __future__ import annotations

import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from commands.base import Role, Table

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

DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in problems))
        self.problems = problems


def parse_duration(text: str) -> timedelta:
    """Parse ``90m``, ``24h``, ``2d`` or ``4w``."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration like 24h, 90m, 2d or 4w: {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
        "w": timedelta(weeks=amount),
    }[unit]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class MatrixConfig(Strict):
    homeserver: str
    user_id: str
    device_name: str = "livcr-bot"
    password: str | None = Field(default=None, repr=False)
    access_token: str | None = Field(default=None, repr=False)
    data_dir: Path = Path("data")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if not re.fullmatch(r"@[^:\s]+:[^\s]+", value):
            raise ValueError("must look like @name:server")
        return value

    @field_validator("homeserver")
    @classmethod
    def _homeserver(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with https:// (or http:// for a local test server)")
        return value.rstrip("/")


class StorageConfig(Strict):
    database_url: str = "sqlite:///data/livcr.db"

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith("sqlite:") or value.startswith("postgresql")):
            raise ValueError("must be sqlite:///… or postgresql+psycopg://…")
        return value


class LimitsConfig(Strict):
    commands_per_minute: int = Field(default=20, ge=1)
    max_input_chars: int = Field(default=4000, ge=100)
    undecryptable_timeout_seconds: float = Field(default=30.0, gt=0)
    reminder_grace: str = "1h"

    @field_validator("reminder_grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        parse_duration(value)
        return value


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

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if not re.fullmatch(r"@[^:\s]+:[^\s]+", value):
            raise ValueError("must look like @name:server")
        return value

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
    min_indicators: int = Field(default=1, ge=1)
    scenarios: Mapping[str, int] = Field(default_factory=lambda: dict(DEFAULT_SCENARIOS))
    tables: Mapping[Table, TableConfig]
    members: tuple[Member, ...] = ()

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


class Config(Strict):
    matrix: MatrixConfig
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    cells: tuple[Cell, ...]

    def cell(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(cell_id)

    @property
    def database_url(self) -> str:
        return self.storage.database_url


def slug(text: str) -> str:
    """A stable identifier for a cell from its name."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "cell"


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


def _cell_dicts(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if "cell" in raw and "cells" in raw:
        raise ConfigError([("cells", "use either [cell] or [[cells]], not both")])
    if "cells" in raw:
        cells = raw.pop("cells")
        if not isinstance(cells, list) or not cells:
            raise ConfigError([("cells", "must be a non-empty list of [[cells]] tables")])
        for key in ("tables", "members"):
            if key in raw:
                raise ConfigError([(key, "with [[cells]], put tables and members in each cell")])
        return [(f"cells[{i}].", dict(c)) for i, c in enumerate(cells)]
    if "cell" not in raw:
        raise ConfigError([("cell", "missing: a [cell] section or [[cells]] entries")])
    cell = dict(raw.pop("cell"))
    for key in ("tables", "members"):
        if key in raw:
            cell[key] = raw.pop(key)
    return [("", cell)]


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item))
    return prefix + ".".join(parts)


def _errors(prefix: str, exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        out.append((_loc(prefix, err["loc"]), msg))
    return out


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    env = os.environ if environ is None else environ
    data = dict(raw)
    problems: list[tuple[str, str]] = []
    cells: list[Cell] = []
    for prefix, cell_raw in _cell_dicts(data):
        if "id" not in cell_raw and isinstance(cell_raw.get("name"), str):
            cell_raw["id"] = slug(cell_raw["name"])
        try:
            cell = Cell.model_validate(cell_raw)
        except ValidationError as exc:
            problems.extend(_errors(prefix, exc))
            continue
        problems.extend(roster_problems(cell, prefix))
        cells.append(cell)
    ids = [c.id for c in cells]
    for duplicate in {i for i in ids if ids.count(i) > 1}:
        problems.append(("cells", f"two cells share the id {duplicate!r}; give each an id"))
    rooms = [t.room for c in cells for t in c.tables.values()]
    for duplicate in {r for r in rooms if rooms.count(r) > 1}:
        problems.append(("tables", f"room {duplicate} is used by two tables"))

    matrix = dict(data.pop("matrix", {}) or {})
    if env.get("LIVCR_MATRIX_PASSWORD"):
        matrix["password"] = env["LIVCR_MATRIX_PASSWORD"]
    if env.get("LIVCR_MATRIX_ACCESS_TOKEN"):
        matrix["access_token"] = env["LIVCR_MATRIX_ACCESS_TOKEN"]
    data["matrix"] = matrix
    data["cells"] = []
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(e for e in _errors("", exc) if not e[0].startswith("cells"))
        config = None
    if config is not None and not (config.matrix.password or config.matrix.access_token):
        problems.append(
            (
                "matrix.password",
                "set a password or access_token here or in LIVCR_MATRIX_PASSWORD / "
                "LIVCR_MATRIX_ACCESS_TOKEN",
            )
        )
    if problems or config is None:
        raise ConfigError(problems)
    return config.model_copy(update={"cells": tuple(cells)})


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError([("-c", f"no such file: {path}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("toml", f"not valid TOML: {exc}")]) from exc
    config = parse_config(raw, environ)
    data_dir = config.matrix.data_dir
    if not data_dir.is_absolute():
        data_dir = (path.parent / data_dir).resolve()
    url = config.storage.database_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str((path.parent / url.removeprefix(prefix)).resolve())
    return config.model_copy(
        update={
            "matrix": config.matrix.model_copy(update={"data_dir": data_dir}),
            "storage": config.storage.model_copy(update={"database_url": url}),
        }
    )
