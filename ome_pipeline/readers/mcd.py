"""Imaging mass cytometry ``.mcd`` files (Fluidigm / Standard BioTools) through readimc.

Every acquisition of every slide becomes one main image (float32 ion counts, one channel per
metal, labelled with the panel's channel label), in file order. Panoramas and slide overview
images become associated images ("panorama", "panorama_2", ..., "slide"). An acquisition
without data (aborted before the first pixel, or with no size) still converts, as zeros, and
``acquisitions.json`` in the original metadata says which acquisitions were empty.

IMC acquisitions are small, so pixels are decoded one whole acquisition at a time and kept in a
per-process cache shared by all images, bounded in bytes (the most recent acquisition is always
kept, however large).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from plexhub.errors import (
    CorruptFileError,
    InputError,
    MissingFileError,
    UnsupportedFormatError,
)
from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.readers.base import TIFF_MAGICS, Reader
from plexhub.ome_pipeline.readers.tiff import associated_image
from plexhub.ome_pipeline.source import Array, ChannelMeta, PixelSource, SourceDocument, SourceImage

SCHEMA_MARK = "MCDSchema".encode("utf-16-le")
HEAD_MARKS = (b"CytofShared", b"MCDHeader")  # the .NET header that opens MCD v2 files
TAIL_BYTES = 2 * 2**20
CACHE_BYTES = 1024 * 2**20
DEFAULT_PIXEL_UM = 1.0  # IMC ablates 1 µm spots unless the metadata says otherwise
COORD_COLUMNS = 3  # every pixel record starts with X, Y, Z


class AcquisitionCache:
    """Whole acquisitions by key, thread-safe, bounded in bytes; each is decoded only once
    even when several threads ask for it together.

    Hand-written on purpose: a cachetools cache refuses a value larger than its bound, and an
    acquisition larger than the whole budget must still be kept (alone) while its regions are
    read, or each region would decode it again; the per-key loading locks are not
    cachetools' either."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Any, Array] = OrderedDict()
        self._loading: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Array]) -> Array:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            value = load()
            with self._lock:
                self._data[key] = value
                self._loading.pop(key, None)
                total = sum(a.nbytes for a in self._data.values())
                while total > self.max_bytes and len(self._data) > 1:
                    _, old = self._data.popitem(last=False)
                    total -= old.nbytes
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


CACHE = AcquisitionCache(CACHE_BYTES)


def _corrupt(path: str, problem: str, exc: BaseException | None = None) -> CorruptFileError:
    text = f"{problem} ({exc})" if exc is not None else problem
    return CorruptFileError(path, text, "the file may be truncated or damaged; copy it again")


def _open_mcd(path: str) -> Any:
    """An opened readimc MCDFile; its errors become plexhub errors."""
    try:
        from readimc import MCDFile
    except ImportError as exc:  # readimc 0.9 does not declare pandas and imageio
        raise UnsupportedFormatError(path, f"reading .mcd files needs readimc ({exc})",
                                     "pip install readimc pandas imageio") from exc
    f = MCDFile(path)
    try:
        f.open()
    except FileNotFoundError as exc:
        raise MissingFileError(path, "no such file", "check the path") from exc
    except (OSError, ValueError, SyntaxError, KeyError, IndexError) as exc:
        f.close()
        raise _corrupt(path, "its MCD schema XML cannot be read", exc) from exc
    return f


def _int(meta: dict[str, str], key: str) -> int | None:
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        return None


def is_empty(acquisition: Any) -> bool:
    """No pixel data: aborted before the first pixel, or without a size in the metadata."""
    meta = acquisition.metadata
    start, end = _int(meta, "DataStartOffset"), _int(meta, "DataEndOffset")
    w, h = _int(meta, "MaxX"), _int(meta, "MaxY")
    return start is None or end is None or start == end or not w or not h or w < 0 or h < 0


class McdPixels(PixelSource):
    """One acquisition (slide ``slide``, acquisition id ``acquisition``), read whole."""

    def __init__(self, path: str, slide: int, acquisition: int, nchannels: int,
                 size: tuple[int, int], record: tuple[int, int, int]) -> None:
        self.path = path
        self.slide = slide
        self.acquisition = acquisition
        self.nchannels = nchannels
        self.size = size  # (height, width)
        self.record = record  # (data start offset, data end offset, value bytes)

    def _key(self) -> tuple[Any, ...]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise MissingFileError(self.path, "no such file", "check the path") from exc
        return (os.path.abspath(self.path), st.st_size, st.st_mtime_ns, self.slide,
                self.acquisition)

    def _load(self) -> Array:
        f = _open_mcd(self.path)
        try:
            acq = next((a for s in f.slides if s.id == self.slide for a in s.acquisitions
                        if a.id == self.acquisition), None)
            if acq is None:
                raise _corrupt(self.path, f"acquisition {self.acquisition} has disappeared")
            data = f.read_acquisition(acq)
        except (OSError, ValueError, IndexError, KeyError) as exc:
            raise _corrupt(self.path, f"acquisition {self.acquisition} cannot be read",
                           exc) from exc
        finally:
            f.close()
        expect = (self.nchannels, *self.size)
        if data.shape != expect:
            raise _corrupt(self.path, f"acquisition {self.acquisition} decoded to "
                           f"{data.shape}, the metadata says {expect}")
        return np.asarray(data, np.float32)

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        data = CACHE.get(self._key(), self._load)
        return np.ascontiguousarray(data[list(channels), ys, xs])

    def check(self) -> None:
        """Check the pixel records fit the file, and decode the first and last of them."""
        start, end, value_bytes = self.record
        size = os.path.getsize(self.path)
        rec = (self.nchannels + COORD_COLUMNS) * value_bytes
        what = f"acquisition {self.acquisition}"
        if value_bytes != 4 or start < 0 or end < start:
            raise _corrupt(self.path, f"{what} has invalid data offsets or value size")
        if end > size:
            raise _corrupt(self.path, f"truncated: {what} ends at byte {end}, "
                           f"the file has {size}")
        if (end - start) % rec:
            raise _corrupt(self.path, f"{what} holds {end - start} bytes, not a whole "
                           f"number of {rec}-byte pixel records")
        h, w = self.size
        with open(self.path, "rb") as fh:
            for pos in (start, end - rec):
                fh.seek(pos)
                values = np.frombuffer(fh.read(rec), "<f4")
                x, y = values[0], values[1]
                if not (0 <= x < w and 0 <= y < h):
                    raise _corrupt(self.path, f"{what} has a pixel at ({x}, {y}) outside its "
                                   f"{w}x{h} frame")


class ZeroPixels(PixelSource):
    """An acquisition without data: zeros."""

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        return np.zeros((len(channels), ys.stop - ys.start, xs.stop - xs.start), np.float32)


def _pixel_size(value: float | None) -> float:
    return value if value is not None and np.isfinite(value) and value > 0 else DEFAULT_PIXEL_UM


def acquisition_image(path: str, acq: Any) -> tuple[SourceImage, bool]:
    """The SourceImage of one acquisition, and whether it was empty."""
    meta = acq.metadata
    nc = int(acq.num_channels)
    names = list(acq.channel_names)
    labels = [str(lab).strip() or names[i] for i, lab in enumerate(acq.channel_labels)]
    channels = [ChannelMeta(label=lab) for lab in labels]
    empty = is_empty(acq)
    w, h = _int(meta, "MaxX") or 0, _int(meta, "MaxY") or 0
    pixels: PixelSource
    if empty:
        h, w = (h, w) if h > 0 and w > 0 else (1, 1)
        pixels = ZeroPixels()
    else:
        record = (_int(meta, "DataStartOffset") or 0, _int(meta, "DataEndOffset") or 0,
                  _int(meta, "ValueBytes") or 0)
        pixels = McdPixels(path, acq.slide.id, acq.id, nc, (h, w), record)
    sizes = {"x": PhysicalSize(_pixel_size(acq.pixel_size_x_um)),
             "y": PhysicalSize(_pixel_size(acq.pixel_size_y_um))}
    name = (acq.description or "").strip() or f"Acquisition {acq.id}"
    image = SourceImage(name=name, shape=(1, nc, 1, h, w), dtype=np.dtype(np.float32),
                        pixels=pixels, channels=channels, physical_sizes=sizes)
    corner = _top_left_um(acq)
    if corner is not None:  # slide coordinates in µm, y up; the image's rows run down
        image.stage = {"x": corner[0], "y": corner[1]}
        image.position = {"x": corner[0], "y": -corner[1]}
    return image, empty


def _top_left_um(acq: Any) -> tuple[float, float] | None:
    """The slide position (x, y in µm) of the acquisition's first pixel: the first of
    readimc's ROI corners (start X, start Y), when it has them."""
    try:
        x, y = acq.roi_coords_um[0]
        x, y = float(x), float(y)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return (x, y) if np.isfinite(x) and np.isfinite(y) else None


def _numbered(base: str, taken: dict[str, SourceImage]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


class McdReader(Reader):
    """IMC .mcd: one image per acquisition, panoramas and slide images as associated."""

    name: ClassVar[str] = "mcd"
    description: ClassVar[str] = "Imaging mass cytometry .mcd (Fluidigm/Standard BioTools)"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        if all(mark in head for mark in HEAD_MARKS):
            return True
        if head[:4] in TIFF_MAGICS or not Path(path).is_file():
            return False
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - TAIL_BYTES))
            return SCHEMA_MARK in fh.read(TAIL_BYTES)

    def open(self, path: str) -> SourceDocument:
        if not Path(path).is_file():
            raise MissingFileError(path, "no such file", "check the path")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = _open_mcd(path)
            try:
                doc = self._document(path, f)
            finally:
                f.close()
        if caught:
            doc.original_metadata["readimc-warnings.txt"] = "\n".join(
                str(w.message) for w in caught)
        for image in doc.images:
            image.pixels.check()
        return doc

    def _document(self, path: str, f: Any) -> SourceDocument:
        images: list[SourceImage] = []
        listing: list[dict[str, Any]] = []
        associated: dict[str, SourceImage] = {}
        for slide in f.slides:
            for acq in slide.acquisitions:
                image, empty = acquisition_image(path, acq)
                images.append(image)
                listing.append({"id": acq.id, "slide": slide.id, "name": image.name,
                                "description": acq.description, "empty": empty,
                                "shape": list(image.shape[1:2] + image.shape[3:]),
                                "channels": list(acq.channel_names),
                                "labels": [ch.label for ch in image.channels]})
            for pano in slide.panoramas:
                self._add(associated, "panorama", path, f.read_panorama, pano,
                          f"panorama {pano.id}")
            self._add(associated, "slide", path, f.read_slide, slide, f"slide {slide.id}")
        if not images:
            raise InputError(path, "holds no acquisition (only slide or panorama images)")
        return SourceDocument(path=path, format=self.name, images=images, associated=associated,
                              original_metadata={"mcd-schema.xml": f.schema_xml,
                                                 "acquisitions.json": json.dumps(listing,
                                                                                 indent=1)})

    @staticmethod
    def _add(associated: dict[str, SourceImage], base: str, path: str,
             read: Callable[[Any], Any], item: Any, what: str) -> None:
        try:
            array = read(item)
        except (OSError, ValueError, SyntaxError) as exc:
            raise _corrupt(path, f"the {what} image cannot be decoded", exc) from exc
        if array is None or np.asarray(array).size == 0:
            return
        name = _numbered(base, associated)
        associated[name] = associated_image(name, np.asarray(array))
