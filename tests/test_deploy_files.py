"""The deployment the README describes is the one the repository ships (issue 20, items 1-2
and 6): the systemd unit in deploy/, the secret file, and paths that mean what the README says
(relative paths resolve against the configuration file's folder; the production paths are
absolute and land in /var/lib/livcr whatever folder the configuration lives in)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from bot.config import load_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "livcr-bot.service"
ENV = ROOT / "deploy" / "livcr-bot.env.example"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_runs_the_bot_as_its_own_user_with_its_state_directory_and_secret() -> None:
    service = _unit()["Service"]
    assert service["User"] == "livcr"
    assert service["StateDirectory"] == "livcr"
    assert service["StateDirectoryMode"] == "0700"
    assert service["WorkingDirectory"] == "/var/lib/livcr"
    assert service["EnvironmentFile"] == "/etc/livcr/livcr-bot.env"
    assert service["ExecStart"].endswith("livcr run -c /etc/livcr/config.toml")
    assert service["ProtectSystem"] == "strict"
    assert service["UMask"] == "0077"
    assert "Environment" not in service  # no secret in the unit itself
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP: the roster again


def test_the_unit_keeps_restarting_after_a_reboot_while_the_homeserver_comes_up() -> None:
    unit = _unit()
    assert unit["Service"]["Restart"] == "always"
    assert int(unit["Service"]["RestartSec"]) >= 5
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "matrix-synapse.service" in unit["Unit"]["After"].split()


def test_the_secret_file_example_holds_only_environment_assignments() -> None:
    lines = [line for line in ENV.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"LIVCR_[A-Z_]+=.+", line) for line in lines)


def test_the_readme_installs_the_shipped_files() -> None:
    assert "deploy/livcr-bot.service /etc/systemd/system/" in README
    assert "deploy/livcr-bot.env.example /etc/livcr/livcr-bot.env" in README
    assert "useradd --system" in README
    assert "--uid=livcr" in README  # setup runs as the service user
    assert "systemctl reload livcr-bot" in README
    assert "check-config --online" in README
    assert "setup --start-over" in README
    assert "livcr restore" in README


def test_the_production_paths_of_the_readme_land_in_var_lib_whatever_the_config_folder(
    tmp_path: Path,
) -> None:
    data_dir = re.search(r'data_dir = "(/[^"]+)"', README)
    database_url = re.search(r'database_url = "(sqlite:////[^"]+)"', README)
    assert data_dir
    assert database_url
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    example = re.sub(r'^data_dir = "[^"]*"', f'data_dir = "{data_dir.group(1)}"', example,
                     flags=re.M)
    example = re.sub(r'^database_url = "[^"]*"', f'database_url = "{database_url.group(1)}"',
                     example, flags=re.M)
    etc = tmp_path / "etc" / "livcr"
    etc.mkdir(parents=True)
    (etc / "config.toml").write_text(example, encoding="utf-8")
    config = load_config(etc / "config.toml", environ={"LIVCR_MATRIX_PASSWORD": "x"})
    assert config.matrix.data_dir == Path("/var/lib/livcr/data")
    assert config.storage.database_url == "sqlite:////var/lib/livcr/data/livcr.db"


def test_relative_paths_resolve_against_the_configuration_files_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "livcr"
    etc.mkdir(parents=True)
    (etc / "config.toml").write_text(
        (ROOT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(etc / "config.toml", environ={"LIVCR_MATRIX_PASSWORD": "x"})
    assert config.matrix.data_dir == (etc / "data").resolve()
    assert config.storage.database_url == f"sqlite:///{(etc / 'data' / 'livcr.db').resolve()}"
