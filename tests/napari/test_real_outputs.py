"""The Proof of issue 17: plexhub's outputs of the real sample files, opened in a real napari
viewer (Xvfb) through napari-ome-zarr 0.10, show what users expect: one layer per channel,
visible, named after the channel, the omero windows as contrast limits, physical scale and
units, collections at their positions, and no warnings."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plexhub.ome_pipeline import convert

pytestmark = pytest.mark.gl

SAMPLES = {
    "qptiff": "qptiff/small_vectra.qptiff",
    "svs": "svs/tcga-cr-7395-01a-01-ts1.svs",
    "imc-ome-tiff": "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff",
    "czi": "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi",
    "mcd": "imc/20210305_NE_mockData2.mcd",
}
# (image name, channel names, scale of the displayed axes, their units) per series
EXPECTED: dict[str, list[tuple[str, list[str], list[float], list[str | None]]]] = {
    "qptiff": [("Baseline", ["DAPI", "FITC", "Cy3"], [0.49653463077185084] * 2,
                ["micrometer"] * 2)],
    "svs": [("Baseline", ["R", "G", "B"], [1.0, 1.0], [None, None])],
    "imc-ome-tiff": [("20210305_NE_mockData2_s0_a1_ac.ome.tiff",
                      ["107Ag", "Cytoker_651((3356))Pr141", "Laminin_681((851))Sm147",
                       "YBX1_2987((3532))Eu153", "H3K27Ac_1977((2242))Yb172"], [1.0, 1.0],
                      [None, None])],  # the OME-TIFF has no pixel size: no unit invented
    "czi": [("CellDivision_T3_Z5_CH2_X240_Y170", ["LED555", "LED470"],
             [60.075, 0.32, 0.09057667415221031, 0.09057667415221031],
             ["second", "micrometer", "micrometer", "micrometer"])],
    "mcd": [(f"ROI_00{i}", ["107Ag", "Cytoker_651((3356))Pr141", "Laminin_681((851))Sm147",
                            "YBX1_2987((3532))Eu153", "H3K27Ac_1977((2242))Yb172"],
             [1.0, 1.0], ["micrometer"] * 2) for i in (1, 2, 3)],
}
MCD_CORNERS = [(15242.0, 12800.0), (15694.0, 13247.0), (15919.0, 13292.0)]  # slide x, y (µm)


@pytest.fixture(scope="module")
def outputs(real: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("proof")
    stores = {}
    for name, rel in SAMPLES.items():
        stores[name] = out / f"{name}.ome.zarr"
        convert(real / rel, stores[name], show_progress=False)
    return stores


def _windows(store: Path, series: str) -> list[list[float]]:
    group = store / series if series else store
    omero = json.loads((group / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    return [[ch["window"]["start"], ch["window"]["end"]] for ch in omero["channels"]]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_what_napari_users_see(name: str, outputs: dict[str, Path], make_napari_viewer: Any,
                               capsys: pytest.CaptureFixture[str]) -> None:
    viewer = make_napari_viewer(show=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        layers = viewer.open(str(outputs[name]), plugin="napari-ome-zarr")
        shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    capsys.readouterr()  # napari-ome-zarr prints the root attributes
    assert not [f"{w.category.__name__}: {w.message}" for w in seen]
    expected = EXPECTED[name]
    n_channels = [len(channels) for _, channels, _, _ in expected]
    assert len(layers) == sum(n_channels)
    assert all(type(layer).__name__ == "Image" for layer in layers)
    assert all(layer.visible for layer in layers)
    start = 0
    for s, (image, channels, scale, units) in enumerate(expected):
        mine = layers[start:start + len(channels)]
        start += len(channels)
        assert [layer.name for layer in mine] == [f"{image}: {c}" for c in channels]
        windows = _windows(outputs[name], str(s) if name == "mcd" else "")
        assert [v for layer in mine for v in layer.contrast_limits] == \
            pytest.approx([v for w in windows for v in w], rel=1e-6)
        for layer in mine:
            assert list(layer.scale) == pytest.approx(scale)
            assert [None if str(u) in ("pixel", "") else str(u) for u in layer.units] == \
                units
    if name == "svs":  # brightfield: 0-255 windows, red/green/blue additive = true colour
        assert [layer.colormap.name for layer in layers] == ["red", "green", "blue"]
    assert shot[..., :3].max() > 50  # something is drawn


def test_napari_ome_zarr_draws_the_mcd_acquisitions_at_the_origin(
        outputs: dict[str, Path], make_napari_viewer: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What users see today (README): napari-ome-zarr 0.10 applies the scale but not the
    NGFF translation, so each acquisition's slide position (in the store, checked in
    tests/interop/test_collection_positions.py) is not used: every series starts at (0, 0).
    When this fails, napari-ome-zarr has started to place them: update the README."""
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(outputs["mcd"]), plugin="napari-ome-zarr")
    capsys.readouterr()
    for i, (x, y) in enumerate(MCD_CORNERS):
        ms = json.loads((outputs["mcd"] / str(i) / "zarr.json").read_text())[
            "attributes"]["ome"]["multiscales"][0]
        assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [0.0, -y, x]
        assert list(layers[5 * i].data_to_world((0, 0))) == [0.0, 0.0]
