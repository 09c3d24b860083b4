"""Reading whole Zarr stores in tests, to compare two conversions array by array."""

from __future__ import annotations

from pathlib import Path

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
