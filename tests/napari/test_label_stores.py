"""A store written with --as-labels, opened in a real napari viewer through napari-ome-zarr,
shows something: not a black canvas (issue 17, item 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plexhub.ome_pipeline import convert

pytestmark = pytest.mark.gl


def test_a_label_store_is_visible_in_napari(make_napari_viewer: Any, real: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "mask.ome.zarr"
    convert(real / "labels/E34_mask.tiff", dst, as_labels=True, show_progress=False)
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(dst), plugin="napari-ome-zarr")
    capsys.readouterr()
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels"]
    assert [layer.visible for layer in layers] == [True, False]
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    assert shot[..., :3].max() > 100  # cells drawn in grey, not a black canvas
    assert (shot[..., :3].reshape(-1, 3).max(axis=1) > 30).mean() > 0.2
    layers[1].visible = True  # the label layer, when switched on, draws coloured cells
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False)).astype(int)
    rgb = shot[..., :3]
    assert (np.ptp(rgb, axis=-1) > 40).mean() > 0.1
