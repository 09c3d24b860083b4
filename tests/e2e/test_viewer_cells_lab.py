"""The notebook viewer's cell overlay in a real JupyterLab driven by Chromium: an analysed
store opens with the "Cells by phenotype" toggle and the legend; switching it on recolours
the canvas, and a click on a cell shows its row below the canvas."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anndata
import numpy as np
import pytest
import zarr
from playwright.sync_api import Page

from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.conversion import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.e2e.test_viewer_lab import RUN_ALL
from tests.helpers.lab import running_lab

pytestmark = pytest.mark.e2e
SIZE = (420, 560)  # (height, width) of the image: the viewer's 640 x 420 canvas fits it 1:1


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cells-lab-data")
    write_ome_tiff(tmp / "s.ome.tif", SyntheticSpec(size_y=SIZE[0], size_x=SIZE[1],
                                                    channels=4, tile=128, seed=5))
    convert(tmp / "s.ome.tif", tmp / "s.zarr", show_progress=False)
    analyze(tmp / "s.zarr", nuclear="DAPI", phenotypes=["T: CD3+", "B: CD20+ CD3-"],
            segmenter_options={"expand": 2}, show_progress=False)
    return tmp / "s.zarr"


@pytest.fixture(scope="module")
def lab(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("cells-lab")
    root = tmp / "notebooks"
    root.mkdir()
    cell = f"from plexhub.widgets import Viewer\nv = Viewer({str(store)!r})\nv"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                   "source": cell, "outputs": []}]}
    (root / "cells.ipynb").write_text(json.dumps(nb))
    with running_lab(tmp, {}) as lab:
        yield lab.base, lab.token


CANVAS = """() => {
  const c = document.querySelector('.plexhub-canvas');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
}"""


def canvas(page: Page) -> np.ndarray:
    box = page.evaluate("() => { const c = document.querySelector('.plexhub-canvas');"
                        " return [c.height, c.width]; }")
    return np.array(page.evaluate(CANVAS), dtype=np.int16).reshape(box[0], box[1], 4)


def settle(page: Page, before: np.ndarray | None = None, timeout: float = 60) -> np.ndarray:
    """The canvas once tiles are drawn (and, given ``before``, once it changed)."""
    deadline = time.monotonic() + timeout
    while True:
        now = canvas(page)
        drawn = (now[..., :3].sum(axis=-1) > 30).mean() > 0.2
        if drawn and (before is None or np.abs(now - before).mean() > 1):
            time.sleep(0.5)
            return canvas(page)
        assert time.monotonic() < deadline, "the canvas did not change"
        time.sleep(0.25)


def test_overlay_toggle_and_click_in_jupyterlab(page: Page, lab: tuple[str, str],
                                                store: Path, tmp_path: Path) -> None:
    base, token = lab
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/cells.ipynb?reset&token={token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell")
    page.evaluate(RUN_ALL, "cells.ipynb")
    toggle = page.get_by_role("button", name="Cells by phenotype")
    toggle.wait_for()
    legend = page.get_by_label("Phenotype legend")
    assert "T (" in legend.inner_text()
    assert "other (" in legend.inner_text()
    plain = settle(page)
    toggle.click()
    tinted = settle(page, plain)
    assert np.abs(tinted - plain)[..., :3].max(axis=-1).astype(bool).mean() > 0.2
    page.locator(".plexhub-canvas").screenshot(path=str(tmp_path / "cells-overlay.png"))

    # click the largest B cell: level-0 (x, y) -> canvas pixels (the viewer fits the image)
    obs = anndata.read_zarr(store / "tables" / "cells").obs
    labels = np.asarray(zarr.open_array(store / "labels" / "cells" / "0", mode="r")[:])
    cell = obs[obs["phenotype"] == "B"].sort_values("area").iloc[-1]
    cid = int(cell["cell_id"])
    ys, xs = np.nonzero(labels == cid)
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    box = page.locator(".plexhub-canvas").bounding_box()
    assert box is not None
    zoom = min(640 / SIZE[1], 420 / SIZE[0])
    cx = (xs[i] + 0.5 - SIZE[1] / 2) * zoom * box["width"] / 640 + box["width"] / 2
    cy = (ys[i] + 0.5 - SIZE[0] / 2) * zoom * box["height"] / 420 + box["height"] / 2
    page.locator(".plexhub-canvas").click(position={"x": float(cx), "y": float(cy)})
    row = page.get_by_label("Selected cell")
    page.wait_for_function(f"document.body.innerText.includes('Cell {cid}')")
    assert "phenotype" in row.inner_text()
    assert f"Cell {cid}" in row.inner_text()
    page.screenshot(path=str(tmp_path / "cells-lab.png"), full_page=True)
