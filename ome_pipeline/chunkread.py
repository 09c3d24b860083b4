"""Direct reads of the arrays plexhub writes: a chunk's byte range from a cached shard index
(or the chunk file, NGFF 0.4), Blosc-decoded. Tiles need a few chunks each, and this path costs
a fraction of zarr-python's general one. Anything not laid out exactly as plexhub writes it is
refused (``None`` from :func:`open_direct`), and the caller falls back to zarr.

Every file is read through :func:`plexhub.ome_pipeline.confine.open_inside`: a chunk, shard or
metadata file that resolves outside the array's folder (a symlink put into a store after it
was written) is refused with a :class:`~plexhub.errors.PermissionDeniedError`, never read."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache
from numcodecs import Blosc

from plexhub.errors import PermissionDeniedError
from plexhub.ome_pipeline.confine import inside, open_inside, real_prefix

Array = npt.NDArray[Any]
EMPTY = 2**64 - 1
_BLOSC = Blosc()  # decoding reads the codec from each chunk's header


class DirectArray:
    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any],
                 chunk: tuple[int, ...], shard: tuple[int, ...] | None, blosc: bool,
                 fill: Any, zarr_format: int) -> None:
        self.path, self.shape, self.dtype = path, shape, dtype
        self.chunk, self.shard, self.blosc = chunk, shard, blosc
        self.fill, self.zarr_format = fill, zarr_format
        # shard indexes by file (None: no such shard); cachetools is not thread-safe: the lock
        self._index: LRUCache[str, Array | None] = LRUCache(4096)
        self._root = str(path)
        self._prefix = real_prefix(path)  # every file read must resolve under it
        self._label = path.name  # names a refused file in errors: "0/c/1/0/0"
        self._per = tuple(s // c for s, c in zip(shard, chunk, strict=True)) if shard else ()
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------
    def __getitem__(self, sel: tuple[int | slice, ...]) -> Array:
        return self.read(sel)

    def read(self, sel: tuple[int | slice, ...], out: Array | None = None) -> Array:
        """``arr[sel]`` for ints and step-1 slices (ints drop their axis, as numpy does);
        with ``out`` (that shape and dtype), into it instead of a new array."""
        ranges = [(s, s + 1) if isinstance(s, int) else (s.start or 0, s.stop)
                  for s in sel]
        grids = [range(a // c, (b - 1) // c + 1) for (a, b), c in zip(ranges, self.chunk,
                                                                         strict=True)]
        if out is None and all(len(g) == 1 for g in grids):  # inside one chunk: a view
            data = self._chunk(tuple(g[0] for g in grids))
            if data is not None:
                return data[tuple(s - g[0] * c if isinstance(s, int) else
                                  slice((s.start or 0) - g[0] * c, s.stop - g[0] * c)
                                  for s, g, c in zip(sel, grids, self.chunk, strict=True))]
        shape = tuple(b - a for a, b in ranges)
        if out is None:
            whole = np.empty(shape, self.dtype)
        else:
            whole = out.view()
            whole.shape = shape  # the int axes' length-1 dims; raises rather than copy
        for pos in np.ndindex(*(len(g) for g in grids)):
            cidx = tuple(g[p] for g, p in zip(grids, pos, strict=True))
            src, dst = [], []
            for (a, b), c, i in zip(ranges, self.chunk, cidx, strict=True):
                lo, hi = max(a, i * c), min(b, (i + 1) * c)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - a, hi - a))
            data = self._chunk(cidx)
            whole[tuple(dst)] = self.fill if data is None else data[tuple(src)]
        return whole[tuple(0 if isinstance(s, int) else slice(None) for s in sel)]

    def _decode(self, raw: bytes) -> Array:
        data = _BLOSC.decode(raw) if self.blosc else raw
        return np.frombuffer(data, self.dtype).reshape(self.chunk)

    def _chunk(self, cidx: tuple[int, ...]) -> Array | None:
        if self.shard is None:
            name = "/".join(map(str, cidx))
            raw = self._whole(f"{self._root}/{name}", name)
            return None if raw is None else self._decode(raw)
        per = self._per
        sidx = "/".join(str(i // p) for i, p in zip(cidx, per, strict=True))
        inner = tuple(i % p for i, p in zip(cidx, per, strict=True))
        f = f"{self._root}/c/{sidx}"  # plain strings: pathlib costs ~20 µs per chunk here
        index = self._shard_index(f, per)
        if index is None:
            return None
        offset, length = (int(v) for v in index[inner])
        if offset == EMPTY:
            return None
        return self._decode(self._range(f, f"c/{sidx}", offset, length))

    # -- the files (a subclass reads objects instead) -------------------------------------
    def _open(self, path: str, name: str) -> int:
        """A file of this array, opened for reading, only when it really lies inside it."""
        return open_inside(path, self._prefix, f"{self._label}/{name}")

    def _whole(self, path: str, name: str) -> bytes | None:
        """The file's bytes (None when it does not exist)."""
        try:
            fd = self._open(path, name)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def _range(self, path: str, name: str, offset: int, length: int) -> bytes:
        fd = self._open(path, name)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _tail(self, path: str, name: str, nbytes: int) -> bytes:
        """The last ``nbytes`` of the file (FileNotFoundError when it does not exist)."""
        fd = self._open(path, name)
        try:
            size = os.fstat(fd).st_size
            return os.pread(fd, nbytes, size - nbytes)
        finally:
            os.close(fd)

    def _shard_index(self, key: str, per: tuple[int, ...]) -> Array | None:
        with self._lock:
            try:
                return self._index[key]  # not .get(): None is a value here
            except KeyError:
                pass
        nbytes = int(np.prod(per)) * 16 + 4
        try:
            raw = self._tail(key, key[len(self._root) + 1:], nbytes)
            index: Array | None = np.frombuffer(raw[:-4], "<u8").reshape(*per, 2)
        except FileNotFoundError:
            index = None
        with self._lock:  # shards never change once a store is committed
            self._index[key] = index
        return index


# Ranged reads from an object store go by aligned blocks of READ_AHEAD bytes, kept in one
# process-wide LRU of RANGE_CACHE_BYTES: a shard stores its chunks in row order, so the tiles a
# viewer asks for next (the neighbours) mostly lie in a block already fetched. Each GET costs
# ~2-3 ms of CPU in the S3 client (signing, HTTP, parsing), more than decoding the chunk; one
# GET of a block serves several chunks (bench/s3.py: tile CPU). Shards never change once a
# store is committed, and each array instance has its own keys.
READ_AHEAD = 4 << 20
RANGE_CACHE_BYTES = 256 << 20
_blocks: LRUCache[tuple[int, str, int], bytes] = LRUCache(RANGE_CACHE_BYTES, getsizeof=len)
_blocks_lock = threading.Lock()
_instances = iter(range(1 << 62))


class RemoteDirectArray(DirectArray):
    """:class:`DirectArray` over an object store (fsspec): a chunk is read from its shard
    (whose index is cached) through aligned read-ahead blocks; an object store has no links
    to leave by."""

    def __init__(self, fs: Any, base: str, *args: Any) -> None:
        self._fs = fs
        super().__init__(Path(base), *args)
        self._root = base.rstrip("/")
        with _blocks_lock:
            self._token = next(_instances)

    def _block(self, path: str, block: int) -> bytes:
        key = (self._token, path, block)
        with _blocks_lock:
            found = _blocks.get(key)
        if found is None:
            start = block * READ_AHEAD
            found = bytes(self._fs.cat_file(path, start=start, end=start + READ_AHEAD))
            with _blocks_lock:
                _blocks[key] = found
        return found

    def _range(self, path: str, name: str, offset: int, length: int) -> bytes:
        if length > READ_AHEAD:
            return bytes(self._fs.cat_file(path, start=offset, end=offset + length))
        first, last = offset // READ_AHEAD, (offset + length - 1) // READ_AHEAD
        data = b"".join(self._block(path, b) for b in range(first, last + 1))
        skip = offset - first * READ_AHEAD
        out = data[skip:skip + length]
        if len(out) != length:
            raise OSError(f"{name}: {len(out)} of {length} bytes at {offset} (a short read)")
        return out

    def _whole(self, path: str, name: str) -> bytes | None:
        try:
            return bytes(self._fs.cat_file(path))
        except FileNotFoundError:
            return None

    def _tail(self, path: str, name: str, nbytes: int) -> bytes:
        return bytes(self._fs.cat_file(path, start=-nbytes))


def open_direct_remote(fs: Any, base: str) -> DirectArray | None:
    """:func:`open_direct` for the array at ``base`` inside the fsspec filesystem ``fs``."""
    for name, parse in (("zarr.json", _v3), (".zarray", _v2)):
        try:
            meta = json.loads(bytes(fs.cat_file(f"{base}/{name}")))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return None
        try:
            return parse(Path(base), meta, lambda *a: RemoteDirectArray(fs, base, *a))
        except (ValueError, KeyError, TypeError):
            return None
    return None


def open_direct(path: Path, root: Path | None = None) -> DirectArray | None:
    """A direct reader for the array at ``path`` when plexhub wrote it, else None. Its files
    are read only from inside ``path``; with ``root`` (the store), ``path`` itself must
    resolve inside ``root`` too (else :class:`~plexhub.errors.PermissionDeniedError`)."""
    if root is not None and not inside(root, path):
        raise PermissionDeniedError(f"{root.name}/{path.relative_to(root)}",
                                    "resolves outside its store",
                                    "the store was changed after it was written; convert the "
                                    "image again")
    prefix = real_prefix(path)
    for name, parse in (("zarr.json", _v3), (".zarray", _v2)):
        try:
            fd = open_inside(str(path / name), prefix, f"{path.name}/{name}")
        except FileNotFoundError:
            continue
        except PermissionDeniedError:
            raise
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                return parse(path, json.loads(fh.read()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def _blosc_only(codecs: list[dict[str, Any]]) -> bool | None:
    names = [c.get("name") for c in codecs]
    if names[:1] != ["bytes"] or codecs[0].get("configuration", {}).get("endian",
                                                                        "little") != "little":
        return None
    if names[1:] == []:
        return False
    return True if names[1:] == ["blosc"] else None


def _v3(path: Path, meta: dict[str, Any],
        make: Callable[..., DirectArray] | None = None) -> DirectArray | None:
    if meta.get("node_type") != "array" or meta.get("chunk_key_encoding", {}).get(
            "configuration", {}).get("separator", "/") != "/":
        return None
    (codec,) = meta["codecs"]
    if codec["name"] != "sharding_indexed":
        return None
    conf = codec["configuration"]
    index_names = [c["name"] for c in conf.get("index_codecs", [])]
    blosc = _blosc_only(conf["codecs"])
    if conf.get("index_location", "end") != "end" or index_names != ["bytes", "crc32c"] \
            or blosc is None:
        return None
    return (make or functools.partial(DirectArray, path))(
        tuple(meta["shape"]), np.dtype(meta["data_type"]).newbyteorder("<"),
        tuple(conf["chunk_shape"]), tuple(meta["chunk_grid"]["configuration"]["chunk_shape"]),
        blosc, meta.get("fill_value", 0), 3)


def _v2(path: Path, meta: dict[str, Any],
        make: Callable[..., DirectArray] | None = None) -> DirectArray | None:
    comp = meta.get("compressor")
    if meta.get("filters") or meta.get("order", "C") != "C" or \
            meta.get("dimension_separator") != "/" or (comp and comp.get("id") != "blosc"):
        return None
    return (make or functools.partial(DirectArray, path))(
        tuple(meta["shape"]), np.dtype(meta["dtype"]), tuple(meta["chunks"]), None, bool(comp),
        meta.get("fill_value") or 0, 2)
