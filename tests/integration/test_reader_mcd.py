"""The IMC .mcd reader: the real mock data set, cross-checked against its OME-TIFF export."""

from __future__ import annotations

import json
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from readimc import MCDFile

from plexhub.errors import CorruptFileError, UnsupportedFormatError
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers import detect_reader, open_source
from plexhub.ome_pipeline.readers import mcd as mcd_module
from plexhub.ome_pipeline.readers.mcd import AcquisitionCache, McdPixels, McdReader
from plexhub.ome_pipeline.source import Array

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MCD = REAL / "imc" / "20210305_NE_mockData2.mcd"
ROI_001_TIFF = REAL / "imc" / "20210305_NE_mockData2_s0_a1_ac.ome.tiff"
LABELS = ["107Ag", "Cytoker_651((3356))Pr141", "Laminin_681((851))Sm147",
          "YBX1_2987((3532))Eu153", "H3K27Ac_1977((2242))Yb172"]


def _edited_copy(tmp_path: Path, name: str, edit: dict[str, str]) -> Path:
    """A copy of the real file whose schema XML has ``old -> new`` text replacements."""
    data = MCD.read_bytes()
    start = data.rfind("<MCDSchema".encode("utf-16-le"))
    end_tag = "</MCDSchema>".encode("utf-16-le")
    end = data.rfind(end_tag) + len(end_tag)
    xml = data[start:end].decode("utf-16-le")
    for old, new in edit.items():
        assert xml.count(old) == 1, old
        xml = xml.replace(old, new)
    path = tmp_path / name
    path.write_bytes(data[:start] + xml.encode("utf-16-le") + data[end:])
    return path


def _acquisitions_json(path: Path) -> list[dict[str, object]]:
    doc = open_source(path)
    listing: list[dict[str, object]] = json.loads(doc.original_metadata["acquisitions.json"])
    return listing


# --------------------------------------------------------------------------- detection

def test_detected_by_content(tmp_path: Path) -> None:
    renamed = tmp_path / "slide_data.bin"
    renamed.write_bytes(MCD.read_bytes())
    assert isinstance(detect_reader(str(renamed)), McdReader)
    # the schema at the end is enough, even without the .NET header at the start
    tail_only = tmp_path / "tail_only.dat"
    tail_only.write_bytes(bytes(4096) + "<MCDSchema></MCDSchema>".encode("utf-16-le"))
    assert McdReader.can_open(str(tail_only), tail_only.read_bytes()[:512])
    # an .mcd extension alone is not
    impostor = tmp_path / "impostor.mcd"
    impostor.write_bytes(b"not an mcd file at all" * 100)
    assert not McdReader.can_open(str(impostor), impostor.read_bytes()[:512])
    with pytest.raises(UnsupportedFormatError):
        open_source(impostor)


# --------------------------------------------------------------------------- the real file

def test_real_file_acquisitions_and_panorama() -> None:
    doc = open_source(MCD)
    assert doc.format == "mcd"
    assert [im.name for im in doc.images] == ["ROI_001", "ROI_002", "ROI_003"]
    assert [im.shape for im in doc.images] == [(1, 5, 1, 87, 103), (1, 5, 1, 61, 59),
                                               (1, 5, 1, 54, 53)]
    for image in doc.images:
        assert image.dtype == np.float32
        assert [ch.label for ch in image.channels] == LABELS
        assert image.physical_sizes["x"].value == 1.0
        assert image.physical_sizes["y"].unit == "micrometer"
        assert image.axes == "cyx"
    pano = doc.associated["panorama"]
    assert pano.shape == (1, 3, 1, 254, 313)
    assert pano.dtype == np.uint8
    with MCDFile(MCD) as f:
        rgba = f.read_panorama(f.slides[0].panoramas[0])
        expected = [f.read_acquisition(a) for a in f.slides[0].acquisitions]
    np.testing.assert_array_equal(pano.to_numpy()[0, :, 0], np.moveaxis(rgba[..., :3], -1, 0))
    for image, data in zip(doc.images, expected, strict=True):
        np.testing.assert_array_equal(image.to_numpy()[0, :, 0], data)
    listing = json.loads(doc.original_metadata["acquisitions.json"])
    assert [(a["id"], a["name"], a["empty"]) for a in listing] == [
        (1, "ROI_001", False), (2, "ROI_002", False), (3, "ROI_003", False)]
    assert listing[0]["channels"] == ["Ag107", "Pr141", "Sm147", "Eu153", "Yb172"]
    assert "<MCDSchema" in doc.original_metadata["mcd-schema.xml"]


def test_roi_001_equals_its_ome_tiff_export() -> None:
    image = open_source(MCD).images[0]
    reference = tifffile.imread(ROI_001_TIFF)
    assert reference.shape == (5, 87, 103)
    np.testing.assert_array_equal(image.to_numpy()[0, :, 0], reference)


def test_regions_threads_pickling_and_bounded_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = AcquisitionCache(max_bytes=1)  # over budget: keeps only the latest acquisition
    monkeypatch.setattr(mcd_module, "CACHE", cache)
    images = open_source(MCD).images
    reference = tifffile.imread(ROI_001_TIFF)
    block = images[0].read_plane_block(0, 0, [4, 1], slice(10, 60), slice(3, 100))
    np.testing.assert_array_equal(block, reference[[4, 1], 10:60, 3:100])
    copies = [pickle.loads(pickle.dumps(im)) for im in images]
    full = [im.to_numpy() for im in images]
    assert len(cache) == 1

    def read(k: int) -> bool:
        i = k % 3
        _, c, _, y, x = copies[i].shape
        got = copies[i].read_plane_block(0, 0, [k % c], slice(k % 7, y), slice(0, x))
        return bool(np.array_equal(got, full[i][0, [k % c], 0, k % 7:]))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, range(60)))
    assert len(cache) == 1


def test_cache_decodes_each_acquisition_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = AcquisitionCache(max_bytes=2**30)
    monkeypatch.setattr(mcd_module, "CACHE", cache)
    image = open_source(MCD).images[1]
    assert isinstance(image.pixels, McdPixels)
    calls = []
    original = McdPixels._load

    def counting(self: McdPixels) -> Array:
        calls.append(self.acquisition)
        return original(self)

    monkeypatch.setattr(McdPixels, "_load", counting)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: image.read_plane_block(0, 0, [c % 5], slice(0, 61),
                                                       slice(0, 59)), range(40)))
    assert calls == [2]


# --------------------------------------------------------------------------- empty acquisitions

def test_empty_acquisition_converts_as_zeros(tmp_path: Path) -> None:
    # ROI_002 aborted before its first pixel: its data block has no bytes
    path = _edited_copy(tmp_path, "empty.mcd",
                        {"<DataEndOffset>514089</DataEndOffset>":
                         "<DataEndOffset>398921</DataEndOffset>"})
    doc = open_source(path)
    assert [im.shape for im in doc.images] == [(1, 5, 1, 87, 103), (1, 5, 1, 61, 59),
                                               (1, 5, 1, 54, 53)]
    assert not doc.images[1].to_numpy().any()
    np.testing.assert_array_equal(doc.images[0].to_numpy()[0, :, 0],
                                  tifffile.imread(ROI_001_TIFF))
    listing = json.loads(doc.original_metadata["acquisitions.json"])
    assert [(a["id"], a["name"], a["empty"]) for a in listing] == [
        (1, "ROI_001", False), (2, "ROI_002", True), (3, "ROI_003", False)]
    dst = tmp_path / "out.zarr"
    convert(path, dst, show_progress=False)
    assert not np.asarray(zarr.open_array(str(dst / "1" / "0"), mode="r")[...]).any()


def test_empty_acquisition_without_size_is_one_pixel(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path, "nosize.mcd", {
        "<DataEndOffset>605673</DataEndOffset>": "<DataEndOffset>514089</DataEndOffset>",
        "<MaxY>54</MaxY>": "<MaxY>0</MaxY>", "<MaxX>53</MaxX>": "<MaxX>0</MaxX>"})
    doc = open_source(path)
    assert doc.images[2].shape == (1, 5, 1, 1, 1)
    assert not doc.images[2].to_numpy().any()
    assert [a["empty"] for a in _acquisitions_json(path)] == [False, False, True]


# --------------------------------------------------------------------------- bad input

def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    data = MCD.read_bytes()
    path = tmp_path / "half.mcd"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"half\.mcd"):
        open_source(path)


def test_acquisition_past_end_of_file_is_corrupt(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path, "pastend.mcd", {
        "<DataEndOffset>605673</DataEndOffset>": "<DataEndOffset>9605673</DataEndOffset>"})
    with pytest.raises(CorruptFileError, match="truncated"):
        open_source(path)


def test_garbage_schema_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mcd"
    path.write_bytes(MCD.read_bytes()[:300] + bytes(1000)
                     + "<MCDSchema><Slide><ID>x".encode("utf-16-le"))
    with pytest.raises(CorruptFileError):
        open_source(path)


def test_damaged_pixel_records_are_corrupt(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path, "shifted.mcd", {
        "<DataStartOffset>514089</DataStartOffset>": "<DataStartOffset>514093</DataStartOffset>",
        "<DataEndOffset>605673</DataEndOffset>": "<DataEndOffset>605677</DataEndOffset>"})
    with pytest.raises(CorruptFileError, match="acquisition 3"):
        open_source(path)


def test_schema_edit_helper_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = _edited_copy(tmp_path, "same.mcd", {
        "<Description>ROI_003</Description>\r\n    <AblationPower>":
        "<Description>Tumour core</Description>\r\n    <AblationPower>"})
    doc = open_source(path)
    assert [im.name for im in doc.images] == ["ROI_001", "ROI_002", "Tumour core"]
    assert re.search("Tumour core", doc.original_metadata["mcd-schema.xml"])


# --------------------------------------------------------------------------- end to end

def test_convert_real_file_to_collection(tmp_path: Path) -> None:
    dst = tmp_path / "out.zarr"
    result = convert(MCD, dst, show_progress=False)
    assert result.format == "mcd"
    assert [im.name for im in result.images] == ["ROI_001", "ROI_002", "ROI_003"]
    assert "panorama" in result.associated
    for key in ("0", "1", "2", "associated/panorama"):
        node = json.loads((dst / key / "zarr.json").read_text())
        assert node["node_type"] == "group"
    level0 = zarr.open_array(str(dst / "0" / "0"), mode="r")[...]
    np.testing.assert_array_equal(level0, tifffile.imread(ROI_001_TIFF))
    assert zarr.open_array(str(dst / "associated" / "panorama" / "0"),
                           mode="r").shape == (3, 254, 313)
    original = zarr.open_group(dst / "OME" / "original", mode="r").attrs["plexhub"]
    assert isinstance(original, dict)
    assert "acquisitions.json" in original["original_metadata"]
