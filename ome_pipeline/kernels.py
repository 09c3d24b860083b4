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
