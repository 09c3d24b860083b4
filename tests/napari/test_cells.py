"""An analysed image in napari: ``labels/cells`` as a Labels layer with the cell table as its
features, coloured by phenotype; a click on a cell selects it and the "Cells" dock widget
shows its row (issue 16, viewers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from napari.components import ViewerModel
from napari.utils.interactions import mouse_press_callbacks

from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.analysis.phenotypes import OTHER_COLOR, phenotype_colors
from plexhub.widgets.napari_plugin import add_to_viewer, read_image
from plexhub.widgets.napari_plugin._cells import cell_row, is_cell_layer
from tests.helpers.napari import make_store

RULES = ["T: CD3+", "B: CD20+ CD3-"]


@dataclass
class Press:
    """A mouse press at a world position (what napari's canvas hands to layer callbacks)."""

    position: tuple[float, float]
    type: str = "mouse_press"
    is_dragging: bool = False
    modifiers: list[str] = field(default_factory=list)
    view_direction: Any = None
    dims_displayed: list[int] = field(default_factory=lambda: [0, 1])
    handled: bool = False


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = make_store(tmp_path_factory.mktemp("cells"), "cells", size=512, channels=4)
    analyze(store, nuclear="DAPI", phenotypes=RULES, segmenter_options={"expand": 2},
            show_progress=False)
    return store


def a_cell_of(store: Path, kind: str) -> tuple[int, int, int]:
    """(cell id, row, col) of a pixel of a cell of phenotype ``kind`` (its label's pixel
    nearest the centroid)."""
    import anndata

    obs = anndata.read_zarr(store / "tables" / "cells").obs
    labels = np.asarray(zarr.open_array(store / "labels" / "cells" / "0", mode="r")[:])
    picked = obs[obs["phenotype"] == kind].sort_values("area", ascending=False).iloc[0]
    cid = int(picked["cell_id"])
    ys, xs = np.nonzero(labels == cid)
    i = int(np.argmin((ys - picked["centroid_y"]) ** 2 + (xs - picked["centroid_x"]) ** 2))
    return cid, int(ys[i]), int(xs[i])


def text(item: Any) -> str:
    assert item is not None
    return str(item.text())


def world(layer: Any, row: int, col: int) -> tuple[float, float]:
    """World coordinates (µm where the store has a pixel size) of a level-0 pixel."""
    y, x = np.array([row, col]) * np.asarray(layer.scale)[-2:]
    return float(y), float(x)


def test_the_reader_adds_a_cell_layer_with_the_table_as_features(analysed: Path) -> None:
    layers = read_image(str(analysed))
    assert [k for _, _, k in layers] == ["image"] * 4 + ["labels"]
    data, kw, _ = layers[-1]
    assert kw["name"] == "cells"
    assert kw["multiscale"] is True
    assert data[0].shape == (512, 512)
    features = kw["features"]
    assert {"index", "cell_id", "phenotype", "area", "DAPI", "CD3"} <= set(features.columns)
    assert (features["index"] == features["cell_id"]).all()
    colors = phenotype_colors(["T", "B", "other"])
    assert kw["metadata"]["plexhub"]["colors"] == colors
    cid, _, _ = a_cell_of(analysed, "T")
    assert kw["colormap"][cid][:3] == pytest.approx(
        [int(colors["T"][i:i + 2], 16) / 255 for i in (0, 2, 4)])
    other, _, _ = a_cell_of(analysed, "other")
    assert kw["colormap"][other][:3] == pytest.approx([int(OTHER_COLOR[:2], 16) / 255] * 3)
    assert kw["colormap"][0][3] == 0  # the background is transparent


def test_a_click_selects_the_cell_and_its_row(analysed: Path) -> None:
    viewer = ViewerModel()
    layers = add_to_viewer(viewer, str(analysed))
    cells = layers[-1]
    assert type(cells).__name__ == "Labels"
    assert is_cell_layer(cells)
    assert not any(is_cell_layer(lyr) for lyr in layers[:-1])
    cid, row, col = a_cell_of(analysed, "B")
    mouse_press_callbacks(cells, Press(position=world(cells, row, col)))
    assert cells.selected_label == cid
    shown = cell_row(cells, cid)
    assert shown is not None
    assert shown["cell_id"] == cid
    assert shown["phenotype"] == "B"
    assert "index" not in shown
    # napari's own status line names the cell's features
    status = cells.get_status(world(cells, row, col), world=True)
    assert f"cell_id: {cid}" in str(status)
    assert cell_row(cells, 0) is None


def test_a_store_without_analysis_has_no_cell_layer(store: Path) -> None:
    assert "labels" not in [k for _, _, k in read_image(str(store))]


@pytest.mark.gl
def test_cells_are_drawn_by_phenotype_and_the_dock_shows_the_row(
        make_napari_viewer: Any, analysed: Path, tmp_path: Path) -> None:
    from plexhub.widgets.napari_plugin._cell_dock import CellWidget

    viewer = make_napari_viewer(show=True)
    layers = add_to_viewer(viewer, str(analysed))
    for layer in layers[:-1]:
        layer.visible = False  # only the cells, over black
    cells = layers[-1]
    cells.opacity = 1.0
    dock = CellWidget(viewer)
    assert "T" in dock.legend.text()
    assert dock.table.accessibleName() == "Selected cell"
    cid, row, col = a_cell_of(analysed, "T")
    mouse_press_callbacks(cells, Press(position=world(cells, row, col)))
    assert cells.selected_label == cid
    fields = {text(dock.table.item(i, 0)): text(dock.table.item(i, 1))
              for i in range(dock.table.rowCount())}
    assert fields["cell_id"] == str(cid)
    assert fields["phenotype"] == "T"
    assert dock.hint.text() == f"Cell {cid}"
    viewer.window.add_dock_widget(dock, name="Cells")
    viewer.screenshot(path=str(tmp_path / "napari-cells.png"), canvas_only=False, flash=False)
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3].astype(int)
    colors = phenotype_colors(["T", "B", "other"])
    for kind in ("T", "other"):
        rgb = np.array([int(colors[kind][i:i + 2], 16) for i in (0, 2, 4)])
        close = (np.abs(shot - rgb).max(axis=-1) <= 12).mean()
        assert close > 0.002, (kind, close)  # cells of each phenotype in their colour
