"""Zeiss CZI through pylibCZIrw (libCZI): scenes, mosaics, zstd / JPEG-XR subblocks.

Each scene is one main image (a file without scenes is one image). Mosaic tiles are composed
by libCZI inside the scene's bounding rectangle, and areas no tile covers read as 0. Channel
names and colours come from the metadata XML (``Information`` channels, then
``DisplaySetting``), pixel sizes from ``Scaling/Items/Distance`` (meters). Besides T, C and Z,
the rarely used H, I, R, V and B dimensions become separate images when larger than 1.

Before any pixel is read, the subblock directory is checked against the file size, so a
truncated file fails in :meth:`CziReader.open` rather than half-way through a conversion.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from plexhub.colors import RGB_COLORS
from plexhub.errors import CorruptFileError, MissingFileError, UnsupportedFormatError
from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.source import Array, ChannelMeta, PixelSource, SourceDocument, SourceImage

CZI_MAGIC = b"ZISRAWFILE"
EXTRA_DIMS = ("V", "I", "H", "R", "B")  # besides T, C, Z: each index becomes its own image
GRAY_TYPES = {"Gray8": np.uint8, "Gray16": np.uint16, "Gray32Float": np.float32}
BGR_TYPES = {"Bgr24": np.uint8, "Bgr48": np.uint16, "Bgr96Float": np.float32}
# CZI compression codes libCZI decodes: none, JPEG-XR, zstd0, zstd1
SUPPORTED_COMPRESSION = {0: "uncompressed", 4: "JPEG-XR", 5: "zstd", 6: "zstd"}
COMPRESSION_NAMES = {1: "JPEG", 2: "LZW", 100: "camera-specific"}


def _open_czi(path: str) -> Any:
    """libCZI, imported when a CZI is opened (~0.1 s that other formats need not pay)."""
    from pylibCZIrw import czi as pyczi

    return pyczi.open_czi(path)


# --------------------------------------------------------------------------- file layout

@dataclass(frozen=True)
class _Layout:
    """What the file header and subblock directory say, checked against the file size."""

    subblocks: int
    compressions: frozenset[int]


def _segment_header(fh: Any, pos: int, size: int, path: str) -> tuple[bytes, int, int]:
    if pos < 0 or pos + 32 > size:
        raise CorruptFileError(path, f"a segment at offset {pos} lies beyond the end of the "
                               f"file ({size} bytes)", "the file is truncated or damaged; "
                               "copy it again")
    fh.seek(pos)
    magic, allocated, used = struct.unpack("<16sqq", fh.read(32))
    return bytes(magic).rstrip(b"\0"), allocated, used


def read_layout(path: str) -> _Layout:
    """Parse the file header and subblock directory; raise if either lies past the end."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(112)
        if len(head) < 112 or not head.startswith(CZI_MAGIC):
            raise CorruptFileError(path, "the CZI file header is incomplete",
                                   "the file is truncated or not a CZI file")
        dir_pos = struct.unpack_from("<q", head, 84)[0]
        magic, _, _ = _segment_header(fh, dir_pos, size, path)
        if magic != b"ZISRAWDIRECTORY":
            raise CorruptFileError(path, "the subblock directory is missing or damaged",
                                   "the file may be truncated; copy it again")
        (count,) = struct.unpack("<i", fh.read(4))
        fh.seek(dir_pos + 32 + 128)
        last_pos, compressions = -1, set()
        for _ in range(max(count, 0)):
            entry = fh.read(32)
            if len(entry) < 32 or entry[:2] != b"DV":
                raise CorruptFileError(path, "the subblock directory is damaged",
                                       "the file may be truncated; copy it again")
            _, file_pos, part, comp, _, ndims = _dv_fields(entry)
            fh.seek(20 * ndims, os.SEEK_CUR)
            if part == 0:
                last_pos = max(last_pos, file_pos)
                compressions.add(comp)
        if last_pos >= 0:
            magic, allocated, used = _segment_header(fh, last_pos, size, path)
            end = last_pos + 32 + (used or allocated)
            if magic != b"ZISRAWSUBBLOCK" or end > size:
                raise CorruptFileError(
                    path, f"truncated: the last image subblock needs {end} bytes, "
                    f"the file has {size}", "copy the file again")
    return _Layout(subblocks=max(count, 0), compressions=frozenset(compressions))


def _dv_fields(entry: bytes) -> tuple[int, int, int, int, int, int]:
    """(pixel type, file position, file part, compression, pyramid type, dimension count)."""
    pixel_type, file_pos, part, comp = struct.unpack_from("<iqii", entry, 2)
    pyramid = entry[22]
    (ndims,) = struct.unpack_from("<i", entry, 28)
    return pixel_type, file_pos, part, comp, pyramid, ndims


def _check_compression(path: str, layout: _Layout) -> None:
    for code in sorted(layout.compressions):
        if code not in SUPPORTED_COMPRESSION:
            name = COMPRESSION_NAMES.get(code if code < 100 or code >= 1000 else 100,
                                         f"code {code}")
            raise UnsupportedFormatError(
                path, f"has {name} compressed subblocks, which libCZI cannot decode",
                "re-save the file in ZEN uncompressed, zstd or JPEG-XR compressed")


# --------------------------------------------------------------------------- pixels

def _libczi_error(path: str, exc: Exception, what: str) -> Exception:
    text = str(exc)
    low = text.lower()
    if any(k in low for k in ("compression", "not supported", "unsupported", "not implemented")):
        return UnsupportedFormatError(path, f"{what}: {text}",
                                      "re-save the file uncompressed or zstd compressed")
    if "errno=2" in low or "no such file" in low:
        return MissingFileError(path, "no such file", "check the path")
    return CorruptFileError(path, f"{what} failed ({text})",
                            "the file may be truncated or damaged; copy it again")


class CziPixels(PixelSource):
    """Regions of one scene (and one V/I/H/R/B index), composed by libCZI.

    ``origin`` is the scene's top-left corner in libCZI's global pixel coordinates;
    ``pixel_types[c]`` is the CZI pixel type of channel ``c`` (``Bgr*`` channels hold three
    samples each, so image channel ``3c + s`` is sample ``s`` of CZI channel ``c``, in R, G, B
    order).
    """

    def __init__(self, path: str, scene: int | None, origin: tuple[int, int],
                 pixel_types: Sequence[str], dtype: np.dtype[Any],
                 extra_plane: dict[str, int] | None = None) -> None:
        self.path = path
        self.scene = scene
        self.origin = origin
        self.pixel_types = list(pixel_types)
        self.dtype = np.dtype(dtype)
        self.extra_plane = dict(extra_plane or {})
        self.rgb = any(p in BGR_TYPES for p in self.pixel_types)
        self._stack: contextlib.ExitStack | None = None
        self._reader: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stack"] = state["_reader"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self) -> Any:  # called with the lock held
        if self._reader is None:
            stack = contextlib.ExitStack()
            try:
                self._reader = stack.enter_context(_open_czi(self.path))
            except RuntimeError as exc:
                raise _libczi_error(self.path, exc, "opening the file") from exc
            self._stack = stack
        return self._reader

    def close(self) -> None:
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack = self._reader = None

    def check(self) -> None:
        """Decode the subblocks under the top-left pixel of the first and last channel."""
        n = len(self.pixel_types)
        self._plane(0, 0, 0, slice(0, 1), slice(0, 1))
        self._plane(0, 0, n - 1, slice(0, 1), slice(0, 1))

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        h, w = ys.stop - ys.start, xs.stop - xs.start
        out = np.empty((len(channels), h, w), self.dtype)
        planes: dict[int, Array] = {}
        for i, c in enumerate(channels):
            czi_c, sample = divmod(c, 3) if self.rgb else (c, 0)
            if czi_c not in planes:
                planes[czi_c] = self._plane(t, z, czi_c, ys, xs)
            plane = planes[czi_c]
            # libCZI hands out BGR: sample 0 (red) is the last component
            out[i] = plane[..., plane.shape[-1] - 1 - sample]
        return out

    def _plane(self, t: int, z: int, c: int, ys: slice, xs: slice) -> Array:
        roi = (self.origin[0] + xs.start, self.origin[1] + ys.start,
               xs.stop - xs.start, ys.stop - ys.start)
        plane = {"T": t, "Z": z, "C": c, **self.extra_plane}
        with self._lock:
            reader = self._open()
            try:
                data = reader.read(roi=roi, plane=plane, scene=self.scene,
                                   background_pixel=(0.0, 0.0, 0.0))
            except (RuntimeError, ValueError) as exc:
                raise _libczi_error(self.path, exc, f"reading plane T{t} Z{z} C{c}") from exc
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[..., None]
        return arr


# --------------------------------------------------------------------------- metadata

def _meters_to_um(text: str | None) -> float | None:
    try:
        v = float(text or "")
    except ValueError:
        return None
    return v * 1e6 if math.isfinite(v) and v > 0 else None


def czi_color(text: str | None) -> str | None:
    """'#AARRGGBB' or '#RRGGBB' -> 'RRGGBB'; None when absent or malformed."""
    h = (text or "").strip().lstrip("#")
    if len(h) == 8:
        h = h[2:]
    if len(h) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
        return None
    return h.upper()


@dataclass
class _ChannelInfo:
    label: str | None
    color: str | None


def channel_infos(root: ET.Element, n: int) -> list[_ChannelInfo]:
    """Names and colours of ``n`` channels: Information names first, DisplaySetting after."""
    info = root.findall("Metadata/Information/Image/Dimensions/Channels/Channel")
    display = root.findall("Metadata/DisplaySetting/Channels/Channel")
    out = []
    for c in range(n):
        i_el = info[c] if len(info) == n else None
        d_el = display[c] if len(display) == n else None
        label = None
        for el, key in ((i_el, "Name"), (d_el, "Name")):
            if el is not None and (el.get(key) or "").strip():
                label = (el.get(key) or "").strip()
                break
        if label is None and i_el is not None and (i_el.findtext("Fluor") or "").strip():
            label = (i_el.findtext("Fluor") or "").strip()
        color = None
        for el in (d_el, i_el):
            if el is not None and color is None:
                color = czi_color(el.findtext("Color"))
        out.append(_ChannelInfo(label, color))
    return out


def physical_sizes(root: ET.Element) -> dict[str, PhysicalSize]:
    """X, Y, Z from Scaling/Items/Distance (meters); T from the time-series increment."""
    sizes: dict[str, PhysicalSize] = {}
    for el in root.findall("Metadata/Scaling/Items/Distance"):
        axis = (el.get("Id") or "").lower()
        um = _meters_to_um(el.findtext("Value"))
        if axis in ("x", "y", "z") and um is not None:
            sizes[axis] = PhysicalSize(um, "micrometer")
    t_el = root.find("Metadata/Information/Image/Dimensions/T/Positions")
    if t_el is not None:
        step = None
        inc = t_el.findtext("Interval/Increment")
        offsets = (t_el.findtext("List/Offsets") or "").split()
        try:
            if inc:
                step = float(inc)
            elif len(offsets) > 1:
                values = [float(v) for v in offsets]
                step = (values[-1] - values[0]) / (len(values) - 1)
        except ValueError:
            step = None
        if step is not None and math.isfinite(step) and step > 0:
            sizes["t"] = PhysicalSize(step, "second")
    return sizes


def scene_names(root: ET.Element) -> dict[int, str]:
    out = {}
    for i, el in enumerate(root.findall("Metadata/Information/Image/Dimensions/S/Scenes/Scene")):
        index = el.get("Index")
        name = (el.get("Name") or el.findtext("Name") or "").strip()
        if name:
            out[int(index) if index and index.isdigit() else i] = name
    return out


def scene_centers(root: ET.Element) -> dict[int, dict[str, float]]:
    """Each scene's stage position as ZEN writes it (``Scene/CenterPosition``, "x,y" in µm):
    what Bio-Formats reports as the series' StageLabel."""
    out: dict[int, dict[str, float]] = {}
    for i, el in enumerate(root.findall("Metadata/Information/Image/Dimensions/S/Scenes/Scene")):
        index = el.get("Index")
        parts = (el.findtext("CenterPosition") or "").split(",")
        try:
            x, y = (float(v) for v in parts)
        except ValueError:
            continue
        if math.isfinite(x) and math.isfinite(y):
            out[int(index) if index and index.isdigit() else i] = {"x": x, "y": y}
    return out


def scene_position(rect: Any, sizes: dict[str, PhysicalSize]) -> dict[str, float]:
    """The scene's top-left corner in libCZI's global coordinates (the same frame for every
    scene of the file), in the unit of the pixel sizes (pixels where there are none)."""
    sx = sizes["x"].value if "x" in sizes else 1.0
    sy = sizes["y"].value if "y" in sizes else 1.0
    return {"y": rect.y * sy, "x": rect.x * sx}


MAX_TIMED_SUBBLOCKS = 20_000  # subblock metadata read for plane times (T > 1 only)
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?")


def _iso_seconds(text: str) -> float | None:
    from datetime import datetime

    m = _ISO.match(text.strip())
    if m is None:
        return None
    stamp = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC).timestamp()
    return stamp + float(f"0.{m.group(2)}") if m.group(2) else stamp


def plane_times(path: str) -> dict[tuple[int | None, int, int, int], float]:
    """Each plane's acquisition time from its subblocks' ``AcquisitionTime`` tags, keyed
    (scene, t, c, z), in seconds (the earliest subblock of a mosaic plane); {} where the
    file has none or too many subblocks to read them all."""
    import czifile

    try:
        return _plane_times(czifile, path)
    except Exception:  # damaged subblocks: the pixel check after open() says so, clearly
        return {}


def _plane_times(czifile: Any, path: str) -> dict[tuple[int | None, int, int, int], float]:
    out: dict[tuple[int | None, int, int, int], float] = {}
    with czifile.CziFile(path) as f:
        entries = f.filtered_subblock_directory
        if len(entries) > MAX_TIMED_SUBBLOCKS:
            return {}
        for e in entries:
            dims = {d.dimension: int(d.start) for d in e.dimension_entries}
            md = e.data_segment().metadata()
            tags = md.get("Tags") if isinstance(md, dict) else None
            text = tags.get("AcquisitionTime") if isinstance(tags, dict) else None
            when = _iso_seconds(str(text)) if text else None
            if when is None:
                continue
            key = (dims.get("S"), dims.get("T", 0), dims.get("C", 0), dims.get("Z", 0))
            out[key] = min(when, out.get(key, when))
    return out


def time_notes(times: dict[tuple[int, int, int], float],
               sizes: dict[str, PhysicalSize], nt: int) -> list[str]:
    """What ``plexhub info`` says about the time axis: the nominal increment and the
    measured one (mean between the first planes of consecutive time points)."""
    firsts = [min((v for (t, _, _), v in times.items() if t == ti), default=None)
              for ti in range(nt)]
    if nt < 2 or any(v is None for v in firsts):
        return []
    steps = [b - a for a, b in itertools.pairwise(firsts) if a is not None and b is not None]
    measured = sum(steps) / len(steps)
    nominal = f"{sizes['t'].value:g} s" if "t" in sizes else "none"
    return [f"time: nominal increment {nominal} (metadata), measured {measured:.3f} s "
            f"(mean of {', '.join(f'{s:.3f}' for s in steps)} s between time points, from "
            "the subblocks' AcquisitionTime); each plane's DeltaT is in the OME-XML"]


def _parse_xml(path: str, xml: str) -> ET.Element:
    if not xml.strip():
        return ET.Element("ImageDocument")
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise CorruptFileError(path, f"its metadata XML does not parse ({exc})",
                               "the file may be damaged; copy it again") from exc


# --------------------------------------------------------------------------- reader

def _common_dtype(path: str, pixel_types: list[str]) -> tuple[np.dtype[Any], bool]:
    known = [p for p in pixel_types if p != "Invalid"]
    if not known:
        raise CorruptFileError(path, "holds no image subblocks")
    unknown = sorted({p for p in known if p not in GRAY_TYPES and p not in BGR_TYPES})
    if unknown:
        raise UnsupportedFormatError(path, f"uses the pixel type {unknown[0]}",
                                     "supported: Gray8, Gray16, Gray32Float, Bgr24, Bgr48")
    rgb = {p in BGR_TYPES for p in known}
    if len(rgb) > 1:
        raise UnsupportedFormatError(path, "mixes colour (BGR) and grey channels",
                                     "export the channels as separate files")
    table: dict[str, Any] = {**GRAY_TYPES, **BGR_TYPES}
    dtype = np.result_type(*[np.dtype(table[p]) for p in known])
    return np.dtype(dtype), rgb.pop()


class CziReader(Reader):
    """Zeiss CZI: one image per scene, mosaics composed, metadata from the XML."""

    name: ClassVar[str] = "czi"
    description: ClassVar[str] = "Zeiss CZI (scenes, mosaics, zstd/JPEG-XR) via pylibCZIrw"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        return head.startswith(CZI_MAGIC)

    def open(self, path: str) -> SourceDocument:
        if not Path(path).is_file():
            raise MissingFileError(path, "no such file", "check the path")
        _check_compression(path, read_layout(path))
        try:
            with _open_czi(path) as czi:
                doc = self._document(path, czi)
        except RuntimeError as exc:
            raise _libczi_error(path, exc, "reading the CZI structure") from exc
        for image in doc.images:
            image.pixels.check()
        return doc

    def _document(self, path: str, czi: Any) -> SourceDocument:
        xml = czi.raw_metadata
        root = _parse_xml(path, xml)
        box = czi.total_bounding_box_no_pyramid
        size = {d: box.get(d, (0, 1))[1] - box.get(d, (0, 1))[0] for d in "TCZ"}
        nc = size["C"]
        pixel_types = [czi.get_channel_pixel_type(c) for c in range(nc)]
        dtype, rgb = _common_dtype(path, pixel_types)
        known = next(p for p in pixel_types if p != "Invalid")
        pixel_types = [p if p != "Invalid" else known for p in pixel_types]
        channels, groups = _channels(root, nc, rgb)
        sizes = physical_sizes(root)
        stem = Path(path).stem
        names = scene_names(root)
        centers = scene_centers(root)
        timed = plane_times(path) if size["T"] > 1 else {}
        extra = {d: box[d][1] - box[d][0] for d in EXTRA_DIMS if d in box
                 and box[d][1] - box[d][0] > 1}
        images = []
        for scene, rect in _scenes(path, czi):
            if rect.w <= 0 or rect.h <= 0:
                continue
            base = stem if scene is None else names.get(scene, f"Scene {scene}")
            for combo in _combinations(extra):
                suffix = " ".join(f"{d}{i}" for d, i in combo.items())
                pixels = CziPixels(path, scene, (rect.x, rect.y), pixel_types, dtype, combo)
                mine = {(t, c, z): v for (s, t, c, z), v in timed.items()
                        if s == scene or scene is None}
                start = min(mine.values(), default=0.0)
                deltas = {k: round(v - start, 6) for k, v in mine.items()}
                images.append(SourceImage(
                    name=f"{base} {suffix}" if suffix else base,
                    shape=(size["T"], len(channels), size["Z"], rect.h, rect.w), dtype=dtype,
                    pixels=pixels, channels=[ChannelMeta(c.label, c.color) for c in channels],
                    physical_sizes=dict(sizes), channel_groups=list(groups),
                    position=scene_position(rect, sizes) if scene is not None else {},
                    stage=dict(centers.get(scene, {})) if scene is not None else {},
                    plane_times=deltas, notes=time_notes(deltas, sizes, size["T"])))
        if not images:
            raise CorruptFileError(path, "holds no image subblocks")
        return SourceDocument(path=path, format=self.name, images=images,
                              original_metadata={"czi-metadata.xml": xml} if xml else {})


def _channels(root: ET.Element, nc: int, rgb: bool
              ) -> tuple[list[ChannelMeta], list[tuple[int, ...]]]:
    infos = channel_infos(root, nc)
    if not rgb:
        return ([ChannelMeta(ci.label or f"Channel {c}", ci.color)
                 for c, ci in enumerate(infos)], [(c,) for c in range(nc)])
    channels = []
    for c, ci in enumerate(infos):
        for letter, color in zip("RGB", RGB_COLORS, strict=True):
            label = letter if nc == 1 else f"{ci.label or f'Channel {c}'} {letter}"
            channels.append(ChannelMeta(label, color))
    return channels, [(3 * c, 3 * c + 1, 3 * c + 2) for c in range(nc)]


def _scenes(path: str, czi: Any) -> list[tuple[int | None, Any]]:
    """(scene index or None, layer-0 bounding rectangle), in scene order."""
    try:
        rects = czi.scenes_bounding_rectangle_no_pyramid
    except ValueError as exc:  # metadata and subblocks disagree on the number of scenes
        raise CorruptFileError(path, f"inconsistent scenes ({exc})") from exc
    if not rects:
        return [(None, czi.total_bounding_rectangle_no_pyramid)]
    return [(s, rects[s]) for s in sorted(rects)]


def _combinations(extra: dict[str, int]) -> Iterator[dict[str, int]]:
    dims = list(extra)
    for idx in itertools.product(*(range(extra[d]) for d in dims)):
        yield dict(zip(dims, idx, strict=True))
