"""An embedded Synapse homeserver for the demo, the end-to-end tests and the benchmarks.

Synapse runs as a subprocess of the current interpreter (``sys.executable -m
synapse.app.homeserver``), so it must be installed in the same environment (the ``dev`` extra).
Everything it writes lives under ``base_dir``:

* ``homeserver.yaml`` and ``log_config.yaml`` — derived state, rewritten on every start (the
  listener port may change between runs when ``port`` is None);
* ``secrets.json`` and ``signing.key`` — created once and kept, so a restarted server keeps
  its identity, and access tokens and passwords remain valid;
* ``homeserver.db`` (SQLite) and ``media_store/``;
* ``homeserver.log`` (Synapse's own log, WARNING and above) and ``synapse.out`` (the
  subprocess's stdout and stderr; its tail is included in every startup error).

The server listens on 127.0.0.1 only, never federates, never contacts a key server, an
identity server or the phone-home endpoint, and has all rate limits raised far out of the way.

This module deliberately does not import ``nio``: it talks HTTP with aiohttp.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

import aiohttp

__all__ = ["Homeserver", "HomeserverError"]

CONFIG_FILE = "homeserver.yaml"
LOG_CONFIG_FILE = "log_config.yaml"
SECRETS_FILE = "secrets.json"
SIGNING_KEY_FILE = "signing.key"
DATABASE_FILE = "homeserver.db"
MEDIA_DIR = "media_store"
LOG_FILE = "homeserver.log"
OUTPUT_FILE = "synapse.out"

#: Seconds between SIGTERM and SIGKILL in :meth:`Homeserver.stop`.
STOP_GRACE = 15.0
#: Characters of ``synapse.out`` quoted in startup errors.
TAIL_CHARS = 4000

ADMIN_LOCALPART = "admin"

#: A rate limit nobody will hit.
_UNLIMITED: dict[str, float] = {"per_second": 100_000.0, "burst_count": 1_000_000}

#: Every rate limiter known to Synapse 1.163 (synapse/config/ratelimiting.py).
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {
        "address": _UNLIMITED,
        "account": _UNLIMITED,
        "failed_attempts": _UNLIMITED,
    },
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {
        "per_room": _UNLIMITED,
        "per_user": _UNLIMITED,
        "per_issuer": _UNLIMITED,
    },
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
}

# Subprocesses still running at interpreter exit are killed, so that a crashed test run or an
# interrupted demo never leaves a Synapse behind.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        _LIVE.discard(proc)


class HomeserverError(RuntimeError):
    """The homeserver failed to start, or answered a request with an error."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR, as Twisted uses it: a port in TIME_WAIT after a stop counts as free, one
    # with a listener does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _random_token(length: int = 48) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _tail(path: Path, chars: int = TAIL_CHARS) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no output)"
    text = data[-chars:].decode("utf-8", errors="replace")
    return text if text.strip() else "(no output)"


async def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Poll until ``proc`` exits; False if it is still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclass
class Homeserver:
    """A throw-away Synapse on 127.0.0.1, driven from asyncio.

    ``extra_config`` is merged (shallowly) over the generated ``homeserver.yaml``.
    """

    base_dir: Path
    server_name: str = "livcr.test"
    port: int | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _output: BinaryIO | None = field(default=None, init=False, repr=False)
    _admin_token: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise HomeserverError("the homeserver has no port yet; start it first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def config_path(self) -> Path:
        return self.base_dir / CONFIG_FILE

    @property
    def output_path(self) -> Path:
        return self.base_dir / OUTPUT_FILE

    def user_id(self, localpart: str) -> str:
        return f"@{localpart.lower()}:{self.server_name}"

    async def start(self, timeout: float = 120) -> None:
        """Write the configuration, start Synapse and wait until the client API answers.

        On failure (Synapse exits, or ``/_matrix/client/versions`` does not answer within
        ``timeout`` seconds) the process is stopped and :class:`HomeserverError` is raised with
        the tail of ``synapse.out``.
        """
        if self.running:
            raise HomeserverError(f"the homeserver is already running at {self.url}")
        self.base_dir = self.base_dir.resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        elif not _port_is_free(self.port):
            raise HomeserverError(f"port {self.port} on 127.0.0.1 is already in use")
        self._write_files()
        proc = self._spawn()
        deadline = time.monotonic() + timeout
        probe = f"{self.url}/_matrix/client/versions"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                code = proc.poll()
                if code is not None:
                    self._reap()
                    raise HomeserverError(
                        f"Synapse exited with status {code} during startup; "
                        f"tail of {self.output_path}:\n{_tail(self.output_path)}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with session.get(probe) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() >= deadline:
                    await self.stop()
                    raise HomeserverError(
                        f"Synapse did not answer on {probe} within {timeout:g} s; "
                        f"tail of {self.output_path}:\n{_tail(self.output_path)}"
                    )
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if Synapse has not exited after 15 seconds. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            if not await _wait_exit(proc, STOP_GRACE):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await _wait_exit(proc, STOP_GRACE)
        self._reap()

    async def restart(self) -> None:
        """Stop, then start again on the same port (the data directory is kept)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- users ----------------------------------------------------------------------------

    async def register(self, localpart: str, password: str, admin: bool = False) -> str:
        """Create a user with the shared registration secret; return its user id.

        Idempotent: if the user already exists its id is returned unchanged (its password and
        admin flag are not touched). No device or access token is created.
        """
        path = "/_synapse/admin/v1/register"
        _, body = await self._request("GET", path, expect=(200,))
        nonce: str = body["nonce"]
        secret = self._secrets()["registration_shared_secret"].encode()
        mac = hmac.new(secret, digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode("utf-8"))
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        payload = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
            "inhibit_login": True,
        }
        status, body = await self._request("POST", path, payload, expect=(200, 400))
        if status == 200:
            user_id: str = body["user_id"]
            return user_id
        if body.get("errcode") == "M_USER_IN_USE":
            return self.user_id(localpart)
        raise HomeserverError(f"registering {localpart!r} failed: {body}")

    async def login(
        self, localpart: str, password: str, device_id: str | None = None
    ) -> tuple[str, str]:
        """Password login; returns ``(access_token, device_id)``."""
        payload: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }
        if device_id is not None:
            payload["device_id"] = device_id
        _, body = await self._request("POST", "/_matrix/client/v3/login", payload, expect=(200,))
        return body["access_token"], body["device_id"]

    async def admin_token(self) -> str:
        """An access token of the server admin ``@admin``, registered on first use."""
        if self._admin_token is None:
            password = self._secrets()["admin_password"]
            await self.register(ADMIN_LOCALPART, password, admin=True)
            self._admin_token, _ = await self.login(ADMIN_LOCALPART, password)
        return self._admin_token

    async def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = aiohttp.ClientTimeout(total=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, json=payload, headers=headers) as resp,
        ):
            text = await resp.text()
            status = resp.status
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"raw": text}
        if status not in expect or not isinstance(body, dict):
            raise HomeserverError(f"{method} {path} answered {status}: {text[:500]}")
        return status, body

    # -- files and process ----------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        path = self.base_dir / SECRETS_FILE
        if path.exists():
            data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
            return data
        data = {
            key: _random_token()
            for key in (
                "registration_shared_secret",
                "macaroon_secret_key",
                "form_secret",
                "admin_password",
            )
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)
        return data

    def _ensure_signing_key(self) -> Path:
        # Synapse's format ("ed25519 <version> <unpadded base64 seed>"), as written by
        # signedjson.key.write_signing_keys; an ed25519 seed is just 32 random bytes.
        path = self.base_dir / SIGNING_KEY_FILE
        if not path.exists():
            seed = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
            version = "a_" + _random_token(4)
            path.write_text(f"ed25519 {version} {seed}\n", encoding="utf-8")
            path.chmod(0o600)
        return path

    def _config(self) -> dict[str, Any]:
        base = self.base_dir
        keys = self._secrets()
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.url + "/",
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(base / DATABASE_FILE)},
            },
            "log_config": str(base / LOG_CONFIG_FILE),
            "media_store_path": str(base / MEDIA_DIR),
            "signing_key_path": str(self._ensure_signing_key()),
            "max_upload_size": "10M",
            # Secrets.
            "registration_shared_secret": keys["registration_shared_secret"],
            "macaroon_secret_key": keys["macaroon_secret_key"],
            "form_secret": keys["form_secret"],
            # Closed registration; users are created with the shared secret.
            "enable_registration": False,
            # Nothing may leave the machine.
            "report_stats": False,
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "url_preview_enabled": False,
            "serve_server_wellknown": False,
            # Speed.
            "bcrypt_rounds": 4,
            "presence": {"enabled": False},
            "encryption_enabled_by_default_for_room_type": "off",
            **_RATE_LIMITS,
        }
        config.update(self.extra_config)
        return config

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(self.base_dir / LOG_FILE),
                    "encoding": "utf-8",
                    "formatter": "precise",
                    "filters": ["context"],
                    "level": "WARNING",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }

    def _write_files(self) -> None:
        # JSON is valid YAML, and needs no YAML library on our side.
        header = "# Generated by demo.homeserver on every start; edits are overwritten.\n"
        (self.base_dir / MEDIA_DIR).mkdir(exist_ok=True)
        (self.base_dir / LOG_CONFIG_FILE).write_text(
            header + json.dumps(self._log_config(), indent=2) + "\n", encoding="utf-8"
        )
        self.config_path.write_text(
            header + json.dumps(self._config(), indent=2) + "\n", encoding="utf-8"
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        output = self.output_path.open("ab")
        output.write(f"--- starting Synapse on {self.url} at {time.ctime()}\n".encode())
        output.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except BaseException:
            output.close()
            raise
        self._proc = proc
        self._output = output
        _LIVE.add(proc)
        return proc

    def _reap(self) -> None:
        if self._proc is not None:
            _LIVE.discard(self._proc)
        self._proc = None
        if self._output is not None:
            self._output.close()
            self._output = None
