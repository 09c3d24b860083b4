"""Deflate tiles decoded by the fast path (libdeflate into a reused buffer) read exactly what
tifffile reads, and everything the fast path does not take still goes the general way."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import tifffile

from plexhub.errors import CorruptFileError
from plexhub.ome_pipeline.readers import open_source, tiffpixels


def _pattern(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    base = np.add.outer(np.arange(shape[-2]) * 37, np.arange(shape[-1]) * 11) % 50000
    noise = rng.integers(0, 900, shape)
    return ((base + noise) % (np.iinfo(dtype).max + 1)).astype(dtype)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("predictor", [None, 2])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_region_reads_equal_tifffile(tmp_path: Path, byteorder: Literal["<", ">"],
                                     predictor: int | None,
                                     dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _pattern((2, 300, 270), dtype)  # edge tiles on both axes
    src = tmp_path / "t.tif"
    tifffile.imwrite(src, data, tile=(64, 64), compression="zlib", predictor=predictor,
                     byteorder=byteorder, photometric="minisblack")  # a page per channel
    taken: list[int] = []
    real = tiffpixels.TiffPixels._deflate_tile

    def spy(self: tiffpixels.TiffPixels, *a: object) -> bool:
        ok = real(self, *a)  # type: ignore[arg-type]
        taken.append(ok)
        return ok

    monkeypatch.setattr(tiffpixels.TiffPixels, "_deflate_tile", spy)
    image = open_source(str(src)).images[0]
    for ys, xs in [(slice(0, 300), slice(0, 270)), (slice(64, 192), slice(128, 256)),
                   (slice(10, 140), slice(5, 77))]:
        got = image.read_plane_block(0, 0, [0, 1], ys, xs)
        assert np.array_equal(got, data[:, ys, xs])
    fast = (byteorder == "<" or dtype == "uint8") and predictor is None
    assert (any(taken) if fast else not taken)  # the fast path only where it applies


def test_a_damaged_tile_still_reports_the_file(tmp_path: Path) -> None:
    data = _pattern((1, 128, 128), "uint16")
    src = tmp_path / "bad.tif"
    tifffile.imwrite(src, data, tile=(64, 64), compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(src) as tif:
        offset = int(tif.pages[0].dataoffsets[1])
    raw = bytearray(src.read_bytes())
    raw[offset + 2:offset + 40] = b"\xff" * 38
    src.write_bytes(bytes(raw))
    image = open_source(str(src)).images[0]
    with pytest.raises(CorruptFileError, match=r"bad\.tif"):
        image.read_plane_block(0, 0, [0], slice(0, 128), slice(0, 128))
