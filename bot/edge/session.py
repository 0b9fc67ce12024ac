"""Login and the session: one device for life (session file + crypto store in ``data_dir``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from nio import AsyncClient, AsyncClientConfig, ErrorResponse, LoginResponse, WhoamiResponse

from bot.config import MatrixConfig
from bot.edge.cross_signing import ensure_cross_signing
from bot.edge.files import protect_tree, secure_dir, write_secret
from bot.edge.store import BotStore
from bot.edge.store_key import StoreKeyError, load_or_create_store_key, migrate_store

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"


class StartupError(RuntimeError):
    """The bot cannot start (login refused, room unknown...); the message says why.

    ``exit_code`` is the status ``livcr`` exits with (see README "Exit codes")."""

    exit_code = 1


class HomeserverUnreachable(StartupError):
    """Nothing answers at the homeserver's address (refused, unknown host, no answer in
    time, a proxy's 502/503/504): possibly only not up yet, so the running bot waits."""

    exit_code = 3


class NotAHomeserver(StartupError):
    """Something answers, but not a Matrix client API (TLS mismatch, wrong path, 404)."""

    exit_code = 3


class LoginRefused(StartupError):
    """The homeserver refused the bot's credentials."""

    exit_code = 4


class RateLimited(StartupError):
    """The homeserver asks to wait ``retry_after`` seconds (HTTP 429)."""

    exit_code = 75  # EX_TEMPFAIL

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def new_client(cfg: MatrixConfig, data_dir: Path) -> AsyncClient:
    """The nio client with its crypto store under ``data_dir/crypto``, pickled with the
    bot's own store key (:mod:`bot.edge.store_key`), never nio's default."""
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
            pickle_key=load_or_create_store_key(data_dir),
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
        _migrate_store(client, data_dir, saved["user_id"], saved["device_id"])
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
        _migrate_store(client, data_dir, cfg.user_id, who.device_id)
        client.restore_login(cfg.user_id, who.device_id, cfg.access_token)
        save_session(data_dir, cfg.user_id, who.device_id, cfg.access_token)
    else:
        with no_429_retries(client):
            response = await client.login(cfg.password or "", device_name=cfg.device_name)
        if not isinstance(response, LoginResponse):
            raise login_refused(cfg, response)
        save_session(data_dir, cfg.user_id, response.device_id, response.access_token)
    if client.should_upload_keys:
        await client.keys_upload()
    if cross_sign:
        await ensure_cross_signing(client, data_dir, cfg.password)
    protect_tree(data_dir)
    log.info("logged in as device %s", client.device_id)


def _migrate_store(client: AsyncClient, data_dir: Path, user_id: str, device_id: str) -> None:
    """Before nio opens the store: one pickled with nio's default key is re-pickled."""
    try:
        migrate_store(data_dir / "crypto", user_id, device_id, client.config.pickle_key)
    except StoreKeyError as exc:
        raise StartupError(str(exc)) from None


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


# ---- connection and login errors: one actionable line each (issue 20) --------------------

PROBE_PATH = "/_matrix/client/versions"


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def connection_problem(url: str, exc: BaseException) -> StartupError:
    """The one line that says what went wrong reaching ``url`` and what to check."""
    where = _where(url)
    scheme = urlsplit(url).scheme
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return HomeserverUnreachable(
            f"cannot reach the homeserver {url}: unknown host {urlsplit(url).hostname!r} "
            "(check matrix.homeserver and the DNS)")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return NotAHomeserver(
            f"the homeserver {url} has a TLS certificate this machine does not accept "
            f"({type(exc.certificate_error).__name__}): check its certificate and the "
            "host name in matrix.homeserver")
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError) or (
            isinstance(exc, aiohttp.ClientOSError) and "SSL" in str(exc)):
        hint = ("it does not speak TLS on that port: use http:// for a plain-http "
                "server, or the https port of the proxy") if scheme == "https" else (
                "check the port")
        return NotAHomeserver(f"TLS handshake with {where} failed: {hint} "
                              "(matrix.homeserver)")
    if isinstance(exc, aiohttp.ServerDisconnectedError) and scheme == "http":
        return NotAHomeserver(
            f"{where} closed the connection without an answer: if it serves https, write "
            "https:// in matrix.homeserver")
    if isinstance(exc, aiohttp.ClientConnectorError):
        number = getattr(exc.os_error, "errno", None)
        reason = os.strerror(number) if number else type(exc.os_error).__name__
        return HomeserverUnreachable(
            f"cannot reach the homeserver at {where} ({reason.lower()}): is it running, "
            "and are the host and port in matrix.homeserver right?")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return HomeserverUnreachable(
            f"the homeserver at {where} did not answer in time: is it running, is a "
            "firewall in the way?")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return HomeserverUnreachable(
            f"cannot reach the homeserver at {where} ({type(exc).__name__}): check "
            "matrix.homeserver")
    return StartupError(f"unexpected {type(exc).__name__} talking to {url}")


async def probe_homeserver(url: str, timeout: float = 15.0) -> None:
    """``GET /_matrix/client/versions``: raise a :class:`StartupError` with one line when
    nothing, or not a Matrix client API, answers at ``url``."""
    probe = url.rstrip("/") + PROBE_PATH
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(probe, allow_redirects=True) as response,
        ):
            status = response.status
            body: Any = None
            with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        problem = connection_problem(url, exc)
        if url.startswith("https://") and isinstance(exc, TimeoutError | aiohttp.ClientSSLError
                                                    | aiohttp.ClientOSError):
            # Some servers (Synapse's own listener) never answer a TLS hello: ask in plain
            # http whether a homeserver is there.
            plain = "http://" + url.removeprefix("https://")
            with contextlib.suppress(StartupError):
                await probe_homeserver(plain, timeout=5.0)
                problem = NotAHomeserver(
                    f"TLS handshake with {_where(url)} failed: it speaks plain http there; "
                    f"use {plain} in matrix.homeserver (or the https address of its proxy)")
        raise problem from None
    if status in (502, 503, 504):
        raise HomeserverUnreachable(
            f"the homeserver behind {url} is not up (HTTP {status} from its proxy)")
    if status == 429:
        raise RateLimited(f"the homeserver {url} rate-limits this machine (HTTP 429)", 60.0)
    if status != 200 or not isinstance(body, dict) or "versions" not in body:
        raise NotAHomeserver(
            f"{url} is not a Matrix homeserver's client API (HTTP {status} at {PROBE_PATH}): "
            "matrix.homeserver is the base URL, e.g. https://matrix.example.be")


@contextlib.contextmanager
def no_429_retries(client: AsyncClient) -> Iterator[None]:
    """nio sleeps through a 429 (minutes, silently, looking like a hang); inside this block
    the 429 comes back as an error response, which :func:`login_refused` reports."""
    saved = client.config
    client.config = dataclasses.replace(saved, max_limit_exceeded=0)
    try:
        yield
    finally:
        client.config = saved


def _retry_after(response: Any) -> float | None:
    if not isinstance(response, ErrorResponse):
        return None
    if response.status_code not in ("M_LIMIT_EXCEEDED", 429, "429"):
        return None
    return (getattr(response, "retry_after_ms", None) or 5000) / 1000


def login_refused(cfg: MatrixConfig, response: Any) -> StartupError:
    """The one line for a refused login (never the password)."""
    wait = _retry_after(response)
    if wait is not None:
        return RateLimited(
            f"the homeserver rate-limits logins for {cfg.user_id}: try again in "
            f"{wait:.0f} s (livcr waits that long itself when it runs as a service)", wait)
    code = getattr(response, "status_code", None)
    if code == "M_FORBIDDEN":
        return LoginRefused(
            f"login refused for {cfg.user_id}: wrong password, or no such account on "
            f"{cfg.homeserver} (check matrix.user_id and LIVCR_MATRIX_PASSWORD)")
    if code == "M_USER_DEACTIVATED":
        return LoginRefused(f"login refused: the account {cfg.user_id} is deactivated")
    if code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
        return LoginRefused(
            f"the access token of {cfg.user_id} was refused ({code}): create a new one "
            "(LIVCR_MATRIX_ACCESS_TOKEN)")
    if code == "M_UNKNOWN":
        return LoginRefused(
            f"login refused for {cfg.user_id} ({getattr(response, 'message', '')}): does the "
            "homeserver allow password logins?")
    return LoginRefused(f"login refused for {cfg.user_id} (code {code}) by {cfg.homeserver}")


async def wait_for_homeserver(cfg: MatrixConfig, stop: asyncio.Event,
                              first_delay: float = 1.0, longest: float = 60.0) -> None:
    """The running bot rides out a homeserver that is not up yet (a reboot): it probes with
    exponential backoff (jittered, at most ``longest`` s apart), one log line per attempt,
    and returns once the client API answers. A mistake that waiting cannot cure (TLS, a
    wrong path) raises at once."""
    delay = first_delay
    while True:
        try:
            await probe_homeserver(cfg.homeserver)
            return
        except HomeserverUnreachable as exc:
            wait = delay
            log.warning("%s; trying again in %.0f s", exc, wait)
            delay = min(delay * 2, longest)
        except RateLimited as exc:
            wait = exc.retry_after
            log.warning("%s; waiting %.0f s", exc, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait * (0.9 + random.random() / 5))
        if stop.is_set():
            raise HomeserverUnreachable("stopped while waiting for the homeserver")


async def login_when_reachable(cfg: MatrixConfig, data_dir: Path, stop: asyncio.Event,
                               do_login: Callable[[], Awaitable[None]]) -> None:
    """``livcr run``: with a saved session, wait for the homeserver (and through a login
    rate limit) instead of exiting; a first start (no session yet) fails with one line.
    ``do_login`` is the bot's own login (:func:`login` and what the bot adds to it)."""
    saved = (data_dir / SESSION_FILE).exists()
    while True:
        if saved:
            await wait_for_homeserver(cfg, stop)
        else:
            await probe_homeserver(cfg.homeserver)
        try:
            await do_login()
            return
        except RateLimited as exc:
            log.warning("%s; waiting %.0f s", exc, exc.retry_after)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=exc.retry_after)
            if stop.is_set():
                raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if not saved:
                raise connection_problem(cfg.homeserver, exc) from None
            log.warning("%s; trying again", connection_problem(cfg.homeserver, exc))


async def login_check(cfg: MatrixConfig, data_dir: Path) -> tuple[AsyncClient, bool]:
    """``check-config --online``: a client that proves the credentials without touching the
    bot's device or crypto store (the bot may be running). With a saved session or a token:
    ``whoami`` with it; else a password login as a throw-away device (``temporary`` True:
    :func:`end_check` logs it out, which deletes it)."""
    await probe_homeserver(cfg.homeserver)
    client = AsyncClient(cfg.homeserver, cfg.user_id,
                         config=AsyncClientConfig(encryption_enabled=False, max_timeouts=0,
                                                  max_limit_exceeded=0))
    try:
        session_path = data_dir / SESSION_FILE
        token = None
        if session_path.exists():
            token = json.loads(session_path.read_text()).get("access_token")
        token = token or cfg.access_token
        if token:
            client.access_token = token
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse):
                raise login_refused(cfg, who)
            client.user_id = who.user_id
            return client, False
        response = await client.login(cfg.password or "", device_name="livcr check-config")
        if not isinstance(response, LoginResponse):
            raise login_refused(cfg, response)
        return client, True
    except BaseException:
        await client.close()
        raise


async def end_check(client: AsyncClient, temporary: bool) -> None:
    try:
        if temporary:
            await client.logout()
    finally:
        await client.close()
