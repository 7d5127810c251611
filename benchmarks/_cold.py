"""Shared by the measurement scripts: set a cache file or folder aside for a cold run, and put it back afterwards."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path


@contextlib.contextmanager
def set_aside(path: Path):
    """Move ``path`` away for the duration (so the code under test recomputes it), then restore the original."""
    path = Path(path)
    backup = path.with_name(path.name + ".bench-backup")
    moved = path.exists()
    if moved:
        shutil.move(str(path), str(backup))
    try:
        yield
    finally:
        if moved:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            shutil.move(str(backup), str(path))
