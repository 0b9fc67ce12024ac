"""Logging that never carries what a member typed."""

from __future__ import annotations

import traceback
from pathlib import Path


def where(exc: BaseException) -> str:
    """Where an exception happened (files, functions, lines; templates included), never its
    message: messages may quote what a member typed."""
    frames = traceback.extract_tb(exc.__traceback__)
    return ", ".join(f"{Path(f.filename).name}:{f.name}:{f.lineno}" for f in frames[-5:])
