"""Configuration: TOML turned into the model of ``commands.model`` (spec §4).

The roster rules and the model itself live in ``commands.model``; this module only reads the
file, fills secrets from the environment and reports every problem with its key.

Loading has no side effects: no directories are created, nothing is logged. Every problem is
reported with the key it belongs to, and all problems are reported at once.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from commands.model import Cell, Strict, matrix_user_id, parse_duration, roster_problems


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in problems))
        self.problems = problems


class MatrixConfig(Strict):
    homeserver: str
    user_id: str
    device_name: str = "livcr-bot"
    password: str | None = Field(default=None, repr=False)
    access_token: str | None = Field(default=None, repr=False)
    data_dir: Path = Path("data")

    _user_id = field_validator("user_id")(matrix_user_id)

    @field_validator("homeserver")
    @classmethod
    def _homeserver(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with https:// (or http:// for a local test server)")
        value = value.rstrip("/")
        api = re.search(r"/_matrix(/.*)?$", value)
        if api:
            raise ValueError(
                f"{value!r}: give the homeserver's base URL, without {api.group(0)!r} "
                f"(e.g. {value[: api.start()]!r})"
            )
        return value


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
    outbox_attempts: int = Field(default=10, ge=1)
    outbox_retry_seconds: float = Field(default=2.0, gt=0)
    reminder_grace: str = "1h"

    @field_validator("reminder_grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        parse_duration(value)
        return value


class MetricsConfig(Strict):
    """``[metrics]`` (spec §14): off unless ``listen`` is set; a bare port is loopback."""

    listen: str = ""
    healthy_within_seconds: float = Field(default=120.0, ge=10)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if not value:
            return value
        host, _, port = value.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            raise ValueError('must be "PORT" or "ADDRESS:PORT" with a literal address, '
                             'e.g. "127.0.0.1:9464"') from None
        if not 0 < number < 65536:
            raise ValueError("the port must be between 1 and 65535")
        return value


class Config(Strict):
    matrix: MatrixConfig
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()
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


def _shown(value: Any) -> str:
    """A bad value as the message shows it: scalars only, cut short (never a whole table)."""
    if isinstance(value, str | int | float | bool):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return ""


def _errors(prefix: str, exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        msg = err["msg"]
        loc = err["loc"]
        if "[key]" in loc:  # a mapping key: for tables, a misspelled table name
            loc = loc[: loc.index("[key]")]
            if loc == ("tables",) or (len(loc) == 2 and loc[0] == "tables"):
                msg = "unknown table: the tables are 'operational' and 'strategic'"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        shown = _shown(err.get("input"))
        if shown and err["type"] != "extra_forbidden" and shown not in msg:
            msg = f"{msg} (got {shown})"
        out.append((_loc(prefix, loc), msg))
    return out


def _cell_key(single: bool, key: str, members: list[Any]) -> str:
    """The full key path a person finds in the file: ``members[<user id>]`` instead of a
    zero-based index, and ``cell.`` before a [cell] key (tables and members are top-level
    sections of a one-cell file)."""

    def member(match: re.Match[str]) -> str:
        index = int(match.group(2))
        entry = members[index] if index < len(members) else None
        user_id = entry.get("user_id") if isinstance(entry, dict) else None
        if isinstance(user_id, str) and user_id:
            return f"{match.group(1)}[{user_id}]"
        return f"{match.group(1)}[#{index + 1}]"

    key = re.sub(r"(members)\[(\d+)\]", member, key)
    if single and key and not key.startswith(("tables", "members", "cell")):
        key = "cell." + key
    return key


def _member_entry_problems(prefix: str, members: list[Any], bot_user: Any
                           ) -> list[tuple[str, str]]:
    """Roster entries the model would accept but a deployment must not: no ``tables``
    (a silent default is a guess about who sits where), the bot's own account."""
    problems: list[tuple[str, str]] = []
    for index, entry in enumerate(members):
        if not isinstance(entry, dict):
            continue
        key = f"{prefix}members[{index}]"
        if "tables" not in entry:
            problems.append((f"{key}.tables", 'missing: say where this member sits, e.g. '
                             'tables = ["operational"] or ["operational", "strategic"]'))
        if isinstance(bot_user, str) and entry.get("user_id") == bot_user:
            problems.append((f"{key}.user_id", f"{bot_user} is the bot's own account "
                             "(matrix.user_id), not a member"))
    return problems


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                 need_secret: bool = True) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem.

    ``need_secret`` False: the commands that never talk to the homeserver (status, purge,
    trust) accept a file without the Matrix password or token."""
    env = os.environ if environ is None else environ
    data = dict(raw)
    problems: list[tuple[str, str]] = []
    cells: list[Cell] = []
    bot_user = (data.get("matrix") or {}).get("user_id")
    for prefix, cell_raw in _cell_dicts(data):
        if "id" not in cell_raw and isinstance(cell_raw.get("name"), str):
            cell_raw["id"] = slug(cell_raw["name"])
        members = cell_raw.get("members")
        members = list(members) if isinstance(members, list | tuple) else []
        found = _member_entry_problems(prefix, members, bot_user)
        try:
            cell = Cell.model_validate(cell_raw)
        except ValidationError as exc:
            found.extend(_errors(prefix, exc))
            cell = None
        if cell is not None:
            found.extend(roster_problems(cell, prefix))
            cells.append(cell)
        problems.extend((_cell_key(prefix == "", key, members), message)
                        for key, message in found)
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
    if need_secret and config is not None and not (
            config.matrix.password or config.matrix.access_token):
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


def load_config(path: Path, environ: Mapping[str, str] | None = None,
                need_secret: bool = True) -> Config:
    """Read and validate a TOML file."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError([("-c", f"no such file: {path}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("toml", f"not valid TOML: {exc}")]) from exc
    config = parse_config(raw, environ, need_secret=need_secret)
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
