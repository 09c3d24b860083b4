"""The notebook viewer on an analysed image: a toggle draws the cells over the tiles,
coloured by phenotype, and a click on a cell shows its row (issue 16, viewers)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pytest
import zarr
from PIL import Image

from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.analysis.phenotypes import phenotype_colors
from plexhub.ome_pipeline.conversion import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.widgets import Viewer
from plexhub.widgets.tiles import TILE, render_region

Sent = list[tuple[dict[str, Any], list[bytes]]]
RULES = ["T: CD3+", "B: CD20+ CD3-"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("viewer-cells")
    write_ome_tiff(tmp / "s.ome.tif", SyntheticSpec(size_y=600, size_x=700, channels=5,
                                                    tile=256, seed=11))
    convert(tmp / "s.ome.tif", tmp / "s.zarr", show_progress=False)
    analyze(tmp / "s.zarr", nuclear="DAPI", phenotypes=RULES,
            segmenter_options={"expand": 2}, show_progress=False)
    return tmp / "s.zarr"


def capture(v: Viewer) -> Sent:
    sent: Sent = []
    v.canvas.send = lambda msg, buffers=None: sent.append((msg, list(buffers or [])))
    return sent


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def tile(v: Viewer, sent: Sent, level: int, row: int, col: int) -> np.ndarray:
    sent.clear()
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": level,
                         "tiles": [[row, col]]}, [])
    assert len(sent) == 1
    return png(sent[0][1][0])


def test_the_overlay_tints_cells_by_phenotype_when_toggled(analysed: Path) -> None:
    v = Viewer(analysed)
    assert v.cells is not None
    assert v.cells.widget in v.children
    assert "Phenotype legend" in v.cells.legend.value
    for name in ("T", "B", "other"):
        assert f"{name} (" in v.cells.legend.value
    sent = capture(v)
    plain = tile(v, sent, 0, 0, 0)  # a JPEG tile (quality 85): close to the composite
    expect = render_region(v.source, v.preset, 0, slice(0, TILE), slice(0, TILE))
    assert float(np.abs(plain.astype(int) - expect.astype(int)).mean()) < 6.0
    gen = v.canvas.gen
    v.cells.enabled = True
    assert v.canvas.gen != gen  # the browser drops its tiles and asks again
    drawn = tile(v, sent, 0, 0, 0)
    level0 = zarr.open_array(analysed / "labels" / "cells" / "0", mode="r")
    labels = np.asarray(level0[:TILE, :TILE])
    assert np.array_equal(drawn[labels == 0], plain[labels == 0])  # background untouched
    obs = anndata.read_zarr(analysed / "tables" / "cells").obs
    kinds = dict(zip(obs["cell_id"].astype(int), obs["phenotype"].astype(str), strict=True))
    colors = phenotype_colors(["T", "B", "other"])
    inside = labels > 0
    for kind in ("T", "other"):
        ids = [i for i in np.unique(labels[inside]) if kinds[int(i)] == kind]
        assert ids, kind
        mask = np.isin(labels, ids)
        rgb = np.array([int(colors[kind][i:i + 2], 16) for i in (0, 2, 4)], float)
        # each tinted pixel moved towards its phenotype's colour
        before = np.abs(plain[mask].astype(float) - rgb).sum(axis=1)
        after = np.abs(drawn[mask].astype(float) - rgb).sum(axis=1)
        assert (after <= before + 1).all()
        assert (after < before).mean() > 0.9
    # a lower level is drawn from the label pyramid's level of the same size
    low = tile(v, sent, 1, 0, 0)
    assert v.source.level_shapes[1] in v.cells.cells.level_shapes
    low_labels = np.asarray(zarr.open_array(analysed / "labels" / "cells" / "1",
                                            mode="r")[:TILE, :TILE])
    assert low.shape[:2] == low_labels.shape
    v.cells.enabled = False
    low_plain = tile(v, sent, 1, 0, 0)
    assert np.array_equal(low[low_labels == 0], low_plain[low_labels == 0])
    assert (low[low_labels > 0] != low_plain[low_labels > 0]).any(axis=1).mean() > 0.5
    assert np.array_equal(tile(v, sent, 0, 0, 0), plain)


def test_a_click_shows_the_cell_row(analysed: Path) -> None:
    v = Viewer(analysed)
    assert v.cells is not None
    obs = anndata.read_zarr(analysed / "tables" / "cells").obs
    labels = np.asarray(zarr.open_array(analysed / "labels" / "cells" / "0", mode="r")[:])
    cell = obs[obs["phenotype"] == "B"].iloc[0]
    cid = int(cell["cell_id"])
    ys, xs = np.nonzero(labels == cid)
    x, y = float(xs[0]) + 0.4, float(ys[0]) + 0.6
    v._on_msg(v.canvas, {"type": "click", "x": x, "y": y}, [])
    assert v.cells.row is not None
    assert v.cells.row["cell_id"] == cid
    assert v.cells.row["phenotype"] == "B"
    html = v.cells.table.value
    assert f"Cell {cid}" in html
    assert "Selected cell" in html
    assert "CD3" in html  # the channel means are in the row
    assert v.canvas.message == ""
    by, bx = np.argwhere(labels == 0)[0]
    v._on_msg(v.canvas, {"type": "click", "x": float(bx), "y": float(by)}, [])
    assert not v.cells.row  # the background: no row
    assert "Click a cell" in v.cells.table.value
    v._on_msg(v.canvas, {"type": "click", "x": -50.0, "y": 10.0}, [])
    assert v.cells.row is None


def test_an_image_without_analysis_has_no_overlay(tmp_path: Path) -> None:
    write_ome_tiff(tmp_path / "p.ome.tif", SyntheticSpec(size_y=200, size_x=200, channels=2,
                                                         tile=128, seed=1))
    convert(tmp_path / "p.ome.tif", tmp_path / "p.zarr", show_progress=False)
    v = Viewer(tmp_path / "p.zarr")
    v._on_msg(v.canvas, {"type": "click", "x": 5.0, "y": 5.0}, [])  # ignored
    assert v.canvas.message == ""
    assert v.cells is None
