"""Full level-0 blocks of a tiled deflate TIFF whose tiles are the output chunks are decoded
into whole tiles and encoded in place (``writer._whole_tiles``); every other block goes through
a plane. Both ways must write the very same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers.tiffpixels import TiffPixels
from plexhub.ome_pipeline.source import SourceImage
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.zarrs import arrays

# 1300 x 1100 in 512-pixel blocks: 2 x 2 full blocks, the rest partial (edge) blocks
SPEC = SyntheticSpec(size_y=1300, size_x=1100, channels=2, tile=256, seed=11)
SETTINGS = Settings(chunk_size=256, block_size=512, workers=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("tiles") / "src.ome.tif", SPEC)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def count_tile_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    served: list[int] = []
    real = TiffPixels.read_tiles

    def counted(self: TiffPixels, *args: object) -> object:
        tiles = real(self, *args)  # type: ignore[arg-type]
        if tiles is not None:
            served.append(1)
        return tiles

    monkeypatch.setattr(TiffPixels, "read_tiles", counted)
    return served


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_whole_tile_blocks_write_the_same_bytes_as_planes(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    served = count_tile_reads(monkeypatch)
    tiled = tmp_path / "tiled.ome.zarr"
    convert(source, tiled, settings=SETTINGS, ngff_version=version)
    assert len(served) == 2 * 2 * 2  # channels x full blocks: the edge blocks went by plane

    with monkeypatch.context() as m:
        m.setattr(SourceImage, "read_tiles", lambda self, *a: None)
        planes = tmp_path / "planes.ome.zarr"
        convert(source, planes, settings=SETTINGS, ngff_version=version)
    # shards / chunks, metadata and the histograms group (tiles' counts for the full blocks)
    assert files(tiled) == files(planes)

    level0 = arrays(tiled)["0"]
    with tifffile.TiffFile(source) as tif:
        assert np.array_equal(level0, tif.series[0].asarray())


def test_tiles_that_are_not_the_chunks_go_by_plane(source: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    served = count_tile_reads(monkeypatch)
    out = tmp_path / "o.ome.zarr"
    convert(source, out, settings=Settings(chunk_size=128, block_size=512, workers=2))
    assert served == []
    with tifffile.TiffFile(source) as tif:
        assert np.array_equal(arrays(out)["0"], tif.series[0].asarray())
