from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from plexhub.ome_pipeline.pyramid import downsample_mean, downsample_mode, level_shapes


def test_level_shapes_use_ceiling_division_down_to_256() -> None:
    assert level_shapes(1001, 513) == [(1001, 513), (501, 257), (251, 129)]
    assert level_shapes(256, 100) == [(256, 100)]
    assert level_shapes(257, 1) == [(257, 1), (129, 1)]


def test_mean_is_a_2x2_mean_not_decimation() -> None:
    a = np.array([[0, 4, 8, 8], [4, 8, 8, 8]], np.uint16)
    assert downsample_mean(a).tolist() == [[4, 8]]


def test_odd_edges_average_the_pixels_that_exist() -> None:
    a = np.array([[1, 3, 10], [5, 7, 20], [100, 200, 30]], np.uint16)
    out = downsample_mean(a)
    assert out.shape == (2, 2)
    assert out.tolist() == [[4, 15], [150, 30]]


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9)))
def test_uint16_mean_matches_float_reference(a: np.ndarray) -> None:
    h, w = a.shape
    p = np.pad(a.astype(np.float64), [(0, h % 2), (0, w % 2)], mode="edge")
    ref = np.floor((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4 + 0.5)
    assert np.array_equal(downsample_mean(a), ref.astype(np.uint16))


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint32, np.int32])
def test_mean_keeps_dtype_and_value_range(dtype: type) -> None:
    a: np.ndarray = np.array(
        [[-4, -4], [4, 8]] if np.dtype(dtype).kind != "u" else [[4, 4], [4, 8]], dtype)
    out = downsample_mean(a)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == (1, 1)
    assert float(out[0, 0]) == pytest.approx(float(a.astype(np.float64).mean()), abs=0.5)


def test_mode_never_invents_labels_and_prefers_majority() -> None:
    a = np.array([[1, 2, 5, 5], [2, 2, 6, 7]], np.uint32)
    assert downsample_mode(a).tolist() == [[2, 5]]
    b = np.array([[3, 4], [5, 6]], np.uint32)  # all distinct: top-left
    assert downsample_mode(b).tolist() == [[3]]


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
                  elements=st.integers(0, 3)))
def test_mode_output_values_come_from_the_block(a: np.ndarray) -> None:
    out = downsample_mode(a)
    h, w = a.shape
    p = np.pad(a, [(0, h % 2), (0, w % 2)], mode="edge")
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = p[2 * i:2 * i + 2, 2 * j:2 * j + 2].ravel().tolist()
            counts = {v: block.count(v) for v in block}
            assert counts[out[i, j]] == max(counts.values())


@pytest.mark.parametrize("shape", [(1301, 7), (2, 1030, 9), (1024, 3)])
def test_banded_mean_equals_the_whole_array_mean(shape: tuple[int, ...]) -> None:
    from plexhub.ome_pipeline.pyramid import BAND_ROWS, _mean_band

    assert shape[-2] > 2 * BAND_ROWS
    a = np.random.default_rng(0).integers(0, 65535, shape).astype(np.uint16)
    assert np.array_equal(downsample_mean(a), _mean_band(a))
