"""The TIFF family converts correctly: OME-TIFF (every layout), QPTIFF / inForm, SVS, NDPI,
Leica SCN, Ventana BIF, Philips, ImageJ hyperstacks, plain multi-page TIFF and bad input.

Each written input is first checked to be the flavour tifffile itself recognises; level 0 of
the output is then compared with the pixels tifffile decodes for the main series.
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from plexhub.errors import (
    CorruptFileError,
    MissingFileError,
    PlexhubError,
    UnsupportedFormatError,
)
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers import detect_reader
from plexhub.settings import Settings
from tests.helpers.tiff_writers import (
    pattern,
    rgb_image,
    write_bif,
    write_imagej,
    write_inform_component,
    write_multifile_ome_tiff,
    write_ndpi,
    write_ome_tiff,
    write_ome_tiff_series,
    write_philips,
    write_plain_pages,
    write_scn,
    write_svs,
)
from tests.helpers.zarrs import group_at, values

FLAVOURS = ("ome", "imagej", "qpi", "svs", "ndpi", "scn", "bif", "philips")
OME_RED, OME_GREEN, OME_BLUE = -16776961, 16711935, 65535  # signed RGBA int32


# --------------------------------------------------------------------------- helpers

def flavours(path: Path) -> set[str]:
    """The vendor flags tifffile raises for ``path``."""
    with tifffile.TiffFile(path) as tif:
        return {f for f in FLAVOURS if getattr(tif, f"is_{f}")}


def main_series(path: Path, index: int = 0) -> np.ndarray:
    """Pixels tifffile reads for a series, samples (RGB) moved in front as channels."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[index]
        data, axes = series.asarray(), series.axes
    if axes.endswith("S"):
        data, axes = np.moveaxis(data, -1, 0), "C" + axes[:-1]
    if axes == "TZCYX":
        data = data.transpose(0, 2, 1, 3, 4)
    return data


def ngff(group: zarr.Group) -> dict[str, Any]:
    """NGFF keys of a group: under attrs["ome"] for 0.5, at the top for 0.4."""
    attrs = dict(group.attrs)
    found = attrs.get("ome", attrs)
    assert isinstance(found, dict)
    return found


class Output:
    """One converted image: level 0, axes, channels, pixel sizes."""

    def __init__(self, dst: Path, key: str = "") -> None:
        self.root = zarr.open_group(dst, mode="r")
        self.group = group_at(self.root, key) if key else self.root
        meta = ngff(self.group)
        self.multiscales = meta["multiscales"][0]
        self.channels = meta["omero"]["channels"]

    @property
    def level0(self) -> np.ndarray:
        return values(self.group, self.multiscales["datasets"][0]["path"])

    @property
    def axes(self) -> str:
        return "".join(a["name"] for a in self.multiscales["axes"])

    @property
    def labels(self) -> list[str]:
        return [c["label"] for c in self.channels]

    @property
    def colors(self) -> list[str]:
        return [c["color"] for c in self.channels]

    def size(self, axis: str) -> tuple[float, str | None]:
        """(level-0 scale, unit) along ``axis``."""
        i = self.axes.index(axis)
        scale = self.multiscales["datasets"][0]["coordinateTransformations"][0]["scale"]
        return scale[i], self.multiscales["axes"][i].get("unit")

    def associated(self) -> dict[str, np.ndarray]:
        if "associated" not in self.root:
            return {}
        group = group_at(self.root, "associated")
        return {name: values(group, f"{name}/0") for name in group.group_keys()}


def as_channels(image: np.ndarray) -> np.ndarray:
    """An associated image as written: RGB YXS becomes CYX, grey YX becomes 1YX."""
    return np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]


def assert_um(out: Output, axis: str, value: float) -> None:
    scale, unit = out.size(axis)
    assert unit == "micrometer", (axis, unit)
    assert scale == pytest.approx(value, rel=1e-6), axis


def assert_no_size(out: Output, *axes: str) -> None:
    for axis in axes:
        assert out.size(axis) == (1.0, None), axis


def run_cli(src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plexhub", "convert", "-q", str(src), str(dst)],
                          capture_output=True, text=True, timeout=120, check=False)


def assert_clean_failure(proc: subprocess.CompletedProcess[str], dst: Path, name: str) -> None:
    """Exit code non-zero, one stderr line naming ``name``, nothing left beside DST."""
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert name in lines[0]
    assert "Traceback" not in proc.stderr
    assert not dst.exists()
    assert not dst.with_name(f".{dst.name}.partial").exists()


# --------------------------------------------------------------------------- OME-TIFF

@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("tile", [(64, 64), None], ids=["tiled", "stripped"])
@pytest.mark.parametrize("subifds", [0, 2], ids=["flat", "subifd-pyramid"])
def test_ome_tiff_layouts(tmp_path: Path, small_settings: Settings, dtype: str,
                          tile: tuple[int, int] | None, subifds: int) -> None:
    data = pattern((3, 150, 130), dtype, seed=1)
    src = write_ome_tiff(tmp_path / "in.ome.tif", data, tile=tile, subifds=subifds,
                         names=["DAPI", "CD3", "CD8"], colors=[OME_RED, OME_GREEN, OME_BLUE],
                         physical_size=0.325)
    assert flavours(src) == {"ome"}
    with tifffile.TiffFile(src) as tif:
        assert len(tif.series[0].levels) == subifds + 1
        assert tif.series[0].keyframe.is_tiled == (tile is not None)
    assert detect_reader(str(src)).name == "ome-tiff"

    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    assert out.axes == "cyx"
    assert out.level0.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.level0, data)
    np.testing.assert_array_equal(out.level0, main_series(src))
    assert out.labels == ["DAPI", "CD3", "CD8"]
    assert out.colors == ["FF0000", "00FF00", "0000FF"]
    assert_um(out, "x", 0.325)
    assert_um(out, "y", 0.325)
    assert out.associated() == {}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_tiff_with_default_settings(tmp_path: Path, version: str) -> None:
    data = pattern((2, 700, 600), "uint16", seed=2)
    src = write_ome_tiff(tmp_path / "in.ome.tif", data, tile=(256, 256), subifds=1,
                         names=["DNA", "Ki67"], physical_size=0.5)
    convert(src, tmp_path / "out.zarr", ngff_version=version)
    out = Output(tmp_path / "out.zarr")
    if version == "0.4":
        assert "multiscales" in out.root.attrs  # 0.4 keeps NGFF keys at the top
    else:
        ome = out.root.attrs["ome"]
        assert isinstance(ome, dict)
        assert ome["version"] == "0.5"
    np.testing.assert_array_equal(out.level0, data)
    assert out.labels == ["DNA", "Ki67"]
    assert_um(out, "x", 0.5)


def test_multi_series_ome_tiff_becomes_a_collection(tmp_path: Path,
                                                    small_settings: Settings) -> None:
    first, second = pattern((2, 80, 70), "uint16", 3), pattern((3, 60, 150), "uint16", 4)
    src = write_ome_tiff_series(tmp_path / "two.ome.tif", [("first", first),
                                                           ("second", second)])
    assert flavours(src) == {"ome"}
    with tifffile.TiffFile(src) as tif:
        assert [s.name for s in tif.series] == ["first", "second"]
    dst = tmp_path / "out.zarr"
    convert(src, dst, settings=small_settings)
    assert ngff(zarr.open_group(dst, mode="r"))["bioformats2raw.layout"] == 3
    np.testing.assert_array_equal(Output(dst, "0").level0, first)
    np.testing.assert_array_equal(Output(dst, "1").level0, second)
    xml = (dst / "OME" / "METADATA.ome.xml").read_text()
    assert 'Name="first"' in xml
    assert 'Name="second"' in xml


def test_multi_file_ome_tiff(tmp_path: Path, small_settings: Settings) -> None:
    data = pattern((2, 100, 90), "uint16", 5)
    first, second = write_multifile_ome_tiff(tmp_path, data, ("DNA", "CD45"))
    assert flavours(first) == flavours(second) == {"ome"}
    np.testing.assert_array_equal(main_series(first), data)  # tifffile follows the UUIDs
    convert(first, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out.level0, data)
    assert out.labels == ["DNA", "CD45"]
    assert_um(out, "x", 0.65)


def test_multi_file_ome_tiff_with_a_missing_file(tmp_path: Path,
                                                 small_settings: Settings) -> None:
    data = pattern((2, 100, 90), "uint16", 5)
    first, second = write_multifile_ome_tiff(tmp_path, data, ("DNA", "CD45"))
    second.unlink()
    dst = tmp_path / "out.zarr"
    with pytest.raises(MissingFileError, match=second.name):
        convert(first, dst, settings=small_settings)
    assert not dst.exists()
    assert_clean_failure(run_cli(first, dst), dst, second.name)
    # the generic reader sees tifffile's zero-filled stand-in and must not convert it either
    with pytest.raises(MissingFileError, match="missing"):
        convert(first, dst, reader="tiff", settings=small_settings)
    assert not dst.exists()


# --------------------------------------------------------------------------- QPTIFF, inForm

def test_real_qptiff(real: Path, tmp_path: Path) -> None:
    src = real / "qptiff" / "small_vectra.qptiff"
    assert detect_reader(str(src)).name == "qptiff"
    convert(src, tmp_path / "out.zarr")  # default settings
    out = Output(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out.level0, main_series(src))
    assert out.level0.shape == (3, 1440, 1920)
    assert out.labels == ["DAPI", "FITC", "Cy3"]
    assert out.colors == ["0000FF", "00FF00", "FFFF00"]
    assert_um(out, "x", 1e4 / 20139.582176685737)  # XResolution, pixels per centimetre
    associated = out.associated()
    assert set(associated) == {"thumbnail", "overview", "label"}
    with tifffile.TiffFile(src) as tif:
        pages = {"thumbnail": 3, "overview": 4, "label": 5}
        for name, index in pages.items():
            np.testing.assert_array_equal(associated[name], as_channels(tif.pages[index].asarray()))


def test_inform_component_tiff(tmp_path: Path, small_settings: Settings) -> None:
    data = pattern((3, 100, 120), "float32", 6)
    thumbnail = rgb_image(25, 30)
    src = write_inform_component(tmp_path / "component_data.tif", data,
                                 ["DAPI", "CD8 (Opal 520)", "Autofluorescence"],
                                 [(0, 0, 255), (0, 255, 0), (0, 0, 0)], thumbnail)
    assert flavours(src) == {"qpi"}
    assert detect_reader(str(src)).name == "qptiff"
    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out.level0, data)
    assert out.labels == ["DAPI", "CD8 (Opal 520)", "Autofluorescence"]
    assert out.colors == ["0000FF", "00FF00", "000000"]
    assert_um(out, "y", 0.5)
    associated = out.associated()
    assert list(associated) == ["thumbnail"]
    np.testing.assert_array_equal(associated["thumbnail"], as_channels(thumbnail))


# --------------------------------------------------------------------------- Aperio SVS

def test_real_svs_jpeg2000(real: Path, tmp_path: Path) -> None:
    src = real / "svs" / "tcga-cr-7395-01a-01-ts1.svs"
    assert detect_reader(str(src)).name == "svs"
    convert(src, tmp_path / "out.zarr")  # default settings
    out = Output(tmp_path / "out.zarr")
    assert out.level0.shape == (3, 3567, 4443)
    np.testing.assert_array_equal(out.level0, main_series(src))
    assert out.labels == ["R", "G", "B"]
    assert_no_size(out, "x", "y")  # this SVS has no MPP
    assert set(out.associated()) == {"thumbnail"}


def test_written_svs_with_mpp_label_and_macro(tmp_path: Path, small_settings: Settings) -> None:
    rgb, label, macro = rgb_image(200, 300), rgb_image(60, 50, 1), rgb_image(50, 120, 2)
    src = write_svs(tmp_path / "slide.svs", rgb, mpp=0.25, label=label, macro=macro)
    assert flavours(src) == {"svs"}
    with tifffile.TiffFile(src) as tif:
        assert [s.name for s in tif.series] == ["Baseline", "Thumbnail", "Label", "Macro"]
        assert tif.series[0].keyframe.compression == tifffile.COMPRESSION.JPEG
        stored = {s.name.lower(): s.asarray() for s in tif.series[1:]}
    assert detect_reader(str(src)).name == "svs"
    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out.level0, main_series(src))
    assert out.labels == ["R", "G", "B"]
    assert_um(out, "x", 0.25)
    assert_um(out, "y", 0.25)
    associated = out.associated()
    assert set(associated) == {"thumbnail", "label", "macro"}
    for name, image in stored.items():
        np.testing.assert_array_equal(associated[name], as_channels(image))


# --------------------------------------------------------------------------- NDPI SCN BIF Philips

def _ndpi(tmp: Path, rgb: np.ndarray, extra: dict[str, np.ndarray]) -> Path:
    return write_ndpi(tmp / "slide_ndpi.tif", rgb, macro=extra["macro"], mpp=0.45)


def _scn(tmp: Path, rgb: np.ndarray, extra: dict[str, np.ndarray]) -> Path:
    return write_scn(tmp / "slide.scn", rgb, macro=extra["macro"], nm_per_px=500.0)


def _bif(tmp: Path, rgb: np.ndarray, extra: dict[str, np.ndarray]) -> Path:
    return write_bif(tmp / "slide.bif", rgb, label=extra["label"], thumbnail=extra["thumbnail"],
                     probability=extra["probability"])


def _philips(tmp: Path, rgb: np.ndarray, extra: dict[str, np.ndarray]) -> Path:
    return write_philips(tmp / "slide_philips.tiff", rgb, mpp=0.25, label=extra["label"],
                         macro=extra["macro"])


Writer = Callable[[Path, np.ndarray, dict[str, np.ndarray]], Path]
WHOLE_SLIDE = [  # writer, flag, series index of the scan, associated images, µm per pixel
    pytest.param(_ndpi, "ndpi", 0, {"macro"}, 0.45, id="ndpi"),
    pytest.param(_scn, "scn", 1, {"macro"}, 0.5, id="scn"),
    pytest.param(_bif, "bif", 0, {"label", "thumbnail", "probability"}, 0.25, id="bif"),
    pytest.param(_philips, "philips", 0, {"label", "macro"}, 0.25, id="philips"),
]


@pytest.mark.parametrize(("writer", "flag", "scan", "associated", "mpp"), WHOLE_SLIDE)
def test_whole_slide_flavours(tmp_path: Path, small_settings: Settings, writer: Writer,
                              flag: str, scan: int, associated: set[str], mpp: float) -> None:
    rgb = rgb_image(200, 300)
    extra = {"label": rgb_image(60, 50, 1), "macro": rgb_image(50, 120, 2),
             "thumbnail": rgb_image(40, 60, 3), "probability": pattern((50, 60), "uint8", 4)}
    src = writer(tmp_path, rgb, extra)
    assert flavours(src) == {flag}
    with tifffile.TiffFile(src) as tif:
        assert len(tif.series[scan].levels) == 2  # a pyramid, of which level 0 is converted
    assert detect_reader(str(src)).name == "tiff"

    result = convert(src, tmp_path / "out.zarr", settings=small_settings)
    assert len(result.images) == 1  # macro, label... are not images of their own
    out = Output(tmp_path / "out.zarr")
    assert out.axes == "cyx"
    np.testing.assert_array_equal(out.level0, main_series(src, scan))
    assert out.labels == ["R", "G", "B"]  # the associated images did not become channels
    assert_um(out, "x", mpp)
    assert_um(out, "y", mpp)
    written = out.associated()
    assert set(written) == associated
    with tifffile.TiffFile(src) as tif:  # JPEG pages: compare with what tifffile decodes
        by_shape = {s.shape[:2]: s.asarray() for i, s in enumerate(tif.series) if i != scan}
    for name in associated:  # every extra image has its own shape
        np.testing.assert_array_equal(written[name],
                                      as_channels(by_shape[extra[name].shape[:2]]))


# --------------------------------------------------------------------------- ImageJ, plain pages

def test_imagej_hyperstack(tmp_path: Path, small_settings: Settings) -> None:
    data = pattern((2, 3, 2, 150, 140), "uint16", 7)  # T, Z, C, Y, X
    src = write_imagej(tmp_path / "stack.tif", data, labels=["DAPI", "GFP"], spacing=2.5,
                       pixel_size=0.3)
    assert flavours(src) == {"imagej"}
    with tifffile.TiffFile(src) as tif:
        assert tif.series[0].axes == "TZCYX"
    assert detect_reader(str(src)).name == "tiff"
    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    assert out.axes == "tczyx"
    np.testing.assert_array_equal(out.level0, data.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(out.level0, main_series(src))
    assert out.labels == ["DAPI", "GFP"]
    assert_um(out, "z", 2.5)
    assert_um(out, "x", 0.3)
    assert_um(out, "y", 0.3)


def test_real_plain_multipage_tiff(real: Path, tmp_path: Path, small_settings: Settings) -> None:
    src = real / "labels" / "E34_imc.tiff"
    assert flavours(src) == set()
    assert detect_reader(str(src)).name == "tiff"
    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    assert out.level0.shape == (5, 100, 100)
    assert out.level0.dtype == np.float32
    np.testing.assert_array_equal(out.level0, tifffile.imread(src))
    assert len(out.channels) == 5


def test_written_plain_multipage_tiff(tmp_path: Path, small_settings: Settings) -> None:
    data = pattern((4, 130, 90), "int16", 8)
    src = write_plain_pages(tmp_path / "pages.tif", data)
    assert flavours(src) == set()
    with tifffile.TiffFile(src) as tif:
        assert tif.series[0].axes == "IYX"
    convert(src, tmp_path / "out.zarr", settings=small_settings)
    out = Output(tmp_path / "out.zarr")
    assert out.axes == "cyx"
    np.testing.assert_array_equal(out.level0, data)
    assert out.labels == [f"Channel {i}" for i in range(4)]
    assert_no_size(out, "x", "y")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_conversion_leaves_no_file_open(tmp_path: Path, small_settings: Settings) -> None:
    src = write_ome_tiff(tmp_path / "in.ome.tif", pattern((2, 100, 100), "uint8"), tile=None)

    def open_on_src() -> int:
        count = 0
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd) == str(src)
        return count

    for k in range(3):
        convert(src, tmp_path / f"out{k}.zarr", settings=small_settings)
    gc.collect()
    assert open_on_src() == 0


# --------------------------------------------------------------------------- bad input

def _truncated(tmp: Path) -> Path:
    full = tmp / "full.tif"
    tifffile.imwrite(full, pattern((3, 256, 256), "uint16"), tile=(64, 64), compression="zlib",
                     photometric="minisblack", metadata=None)
    data = full.read_bytes()
    src = tmp / "truncated.tif"
    src.write_bytes(data[: len(data) // 2])
    return src


def _truncated_late(tmp: Path) -> Path:
    """Cut inside the last plane: the first plane still decodes, so only a check of every
    plane's extent finds the damage before anything is written."""
    full = write_ome_tiff(tmp / "full.ome.tif", pattern((4, 256, 256), "uint16"), tile=(64, 64))
    with tifffile.TiffFile(full) as tif:
        last = tif.pages[3]
        cut = last.dataoffsets[-1] + last.databytecounts[-1] // 2
        assert cut > max(tif.pages[0].dataoffsets)
    src = tmp / "truncated.ome.tif"
    src.write_bytes(full.read_bytes()[:cut])
    return src


def _text(tmp: Path) -> Path:
    src = tmp / "notes.tif"
    src.write_text("this is a text file, not a TIFF\n" * 20)
    return src


def _unknown_compression(tmp: Path) -> Path:
    src = tmp / "odd_compression.tif"
    tifffile.imwrite(src, pattern((2, 128, 128), "uint8"), tile=(64, 64), compression="zlib",
                     photometric="minisblack", metadata=None)
    with tifffile.TiffFile(src) as tif:
        pages = [page for page in tif.pages if isinstance(page, tifffile.TiffPage)]
        assert len(pages) == len(tif.pages)
        offsets = [page.tags["Compression"].valueoffset for page in pages]
    data = bytearray(src.read_bytes())
    for offset in offsets:  # the SHORT value sits inline in the IFD entry
        data[offset:offset + 2] = struct.pack("<H", 60001)
    src.write_bytes(bytes(data))
    with tifffile.TiffFile(src) as tif:
        assert tif.pages.first.compression == 60001
    return src


@pytest.mark.parametrize(("make", "error"), [
    pytest.param(_truncated, CorruptFileError, id="truncated"),
    pytest.param(_truncated_late, CorruptFileError, id="truncated-last-plane"),
    pytest.param(_text, UnsupportedFormatError, id="text-named-tif"),
    pytest.param(_unknown_compression, UnsupportedFormatError, id="unknown-compression"),
])
def test_bad_input_fails_cleanly(tmp_path: Path, small_settings: Settings,
                                 make: Callable[[Path], Path], error: type[PlexhubError]) -> None:
    src = make(tmp_path)
    dst = tmp_path / "out.zarr"
    with pytest.raises(error, match=src.name) as info:
        convert(src, dst, settings=small_settings)
    assert isinstance(info.value, PlexhubError)
    assert not dst.exists()
    assert not dst.with_name(f".{dst.name}.partial").exists()
    assert_clean_failure(run_cli(src, dst), dst, src.name)
