"""Processes the end-to-end tests and the benchmarks run beside a throw-away Synapse: the bot
as a real ``livcr run`` (and, in the benchmarks, the echo floor), each told ready by a line in
its log file. Also the TOML literal writer both use to write a bot's configuration.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def toml_value(value: Any) -> str:
    """A Python value as a TOML literal (strings, numbers, booleans, lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass
class LoggedProcess:
    """A subprocess whose readiness is told by lines in its log file.

    Each start writes its stdout and stderr to ``<out_dir>/<name>-<n>.out`` (n counts the
    starts), so a test can search everything the process ever printed. It is a plain
    ``subprocess.Popen`` so that a test can kill it with SIGKILL at any moment.
    """

    argv: list[str]
    log_path: Path
    out_dir: Path
    env: dict[str, str]
    name: str = "bot"
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def outputs(self) -> list[Path]:
        """The stdout/stderr files of every start so far."""
        return [self.out_dir / f"{self.name}-{n}.out" for n in range(self.starts)]

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / f"{self.name}-{self.starts}.out").open("wb") as out:
            self.starts += 1
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=ROOT)

    async def start_ready(self, line: str = "first sync done", timeout: float = 60) -> float:
        """Start and wait until ``line`` appears once more in the log; seconds it took."""
        before = self.log().count(line)
        self.start()
        return await self.wait_line(line, timeout, after=before)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_line(self, text: str, timeout: float, after: int = 0) -> float:
        """Seconds from start until ``text`` appears (more than ``after`` times) in the log."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) <= after:
            if self.proc is not None and self.proc.poll() is not None:
                output = (self.outputs()[-1].read_text(errors="replace")[-3000:]
                          if self.starts else "")
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"log tail:\n{self.log()[-3000:]}\noutput tail:\n{output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} did not appear in {self.name}'s log within "
                                   f"{timeout:g} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - self.started_at

    def kill(self) -> None:
        """SIGKILL: no chance to flush, close or say goodbye (the crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM, then up to 30 s for a clean exit (SIGKILL after that); the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(300):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                self.proc.kill()
        return int(self.proc.wait())


def livcr_run(config_path: Path, data_dir: Path, env: dict[str, str]) -> LoggedProcess:
    """``livcr run`` as a subprocess; its log is ``data_dir/livcr.log``, its outputs
    ``bot-<n>.out`` next to ``data_dir``."""
    return LoggedProcess([sys.executable, "-m", "bot.cli", "run", "-c", str(config_path)],
                         data_dir / "livcr.log", data_dir.parent, env, name="bot")
