"""The log of ``livcr``: secrets never written, rate limits said with their wait."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from bot.cli.identity import RECOVERY_KEY_ENV
from bot.config import Config


class NoSecrets(logging.Filter):
    """Last line of defence: a record that would print a secret is masked."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                record.msg, record.args = "[a log line that contained a secret was masked]", ()
        return True


def setup_logging(config: Config | None, verbose: bool = False) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config is not None:
        data_dir = config.matrix.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        path = data_dir / "livcr.log"
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    secrets = []
    if config is not None:
        secrets = [config.matrix.password or "", config.matrix.access_token or ""]
    secrets.append(os.environ.get(RECOVERY_KEY_ENV, ""))
    for handler in handlers:
        handler.addFilter(NoSecrets(secrets))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        force=True)
    # nio logs event contents at debug level and some payloads at info: keep it quiet.
    for noisy in ("nio", "peewee", "aiohttp", "apscheduler", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A missing alias (setup's first look) is a schema "error" to nio, not to us.
    logging.getLogger("nio.responses").setLevel(logging.ERROR)
    for handler in handlers:
        handler.addFilter(RateLimitNotice())


class RateLimitNotice(logging.Filter):
    """nio's "Got 429 response (ratelimited), sleeping for 292600ms" becomes a line that says
    what is happening, for how long and until when (a long silent wait looks like a hang)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("nio") and str(record.msg).startswith("Got 429 response"):
            import time

            wait_ms = record.args[0] if isinstance(record.args, tuple) and record.args else 0
            seconds = int(wait_ms) / 1000 if isinstance(wait_ms, int | float) else 0.0
            until = time.strftime("%H:%M:%S", time.localtime(record.created + seconds))
            record.name = "livcr"
            record.msg = ("the homeserver rate-limits the bot (HTTP 429): waiting %.0f s, "
                          "until %s, then it goes on by itself")
            record.args = (seconds, until)
        return True
