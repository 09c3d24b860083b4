from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.chunkread import open_direct
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_direct_reads_equal_zarr_reads(tmp_path: Path, version: str) -> None:
    src = write_ome_tiff(tmp_path / "s.ome.tif",
                         SyntheticSpec(size_y=300, size_x=260, channels=2, tile=64))
    dst = tmp_path / "o.zarr"
    convert(src, dst, ngff_version=version,
            settings=Settings(chunk_size=64, block_size=128))
    rng = np.random.default_rng(0)
    for level in ("0", "1"):
        arr = zarr.open_array(dst / level, mode="r")
        direct = open_direct(dst / level)
        assert direct is not None
        for _ in range(20):
            y0, x0 = (int(rng.integers(0, n)) for n in arr.shape[1:])
            y1 = int(rng.integers(y0 + 1, arr.shape[1] + 1))
            x1 = int(rng.integers(x0 + 1, arr.shape[2] + 1))
            c = int(rng.integers(0, 2))
            sel = (c, slice(y0, y1), slice(x0, x1))
            assert np.array_equal(direct.read(sel), arr[sel])


def test_foreign_layouts_are_refused(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "x.zarr", mode="w")
    g.create_array("a", shape=(10, 10), chunks=(5, 5), dtype="uint16")  # zstd, no shards
    assert open_direct(tmp_path / "x.zarr" / "a") is None
