"""The compiled conversion loops (ome_pipeline/_kernels.c) give exactly numpy's answers."""

from __future__ import annotations

import numpy as np
import pytest

from plexhub.ome_pipeline import kernels, pyramid
from plexhub.ome_pipeline.histogram import PartialHistogram, count_keys


def test_the_kernels_are_built() -> None:
    # `pip install -e .` compiles them; without a C compiler plexhub falls back to numpy,
    # but the project's own installs (make, CI) must have them
    assert kernels.NATIVE, "plexhub.ome_pipeline._kernels was not built (is gcc installed?)"


@pytest.mark.parametrize("n", [1, 3, 4, 5, 1000, 2048 * 2048 + 3])
def test_counts_equal_bincount(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    values[:1] = 65535
    got = kernels.count_u16(values)
    assert got is not None
    assert got.dtype == np.int64
    assert np.array_equal(got, np.bincount(values, minlength=1 << 16))


def test_counts_of_one_repeated_value_and_strided_input() -> None:
    same = np.full(10_001, 7, np.uint16)
    got = kernels.count_u16(same)
    assert got is not None
    assert got[7] == 10_001
    assert got.sum() == 10_001
    plane = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)[::2, 1::3]  # not contiguous
    got = kernels.count_u16(plane)
    assert got is not None
    assert np.array_equal(got, np.bincount(plane.ravel(), minlength=1 << 16))


def test_other_dtypes_are_not_taken() -> None:
    assert kernels.count_u16(np.zeros(4, np.uint8)) is None
    assert kernels.count_u16(np.zeros(4, ">u2")) is None  # not native byte order
    assert kernels.mean2x2_u16(np.zeros((4, 4), np.int16)) is None


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (5, 6), (6, 5), (7, 9),
                                   (3, 64, 63), (2, 1, 129, 130)])
def test_mean_equals_the_numpy_path(shape: tuple[int, ...],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 1 << 16, shape, dtype=np.uint16)
    a.reshape(-1)[:3] = 65535  # the largest sums must not overflow
    got = pyramid.downsample_mean(a)
    monkeypatch.setattr(kernels, "_kernels", None)
    want = pyramid.downsample_mean(a)
    assert got.dtype == want.dtype == np.uint16
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    # and against the definition: mean of the pixels that exist, round half up
    h, w = shape[-2:]
    flat = a.reshape(-1, h, w).astype(np.float64)
    y, x = (h - 1) // 2, (w - 1) // 2
    cell = flat[:, 2 * y:2 * y + 2, 2 * x:2 * x + 2]
    assert np.array_equal(got.reshape(-1, *got.shape[-2:])[:, y, x],
                          np.floor(cell.mean(axis=(1, 2)) + 0.5).astype(np.uint16))


def test_histograms_are_the_same_with_and_without_the_kernels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    block = rng.normal(3000, 500, (256, 300)).clip(0, 65535).astype(np.uint16)
    native = PartialHistogram.of(block)
    counts = count_keys(block.reshape(-1))
    monkeypatch.setattr(kernels, "_kernels", None)
    plain = PartialHistogram.of(block)
    assert np.array_equal(native.counts, plain.counts)
    assert np.array_equal(counts, plain.counts)
    assert (native.vmin, native.vmax) == (plain.vmin, plain.vmax) == (block.min(), block.max())


def test_grouping_and_selection_equal_a_sort() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 60, 50_000).astype(np.intp)
    values = rng.integers(0, 40, 50_000, dtype=np.uint16)  # many ties
    values[labels == 5] = 9  # a cell of one value
    owned = np.array([1, 2, 5, 17, 59, 33])  # slot order differs from label order
    slot_of = np.full(60, -1, np.int64)
    slot_of[owned] = np.arange(len(owned))
    count = np.bincount(labels, minlength=60)[owned]
    starts = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    perm = kernels.group_slots(labels, slot_of, starts)
    assert perm is not None
    for s, lab in enumerate(owned):
        assert np.array_equal(perm[starts[s]:starts[s + 1]], np.flatnonzero(labels == lab))
    ranks = np.stack([np.zeros_like(count), count // 2, count // 2, count * 9 // 10,
                      count - 1], axis=1).astype(np.int64)
    got = kernels.select_u16(values, perm, starts, ranks)
    assert got is not None
    sums, picked = got
    for s, lab in enumerate(owned):
        mine = np.sort(values[labels == lab])
        assert sums[s] == int(mine.astype(np.int64).sum())
        assert picked[s].tolist() == mine[ranks[s]].tolist()


def test_selection_refuses_ranks_out_of_range() -> None:
    values = np.arange(10, dtype=np.uint16)
    perm = np.arange(10, dtype=np.int64)
    starts = np.array([0, 10], np.int64)
    with pytest.raises(ValueError, match="out of range"):
        kernels.select_u16(values, perm, starts, np.array([[10]], np.int64))
    with pytest.raises(ValueError, match="out of range"):
        kernels.select_u16(values, perm, starts, np.array([[5, 2]], np.int64))  # descending
    assert kernels.select_u16(values.astype(np.float32), perm, starts,
                              np.array([[1]], np.int64)) is None


def test_moments_equal_bincounts() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 50, (37, 53)).astype(np.intp)
    got = kernels.moments(labels, 64)
    assert got is not None
    ys, xs = np.mgrid[0:37, 0:53]
    flat = labels.ravel()
    for k, weight in enumerate([np.ones_like(ys), ys, xs, ys * ys, xs * xs, xs * ys]):
        assert np.array_equal(got[:, k], np.bincount(flat, weight.ravel(), 64).astype(np.int64))
    with pytest.raises(ValueError, match="outside"):
        kernels.moments(labels, 10)
