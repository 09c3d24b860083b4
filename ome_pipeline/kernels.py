"""The compiled conversion loops (``_kernels.c``), with numpy's answers when they do not apply.

``plexhub`` builds ``_kernels`` when it is installed (setuptools, a C compiler); where it was
not built, :data:`NATIVE` is False and callers keep their numpy paths, which give identical
results (tests/unit/test_kernels.py compares both).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

_kernels: ModuleType | None
try:
    from plexhub.ome_pipeline import _kernels
except ImportError:  # installed without a C compiler: numpy everywhere
    _kernels = None

Array = npt.NDArray[Any]
NATIVE = _kernels is not None
U16 = np.dtype("=u2")


def count_u16(keys: Array) -> npt.NDArray[np.int64] | None:
    """Occurrences of each of the 65,536 uint16 keys; None when not applicable."""
    if _kernels is None or keys.dtype != U16:
        return None
    counts = np.zeros(1 << 16, np.int64)
    _kernels.count_u16(np.ascontiguousarray(keys), counts)
    return counts


def mean2x2_u16(a: Array) -> Array | None:
    """2x2 mean over the last two axes of a uint16 array (round half up, an odd edge
    averaged with itself); None when not applicable."""
    if _kernels is None or a.dtype != U16 or a.ndim < 2 or 0 in a.shape:
        return None
    h, w = a.shape[-2:]
    src = np.ascontiguousarray(a).reshape(-1, h, w)
    out = np.empty((src.shape[0], (h + 1) // 2, (w + 1) // 2), np.uint16)
    for i in range(src.shape[0]):
        _kernels.mean2x2_u16(src[i], h, w, out[i])
    return out.reshape(*a.shape[:-2], *out.shape[1:])


def group_slots(labels: Array, slot_of: Array, starts: Array) -> Array | None:
    """Indices of the pixels of ``labels`` (flat intp) grouped by cell: the pixels of label
    ``l`` with ``slot_of[l] = s >= 0`` fill ``perm[starts[s]:starts[s + 1]]`` in pixel order
    (a counting sort; ``starts`` int64, nslots + 1, its last entry the number of such pixels);
    None when not built."""
    if _kernels is None:
        return None
    labels = np.ascontiguousarray(labels, np.intp)
    slot_of = np.ascontiguousarray(slot_of, np.int64)
    starts = np.ascontiguousarray(starts, np.int64)
    if labels.ndim != 1 or starts.ndim != 1 or len(starts) < 1:
        raise ValueError("group_slots: 1-D labels and starts (nslots + 1) expected")
    perm = np.empty(int(starts[-1]), np.int64)
    _kernels.group_slots(labels, slot_of, starts, perm)
    return perm


def select_u16(values: Array, perm: Array, starts: Array, ranks: Array
               ) -> tuple[npt.NDArray[np.int64], Array] | None:
    """Per cell ``s`` (pixels ``values[perm[starts[s]:starts[s + 1]]]``): the sum of its
    values and its ``ranks[s, j]``-th smallest values (ranks ascending along a row, each below
    the cell's pixel count), without sorting; None when not applicable (not built, not
    uint16)."""
    if _kernels is None or values.dtype != U16:
        return None
    values = np.ascontiguousarray(values).ravel()
    starts = np.ascontiguousarray(starts, np.int64)
    ranks = np.ascontiguousarray(ranks, np.int64)
    nslots = len(starts) - 1
    if ranks.ndim != 2 or ranks.shape[0] != nslots:
        raise ValueError("select_u16: ranks must be (cells, k)")
    sums = np.empty(nslots, np.int64)
    picked = np.empty(ranks.shape, np.uint16)
    _kernels.select_u16(values, np.ascontiguousarray(perm, np.int64), starts, ranks,
                        ranks.shape[1], sums, picked)
    return sums, picked


def moments(labels: Array, size: int) -> npt.NDArray[np.int64] | None:
    """Per label value below ``size`` of a 2-D label plane: (size, 6) int64 of the pixel count
    and the sums of y, x, y², x², xy; None when not built."""
    if _kernels is None:
        return None
    h, w = labels.shape
    out = np.zeros((size, 6), np.int64)
    _kernels.moments(np.ascontiguousarray(labels, np.intp), h, w, out)
    return out
