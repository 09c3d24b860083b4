"""A store written with --as-labels is an image + labels pair that readers show (issue 17,
item 2): napari-ome-zarr opens a visible image layer (it opens every label image hidden) and
the label layer; ome-zarr-py finds the label image's parent."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from plexhub.ome_pipeline import convert


@pytest.fixture(scope="module")
def label_store(real: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("labels") / "mask.ome.zarr"
    convert(real / "labels/E34_mask.tiff", dst, as_labels=True, show_progress=False)
    return dst


def test_napari_ome_zarr_opens_a_visible_layer_and_the_labels(
        label_store: Path, real: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from napari_ome_zarr._reader import napari_get_reader

    read = napari_get_reader(str(label_store))
    assert read is not None
    layers = read(str(label_store))
    capsys.readouterr()  # napari-ome-zarr prints the root attributes
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    (_, img_meta, _), (lab, lab_meta, _) = layers
    visible = img_meta["visible"]
    assert visible == [True] or visible is True
    lo, hi = img_meta["contrast_limits"][0]
    mask = tifffile.imread(real / "labels/E34_mask.tiff")
    assert lo == 0.0
    assert 0 < hi <= mask.max()  # the IDs show as grey levels, not a black canvas
    assert np.array_equal(np.asarray(lab[0]), mask)
    assert lab_meta["name"].endswith("E34_mask")


def test_ome_zarr_py_finds_the_parent(label_store: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ome_zarr"):
        nodes = list(Reader(parse_url(str(label_store)))())
        label_nodes = list(Reader(parse_url(str(label_store / "labels" / "E34_mask")))())
    assert not [r for r in caplog.records if "no parent" in r.getMessage()]
    assert nodes[0].visible
    assert nodes[0].metadata["visible"] == [True]
    # opened at the label image, the parent image comes first, the label image is visible
    assert not label_nodes[0].visible
    assert label_nodes[-1].visible
    assert "image-label" in label_nodes[-1].zarr.root_attrs
