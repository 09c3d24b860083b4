"""What a reader hands to the writer: lazy images with channel metadata.

A :class:`SourceImage` is a 5-D (t, c, z, y, x) image whose pixels are read region by region
through a :class:`PixelSource`. Pixel sources are picklable (they reopen their file in the
process that reads them), so conversion tasks can run on dask.distributed workers.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from plexhub.model import PhysicalSize

Array = npt.NDArray[Any]


class PixelSource(ABC):
    """Reads one region of one (t, z) plane for a group of channels."""

    @abstractmethod
    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        """Return an array of shape (len(channels), ys-length, xs-length)."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Decode a little of the data so that bad input fails before anything is written."""


class ChannelPixels(PixelSource):
    """One channel of another pixel source, as channel 0 (a page of a multi-page mask)."""

    def __init__(self, inner: PixelSource, channel: int) -> None:
        self.inner, self.channel = inner, channel

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        return self.inner.read(t, z, [self.channel + c for c in channels], ys, xs)

    def check(self) -> None:
        self.inner.check()


class ArrayPixels(PixelSource):
    """Pixels held in memory (small images, associated images, test data)."""

    def __init__(self, data: Array) -> None:
        if data.ndim != 5:
            raise ValueError(f"ArrayPixels needs a (t, c, z, y, x) array, got {data.shape}")
        self.data = data

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        return np.ascontiguousarray(self.data[t, list(channels), z, ys, xs])


@dataclass
class ChannelMeta:
    label: str
    color: str | None = None  # RRGGBB, upper case; None means "pick from the palette"


@dataclass
class SourceImage:
    """One image of a source: shape, dtype, channels and lazy pixels."""

    name: str
    shape: tuple[int, int, int, int, int]  # t, c, z, y, x
    dtype: np.dtype[Any]
    pixels: PixelSource
    channels: list[ChannelMeta] = field(default_factory=list)
    physical_sizes: dict[str, PhysicalSize] = field(default_factory=dict)
    channel_groups: list[tuple[int, ...]] | None = None  # channels decoded together
    is_label: bool = False
    keep_axes: str = ""  # axes written even when their size is 1 (besides c, y, x)
    labels: dict[str, SourceImage] = field(default_factory=dict)  # label images of this image
    rgb: bool = False  # the channels are the R, G, B (and A) samples of a colour image
    # where the image lies among the others of its source (a collection): the top-left corner
    # of its first pixel, per axis ("y", "x") in the unit of its physical sizes, image axes
    # (y down); and the stage position as the instrument reports it (OME-XML StageLabel)
    position: dict[str, float] = field(default_factory=dict)
    stage: dict[str, float] = field(default_factory=dict)
    # what the reader chose where the file leaves room to choose, and why (plexhub info)
    notes: list[str] = field(default_factory=list)
    # measured acquisition time of each plane (t, c, z), seconds after the image's first
    # (OME-XML Plane DeltaT)
    plane_times: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.shape) != 5:
            raise ValueError(f"shape must be (t, c, z, y, x), got {self.shape}")
        self.dtype = np.dtype(self.dtype)
        nc = self.shape[1]
        if not self.channels:
            self.channels = [ChannelMeta(label=f"Channel {i}") for i in range(nc)]
        if len(self.channels) != nc:
            raise ValueError(f"{self.name}: {len(self.channels)} channel names for {nc} channels")
        if self.channel_groups is None:
            self.channel_groups = [(c,) for c in range(nc)]

    @property
    def axes(self) -> str:
        """The axes written to OME-Zarr: y and x always, c for intensity images, t/z if > 1."""
        t, c, z, _, _ = self.shape
        out = ""
        if t > 1 or "t" in self.keep_axes:
            out += "t"
        if not self.is_label or c > 1:
            out += "c"
        if z > 1 or "z" in self.keep_axes:
            out += "z"
        return out + "yx"

    def read_plane_block(self, t: int, z: int, channels: Sequence[int], ys: slice,
                         xs: slice) -> Array:
        data = self.pixels.read(t, z, channels, ys, xs)
        expect = (len(channels), ys.stop - ys.start, xs.stop - xs.start)
        if data.shape != expect:
            raise ValueError(f"{self.name}: reader returned {data.shape}, expected {expect}")
        return data.astype(self.dtype, copy=False)

    def read_tiles(self, t: int, z: int, channel: int, ys: slice, xs: slice,
                   tile: int) -> Array | None:
        """``(ny, nx, tile, tile)`` whole source tiles of one channel's region when the
        reader can hand them over without assembling a plane (``read_tiles`` of the pixel
        source), else None: then use :meth:`read_plane_block`."""
        read = getattr(self.pixels, "read_tiles", None)
        if read is None:
            return None
        tiles: Array | None = read(t, z, channel, ys, xs, tile)
        if tiles is None or tiles.dtype != self.dtype:
            return None
        return tiles

    def to_numpy(self) -> Array:
        """The whole image, (t, c, z, y, x), for tests and small images."""
        t, c, z, y, x = self.shape
        out = np.empty(self.shape, self.dtype)
        groups = self.channel_groups or [(i,) for i in range(c)]
        for ti in range(t):
            for zi in range(z):
                for g in groups:
                    out[ti, list(g), zi] = self.read_plane_block(
                        ti, zi, g, slice(0, y), slice(0, x))
        return out


@dataclass
class SourceDocument:
    """Everything a reader found in one source: main images, associated images, metadata."""

    path: str
    format: str
    images: list[SourceImage]
    associated: dict[str, SourceImage] = field(default_factory=dict)
    ome_xml: str | None = None  # the source's own OME-XML, kept verbatim
    original_metadata: dict[str, str] = field(default_factory=dict)  # file name -> text


class ByteLRU:
    """A thread-safe LRU cache bounded by the bytes of the values it holds (a
    ``cachetools.LRUCache`` sized by each entry's byte count, behind a lock: cachetools is not
    thread-safe). A value larger than the whole cache is not kept; a key already held keeps
    its first value."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: LRUCache[Any, tuple[Any, int]] = LRUCache(max(1, max_bytes),
                                                               getsizeof=_entry_bytes)
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            try:
                return self._data[key][0]  # not .get(): that looks the key up twice
            except KeyError:
                return None

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        with self._lock:
            if key not in self._data:
                self._data[key] = (value, nbytes)


def _entry_bytes(item: tuple[Any, int]) -> int:
    return item[1]
