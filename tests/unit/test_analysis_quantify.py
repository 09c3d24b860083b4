"""Per-cell quantification (against skimage's regionprops) and phenotypes."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops_table

from plexhub.errors import InputError
from plexhub.ome_pipeline.analysis.phenotypes import (
    assign,
    mixture_threshold,
    otsu_threshold,
    parse_rule,
    parse_rules,
    positivity,
    summary,
    thresholds,
)
from plexhub.ome_pipeline.analysis.quantify import quantify_array, quantify_blocks
from plexhub.ome_pipeline.analysis.segmentation import WatershedSegmenter, segment_array
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile

SPEC = SyntheticSpec(size_y=260, size_x=300, channels=4, seed=5)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = np.stack([render_tile(SPEC, c, 0, 0, SPEC.size_y, SPEC.size_x) for c in range(4)])
    nuclei, cells = segment_array(WatershedSegmenter(expand=3), img[0])
    return img, nuclei, cells


def test_matches_regionprops(scene: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    img, nuclei, cells = scene
    m = quantify_array(cells, img, nuclei, percentiles=(50, 90))
    rp = regionprops_table(cells, np.moveaxis(img, 0, -1),
                           properties=["label", "area", "centroid", "eccentricity",
                                       "intensity_mean"])
    assert m.n == len(rp["label"]) > 100
    assert np.array_equal(m.label, rp["label"])
    assert np.array_equal(m.area, rp["area"])
    assert np.allclose(m.centroid[:, 0], rp["centroid-0"])
    assert np.allclose(m.centroid[:, 1], rp["centroid-1"])
    assert np.allclose(m.eccentricity, rp["eccentricity"])
    for c in range(4):
        assert np.allclose(m.mean[:, c], rp[f"intensity_mean-{c}"], rtol=1e-5)
    for i, lab in enumerate(m.label[:40]):
        inside = cells == lab
        assert m.percentiles[50][i, 1] == pytest.approx(np.median(img[1][inside]))
        assert m.percentiles[90][i, 3] == pytest.approx(np.percentile(img[3][inside], 90))
        nuc = inside & (nuclei > 0)
        assert m.nucleus_mean is not None
        assert m.cytoplasm_mean is not None
        assert m.nucleus_mean[i, 2] == pytest.approx(img[2][nuc].mean(), rel=1e-5)
        if (inside & ~nuc).any():
            assert m.cytoplasm_mean[i, 2] == pytest.approx(img[2][inside & ~nuc].mean(),
                                                           rel=1e-5)


def test_blocks_equal_in_memory(scene: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    img, nuclei, cells = scene
    whole = quantify_array(cells, img, nuclei, percentiles=(50, 90))
    parts = quantify_blocks(cells, nuclei, lambda c, ys, xs: img[c][ys, xs], 4, block=96,
                            margin=40, percentiles=(50, 90))
    assert parts.truncated == 0
    assert np.array_equal(parts.label, whole.label)
    assert np.array_equal(parts.area, whole.area)
    assert np.allclose(parts.centroid, whole.centroid)
    assert np.allclose(parts.mean, whole.mean)
    assert np.allclose(parts.percentiles[90], whole.percentiles[90])
    assert parts.nucleus_mean is not None
    assert whole.nucleus_mean is not None
    assert np.allclose(parts.nucleus_mean, whole.nucleus_mean, equal_nan=True)


def test_float_channels_and_a_too_small_margin_is_counted(
        scene: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    img, _, cells = scene
    f = img.astype(np.float32) / 65535
    whole = quantify_array(cells, f, percentiles=(50,))
    assert np.allclose(whole.mean * 65535, quantify_array(cells, img).mean, rtol=1e-4)
    cut = quantify_blocks(cells, None, lambda c, ys, xs: f[c][ys, xs], 4, block=64, margin=2)
    assert cut.truncated > 0


def test_thresholds_and_rules() -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.lognormal(5, 0.3, 800), rng.lognormal(7, 0.3, 200)
    values = np.concatenate([neg, pos])
    for cut in (otsu_threshold(values), mixture_threshold(values)):
        assert np.exp(5) < cut < np.exp(7)
    means = np.stack([values, values[::-1]], axis=1)
    t = thresholds(means, ["CD3", "CD8"], method="gmm", overrides={"CD8": 10.0})
    assert t["CD8"] == {"value": 10.0, "method": "given"}
    assert t["CD3"]["method"] == "gmm"
    positive = positivity(means, ["CD3", "CD8"], t)
    assert positive[:, 1].all()
    rules = parse_rules({"T": "CD3+", "cytotoxic T": "CD3+ CD8+", "B": "CD3- CD8-"})
    kinds = assign(np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool), ["CD3", "CD8"], rules)
    assert kinds.tolist() == ["T", "cytotoxic T", "B", "other"]
    assert str(parse_rule("cytotoxic T: CD3+ CD8+ FOXP3-")) == "cytotoxic T: CD3+ CD8+ FOXP3-"
    with pytest.raises(InputError, match="CD3"):
        assign(positive, ["CD3", "CD8"], parse_rules(["x: CD4+"]))
    with pytest.raises(InputError, match=r"\+ or -"):
        parse_rule("x: CD3")
    with pytest.raises(InputError, match="channels are"):
        thresholds(means, ["CD3", "CD8"], overrides={"CD4": 1.0})


def test_summary_counts_density_and_neighbours() -> None:
    kinds = np.array(["T", "T", "B"], dtype=object)
    xy = np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 10.0]])
    s = summary(kinds, xy, 0.5, ["T", "B", "other"])
    assert s["counts"] == {"T": 2, "B": 1, "other": 0}
    assert s["density_per_mm2"]["T"] == 4.0
    assert s["nearest_neighbour_median_um"]["T"]["T"] == 3.0
    assert s["nearest_neighbour_median_um"]["T"]["B"] == 8.5
    assert "B" not in s["nearest_neighbour_median_um"]["B"]  # no other B cell
    near = summary(kinds, xy, 0.5, ["T", "B", "other"], neighbours=1)["neighbourhood_1_nearest"]
    assert near["T"] == {"T": 1.0, "B": 0.0, "other": 0.0}  # each T's nearest is the other T
    assert near["B"] == {"T": 1.0, "B": 0.0, "other": 0.0}
    assert "other" not in near


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32"])
def test_order_statistics_are_numpys(scene: tuple[np.ndarray, np.ndarray, np.ndarray],
                                     monkeypatch: pytest.MonkeyPatch, native: bool,
                                     dtype: str) -> None:
    # every cell's median and percentiles, bit for bit what numpy gives for its pixels
    # (float32 as stored), through the compiled kernels and through numpy's sort alike
    from plexhub.ome_pipeline import kernels

    if not native:
        monkeypatch.setattr(kernels, "NATIVE", False)
    img, nuclei, cells = scene
    if dtype == "uint8":
        img = (img >> 8).astype(np.uint8)
    elif dtype == "float32":
        img = img.astype(np.float32) / 7
    qs = (0.0, 10.0, 50.0, 90.0, 99.5, 100.0)
    m = quantify_array(cells, img, nuclei, percentiles=qs)
    blocks = quantify_blocks(cells, nuclei, lambda c, ys, xs: img[c][ys, xs], 4, block=96,
                             margin=40, percentiles=qs)
    order = np.argsort(cells.ravel(), kind="stable")
    bounds = np.searchsorted(cells.ravel()[order], np.concatenate([m.label, [m.label[-1] + 1]]))
    for c in range(4):
        plane = img[c].ravel()[order]
        for i in range(m.n):
            inside = plane[bounds[i]:bounds[i + 1]]
            assert len(inside) == m.area[i]
            want = np.percentile(inside, qs).astype(np.float32)
            got = np.array([m.percentiles[q][i, c] for q in qs])
            assert np.array_equal(got, want), (m.label[i], c, got, want)
            if dtype != "float32":  # numpy's median is the mean of the middle two
                assert m.percentiles[50.0][i, c] == np.float32(np.median(inside))
            assert m.mean[i, c] == np.float32(inside.astype(np.float64).mean())
    assert np.array_equal(blocks.label, m.label)
    for q in qs:
        assert np.array_equal(blocks.percentiles[q], m.percentiles[q])
    assert np.array_equal(blocks.mean, m.mean)


def test_compiled_and_numpy_paths_agree(scene: tuple[np.ndarray, np.ndarray, np.ndarray],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from plexhub.ome_pipeline import kernels

    img, nuclei, cells = scene
    native = quantify_array(cells, img, nuclei, percentiles=(50, 90))
    monkeypatch.setattr(kernels, "NATIVE", False)
    plain = quantify_array(cells, img, nuclei, percentiles=(50, 90))
    for name in ("label", "area", "centroid", "eccentricity", "mean", "nucleus_mean",
                 "cytoplasm_mean", "nucleus_area"):
        assert np.array_equal(getattr(native, name), getattr(plain, name), equal_nan=True), name
    for q in (50, 90):
        assert np.array_equal(native.percentiles[q], plain.percentiles[q])
