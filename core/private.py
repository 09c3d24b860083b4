"""Files that hold data or secrets belong to the service's OS user alone: folders 0700,
files 0600. New ones are created so; existing ones are tightened at start."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("plexhub")
DIR_MODE = 0o700
FILE_MODE = 0o600


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except PermissionError:
        log.warning("%s: cannot make it private (mode %o); it is not this user's", path, mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700, or make an existing one 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _chmod(path, DIR_MODE)
    return path


def private_file(path: Path, create: bool = False) -> None:
    """Make ``path`` 0600; with ``create``, an absent file is created empty and 0600 (an
    empty file is a valid new SQLite database)."""
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            return
        except FileExistsError:
            pass
    if path.exists():
        _chmod(path, FILE_MODE)
