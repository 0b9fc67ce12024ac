"""Run one of the small matrix-js-sdk scripts of ``tests/interop/`` (no homeserver needed).

The scripts read a JSON array of operations on stdin and answer a JSON array on stdout. They
use matrix-js-sdk's own functions (Element Web's code), so a test that feeds them what Python
produced, and the other way round, checks interoperability rather than our reading of the spec.

Set-up as in ``tests/test_interop_element.py``, never a silent skip: ``node`` and ``npm`` must be
on PATH (else the test fails saying what to install), and ``tests/interop/node_modules`` is
(re)built with ``npm ci`` from the committed lock file when it is missing or holds another
matrix-js-sdk version. That one step reaches the npm registry; the scripts themselves never
touch the network.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

INTEROP = Path(__file__).parent / "interop"
INSTALL_TIMEOUT = 900  # seconds
RUN_TIMEOUT = 60  # seconds


def _installed_version(package: str) -> str | None:
    manifest = INTEROP / "node_modules" / package / "package.json"
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads(manifest.read_text())["version"])
    return None


@cache
def node() -> str:
    """The node binary, with tests/interop's pinned dependencies installed."""
    node_bin, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if not (node_bin and npm):
        pytest.fail(
            "the matrix-js-sdk interop tests need Node.js >= 18 with npm on PATH "
            "(e.g. `apt-get install nodejs npm`)",
            pytrace=False,
        )
    pinned = json.loads((INTEROP / "package.json").read_text())["dependencies"]
    if any(_installed_version(name) != version for name, version in pinned.items()):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=INTEROP, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/interop failed:\n{done.stderr[-3000:]}", pytrace=False)
    return node_bin


def run_script(script: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``tests/interop/<script>`` on ``ops``; its answers, one per operation."""
    done = subprocess.run(
        [node(), str(INTEROP / script)], cwd=INTEROP, input=json.dumps(ops),
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(answers) == len(ops)
    return answers
