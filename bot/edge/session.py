"""Login and the session: one device for life (session file + crypto store in ``data_dir``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from bot.config import MatrixConfig
from bot.edge.cross_signing import ensure_cross_signing
from bot.edge.files import protect_tree, secure_dir, write_secret
from bot.edge.store import BotStore

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"


class StartupError(RuntimeError):
    """The bot cannot start (login refused, room unknown...); the message says why."""


def new_client(cfg: MatrixConfig, data_dir: Path) -> AsyncClient:
    """The nio client with its crypto store under ``data_dir/crypto``."""
    store_dir = secure_dir(data_dir / "crypto")
    return AsyncClient(
        cfg.homeserver,
        cfg.user_id,
        store_path=str(store_dir),
        config=AsyncClientConfig(
            encryption_enabled=True,
            store=BotStore,
            store_sync_tokens=False,
            max_timeouts=0,
            request_timeout=60,
        ),
    )


async def login(
    client: AsyncClient, cfg: MatrixConfig, data_dir: Path, *, cross_sign: bool = True
) -> None:
    """One device for life: the saved session, else the access token, else a password login.

    With an access token (homeservers behind the Matrix Authentication Service, where
    password login is refused) ``whoami`` tells the device the token belongs to.
    ``cross_sign=False`` skips the cross-signing check (``livcr restore`` does it itself)."""
    session_path = data_dir / SESSION_FILE
    if session_path.exists():
        saved = json.loads(session_path.read_text())
        if saved.get("user_id") != cfg.user_id:
            raise StartupError(f"{session_path} belongs to another user")
        client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
    elif cfg.access_token:
        client.access_token = cfg.access_token
        who = await client.whoami()
        if not isinstance(who, WhoamiResponse):
            raise StartupError("the access token was refused by the homeserver")
        if who.user_id != cfg.user_id:
            raise StartupError(
                f"the access token belongs to {who.user_id}, not to matrix.user_id {cfg.user_id}"
            )
        if not who.device_id:
            raise StartupError(
                "the access token has no device: issue a token with a device id (MAS: "
                "mas-cli manage issue-compatibility-token <user> <DEVICE_ID>)"
            )
        client.restore_login(cfg.user_id, who.device_id, cfg.access_token)
        save_session(data_dir, cfg.user_id, who.device_id, cfg.access_token)
    else:
        response = await client.login(cfg.password or "", device_name=cfg.device_name)
        if not isinstance(response, LoginResponse):
            raise StartupError("login refused by the homeserver (check user_id and password)")
        save_session(data_dir, cfg.user_id, response.device_id, response.access_token)
    if client.should_upload_keys:
        await client.keys_upload()
    if cross_sign:
        await ensure_cross_signing(client, data_dir, cfg.password)
    protect_tree(data_dir)
    log.info("logged in as device %s", client.device_id)


def save_session(data_dir: Path, user_id: str, device_id: str, token: str) -> None:
    write_secret(
        data_dir / SESSION_FILE,
        json.dumps(
            {
                "user_id": user_id,
                "device_id": device_id,
                "access_token": token,
            }
        ),
    )
