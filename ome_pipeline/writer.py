"""The pyramid writer: coarse tasks that own whole blocks at every level they write.

A conversion runs in *passes*. A task of pass 0 reads one (t, z, channel group) block of
``block x block`` source pixels, records its histogram, writes it as level 0, halves it, writes
level 1, and so on for ``levels_per_pass`` levels (block / 2**j stays a multiple of the chunk).
Pass p > 0 reads blocks of the last level written by pass p - 1 back and continues. With NGFF
0.5 the shard of level k is ``block >> (k % levels_per_pass)``: exactly what one task writes,
so shards have a single writer and are written whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plexhub.ome_pipeline.chunkio import (
    Codec,
    OutputStore,
    chunk_key,
    encode_shard,
    encode_tile_shard,
    json_bytes,
    pad_to,
)
from plexhub.ome_pipeline.chunkread import DirectArray, open_direct, open_direct_remote
from plexhub.ome_pipeline.diskwrite import PendingWrites
from plexhub.ome_pipeline.histogram import PartialHistogram
from plexhub.ome_pipeline.pyramid import downsample_mean, downsample_mode, level_shapes
from plexhub.ome_pipeline.source import Array, SourceImage


@dataclass(frozen=True)
class ImagePlan:
    """Where and how one image is written."""

    key: str  # path of the image group inside the store ("" = root)
    axes: str
    shape: tuple[int, int, int, int, int]  # t, c, z, y, x
    dtype: str
    chunk: int
    block: int
    zarr_format: int
    codec: Codec
    is_label: bool = False
    levels: tuple[tuple[int, int], ...] = field(default=())
    channel_groups: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def build(cls, key: str, image: SourceImage, *, chunk: int, block: int, zarr_format: int,
              codec: Codec, is_label: bool | None = None) -> ImagePlan:
        _t, c, _z, y, x = image.shape
        return cls(key=key, axes=image.axes, shape=image.shape, dtype=image.dtype.str,
                   chunk=chunk, block=max(block, chunk), zarr_format=zarr_format, codec=codec,
                   is_label=image.is_label if is_label is None else is_label,
                   levels=tuple(level_shapes(y, x)),
                   channel_groups=tuple(image.channel_groups or [(i,) for i in range(c)]))

    @property
    def levels_per_pass(self) -> int:
        return int(math.log2(self.block // self.chunk)) + 1

    @property
    def npasses(self) -> int:
        return math.ceil(len(self.levels) / self.levels_per_pass)

    def level_key(self, level: int) -> str:
        return f"{self.key}/{level}" if self.key else str(level)

    def _axes_shape(self, tczyx: tuple[int, ...]) -> tuple[int, ...]:
        d = dict(zip("tczyx", tczyx, strict=True))
        return tuple(d[a] for a in self.axes)

    def array_shape(self, level: int) -> tuple[int, ...]:
        t, c, z, _, _ = self.shape
        return self._axes_shape((t, c, z, *self.levels[level]))

    def chunk_shape(self, level: int) -> tuple[int, ...]:
        return self._axes_shape((1, 1, 1, self.chunk, self.chunk))

    def shard_shape(self, level: int) -> tuple[int, ...] | None:
        if self.zarr_format == 2:
            return None
        edge = self.block >> (level % self.levels_per_pass)
        return self._axes_shape((1, 1, 1, edge, edge))

    def create_arrays(self, store: OutputStore, dimension_separator: str = "/") -> None:
        """Write the metadata of every level that does not exist yet."""
        meta = "zarr.json" if self.zarr_format == 3 else ".zarray"
        docs: dict[str, bytes] = {}
        for level in range(len(self.levels)):
            key = self.level_key(level)
            # an object store: written again (the same bytes), together, not a HEAD each
            if not store.remote and store.exists(f"{key}/{meta}"):
                continue
            v3 = self.zarr_format == 3
            doc = self.codec.array_metadata(
                self.array_shape(level), self.chunk_shape(level),
                self.shard_shape(level) if v3 else None, np.dtype(self.dtype),
                self.zarr_format, list(self.axes) if v3 else None, dimension_separator)
            docs[f"{key}/{meta}"] = json_bytes(doc)
        store.put_many(docs)

    def tasks(self, pass_index: int) -> list[Task]:
        t, _, z, _, _ = self.shape
        base = pass_index * self.levels_per_pass
        if base >= len(self.levels):
            return []
        ly, lx = self.levels[base]
        nby, nbx = math.ceil(ly / self.block), math.ceil(lx / self.block)
        groups = self.channel_groups
        return [Task(self.key, pass_index, ti, zi, g, by, bx)
                for ti in range(t) for zi in range(z) for g in groups
                for by in range(nby) for bx in range(nbx)]


@dataclass(frozen=True)
class Task:
    image_key: str
    pass_index: int
    t: int
    z: int
    channels: tuple[int, ...]
    by: int
    bx: int

    @property
    def id(self) -> str:
        return (f"{self.image_key or '.'}:p{self.pass_index}:t{self.t}:z{self.z}:"
                f"c{self.channels[0]}:{self.by}:{self.bx}")

    def weight(self, plan: ImagePlan) -> int:
        """Work estimate: source pixels the task reads."""
        edge = plan.block * (1 if self.pass_index == 0 else 2)
        return edge * edge * len(self.channels)


@dataclass
class TaskResult:
    task_id: str
    image_key: str
    histograms: dict[int, PartialHistogram]


def _level_array(plan: ImagePlan, store: OutputStore, level: int) -> Any:
    """A level written by an earlier pass, for reading back: through the direct chunk reader
    (shard index + Blosc, no GIL held while decoding; measured: the 8 tasks of the second
    pass of the 10,000² bench file took 0.31 s through zarr-python), on an object store over
    ranged GETs (no zarr-python import, ~0.3 s, in the conversion); else through zarr."""
    key = plan.level_key(level)
    arr: Any = open_direct_remote(store.fs, store.object_path(key)) if store.remote else \
        open_direct(Path(store.root) / key)
    if arr is None:
        import zarr

        arr = zarr.open_array(store=store.zarr_store(key), mode="r")
    return arr


def _read_back(plan: ImagePlan, arr: Any, task: Task, ys: slice, xs: slice) -> Array:
    """The task's channels of ``arr`` (from :func:`_level_array`) over ``ys`` x ``xs``."""
    out = np.empty((len(task.channels), ys.stop - ys.start, xs.stop - xs.start),
                   np.dtype(plan.dtype))
    for i, c in enumerate(task.channels):
        # basic indexing, one channel at a time: zarr's orthogonal (list) selection
        # allocates several times the region
        where: dict[str, Any] = {"t": task.t, "c": c, "z": task.z, "y": ys, "x": xs}
        sel = tuple(where[a] for a in plan.axes)
        if isinstance(arr, DirectArray):
            arr.read(sel, out=out[i])  # straight into the block: no region-sized copy
        else:
            out[i] = arr[sel]
    return out


def _shrunk_from_previous(plan: ImagePlan, store: OutputStore, task: Task, src_level: int,
                          shrink: Any) -> Array:
    """The task's block at ``src_level + 1``, made from the 2x2 blocks of ``src_level`` one
    quadrant at a time, so a later pass never holds more than one block of source pixels."""
    ly, lx = plan.levels[src_level]
    b = plan.block
    y0, x0 = task.by * 2 * b, task.bx * 2 * b
    h, w = min(2 * b, ly - y0), min(2 * b, lx - x0)
    arr = _level_array(plan, store, src_level)
    out = np.empty((len(task.channels), (h + 1) // 2, (w + 1) // 2), np.dtype(plan.dtype))
    for qy in range(0, h, b):  # b is even, so quadrant edges are even and the halves line up
        for qx in range(0, w, b):
            ys = slice(y0 + qy, y0 + min(qy + b, h))
            xs = slice(x0 + qx, x0 + min(qx + b, w))
            part = shrink(_read_back(plan, arr, task, ys, xs))
            out[:, qy // 2:qy // 2 + part.shape[1], qx // 2:qx // 2 + part.shape[2]] = part
    return out


def run_task(plan: ImagePlan, task: Task, image: SourceImage | None, store: OutputStore,
             pending: PendingWrites | None = None) -> TaskResult:
    """Read one block, write it and its halvings, return its histograms (pass 0 only).

    Large objects are written on the I/O thread: with ``pending`` the caller waits for them
    (and must, before it counts the task as done), else this returns once they are written.
    """
    if pending is None:
        own = PendingWrites()
        try:
            result = run_task(plan, task, image, store, own)
        except BaseException:
            own.wait(quiet=True)  # nothing of a failed task is written after it returns
            raise
        own.wait()
        return result
    lpp = plan.levels_per_pass
    first = task.pass_index * lpp
    shrink = downsample_mode if plan.is_label else downsample_mean
    hists: dict[int, PartialHistogram] = {}
    j0 = 0  # the first of the task's levels still to write
    if task.pass_index == 0:
        assert image is not None
        ly, lx = plan.levels[0]
        ys = slice(task.by * plan.block, min((task.by + 1) * plan.block, ly))
        xs = slice(task.bx * plan.block, min((task.bx + 1) * plan.block, lx))
        tiles = _whole_tiles(plan, image, task, ys, xs)
        if tiles is not None:
            hists = {task.channels[0]: PartialHistogram.of(tiles)}
            _write_tiles(plan, store, pending, task, tiles)
            j0 = 1
            if lpp == 1 or len(plan.levels) == 1:
                return TaskResult(task.id, plan.key, hists)
            data = _untile(shrink(tiles))  # each tile halves on its own: its edge is even
        else:
            data = image.read_plane_block(task.t, task.z, task.channels, ys, xs)
            if not plan.is_label:
                hists = {c: PartialHistogram.of(data[i]) for i, c in enumerate(task.channels)}
    else:
        data = _shrunk_from_previous(plan, store, task, first - 1, shrink)
    for j in range(j0, lpp):
        level = first + j
        if level >= len(plan.levels):
            break
        if j > j0:
            data = shrink(data)
        edge = plan.block >> j
        _write_block(plan, store, pending, level, task, task.by * edge, task.bx * edge, data)
    return TaskResult(task.id, plan.key, hists)


def _whole_tiles(plan: ImagePlan, image: SourceImage, task: Task, ys: slice,
                 xs: slice) -> Array | None:
    """A full level-0 block of one intensity channel as whole source tiles that are exactly
    the output chunks, when the reader can give them (tiled deflate TIFF, tile = chunk):
    decoded in place and encoded in place, which saves two block-sized copies (measured:
    ~3 ms of ~28 per 2048² block and channel). None otherwise."""
    if plan.is_label or len(task.channels) != 1 or \
            ys.stop - ys.start != plan.block or xs.stop - xs.start != plan.block:
        return None
    return image.read_tiles(task.t, task.z, task.channels[0], ys, xs, plan.chunk)


def _untile(tiles: Array) -> Array:
    """(ny, nx, h, w) tiles -> one (1, ny*h, nx*w) plane."""
    ny, nx, h, w = tiles.shape
    return tiles.transpose(0, 2, 1, 3).reshape(1, ny * h, nx * w)


def _write_tiles(plan: ImagePlan, store: OutputStore, pending: PendingWrites, task: Task,
                 tiles: Array) -> None:
    """Level 0 of a block given as (ny, nx, chunk, chunk) tiles, one output chunk each."""
    prefix = plan.level_key(0)
    ny, nx = tiles.shape[:2]
    c = task.channels[0]
    tiles = tiles.astype(np.dtype(plan.dtype), copy=False)
    if plan.zarr_format == 3:
        grid = tuple(ny if a == "y" else nx if a == "x" else 1 for a in plan.axes)
        store.put_soon(chunk_key(prefix, _chunk_index(plan, task, c, task.by, task.bx), 3),
                       encode_tile_shard(plan.codec, tiles, grid), pending)
        return
    for ty in range(ny):
        for tx in range(nx):
            index = _chunk_index(plan, task, c, task.by * ny + ty, task.bx * nx + tx)
            store.put_soon(chunk_key(prefix, index, 2), [plan.codec.encode(tiles[ty, tx])],
                           pending)


def _chunk_index(plan: ImagePlan, task: Task, c: int, yi: int, xi: int) -> tuple[int, ...]:
    """The grid index (in the plan's axis order) of chunk / shard (yi, xi) of channel c."""
    d = {"t": task.t, "c": c, "z": task.z, "y": yi, "x": xi}
    return tuple(d[a] for a in plan.axes)


def _write_block(plan: ImagePlan, store: OutputStore, pending: PendingWrites, level: int,
                 task: Task, y0: int, x0: int, data: Array) -> None:
    """Write ``data`` (channels, h, w) whose top-left pixel is (y0, x0) at ``level``."""
    prefix = plan.level_key(level)
    chunk = plan.chunk
    data = data.astype(np.dtype(plan.dtype), copy=False)

    def index(c: int, yi: int, xi: int) -> tuple[int, ...]:
        return _chunk_index(plan, task, c, yi, xi)

    for i, c in enumerate(task.channels):
        plane = data[i]
        if plan.zarr_format == 3:
            edge = plan.block >> (level % plan.levels_per_pass)
            inner = tuple(chunk if a in "yx" else 1 for a in plan.axes)
            shard = tuple(edge if a in "yx" else 1 for a in plan.axes)
            blob = encode_shard(plan.codec, plane.reshape(
                tuple(plane.shape[0] if a == "y" else plane.shape[1] if a == "x" else 1
                      for a in plan.axes)), inner, shard)
            key = chunk_key(prefix, index(c, y0 // edge, x0 // edge), 3)
            store.put_soon(key, blob, pending)
            continue
        h, w = plane.shape
        for cy in range(0, h, chunk):
            for cx in range(0, w, chunk):
                piece = pad_to(plane[cy:cy + chunk, cx:cx + chunk], (chunk, chunk))
                key = chunk_key(prefix, index(c, (y0 + cy) // chunk, (x0 + cx) // chunk), 2)
                store.put_soon(key, [plan.codec.encode(piece)], pending)
