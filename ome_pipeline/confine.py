"""Reads that stay inside one folder: an OME-Zarr source being ingested, an image's store.

A symlink (or a folder swapped for one) could make a store's "chunk" any file the service may
read. Two guards, both on resolved paths:

- :func:`check_tree` refuses a folder holding a symlink that resolves outside it (before a
  folder is fingerprinted, opened or converted);
- :func:`open_inside` opens a file and checks where the *opened* file really lives (through
  ``/proc/self/fd``, one ``readlink``, so a swap between check and open cannot slip through),
  cheap enough for every chunk a tile reads.

Errors name the link or file relative to its folder, never where it points.
"""

from __future__ import annotations

import os
from pathlib import Path

from plexhub.errors import PermissionDeniedError

_PROC_FD = "/proc/self/fd"
_HAS_PROC = os.path.isdir(_PROC_FD)


def real_prefix(folder: str | os.PathLike[str]) -> str:
    """The resolved folder with a trailing separator: a resolved path is inside the folder
    exactly when it starts with this."""
    return os.path.join(os.path.realpath(folder), "")


def _outside(what: str, hint: str) -> PermissionDeniedError:
    return PermissionDeniedError(what, "resolves outside its folder", hint)


def check_tree(folder: str | os.PathLike[str], what: str = "") -> None:
    """Refuse ``folder`` when a symlink anywhere in it resolves outside it (links inside
    it are fine). ``what`` names the folder in the error (default: its path)."""
    prefix = real_prefix(folder)
    top = os.fspath(folder)
    for here, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            path = os.path.join(here, name)
            if os.path.islink(path) and not os.path.realpath(path).startswith(prefix):
                rel = os.path.relpath(path, top)
                raise _outside(f"{what or top}: symlink {rel}",
                               "copy the data it points to into the folder instead of "
                               "linking to it")


def fd_path(fd: int, path: str) -> str:
    """Where the file open as ``fd`` (opened from ``path``) really is."""
    if _HAS_PROC:
        return os.readlink(f"{_PROC_FD}/{fd}").removesuffix(" (deleted)")
    return os.path.realpath(path)


def open_inside(path: str, prefix: str, what: str) -> int:
    """``os.open(path)`` for reading, refused when the file opened is not under ``prefix``
    (from :func:`real_prefix`). ``what`` names the file in the error; a missing file raises
    ``FileNotFoundError`` as ``os.open`` does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        inside = fd_path(fd, path).startswith(prefix)
    except OSError:
        inside = False
    if not inside:
        os.close(fd)
        raise _outside(what, "the store was changed after it was written; convert the "
                       "image again")
    return fd


def read_inside(folder: Path, rel: str) -> bytes:
    """The bytes of ``folder/rel``, refused when the file is not inside ``folder``."""
    fd = open_inside(str(folder / rel), real_prefix(folder), rel)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def inside(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves to ``folder`` itself or to something inside it."""
    resolved = os.path.realpath(path)
    return resolved == os.path.realpath(folder) or resolved.startswith(real_prefix(folder))
