"""Configuration: the example file loads, every problem is named by its key (spec §4, §5)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_config, parse_config
from commands.model import Role, Table
from tests.factories import CHAIR, PARTNER, SCHOOL, raw_config

ROOT = Path(__file__).resolve().parent.parent


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ={})
    return dict(info.value.problems)


def test_config_example_toml_loads_and_passes_the_roster_rules() -> None:
    config = load_config(ROOT / "config.example.toml", environ={"LIVCR_MATRIX_PASSWORD": "x"})
    cell = config.cells[0]
    assert cell.language == "nl"
    assert {Table.OPERATIONAL, Table.STRATEGIC} == set(cell.tables)
    assert cell.tables[Table.OPERATIONAL].reminder_offsets[0].total_seconds() == 86400
    assert config.matrix.data_dir.is_absolute()
    assert config.database_url.startswith("sqlite:////")


def test_secrets_come_from_the_environment_and_are_not_in_repr() -> None:
    raw = raw_config()
    del raw["matrix"]["password"]
    config = parse_config(raw, environ={"LIVCR_MATRIX_ACCESS_TOKEN": "syt_secret_token"})
    assert config.matrix.access_token == "syt_secret_token"
    assert "syt_secret_token" not in repr(config)


def test_missing_secret_is_named() -> None:
    raw = raw_config()
    del raw["matrix"]["password"]
    assert "matrix.password" in problems(raw)


def test_unknown_key_is_named() -> None:
    raw = raw_config()
    raw["tables"]["operational"]["meeting_wekday"] = "monday"
    assert problems(raw)["tables.operational.meeting_wekday"] == "unknown key"


def test_wrong_type_and_impossible_time_are_named() -> None:
    raw = raw_config()
    raw["tables"]["operational"]["duration_minutes"] = "long"
    raw["tables"]["operational"]["meeting_time"] = "25:61"
    found = problems(raw)
    assert "tables.operational.duration_minutes" in found
    assert "HH:MM" in found["tables.operational.meeting_time"]


def test_unknown_language_and_timezone_are_refused() -> None:
    found = problems(raw_config(language="de", timezone="Europe/Atlantis"))
    assert "'de'" in found["cell.language"]
    assert "Atlantis" in found["cell.timezone"]


def test_a_member_without_tables_the_bots_own_account_and_a_misspelled_table_are_refused(
) -> None:
    raw = raw_config()
    del raw["members"][2]["tables"]
    raw["members"].append({"user_id": raw["matrix"]["user_id"], "role": "partner",
                           "organisation": "X", "tables": ["operational"]})
    raw["tables"]["operationeel"] = raw["tables"].pop("strategic")
    found = problems(raw)
    assert "missing" in found[f"members[{PARTNER}].tables"]
    assert "own account" in found[f"members[{raw['matrix']['user_id']}].user_id"]
    assert "'operationeel'" in found["tables.operationeel"]
    assert "'operational' and 'strategic'" in found["tables.operationeel"]


def test_a_homeserver_url_with_the_client_api_path_is_refused_with_the_base_url() -> None:
    raw = raw_config()
    raw["matrix"]["homeserver"] = "https://matrix.example.be/_matrix/client/"
    assert "'https://matrix.example.be'" in problems(raw)["matrix.homeserver"]


def test_a_bad_value_is_shown_with_its_key() -> None:
    raw = raw_config()
    raw["members"][0]["role"] = "chiar"
    assert "(got 'chiar')" in problems(raw)[f"members[{CHAIR}].role"]


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda ms: ms.pop(0), "members", "at least one chair"),
        (lambda ms: ms.pop(1), "members", "information_officer"),
        (lambda ms: ms[2].update(organisation="VSSE"), f"members[{PARTNER}].organisation",
         "intelligence"),
        (lambda ms: ms[2].update(organisation="Veiligheid van de Staat"),
         f"members[{PARTNER}].organisation", "intelligence"),
        (lambda ms: ms[3].update(organisation="ADIV/SGRS"), f"members[{SCHOOL}].organisation",
         "intelligence"),
        (lambda ms: ms.append({"user_id": "@chief:example.be", "role": "police_chief",
                               "tables": ["operational"]}), "members[@chief:example.be].tables",
         "strategic"),
        (lambda ms: ms.append({"user_id": "@om:example.be", "role": "public_prosecutor",
                               "tables": ["operational"]}), "members[@om:example.be].tables",
         "strategic"),
        (lambda ms: ms[0].update(organisation="Politiezone Noord"), f"members[{CHAIR}].role",
         "never chair"),
        (lambda ms: ms.pop(4), "members", "mayor"),
        (lambda ms: ms.append(dict(ms[2])), f"members[{PARTNER}].user_id", "twice"),
        (lambda ms: ms[2].update(role="spy"), f"members[{PARTNER}].role", "Input should be"),
    ],
)
def test_roster_rules_of_the_guideline_are_enforced(mutate: Any, key: str, fragment: str) -> None:
    raw = raw_config()
    mutate(raw["members"])
    found = problems(raw)
    assert key in found, found
    assert fragment in found[key]


def test_several_cells_each_with_their_own_tables_and_roster() -> None:
    base = raw_config()
    cell_a = {**base["cell"], "name": "LIVC-R Noord", "tables": base["tables"],
              "members": base["members"]}
    cell_b = copy.deepcopy(cell_a)
    cell_b["name"] = "CSIL-R Sud"
    cell_b["language"] = "fr"
    cell_b["tables"] = {"operational": {"room": "!sud:example.be"}}
    cell_b["members"] = [m for m in cell_b["members"] if "strategic" not in m.get("tables", [])
                         or "operational" in m.get("tables", [])]
    for member in cell_b["members"]:
        member["tables"] = ["operational"]
    raw = {"matrix": base["matrix"], "cells": [cell_a, cell_b]}
    config = parse_config(raw, environ={})
    assert [c.id for c in config.cells] == ["livc-r-noord", "csil-r-sud"]
    assert config.cell("csil-r-sud").language == "fr"
    assert config.cell("csil-r-sud").members[0].role is Role.CHAIR


def test_cell_and_cells_together_are_refused() -> None:
    raw = raw_config()
    raw["cells"] = [raw["cell"]]
    assert "cells" in problems(raw)


def test_two_tables_in_one_room_are_refused() -> None:
    raw = raw_config()
    raw["tables"]["strategic"]["room"] = raw["tables"]["operational"]["room"]
    assert "tables" in problems(raw)


def test_check_config_exits_2_and_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = (ROOT / "config.example.toml").read_text().replace(
        'meeting_time = "10:00"', 'meeting_time = "10h"'
    )
    bad.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", "-c", str(bad)],
        capture_output=True, text=True, env={"LIVCR_MATRIX_PASSWORD": "x", "PATH": ""},
        check=False,
    )
    assert result.returncode == 2
    assert "tables.operational.meeting_time" in result.stderr
    good = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", "-c",
         str(ROOT / "config.example.toml")],
        capture_output=True, text=True, env={"LIVCR_MATRIX_PASSWORD": "x", "PATH": ""},
        check=False,
    )
    assert good.returncode == 0, good.stderr


def test_livcr_demo_without_a_source_checkout_exits_2_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    from bot import cli

    def absent(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", absent)
    assert cli.main(["demo", "--once"]) == 2
    assert capsys.readouterr().err == "the demo runs from a source checkout: make demo\n"
