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
            into = np.full((y1 - y0, x1 - x0), 7, arr.dtype)  # the conversion's read-back
            assert direct.read(sel, out=into) is not None
            assert np.array_equal(into, arr[sel])


def test_foreign_layouts_are_refused(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "x.zarr", mode="w")
    g.create_array("a", shape=(10, 10), chunks=(5, 5), dtype="uint16")  # zstd, no shards
    assert open_direct(tmp_path / "x.zarr" / "a") is None


def test_missing_chunks_read_as_the_fill_value_and_out_must_fit(tmp_path: Path) -> None:
    src = write_ome_tiff(tmp_path / "s.ome.tif",
                         SyntheticSpec(size_y=200, size_x=200, channels=1, tile=64))
    dst = tmp_path / "o.zarr"
    convert(src, dst, settings=Settings(chunk_size=64, block_size=128))
    direct = open_direct(dst / "0")
    assert direct is not None
    want = np.asarray(zarr.open_array(dst / "0", mode="r")[0, 100:200, 0:200])
    (dst / "0" / "c" / "0" / "1" / "0").unlink()  # the shard holding y 128-255, x 0-127
    into = np.full((100, 200), 9, np.uint16)
    direct.read((0, slice(100, 200), slice(0, 200)), out=into)
    assert (into[28:, :128] == 0).all()  # fill value where the shard is gone
    assert np.array_equal(into[:28], want[:28])
    assert np.array_equal(into[28:, 128:], want[28:, 128:])
    with pytest.raises((ValueError, AttributeError)):
        direct.read((0, slice(0, 10), slice(0, 10)), out=np.empty((10, 20), np.uint16))
