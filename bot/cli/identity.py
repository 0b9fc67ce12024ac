"""The bot's identity kept off the machine: the recovery key that ``setup`` prints once,
and ``livcr restore`` on a new machine (spec §11)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from bot.config import Config

RECOVERY_KEY_ENV = "LIVCR_RECOVERY_KEY"


def print_recovery_key(recovery_key: str) -> None:
    """Shown once, on the terminal only (stdout, never the log)."""
    print("secret storage: the bot's cross-signing identity is stored in its account, "
          "encrypted under this recovery key:")
    print(f"recovery key: {recovery_key}")
    print("Write it down or print it and keep it OFFLINE (a safe, not this machine, not a "
          "chat). It is shown only this once; `livcr restore -c FILE` needs it to bring the "
          "bot's identity back on a new machine.")


def read_recovery_key() -> str:
    """From LIVCR_RECOVERY_KEY, else a prompt that does not echo."""
    key = os.environ.get(RECOVERY_KEY_ENV, "")
    if not key.strip():
        try:
            key = getpass.getpass("recovery key: ")
        except (EOFError, KeyboardInterrupt):
            key = ""
    return key


def _tree(path: Path) -> set[Path]:
    return {path, *path.rglob("*")} if path.exists() else set()


async def restore(config: Config, recovery_key: str) -> int:
    """Bring the bot's cross-signing identity back from secret storage on a new machine:
    a new device (login), the secrets read and checked against the published master key,
    ``cross_signing.json`` written, the new device signed. Any failure undoes the login
    (device logged out unless it came from a configured access token) and leaves the data
    directory as it was."""
    from bot.edge.identity_backup import read_identity, restore_identity
    from bot.edge.secret_storage import SecretStorageError, decode_recovery_key
    from bot.edge.session import SESSION_FILE, StartupError, login, new_client
    from bot.edge.signing_keys import KEYS_FILE, CrossSigningError, public_b64
    from bot.edge.trust import fingerprint

    cfg = config.matrix
    data_dir = cfg.data_dir
    crypto = data_dir / "crypto"
    present = [name for name in (SESSION_FILE, KEYS_FILE) if (data_dir / name).exists()]
    if crypto.exists() and any(crypto.iterdir()):
        present.append("crypto/")
    if present:
        hint = ""
        if KEYS_FILE not in present:
            hint = (" (if `livcr run` made them on this machine before the restore: sign that "
                    "device out and empty the directory)")
        print(f"restore refused: {data_dir} already holds {', '.join(present)}; restore "
              f"brings the identity to a new machine, into an empty data directory{hint}",
              file=sys.stderr)
        return 2
    if not recovery_key.strip():
        print(f"restore needs the recovery key that setup printed: set {RECOVERY_KEY_ENV} or "
              "type it at the prompt", file=sys.stderr)
        return 2
    try:
        decode_recovery_key(recovery_key)
    except SecretStorageError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 2
    before = _tree(data_dir)
    by_password = not cfg.access_token
    client = new_client(cfg, data_dir)
    try:
        try:
            await login(client, cfg, data_dir, cross_sign=False)
            keys, _store_key = await read_identity(client, recovery_key)
            await restore_identity(client, data_dir, keys)
        except (StartupError, CrossSigningError, SecretStorageError) as exc:
            if by_password and client.logged_in:
                await client.logout()  # the new device goes again
            for path in sorted(_tree(data_dir) - before, key=lambda p: len(p.parts),
                               reverse=True):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
            print(f"restore failed: {exc}", file=sys.stderr)
            return 1
    finally:
        await client.close()
    print(f"restored the cross-signing identity of {cfg.user_id} (master key "
          f"{fingerprint(public_b64(keys.master))}) and signed the new device "
          f"{client.device_id} with it; start the bot with `livcr run`")
    return 0
