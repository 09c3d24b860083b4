"""The array metadata plexhub writes itself is what zarr-python's ``create_array`` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline.chunkio import Codec


def _zarr_compressors(c: Codec, dtype: np.dtype[Any], zarr_format: int) -> Any:
    """The same codec as zarr-python objects (what plexhub passed to create_array before)."""
    if not c.enabled:
        return None
    if zarr_format == 2:
        return c.blosc()
    from zarr.codecs import BloscCname, BloscCodec, BloscShuffle

    return BloscCodec(cname=BloscCname(c.cname), clevel=c.clevel,
                      shuffle=BloscShuffle.shuffle, typesize=dtype.itemsize)


def _files(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): json.loads(p.read_text())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "float32", "bool"])
@pytest.mark.parametrize("codec", [("lz4", 5), ("zstd", 1), ("none", 0)])
def test_the_same_document_as_zarr_python(tmp_path: Path, zarr_format: Literal[2, 3],
                                          dtype: str, codec: tuple[str, int]) -> None:
    c = Codec(*codec)
    dt = np.dtype(dtype)
    shape, chunks, shards = (3, 1000, 700), (1, 256, 256), (1, 512, 512)
    kwargs: dict[str, Any] = {}
    if zarr_format == 3:
        kwargs.update(shards=shards, dimension_names=["c", "y", "x"],
                      compressors=_zarr_compressors(c, dt, 3))
    else:
        kwargs.update(chunk_key_encoding={"name": "v2", "separator": "/"},
                      compressors=_zarr_compressors(c, dt, 2))
    zarr.create_array(store=zarr.storage.LocalStore(tmp_path / "zarr"), shape=shape,
                      chunks=chunks, dtype=dt, fill_value=0, zarr_format=zarr_format,
                      **kwargs)
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / name).write_text(json.dumps(c.array_metadata(
        shape, chunks, shards if zarr_format == 3 else None, dt, zarr_format,
        ["c", "y", "x"] if zarr_format == 3 else None)))
    expected = _files(tmp_path / "zarr")
    assert _files(ours) == {name: expected[name]}
    assert set(expected) <= {name, ".zattrs"}  # an empty .zattrs is all zarr adds
    if ".zattrs" in expected:
        assert expected[".zattrs"] == {}
    # and zarr-python reads what we wrote, with the same codecs
    ref = zarr.open_array(tmp_path / "zarr", mode="r")
    got = zarr.open_array(ours, mode="r")
    assert (got.shape, got.chunks, got.shards, got.dtype) == \
        (ref.shape, ref.chunks, ref.shards, ref.dtype)
    assert got.fill_value == ref.fill_value
