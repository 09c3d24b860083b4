"""TIFF-family readers: OME-TIFF, Akoya QPTIFF / inForm, Aperio SVS and every other TIFF
tifffile understands (NDPI, SCN, BIF, Philips, ImageJ hyperstacks, plain multi-page)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tifffile

from plexhub.colors import RGB_COLORS
from plexhub.errors import (
    CorruptFileError,
    InputError,
    MissingFileError,
    PermissionDeniedError,
    PlexhubError,
    UnsupportedFormatError,
)
from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.confine import inside
from plexhub.ome_pipeline.metadata import (
    ome_color_to_hex,
    rgb_triplet_to_hex,
    to_micrometer,
    udunits,
)
from plexhub.ome_pipeline.readers.base import TIFF_MAGICS, Reader
from plexhub.ome_pipeline.readers.tiffpixels import TiffPixels
from plexhub.ome_pipeline.source import ArrayPixels, ChannelMeta, SourceDocument, SourceImage
from plexhub.storage import is_url, open_binary

ASSOCIATED_NAMES = ("thumbnail", "label", "macro", "overview", "map", "probability")

# tifffile reports recoverable problems through logging; with no handler configured Python
# prints them on stderr (logging.lastResort), around the CLI's one-line error. Applications
# that configure logging still receive them.
logging.getLogger("tifffile").addHandler(logging.NullHandler())


def open_tiff(path: str, **flags: bool) -> tifffile.TiffFile:
    """``path`` (a file, or a URL read through fsspec in ranges) as a TiffFile."""
    try:
        opener: Any = tifffile.TiffFile  # its is_* flags are keyword-only booleans
        if is_url(path):
            return opener(open_binary(path), **flags)  # type: ignore[no-any-return]
        return opener(path, **flags)  # type: ignore[no-any-return]
    except tifffile.TiffFileError as exc:
        raise CorruptFileError(path, f"not a readable TIFF ({exc})",
                               "the file may be truncated or not a TIFF") from exc
    except (OSError, ValueError, struct_error()) as exc:
        raise CorruptFileError(path, f"cannot be parsed as TIFF ({exc})",
                               "the file may be truncated") from exc


class _Complaints(logging.Handler):
    """tifffile's ERROR records of this thread: it logs a broken IFD chain ("invalid page
    offset") and reads on with the pages before it, which would silently drop channels."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def page_description(page: Any) -> str:
    """ImageDescription of a page ('' for frames, missing pages and pages without one)."""
    return str(getattr(page, "description", "") or "")


def first_page(series: Any) -> Any:
    page = series.pages[0]
    if page is None:
        raise MissingFileError(str(series.parent.filehandle.path),
                               "the first image plane is missing")
    return page


def is_associated(name: str) -> bool:
    n = name.strip().lower()
    return any(n == a or n.startswith(a + " ") for a in ASSOCIATED_NAMES)


# pages sampled for the T-or-C evidence of a plain multi-page TIFF, and their size limit
EVIDENCE_PAGES = 8
EVIDENCE_PIXELS = 4096 * 4096
FRAME_CORRELATION = 0.9  # consecutive pages at least this alike look like frames of a series


def pages_axis(series: Any) -> tuple[str, str]:
    """Whether the pages of a plain multi-page TIFF (tifffile axis ``I``) are channels or
    time points, and the evidence: distinct page names say channels; distinct, increasing
    page times say time points; else the pixels: consecutive pages that are near-identical
    frames (Pearson r >= 0.9 on every sampled pair, similar means) say time points. Without
    evidence: channels (multiplex images are plexhub's case; Bio-Formats says T)."""
    pages = [p for p in series.pages if p is not None]
    names = [str(p.tags[285].value).strip() if 285 in p.tags else "" for p in pages]
    if all(names) and len(set(names)) == len(names):
        return "c", f"pages as channels: each page is named (PageName {', '.join(names[:4])}" \
                    f"{', ...' if len(names) > 4 else ''})"
    times = [str(p.tags[306].value).strip() if 306 in p.tags else "" for p in pages]
    if all(times) and len(set(times)) == len(times) and times == sorted(times):
        return "t", f"pages as time points: each page has its own, later DateTime " \
                    f"({times[0]} ... {times[-1]})"
    sample = pages[:EVIDENCE_PAGES]
    if len(sample) < 2 or math.prod(sample[0].shape) > EVIDENCE_PIXELS:
        return "c", "pages as channels: no page names or times, pixels not sampled " \
                    "(plexhub's default for multiplex images; Bio-Formats reads them as T)"
    step = max(1, int(math.sqrt(math.prod(sample[0].shape[:2]) / 65536)))
    try:
        planes = [np.asarray(p.asarray(), np.float64)[::step, ::step].ravel() for p in sample]
    except Exception:  # undecodable pages: the pixel check after open() says why, clearly
        return "c", "pages as channels: no page names or times, pixels not readable"
    rs = []
    for a, b in itertools.pairwise(planes):
        sa, sb = a.std(), b.std()
        rs.append(float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
                  if sa > 0 and sb > 0 else 0.0)  # a flat page is no evidence of frames
    means = [float(p.mean()) for p in planes]
    alike = max(means) <= 2 * min(means) if min(means) > 0 else max(means) == min(means)
    if min(rs) >= FRAME_CORRELATION and alike:
        return "t", f"pages as time points: consecutive pages are near-identical frames " \
                    f"(pixel correlation r >= {min(rs):.2f} over {len(planes)} pages)"
    return "c", f"pages as channels: the pages differ like channels (pixel correlation of " \
                f"consecutive pages down to r = {min(rs):.2f} over {len(planes)} pages; " \
                f"Bio-Formats reads them as T)"


def _assign_axes(path: str, axes: str, shape: tuple[int, ...],
                 pages: str = "c") -> tuple[str, int]:
    """Map a tifffile series' axes onto t, c, z; return (mapping letters, samples).
    ``pages`` is what a plain multi-page TIFF's page axis becomes (see :func:`pages_axis`)."""
    plane = [a for a in axes if a not in "YXS"]
    if axes.replace("S", "")[-2:] != "YX":
        raise InputError(path, f"image axes {axes!r} do not end in Y, X",
                         "only planar images are supported")
    other = [a for a in plane if a not in "TCZ"]
    mapped = ""
    for a in plane:
        if a in "TCZ":
            mapped += a.lower()
        elif a == "I" and plane == ["I"]:
            mapped += pages  # the pages of a plain multi-page TIFF
        elif "C" not in plane and len(other) == 1:
            mapped += "c"
        elif "T" not in plane and other.index(a) == 0:
            mapped += "t"
        elif "Z" not in plane:
            mapped += "z"
        else:
            raise InputError(path, f"cannot tell which of the axes {axes!r} are channels",
                             "re-save as OME-TIFF or ImageJ hyperstack with C/Z/T axes")
    samples = shape[axes.index("S")] if "S" in axes else 1
    return mapped, samples


def series_image(path: str, tif: tifffile.TiffFile, index: int, name: str,
                 flags: dict[str, bool]) -> SourceImage:
    """A SourceImage for ``tif.series[index]`` at full resolution."""
    series = tif.series[index]
    axes, shape = series.axes, tuple(series.shape)
    notes: list[str] = []
    pages = "c"
    if axes.replace("S", "") == "IYX":
        pages, why = pages_axis(series)
        notes.append(why)
    mapped, samples = _assign_axes(path, axes, shape, pages)
    plane_sizes = [shape[axes.index(a)] for a in axes if a not in "YXS"]
    size = {"t": 1, "c": 1, "z": 1}
    size.update(zip(mapped, plane_sizes, strict=True))
    nt, nz = size["t"], size["z"]
    nc = size["c"] * samples
    page_of = np.zeros((nt, nc, nz), np.int64)
    sample_of = np.zeros((nt, nc, nz), np.int64)
    for flat in range(max(1, math.prod(plane_sizes))):
        idx = np.unravel_index(flat, plane_sizes) if plane_sizes else ()
        pos = {"t": 0, "c": 0, "z": 0}
        for letter, i in zip(mapped, idx, strict=True):
            pos[letter] = int(i)
        for s in range(samples):
            c = pos["c"] * samples + s
            page_of[pos["t"], c, pos["z"]] = flat
            sample_of[pos["t"], c, pos["z"]] = s
    groups = [tuple(range(c * samples, (c + 1) * samples)) for c in range(size["c"])]
    channels = [ChannelMeta(label=f"Channel {i}") for i in range(nc)]
    if notes and notes[0].startswith("pages as channels: each page is named") and samples == 1:
        named: list[Any] = [p for p in series.pages if p is not None]
        channels = [ChannelMeta(label=str(p.tags[285].value).strip())
                    for p in named[:nc]]  # the page names, as the evidence said
    if samples == 3:
        for k, (label, color) in enumerate(zip("RGB", RGB_COLORS, strict=True)):
            for c in range(size["c"]):
                channels[c * 3 + k] = ChannelMeta(label=label if size["c"] == 1 else
                                                  f"{label}{c}", color=color)
    rgb = samples in (3, 4) and size["c"] == 1 and \
        int(first_page(series).photometric) in (2, 6)  # RGB, YCbCr (decoded to RGB)
    if rgb and samples == 4:
        channels[3] = ChannelMeta(label="A", color="FFFFFF")
    ny, nx = shape[axes.index("Y")], shape[axes.index("X")]
    pixels = TiffPixels(path, index, 0, page_of, sample_of, is_flags=flags)
    return SourceImage(name=name, shape=(nt, nc, nz, ny, nx), dtype=series.dtype,
                       pixels=pixels, channels=channels, channel_groups=groups, rgb=rgb,
                       notes=notes)


def resolution_sizes(page: Any) -> dict[str, PhysicalSize]:
    """Pixel size from XResolution/YResolution when a real unit is given."""
    try:
        unit = int(page.resolutionunit)
        xres, yres = page.resolution
    except (AttributeError, TypeError, ValueError):
        return {}
    per = {2: 25400.0, 3: 10000.0}.get(unit)  # micrometers per inch / per cm
    if per is None or not xres or not yres or xres <= 1 or yres <= 1:
        return {}
    return {"x": PhysicalSize(per / xres), "y": PhysicalSize(per / yres)}


def add_associated(associated: dict[str, SourceImage], name: str,
                   array: np.ndarray[Any, Any]) -> None:
    """Add an associated image under a name not yet used ("thumbnail", "thumbnail_2"...)."""
    key, n = name.lower(), 1
    while key in associated:
        n += 1
        key = f"{name.lower()}_{n}"
    associated[key] = associated_image(key, array)


def vendor_series_info(tif: tifffile.TiffFile) -> tuple[dict[int, str],
                                                       dict[int, dict[str, PhysicalSize]]]:
    """Series names and pixel sizes that whole-slide formats keep outside the TIFF tags.

    Returns ``(names, sizes)`` keyed by series index: Leica SCN marks its macro image only
    by its extent (the whole collection, at offset 0) and gives sizes in nanometres; Philips
    stores DICOM pixel spacing (mm) in its XML; Ventana BIF names a probability map
    "Thumbnail" in tifffile and keeps the pixel size in its XMP (ScanRes, µm).
    """
    names: dict[int, str] = {}
    sizes: dict[int, dict[str, PhysicalSize]] = {}
    try:
        if tif.is_scn:
            _scn_info(tif.pages.first.description, names, sizes)
        elif tif.is_philips:
            spacing = _philips_spacing(tif.pages.first.description)
            if spacing:
                sizes[0] = {"y": PhysicalSize(spacing[0]), "x": PhysicalSize(spacing[1])}
        elif tif.is_bif:
            for i, series in enumerate(tif.series):
                kf = series.keyframe
                if (kf.description or "").startswith("Probability"):
                    names[i] = "Probability"
                elif series.name == "Baseline":
                    xmp = kf.tags.valueof(700) or b""
                    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
                    m = re.search(r'\bScanRes="([0-9.eE+-]+)"', text)
                    if m and float(m.group(1)) > 0:
                        sizes[i] = {"x": PhysicalSize(float(m.group(1))),
                                    "y": PhysicalSize(float(m.group(1)))}
    except (ET.ParseError, ValueError, KeyError):
        pass  # vendor metadata is a bonus: pixels still convert without it
    return names, sizes


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _scn_info(xml: str, names: dict[int, str], sizes: dict[int, dict[str, PhysicalSize]]
              ) -> None:
    """Walk the SCN XML in the order tifffile's ``_series_scn`` makes series."""
    root = ET.fromstring(xml)
    index = 0
    for collection in root:
        if _local(collection.tag) != "collection":
            continue
        csize = (collection.get("sizeX"), collection.get("sizeY"))
        for image in collection:
            if _local(image.tag) != "image":
                continue
            view = next((e for e in image if _local(e.tag) == "view"), None)
            for pixels in image:
                if _local(pixels.tag) != "pixels":
                    continue
                dims = [d for d in pixels if _local(d.tag) == "dimension"]
                if not dims:
                    continue  # tifffile makes no series of it either
                full = [d for d in dims if int(d.get("r", 0)) == 0] or dims
                if view is not None:
                    extent = (view.get("sizeX"), view.get("sizeY"))
                    at_origin = int(view.get("offsetX", 0)) == 0 == int(view.get("offsetY", 0))
                    if at_origin and extent == csize:
                        names[index] = "Macro"
                    nx, ny = int(full[0].get("sizeX", 0)), int(full[0].get("sizeY", 0))
                    if nx > 0 and ny > 0 and extent[0] and extent[1]:
                        sizes[index] = {"x": PhysicalSize(float(extent[0]) / nx / 1000.0),
                                        "y": PhysicalSize(float(extent[1]) / ny / 1000.0)}
                index += 1


def _philips_spacing(xml: str) -> tuple[float, float] | None:
    """(y, x) µm per pixel of the full level: the first DICOM_PIXEL_SPACING, in mm."""
    root = ET.fromstring(xml)
    for obj in root.iter("DataObject"):
        if obj.get("ObjectType") != "PixelDataRepresentation":
            continue
        for attr in obj:
            if attr.get("Name") == "DICOM_PIXEL_SPACING" and attr.text:
                values = [float(v) for v in attr.text.replace('"', " ").split()]
                if len(values) >= 2 and values[0] > 0 and values[1] > 0:
                    return values[0] * 1000.0, values[1] * 1000.0
    return None


def associated_image(name: str, array: np.ndarray[Any, Any]) -> SourceImage:
    """A small associated image (label, macro...) held in memory; RGB becomes 3 channels."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3]
        data = np.moveaxis(a, -1, 0)[None, :, None]
        channels = [ChannelMeta(label=ch, color=col) for ch, col in zip("RGB", RGB_COLORS,
                                                                        strict=True)]
        groups: list[tuple[int, ...]] | None = [(0, 1, 2)]
    elif a.ndim == 2:
        data = a[None, None, None]
        channels = [ChannelMeta(label=name)]
        groups = None
    else:
        data = a.reshape((-1, *a.shape[-2:]))[None, :, None]
        channels = []
        groups = None
    data = np.ascontiguousarray(data)
    return SourceImage(name=name, shape=data.shape, dtype=data.dtype,
                       pixels=ArrayPixels(data), channels=channels, channel_groups=groups,
                       rgb=groups is not None)


class _TiffBase(Reader):
    """Shared open(): main series become images, thumbnail/label/macro become associated."""

    flags: ClassVar[dict[str, bool]] = {}

    @classmethod
    def _is_tiff(cls, head: bytes) -> bool:
        return head[:4] in TIFF_MAGICS

    def open(self, path: str) -> SourceDocument:
        complaints = _Complaints()
        tifflog = logging.getLogger("tifffile")
        tifflog.addHandler(complaints)
        try:
            doc = self._open_document(path)
        finally:
            tifflog.removeHandler(complaints)
        if complaints.messages:
            raise CorruptFileError(path, f"is damaged ({complaints.messages[0][:200]})",
                                   "the file may be truncated: copy it again from the scanner")
        if not doc.images:
            raise InputError(path, "holds no main image (only thumbnails or labels)")
        for image in doc.images:
            image.pixels.check()
        return doc

    def _open_document(self, path: str) -> SourceDocument:
        tif = open_tiff(path, **self.flags)
        try:
            return self._document(path, tif)
        except NotImplementedError as exc:  # e.g. tifffile's SCN reader and z-stacks
            raise UnsupportedFormatError(path, f"uses a layout tifffile cannot read ({exc})",
                                         "re-export it as OME-TIFF") from exc
        except PlexhubError:
            raise
        except (IndexError, KeyError, ValueError, OSError, struct_error()) as exc:
            raise CorruptFileError(path, f"cannot be read ({type(exc).__name__}: {exc})",
                                   "the file may be truncated: copy it again") from exc
        finally:
            tif.close()

    def _document(self, path: str, tif: tifffile.TiffFile) -> SourceDocument:
        images: list[SourceImage] = []
        associated: dict[str, SourceImage] = {}
        names, sizes = vendor_series_info(tif)
        for i, series in enumerate(tif.series):
            name = names.get(i) or series.name or f"Series {i}"
            if is_associated(name) and len(tif.series) > 1:
                add_associated(associated, name, series.asarray())
                continue
            image = series_image(path, tif, i, name, self.flags)
            image.physical_sizes = sizes.get(i) or resolution_sizes(series.keyframe)
            images.append(image)
        meta = {}
        if page_description(tif.pages[0]):
            meta["ImageDescription.txt"] = page_description(tif.pages[0])
        return SourceDocument(path=path, format=self.name, images=images, associated=associated,
                              original_metadata=meta)


class TiffReader(_TiffBase):
    """Any TIFF tifffile reads: NDPI, SCN, BIF, Philips, ImageJ hyperstacks, plain pages."""

    name = "tiff"
    description = "TIFF (generic, NDPI, SCN, BIF, Philips, ImageJ) via tifffile series"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        return cls._is_tiff(head)

    def _document(self, path: str, tif: tifffile.TiffFile) -> SourceDocument:
        doc = super()._document(path, tif)
        ij = tif.imagej_metadata
        if ij and doc.images:
            image = doc.images[0]
            labels = ij.get("Labels")
            nt, nc, nz = image.shape[:3]
            if isinstance(labels, list) and len(labels) in (nc, nt * nc * nz):
                # ImageJ slice labels name every plane, channel fastest (CZT order):
                # the first nc name the channels
                for ch, label in zip(image.channels, labels[:nc], strict=True):
                    ch.label = str(label)
            if ij.get("spacing") and image.shape[2] > 1:
                image.physical_sizes["z"] = PhysicalSize(float(ij["spacing"]),
                                                         udunits(ij.get("unit")))
            unit = str(ij.get("unit") or "").replace("\\u00B5", "µ")
            page: Any = first_page(tif.series[0]).keyframe
            xres, yres = page.resolution
            if udunits(unit, "") and xres > 0 and yres > 0 and (xres, yres) != (1, 1):
                image.physical_sizes["x"] = PhysicalSize(to_micrometer(1 / xres, unit))
                image.physical_sizes["y"] = PhysicalSize(to_micrometer(1 / yres, unit))
            doc.original_metadata["imagej.json"] = json.dumps(
                {k: v for k, v in ij.items() if isinstance(v, str | int | float | list)},
                default=str)
        return doc


class SvsReader(_TiffBase):
    """Aperio SVS: the RGB pyramid's full level; label and macro as associated images."""

    name = "svs"
    description = "Aperio SVS (JPEG / JPEG 2000 tiles)"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        if not cls._is_tiff(head):
            return False
        with open_tiff(path) as tif:
            return bool(tif.is_svs)

    def _document(self, path: str, tif: tifffile.TiffFile) -> SourceDocument:
        doc = super()._document(path, tif)
        desc = page_description(tif.pages[0])
        doc.original_metadata = {"aperio-description.txt": desc}
        mpp = re.search(r"\bMPP\s*=\s*([0-9.eE+-]+)", desc)
        for image in doc.images:
            image.physical_sizes = ({"x": PhysicalSize(float(mpp.group(1))),
                                     "y": PhysicalSize(float(mpp.group(1)))} if mpp else {})
        doc.images = doc.images[:1]  # tifffile lists the pyramid once; other series are extra
        return doc


class QptiffReader(_TiffBase):
    """Akoya/PerkinElmer QPTIFF and inForm component TIFFs (per-page XML descriptions)."""

    name = "qptiff"
    description = "Akoya/PerkinElmer QPTIFF, inForm component TIFF"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        if not cls._is_tiff(head):
            return False
        with open_tiff(path) as tif:
            return bool(tif.is_qpi) or "PerkinElmer-QPI" in (page_description(tif.pages[0]) or "")

    def _document(self, path: str, tif: tifffile.TiffFile) -> SourceDocument:
        series = tif.series[0]
        image = series_image(path, tif, 0, "Baseline", self.flags)
        pages = list(series.pages)
        for c, page in enumerate(pages[: image.shape[1]]):
            info = _qpi_fields(page_description(page))
            if info.get("Name"):
                image.channels[c].label = info["Name"]
            color = rgb_triplet_to_hex(info.get("Color", ""))
            if color:
                image.channels[c].color = color
        image.physical_sizes = resolution_sizes(first_page(series).keyframe)
        associated: dict[str, SourceImage] = {}
        main_offsets = {p.offset for p in pages if p is not None}
        for page in tif.pages:
            if page.offset in main_offsets:
                continue
            kind = _qpi_fields(page_description(page)).get("ImageType", "")
            if is_associated(kind):
                add_associated(associated, kind, page.asarray())
        return SourceDocument(path=path, format=self.name, images=[image],
                              associated=associated,
                              original_metadata={"qptiff-description.xml":
                                                 page_description(pages[0])})


def _qpi_fields(description: str) -> dict[str, str]:
    """Top-level text fields of a PerkinElmer-QPI-ImageDescription document."""
    text = re.sub(r'^<\?xml[^>]*\?>', "", description.strip())
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {}
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


class OmeTiffReader(_TiffBase):
    """OME-TIFF, single- or multi-file (planes linked by UUID/FileName), any layout."""

    name = "ome-tiff"
    description = "OME-TIFF (single or multi-file, tiled or stripped, with or without pyramid)"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        if not cls._is_tiff(head):
            return False
        with open_tiff(path) as tif:
            return bool(tif.is_ome)

    def _document(self, path: str, tif: tifffile.TiffFile) -> SourceDocument:
        xml = page_description(tif.pages[0])
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise CorruptFileError(path, f"its OME-XML does not parse ({exc})") from exc
        ns = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
        q = "ome:" if ns else ""
        _check_siblings(path, root, q, ns)
        doc = super()._document(path, tif)
        ome_images = root.findall(f"{q}Image", ns)
        by_name = {im.get("Name"): im for im in ome_images}
        for i, image in enumerate(doc.images):
            el = by_name.get(image.name) or (ome_images[i] if i < len(ome_images) else None)
            if el is not None:
                _apply_ome_pixels(image, el, q, ns)
        doc.ome_xml = xml
        doc.original_metadata = {}
        return doc


def _check_siblings(path: str, root: ET.Element, q: str, ns: dict[str, str]) -> None:
    if is_url(path):  # one object only: planes in other objects are not read from a URL
        name = path.rstrip("/").rsplit("/", 1)[-1]
        for td in root.iter(f"{{{ns['ome']}}}TiffData" if ns else "TiffData"):
            uuid = td.find(f"{q}UUID", ns)
            if uuid is not None and uuid.get("FileName") not in (None, "", name):
                raise UnsupportedFormatError(
                    path, f"is a multi-file OME-TIFF (planes in {uuid.get('FileName')}); "
                    "only single-file OME-TIFFs are read from object storage",
                    "copy the set into a local ingest folder, or convert it to one file")
        return
    folder = Path(path).parent
    for td in root.iter(f"{{{ns['ome']}}}TiffData" if ns else "TiffData"):
        uuid = td.find(f"{q}UUID", ns)
        if uuid is not None and uuid.get("FileName"):
            sibling = folder / uuid.get("FileName", "")
            if not inside(folder, sibling):  # "../x" or a link out: never read
                raise PermissionDeniedError(
                    str(sibling), f"is outside the folder of the multi-file OME-TIFF "
                    f"{Path(path).name}", "copy every file of the set into one folder")
            if not sibling.exists():
                raise MissingFileError(
                    str(sibling), f"is missing: the multi-file OME-TIFF {Path(path).name} "
                    "stores image planes in it", "copy every file of the set into one folder")


def _apply_ome_pixels(image: SourceImage, el: ET.Element, q: str, ns: dict[str, str]) -> None:
    pixels = el.find(f"{q}Pixels", ns)
    if pixels is None:
        return
    sizes = {}
    for ax in ("x", "y", "z"):
        v = pixels.get(f"PhysicalSize{ax.upper()}")
        if v:
            sizes[ax] = PhysicalSize(float(v), udunits(pixels.get(f"PhysicalSize{ax.upper()}Unit")))
    t_inc = pixels.get("TimeIncrement")
    if t_inc:
        sizes["t"] = PhysicalSize(float(t_inc), udunits(pixels.get("TimeIncrementUnit"), "second"))
    image.physical_sizes = sizes
    channels = pixels.findall(f"{q}Channel", ns)
    spp = [int(ch.get("SamplesPerPixel") or 1) for ch in channels]
    if len(channels) == image.shape[1] and all(s == 1 for s in spp):
        for meta, ch in zip(image.channels, channels, strict=True):
            if ch.get("Name"):
                meta.label = ch.get("Name", "")
            elif ch.get("Fluor"):
                meta.label = ch.get("Fluor", "")
            if ch.get("Color") not in (None, ""):
                meta.color = ome_color_to_hex(ch.get("Color", "-1"))
