"""Plain multi-page TIFF: pages as channels or time points, chosen by evidence, and
`plexhub info` says which and why (issue 17, item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from plexhub.cli import main
from plexhub.ome_pipeline.readers import open_source


def info(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    return [line.strip() for line in capsys.readouterr().out.splitlines()]


def frames(n: int = 4) -> np.ndarray:
    """A blob drifting one pixel per frame over a textured background: a time-lapse."""
    yy, xx = np.mgrid[0:64, 0:64]
    rng = np.random.default_rng(0)
    background = rng.normal(100, 5, (64, 64))
    return np.stack([background + 1000 * np.exp(-((yy - 30) ** 2 + (xx - 20 - t) ** 2) / 60)
                     for t in range(n)]).astype(np.uint16)


def test_the_real_imc_pages_are_channels_by_their_pixels(
        real: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [image] = open_source(real / "labels/E34_imc.tiff").images
    assert image.shape == (1, 5, 1, 100, 100)
    lines = info(real / "labels/E34_imc.tiff", capsys)
    assert "note: the file gives no pixel size: written without a unit (readers show " \
           "pixels)" in lines
    [why] = [ln for ln in lines if ln.startswith("note: pages as")]
    assert why.startswith("note: pages as channels: the pages differ like channels (pixel "
                          "correlation of consecutive pages down to r = ")
    assert why.endswith("over 5 pages; Bio-Formats reads them as T)")


def test_drifting_frames_are_time_points(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "timelapse.tif"
    # plain pages: no names, no times, no shape metadata
    tifffile.imwrite(path, frames(), photometric="minisblack", metadata=None)
    [image] = open_source(path).images
    assert image.shape == (4, 1, 1, 64, 64)
    np.testing.assert_array_equal(image.to_numpy()[:, 0, 0], frames())
    [why] = [ln for ln in info(path, capsys) if ln.startswith("note: pages as")]
    assert why.startswith("note: pages as time points: consecutive pages are near-identical "
                          "frames (pixel correlation r >= 0.9")


def test_page_times_say_time_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stamped.tif"
    rng = np.random.default_rng(1)
    for t in range(3):  # unlike pixels, but each page stamped a minute later
        tifffile.imwrite(path, rng.integers(0, 4000, (32, 32), np.uint16), append=True,
                         datetime=f"2026:12:04 10:0{t}:00", metadata=None)
    [image] = open_source(path).images
    assert image.shape == (3, 1, 1, 32, 32)
    assert "note: pages as time points: each page has its own, later DateTime " \
           "(2026:12:04 10:00:00 ... 2026:12:04 10:02:00)" in info(path, capsys)


def test_page_names_say_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "named.tif"
    for name, page in zip(["DAPI", "CD3", "CD8"], frames(3), strict=True):  # alike pixels
        tifffile.imwrite(path, page, append=True, metadata=None,
                         extratags=[(285, "s", 0, name, True)])
    [image] = open_source(path).images
    assert image.shape == (1, 3, 1, 64, 64)
    assert [ch.label for ch in image.channels] == ["DAPI", "CD3", "CD8"]
    assert "note: pages as channels: each page is named (PageName DAPI, CD3, CD8)" in \
        info(path, capsys)


def test_the_imc_ome_tiff_says_it_has_no_unit(real: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = real / "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff"
    [image] = open_source(src).images
    assert "x" not in image.physical_sizes  # kept unitless: the file has no PhysicalSizeX
    assert "note: the file gives no pixel size: written without a unit (readers show " \
           "pixels)" in info(src, capsys)
