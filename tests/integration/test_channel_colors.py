"""One palette: channels without a colour get the same colour from the converter, the
notebook viewer's image source and presets (channels 9-12 used to differ)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plexhub.colors import PALETTE, default_colors, parse_color
from plexhub.errors import InputError
from plexhub.ome_pipeline.conversion import convert
from plexhub.presets import InvalidPresetError, parse_preset
from plexhub.settings import Settings
from plexhub.widgets.source import open_image


def test_viewer_and_converter_agree_on_twelve_channels(tmp_path: Path) -> None:
    tif = tmp_path / "twelve.tif"  # a plain multi-page TIFF: no colours of its own
    tifffile.imwrite(tif, np.arange(12 * 64 * 64, dtype=np.uint16).reshape(12, 64, 64))
    dst = tmp_path / "twelve.zarr"
    convert(tif, dst, settings=Settings(data_dir=tmp_path / "d", chunk_size=32, block_size=64),
            show_progress=False)
    meta = json.loads((dst / "zarr.json").read_text())
    written = [c["color"] for c in meta["attributes"]["ome"]["omero"]["channels"]]
    assert written == default_colors(12) == list(PALETTE)
    for ch in meta["attributes"]["ome"]["omero"]["channels"]:
        del ch["color"]  # a store from another writer, without colours
    (dst / "zarr.json").write_text(json.dumps(meta))
    assert [c.color for c in open_image(dst).channels] == written


def test_one_colour_parser_everywhere() -> None:
    assert parse_color(" #00ff7f ") == "00FF7F"
    with pytest.raises(InputError, match="six hex digits"):
        parse_color("#FFF")
    with pytest.raises(InvalidPresetError, match="six hex digits"):
        parse_preset({"channels": [{"index": 0, "color": "F00",
                                    "window": {"start": 0, "end": 1}}]})
