"""Brightfield RGB (the real TCGA SVS): true colour everywhere, not three stretched additive
channels (issue 17, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from plexhub.model import Channel
from plexhub.ome_pipeline.autocontrast import default_preset
from plexhub.ome_pipeline.histogram import histograms_document
from plexhub.ome_pipeline.render import render
from plexhub.presets import bind
from tests.helpers.zarrs import level


def test_the_svs_is_written_as_true_colour(converted: dict[str, Path]) -> None:
    store = converted["svs"]
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]
    omero = attrs["ome"]["omero"]
    assert omero["rdefs"]["model"] == "color"
    assert attrs["plexhub"]["photometric"] == "RGB"
    chans = omero["channels"]
    assert [c["label"] for c in chans] == ["R", "G", "B"]
    assert [c["color"] for c in chans] == ["FF0000", "00FF00", "0000FF"]
    assert all(c["active"] and c["family"] == "linear" and c["coefficient"] == 1.0
               and not c["inverted"] for c in chans)
    assert [(c["window"]["start"], c["window"]["end"]) for c in chans] == [(0.0, 255.0)] * 3
    # what ome-zarr-py gives napari-ome-zarr: full-range limits, pure R/G/B colormaps
    [node, *_] = list(Reader(parse_url(str(store)))())
    assert node.metadata["contrast_limits"] == [[0.0, 255.0]] * 3
    assert [cm[-1] for cm in node.metadata["colormap"]] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                                                            [0.0, 0.0, 1.0]]


def test_the_api_default_preset_renders_the_svs_pixels_unchanged(
        converted: dict[str, Path], real: Path) -> None:
    """The API's default preset comes from the stored histograms: composited additively it
    gives back the slide's own colours (within 1 per 8-bit value)."""
    store = converted["svs"]
    doc = histograms_document("histograms/zarr.json",
                              json.loads((store / "histograms" / "zarr.json").read_text()))
    assert doc is not None
    assert doc["photometric"] == "RGB"
    channels = [Channel(index=i, label=n, color=c) for i, (n, c) in
                enumerate(zip("RGB", ("FF0000", "00FF00", "0000FF"), strict=True))]
    preset = default_preset(channels, doc, "uint8")
    assert [(c.window.start, c.window.end) for c in preset.channels] == [(0.0, 255.0)] * 3
    level0 = level(store)
    region = np.asarray(level0[:, 1000:1256, 2000:2256])
    rgb = render(region, bind(preset, channels))
    with tifffile.TiffFile(real / "svs/tcga-cr-7395-01a-01-ts1.svs") as tif:
        source = tif.series[0].asarray()[1000:1256, 2000:2256]
    assert np.abs(rgb.astype(int) - source.astype(int)).max() <= 1
    assert source.mean() > 150  # mostly pale tissue and background: white stays white
    assert rgb.min(axis=(0, 1)).tolist() != [255, 255, 255]


def test_fluorescence_windows_are_still_stretched(converted: dict[str, Path]) -> None:
    """8-bit fluorescence (the QPTIFF) is not RGB: its windows stay the percentiles."""
    attrs = json.loads((converted["qptiff"] / "zarr.json").read_text())["attributes"]
    assert "photometric" not in attrs["plexhub"]
    assert all(c["window"]["end"] < 255 for c in attrs["ome"]["omero"]["channels"])
