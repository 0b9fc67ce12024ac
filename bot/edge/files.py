"""The bot's files under ``data_dir``: folders 0700, secrets 0600, written atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def secure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: str | bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600: written to a temporary file
    beside it (created 0600), fsynced, renamed over the old one with ``os.replace`` and the
    folder fsynced, so a crash leaves either the old file or the new one, never a torn one."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def protect_tree(path: Path) -> None:
    """Files 0600, folders 0700, under data_dir (the crypto store creates its own files)."""
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(Path(root) / name, 0o700)
        for name in files:
            os.chmod(Path(root) / name, 0o600)
