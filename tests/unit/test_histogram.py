from __future__ import annotations

import numpy as np
import pytest

from plexhub.ome_pipeline.histogram import PartialHistogram, finalize, keys_of, percentile


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32,
                                   np.float32, np.float64])
def test_keys_are_monotonic(dtype: type) -> None:
    rng = np.random.default_rng(0)
    v: np.ndarray
    if np.dtype(dtype).kind == "f":
        v = np.sort(rng.normal(0, 1000, 5000)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        v = np.sort(rng.integers(max(info.min, -10**9), min(info.max, 10**9), 5000)).astype(dtype)
    k = keys_of(v).astype(np.int64)
    assert np.all(np.diff(k) >= 0)


def test_uint16_histogram_is_exact_and_merges_in_any_order() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.integers(100, 3000, (64, 64)).astype(np.uint16) for _ in range(4)]
    a = PartialHistogram.empty()
    for p in parts:
        a.merge(PartialHistogram.of(p))
    b = PartialHistogram.empty()
    for p in reversed(parts):
        b.merge(PartialHistogram.of(p))
    assert np.array_equal(a.counts, b.counts)
    allv = np.concatenate([p.ravel() for p in parts])
    stored = finalize(a, np.dtype(np.uint16))
    assert stored["min"] == allv.min()
    assert stored["max"] == allv.max()
    assert stored["count"] == allv.size
    assert sum(stored["counts"]) == allv.size
    assert len(stored["edges"]) == len(stored["counts"]) + 1
    assert percentile(stored, 50) == pytest.approx(np.percentile(allv, 50), abs=2)
    assert percentile(stored, 99.9) == pytest.approx(np.percentile(allv, 99.9), abs=2)


def test_float_histogram_percentiles_are_within_a_bin() -> None:
    rng = np.random.default_rng(2)
    v = rng.lognormal(2, 1, 100_000).astype(np.float32)
    stored = finalize(PartialHistogram.of(v), np.dtype(np.float32))
    for q in (0.1, 50, 99.9):
        ref = float(np.percentile(v, q))
        assert percentile(stored, q) == pytest.approx(ref, rel=0.02)
    assert stored["min"] == pytest.approx(float(v.min()))


def test_nan_is_ignored_and_empty_is_safe() -> None:
    v = np.array([np.nan, 1.0, 2.0], np.float32)
    h = PartialHistogram.of(v)
    assert int(h.counts.sum()) == 2
    assert finalize(PartialHistogram.empty(), np.dtype(np.uint8))["count"] == 0


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "float32"])
def test_counts_equal_bincount_of_the_keys(dtype: str) -> None:
    """Every key in its own bin, exactly, including both ends of the key range."""
    from plexhub.ome_pipeline.histogram import keys_of

    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if dtype != "float32" else None
    if info is not None:
        v = rng.integers(info.min, int(info.max) + 1, (1100, 1000), dtype=np.int64)
        v[0, :2] = [info.min, info.max]
        v = v.astype(dtype)
    else:
        v = rng.normal(0, 1000, (1100, 1000)).astype(dtype)
    h = PartialHistogram.of(v)
    keys = keys_of(v.ravel())
    assert np.array_equal(h.counts, np.bincount(keys, minlength=65536))
    assert h.counts.dtype == np.int64
    assert (h.vmin, h.vmax) == (float(v.min()), float(v.max()))
