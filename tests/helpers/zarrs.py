"""Reading whole Zarr stores in tests, to compare two conversions array by array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr


def arrays(root: Path) -> dict[str, np.ndarray]:
    """Every array of the store at ``root`` and of its direct subgroups, by path."""
    out: dict[str, np.ndarray] = {}
    g = zarr.open_group(root, mode="r")
    for path, arr in g.arrays():
        out[path] = np.asarray(arr[...])
    for path, sub in g.groups():
        for name, arr in sub.arrays():
            out[f"{path}/{name}"] = np.asarray(arr[...])
    return out


def array_at(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` inside ``group`` (a group there fails the test)."""
    arr = group[path]
    assert isinstance(arr, zarr.Array), f"{path} is a group, not an array"
    return arr


def group_at(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` inside ``group`` (an array there fails the test)."""
    sub = group[path]
    assert isinstance(sub, zarr.Group), f"{path} is an array, not a group"
    return sub


def level(root: Path | str, path: str = "0") -> zarr.Array:
    """The array ``path`` (a pyramid level: "0" by default) of the store at ``root``, read-only."""
    return array_at(zarr.open_group(root, mode="r"), path)


def read(root: Path | str, path: str = "0") -> np.ndarray:
    """The whole array ``path`` of the store at ``root`` as numpy."""
    return np.asarray(level(root, path)[...])


def values(group: zarr.Group, path: str) -> np.ndarray:
    """The whole array at ``path`` inside ``group`` as numpy."""
    return np.asarray(array_at(group, path)[...])


def attrs_of(node: zarr.Group | zarr.Array) -> dict[str, Any]:
    """The attributes of a group or array, as the untyped JSON document they are."""
    return dict(node.attrs)
