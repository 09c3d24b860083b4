"""The CZI reader: real Zeiss files against czifile, and files written with pylibCZIrw."""

from __future__ import annotations

import json
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import czifile
import numpy as np
import pytest
import zarr
from pylibCZIrw import czi as pyczi

from plexhub.errors import CorruptFileError, MissingFileError, UnsupportedFormatError
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers import detect_reader, open_source
from plexhub.ome_pipeline.readers.czi import CziReader, read_layout
from plexhub.ome_pipeline.source import SourceImage

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
DAPI_GFP = REAL / "czi" / "DAPI_GFP.czi"
CELL_DIVISION = REAL / "czi" / "CellDivision_T3_Z5_CH2_X240_Y170.czi"
ZSTD = "zstd1:ExplicitLevel=1;PreProcess=HiLoByteUnpack"


def _write(path: Path, tiles: list[tuple[np.ndarray[Any, Any], dict[str, int], int,
                                          tuple[int, int]]],
           compression: str | None = None, **metadata: Any) -> None:
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for data, plane, scene, location in tiles:
            tile = data if data.ndim == 3 else data[..., np.newaxis]
            w.write(tile, plane=plane, scene=scene, location=location,
                    compression_options=compression)
        if metadata:
            w.write_metadata(**metadata)


def _only(path: Path) -> SourceImage:
    doc = open_source(path)
    assert len(doc.images) == 1
    return doc.images[0]


# --------------------------------------------------------------------------- detection

def test_detects_czi_by_content_not_extension(tmp_path: Path) -> None:
    renamed = tmp_path / "no_extension.bin"
    renamed.write_bytes(DAPI_GFP.read_bytes())
    assert isinstance(detect_reader(str(renamed)), CziReader)
    assert CziReader.can_open(str(DAPI_GFP), DAPI_GFP.read_bytes()[:512])
    fake = tmp_path / "fake.czi"
    fake.write_bytes(b"II*\x00" + bytes(100))
    assert not CziReader.can_open(str(fake), fake.read_bytes())


# --------------------------------------------------------------------------- real files

def test_dapi_gfp_matches_czifile() -> None:
    doc = open_source(DAPI_GFP)
    assert doc.format == "czi"
    image = doc.images[0]
    assert len(doc.images) == 1
    assert image.shape == (1, 2, 1, 640, 640)
    assert image.dtype == np.uint8
    assert [ch.label for ch in image.channels] == ["DAPI", "GFP"]
    assert [ch.color for ch in image.channels] == ["0000FF", "00FF00"]
    assert image.physical_sizes == {}  # the file is scaled in pixels only
    assert "<ImageDocument>" in doc.original_metadata["czi-metadata.xml"]
    raw = czifile.imread(str(DAPI_GFP))  # axes TCYX0
    assert raw.shape == (1, 2, 640, 640, 1)
    np.testing.assert_array_equal(image.to_numpy(), raw[:, :, np.newaxis, :, :, 0])


def test_cell_division_matches_czifile() -> None:
    image = _only(CELL_DIVISION)
    assert image.shape == (3, 2, 5, 170, 240)
    assert image.dtype == np.uint16
    assert image.axes == "tczyx"
    assert [ch.label for ch in image.channels] == ["LED555", "LED470"]
    assert [ch.color for ch in image.channels] == ["FF7E00", "00FF33"]
    sizes = image.physical_sizes
    assert sizes["x"].value == pytest.approx(0.0905767, rel=1e-5)
    assert sizes["y"].unit == "micrometer"
    assert sizes["z"].value == pytest.approx(0.32)
    assert sizes["t"].value == pytest.approx(60.075)
    assert sizes["t"].unit == "second"
    raw = czifile.imread(str(CELL_DIVISION))
    assert raw.shape == (1, 3, 2, 5, 170, 240, 1)
    np.testing.assert_array_equal(image.to_numpy(), raw[0, ..., 0])


def test_regions_threads_and_pickling() -> None:
    image = _only(CELL_DIVISION)
    full = image.to_numpy()
    block = image.read_plane_block(2, 3, [1, 0], slice(17, 93), slice(101, 240))
    np.testing.assert_array_equal(block, full[2, [1, 0], 3, 17:93, 101:240])
    copy: SourceImage = pickle.loads(pickle.dumps(image))
    np.testing.assert_array_equal(copy.read_plane_block(1, 4, [0], slice(0, 170),
                                                        slice(0, 240)), full[1, [0], 4])

    def read(k: int) -> bool:
        t, z, c = k % 3, k % 5, k % 2
        got = copy.read_plane_block(t, z, [c], slice(k, 170), slice(0, 240 - k))
        return bool(np.array_equal(got[0], full[t, c, z, k:, : 240 - k]))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, range(40)))


# --------------------------------------------------------------------------- written files

def test_zstd_multichannel_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 65535, (3, 2, 50, 70), dtype=np.uint16)  # c, z, y, x
    path = tmp_path / "zstd.czi"
    _write(path, [(data[c, z], {"C": c, "Z": z}, 0, (0, 0))
                  for c in range(3) for z in range(2)], compression=ZSTD,
           channel_names={0: "DAPI", 1: "CD3", 2: "CD8"}, scale_x=0.5e-6, scale_y=0.5e-6,
           scale_z=2e-6)
    assert read_layout(str(path)).compressions <= {5, 6}  # zstd, nothing else
    image = _only(path)
    assert image.shape == (1, 3, 2, 50, 70)
    assert image.dtype == np.uint16
    assert [ch.label for ch in image.channels] == ["DAPI", "CD3", "CD8"]
    assert image.physical_sizes["x"].value == pytest.approx(0.5)
    assert image.physical_sizes["z"].value == pytest.approx(2.0)
    np.testing.assert_array_equal(image.to_numpy()[0], data)


def test_mosaic_is_composed_in_scene_coordinates(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    tiles = [rng.integers(1, 255, (30, 40), dtype=np.uint8) for _ in range(3)]
    # scene origin (1000, 500); the tile at bottom-right leaves a hole at bottom-left
    where = [(1000, 500), (1040, 500), (1040, 530)]
    path = tmp_path / "mosaic.czi"
    _write(path, [(t, {"C": 0}, 0, xy) for t, xy in zip(tiles, where, strict=True)],
           compression=ZSTD)
    image = _only(path)
    assert image.shape == (1, 1, 1, 60, 80)
    expected = np.zeros((60, 80), np.uint8)
    expected[0:30, 0:40] = tiles[0]
    expected[0:30, 40:80] = tiles[1]
    expected[30:60, 40:80] = tiles[2]
    np.testing.assert_array_equal(image.to_numpy()[0, 0, 0], expected)
    np.testing.assert_array_equal(
        image.read_plane_block(0, 0, [0], slice(25, 35), slice(35, 45))[0],
        expected[25:35, 35:45])


def test_two_scenes_are_two_images(tmp_path: Path) -> None:
    a = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    b = (np.arange(10 * 15, dtype=np.uint16) * 7).reshape(10, 15)
    path = tmp_path / "scenes.czi"
    _write(path, [(a, {"C": 0}, 0, (0, 0)), (a + 1, {"C": 1}, 0, (0, 0)),
                  (b, {"C": 0}, 1, (500, 300)), (b + 2, {"C": 1}, 1, (500, 300))])
    doc = open_source(path)
    assert [im.name for im in doc.images] == ["Scene 0", "Scene 1"]
    assert [im.shape for im in doc.images] == [(1, 2, 1, 20, 30), (1, 2, 1, 10, 15)]
    np.testing.assert_array_equal(doc.images[0].to_numpy()[0, :, 0], np.stack([a, a + 1]))
    np.testing.assert_array_equal(doc.images[1].to_numpy()[0, :, 0], np.stack([b, b + 2]))


def test_bgr24_becomes_rgb_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    path = tmp_path / "rgb.czi"
    _write(path, [(bgr, {"C": 0}, 0, (0, 0))])
    image = _only(path)
    assert image.shape == (1, 3, 1, 12, 16)
    assert [(ch.label, ch.color) for ch in image.channels] == [
        ("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF")]
    assert image.channel_groups == [(0, 1, 2)]
    np.testing.assert_array_equal(image.to_numpy()[0, :, 0], bgr[..., ::-1].transpose(2, 0, 1))


def test_float32_pixels(tmp_path: Path) -> None:
    data = np.linspace(-1, 1, 9 * 11, dtype=np.float32).reshape(9, 11)
    path = tmp_path / "float.czi"
    _write(path, [(data, {"C": 0}, 0, (0, 0))], compression=ZSTD)
    image = _only(path)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image.to_numpy()[0, 0, 0], data)


# --------------------------------------------------------------------------- bad input

def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    data = CELL_DIVISION.read_bytes()
    path = tmp_path / "half.czi"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"half\.czi"):
        open_source(path)


@pytest.mark.parametrize("tail", [b"", bytes(range(256)) * 40])
def test_garbage_after_magic_is_corrupt(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "garbage.czi"
    path.write_bytes(b"ZISRAWFILE" + tail)
    with pytest.raises(CorruptFileError):
        open_source(path)


def test_damaged_subblock_is_corrupt_not_runtime_error(tmp_path: Path) -> None:
    data = bytearray(CELL_DIVISION.read_bytes())
    first = data.find(b"ZISRAWSUBBLOCK")
    data[first:first + 14] = bytes(14)
    path = tmp_path / "damaged.czi"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        open_source(path).images[0].to_numpy()


def test_unsupported_compression(tmp_path: Path) -> None:
    path = tmp_path / "lzw.czi"
    _write(path, [(np.ones((8, 8), np.uint8), {"C": 0}, 0, (0, 0))])
    data = bytearray(path.read_bytes())
    dir_pos = struct.unpack_from("<q", data, 84)[0]
    entry = dir_pos + 32 + 128
    assert data[entry:entry + 2] == b"DV"
    struct.pack_into("<i", data, entry + 18, 2)  # LZW
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError, match="LZW"):
        open_source(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        CziReader().open(str(tmp_path / "absent.czi"))


# --------------------------------------------------------------------------- end to end

def test_convert_cell_division(tmp_path: Path) -> None:
    dst = tmp_path / "out.zarr"
    result = convert(CELL_DIVISION, dst, show_progress=False)
    assert result.format == "czi"
    assert [im.axes for im in result.images] == ["tczyx"]
    root = json.loads((dst / "zarr.json").read_text())
    axes = root["attributes"]["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == list("tczyx")
    level0 = zarr.open_array(str(dst / "0"), mode="r")[...]
    np.testing.assert_array_equal(level0, czifile.imread(str(CELL_DIVISION))[0, ..., 0])
    original = zarr.open_group(dst / "OME" / "original", mode="r").attrs["plexhub"]
    assert isinstance(original, dict)
    assert "<ImageDocument>" in original["original_metadata"]["czi-metadata.xml"]
