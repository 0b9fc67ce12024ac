"""``livcr setup``'s secrets and ``livcr restore``'s refusals, without a homeserver (the e2e
proof is tests/test_e2e_restore.py and tests/test_interop_restore.py).

The refusals must happen before any network use: the configured homeserver here is a closed
loopback port, so a test that got as far as logging in would fail with a login error instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bot import cli
from bot.config import Config
from bot.edge import secret_storage
from bot.edge.identity_backup import identity_secrets, keys_from_secrets, private_b64
from bot.edge.secret_storage import SecretStorageError
from bot.edge.signing_keys import CrossSigningKeys, public_b64
from tests.factories import make_config

USER = "@livcr:example.be"


def config_in(tmp_path: Path) -> Config:
    config = make_config()
    matrix = config.matrix.model_copy(update={
        "data_dir": tmp_path / "data", "homeserver": "http://127.0.0.1:9", "user_id": USER,
    })
    return config.model_copy(update={"matrix": matrix})


def test_the_stored_secrets_give_back_the_same_identity() -> None:
    keys = CrossSigningKeys.generate(USER)
    secrets = identity_secrets(keys, "store-key-text")
    assert set(secrets) == {"m.cross_signing.master", "m.cross_signing.self_signing",
                            "m.cross_signing.user_signing", "be.livcr.store_key"}
    assert secrets["be.livcr.store_key"] == "store-key-text"
    assert "be.livcr.store_key" not in identity_secrets(keys, None)
    # Through the real encryption and back, as setup writes and restore reads.
    recovery_key, account_data = secret_storage.new_store(secrets)
    read = secret_storage.open_store(account_data, recovery_key,
                                     secret_storage.CROSS_SIGNING_SECRETS)
    back = keys_from_secrets(USER, read)
    for name in ("master", "self_signing", "user_signing"):
        assert private_b64(getattr(back, name)) == private_b64(getattr(keys, name))
    assert public_b64(back.master) == public_b64(keys.master)
    assert back.uploaded is True  # restored keys are the published ones


def test_a_secret_that_is_not_an_ed25519_seed_is_refused() -> None:
    keys = CrossSigningKeys.generate(USER)
    secrets = identity_secrets(keys, None)
    secrets["m.cross_signing.self_signing"] = "c2hvcnQ"  # base64 of 5 bytes
    with pytest.raises(SecretStorageError, match="self_signing"):
        keys_from_secrets(USER, secrets)


def test_the_recovery_key_is_printed_once_as_element_shows_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = secret_storage.encode_recovery_key(secret_storage.generate_key())
    cli.print_recovery_key(key)
    out = capsys.readouterr().out
    assert out.count(key) == 1
    assert re.search(r"^recovery key: (\S{4} ){11}\S{4}$", out, re.MULTILINE)
    assert "OFFLINE" in out
    assert "livcr restore" in out


async def test_restore_refuses_a_data_dir_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_in(tmp_path)
    data_dir = config.matrix.data_dir
    data_dir.mkdir()
    (data_dir / "cross_signing.json").write_text("{}")
    key = secret_storage.encode_recovery_key(secret_storage.generate_key())
    assert await cli.restore(config, key) == 2
    err = capsys.readouterr().err
    assert err.startswith("restore refused:")
    assert "cross_signing.json" in err
    assert sorted(p.name for p in data_dir.iterdir()) == ["cross_signing.json"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "restore needs the recovery key"),
        ("   ", "restore needs the recovery key"),
        ("EsTc 1234 not a key", "restore failed: "),
        ("0OIl", "restore failed: "),
    ],
)
async def test_restore_refuses_a_missing_or_mistyped_key_before_any_login(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], typed: str, message: str
) -> None:
    config = config_in(tmp_path)
    assert await cli.restore(config, typed) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert not config.matrix.data_dir.exists()  # nothing created, no device logged in


def test_a_mistyped_key_is_told_by_its_parity() -> None:
    key = secret_storage.encode_recovery_key(secret_storage.generate_key())
    with pytest.raises(SecretStorageError, match=r"mistyped|wrong"):
        secret_storage.decode_recovery_key(key[:-1] + ("x" if key[-1] != "x" else "y"))


def test_the_recovery_key_from_the_environment_is_masked_in_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secret_storage.encode_recovery_key(secret_storage.generate_key())
    monkeypatch.setenv(cli.RECOVERY_KEY_ENV, key)
    assert cli.read_recovery_key() == key
    config = config_in(tmp_path)
    cli.setup_logging(config)
    try:
        logging.getLogger("livcr").warning("oops %s", key)
        for handler in logging.getLogger().handlers:
            handler.flush()
        assert key not in (config.matrix.data_dir / "livcr.log").read_text()
        assert "masked" in (config.matrix.data_dir / "livcr.log").read_text()
    finally:
        logging.getLogger().handlers.clear()


async def test_restore_after_a_run_on_the_new_machine_says_what_to_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_in(tmp_path)
    data_dir = config.matrix.data_dir
    (data_dir / "crypto").mkdir(parents=True)
    (data_dir / "crypto" / "store.db").write_text("")
    (data_dir / "session.json").write_text("{}")
    key = secret_storage.encode_recovery_key(secret_storage.generate_key())
    assert await cli.restore(config, key) == 2
    err = capsys.readouterr().err
    assert "session.json, crypto/" in err
    assert "sign that device out and empty the directory" in err
    assert (data_dir / "session.json").read_text() == "{}"
