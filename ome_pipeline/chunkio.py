"""Direct chunk and shard writes for Zarr v2 and v3 arrays.

The array metadata (the same documents ``zarr.create_array`` writes) is written here, and the
pixel chunks are encoded here (numcodecs Blosc, GIL released) and written whole, one file per
chunk (v2) or per shard (v3). Every task owns whole shards, so no shard is ever written by two
writers (the read-modify-write race of unaligned concurrent shard writes cannot happen). On a
local disk each file is written to a temporary name and renamed, so a killed process never
leaves a torn chunk; what a killed process leaves instead is a temporary file
(``.<name>.<16 hex digits>.tmp``), which :func:`remove_stale_temporaries` deletes before a
conversion resumes, so the finished store holds exactly what an uninterrupted run writes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import stat
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import numpy.typing as npt
from numcodecs import Blosc

from plexhub.ome_pipeline.diskwrite import (
    DIRECT_MIN_BYTES,
    DirectFlag,
    Parts,
    PendingWrites,
    write_now,
    write_soon,
)
from plexhub.storage import StorageOptions, StoreLocation, filesystem, is_url, storage_options

Array = npt.NDArray[Any]
MAX_UINT64 = np.uint64(2**64 - 1)
# the temporary name of a file being written (OutputStore._local_target makes them)
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")
# Zarr metadata documents: kept by the store as written, for validation without a read-back
METADATA_NAMES = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


def is_remote(url: str) -> bool:
    return is_url(url)


class OutputStore:
    """A key/value view of a folder or an fsspec URL that writes whole objects.

    On a local disk, large objects can go through :meth:`put_soon`: written on a background
    I/O thread, bypassing the page cache where the filesystem allows (``diskwrite``).

    A remote store carries its :class:`~plexhub.storage.StorageOptions` (the endpoint, and
    credentials forwarded when it is sent to a Dask worker): a worker writes with them and
    needs no storage settings of its own. Every PUT is checked against the CRC32 the server
    reports for what it stored (where it reports one), and the Zarr metadata documents
    written are kept in :attr:`documents`, so the store can be validated from what was
    written, without reading it back. :meth:`batch` defers small writes and sends them
    together, concurrently, one document (the commit marker) last.
    """

    def __init__(self, root: str, *, direct: bool = True,
                 options: StorageOptions | None = None) -> None:
        self.root = root.rstrip("/")
        self.remote = is_remote(root)
        self.options = options
        if self.remote:
            if self.options is None:
                self.options = storage_options(self.root, credentials=True)
            self.fs, self._base = filesystem(self.root, self.options)
        else:
            Path(self.root).mkdir(parents=True, exist_ok=True)
        self._made: set[str] = set()
        self.disk = DirectFlag(direct and not self.remote)
        self.documents: dict[str, bytes] = {}  # the metadata documents written, by key
        self._deferred: dict[str, bytes] | None = None  # inside batch(): key -> body

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "direct": self.disk.enabled, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], direct=state.get("direct", True),  # type: ignore[misc]
                      options=state.get("options"))

    def __repr__(self) -> str:
        return f"OutputStore({self.root!r})"

    def top_level_keys(self) -> list[str]:
        """The names directly under the store's root ([] when it does not exist yet)."""
        if self.remote:  # one listing (no HEAD first)
            try:
                found = self.fs.ls(self._base, detail=False, refresh=True)
            except FileNotFoundError:
                return []
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in found]
        root = Path(self.root)
        return [p.name for p in root.iterdir()] if root.exists() else []

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if not self.remote else f"{self._base}/{key}"

    def _local_target(self, key: str) -> tuple[str, str]:
        # plain strings and a set of folders already made: pathlib and a mkdir per chunk
        # cost ~0.1 ms of GIL-held Python per write, which the other task threads wait on
        path = self._path(key)
        folder, _, name = path.rpartition("/")
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        return path, f"{folder}/.{name}.{os.urandom(8).hex()}.tmp"  # see TEMPORARY

    def object_path(self, key: str) -> str:
        """The path of ``key`` inside :attr:`fs` (remote) or on disk (local)."""
        return self._path(key)

    def put(self, key: str, data: bytes | Parts) -> None:
        """Write ``data`` (bytes, or parts written one after another) as ``key``, now (inside
        :meth:`batch` on a remote store: with the batch)."""
        parts: Parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        if key.rpartition("/")[2] in METADATA_NAMES:
            self.documents[key] = b"".join(parts)
        if self.remote:
            body = b"".join(parts)
            if self._deferred is not None:
                self._deferred[key] = body
                return
            self._upload(key, body)
            return
        write_now(*self._local_target(key), parts)

    def _upload(self, key: str, body: bytes) -> None:
        answer = self.fs.pipe_file(self._path(key), body)
        reported = answer.get("ChecksumCRC32") if isinstance(answer, dict) else None
        if reported is not None:  # the server's CRC32 of what it stored
            sent = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
            if reported != sent:
                raise OSError(f"{self.root}/{key}: the object store holds other bytes than "
                              f"were sent (CRC32 {reported}, sent {sent})")

    @contextlib.contextmanager
    def batch(self, last: str | None = None) -> Iterator[None]:
        """Small writes of the block go out together when it ends: on a remote store
        concurrently (on the uploader threads), then ``last`` alone, so it is written only
        once everything else is. Nothing is written if the block fails. A local store writes
        at once (a rename is cheap)."""
        if not self.remote or self._deferred is not None:
            yield
            return
        self._deferred = {}
        try:
            yield
            deferred = self._deferred
        finally:
            self._deferred = None
        final = deferred.pop(last, None) if last is not None else None
        self.put_many(deferred)
        if final is not None:
            self._upload(last or "", final)

    def put_many(self, objects: dict[str, bytes]) -> None:
        """Write every object, concurrently on a remote store; returns once all are."""
        if not self.remote or len(objects) <= 1 or self._deferred is not None:
            for key, body in objects.items():
                self.put(key, body)
            return
        self.documents.update((k, v) for k, v in objects.items()
                              if k.rpartition("/")[2] in METADATA_NAMES)
        futures = [_uploads().submit(self._upload, key, body)
                   for key, body in objects.items()]
        for f in futures:
            f.result()

    def put_soon(self, key: str, parts: Parts, pending: PendingWrites) -> None:
        """Write ``parts`` as ``key`` on the I/O thread (locally; large objects), else now;
        ``pending.wait()`` returns once it is written under its name."""
        if self.remote:  # a PUT waits on the network: on the uploader threads instead
            pending.add(_uploads().submit(lambda: self._upload(key, b"".join(parts))))
            return
        if sum(len(p) for p in parts) < DIRECT_MIN_BYTES:
            self.put(key, parts)
            return
        path, tmp = self._local_target(key)
        write_soon(path, tmp, parts, self.disk, pending)

    def get(self, key: str) -> bytes | None:
        if self._deferred is not None and key in self._deferred:
            return self._deferred[key]
        try:
            if self.remote:
                return bytes(self.fs.cat_file(self._path(key)))
            return Path(self._path(key)).read_bytes()
        except (FileNotFoundError, KeyError):
            return None

    def exists(self, key: str) -> bool:
        if self._deferred is not None and key in self._deferred:
            return True
        if self.remote:
            return bool(self.fs.exists(self._path(key)))
        return Path(self._path(key)).exists()

    def put_json(self, key: str, doc: dict[str, Any]) -> None:
        self.put(key, json_bytes(doc))

    def get_json(self, key: str) -> dict[str, Any] | None:
        data = self.get(key)
        return None if data is None else dict(json.loads(data))

    def remove(self, key: str) -> None:
        for k in [k for k in self.documents if not key or k == key or k.startswith(f"{key}/")]:
            del self.documents[k]
        if self.remote:
            with contextlib.suppress(FileNotFoundError):  # one listing, no HEAD first
                self.fs.rm(self._path(key), recursive=True)
            return
        p = Path(self._path(key))
        self._made.clear()  # folders made earlier may be gone now
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    def zarr_store(self, key: str = "") -> Any:
        """A zarr-python store rooted at ``key`` (for metadata and read-back)."""
        import zarr.storage

        url = self.root if not key else f"{self.root}/{key}"
        if self.remote:
            return StoreLocation(url, self.options).zarr_store(read_only=False)
        Path(url).mkdir(parents=True, exist_ok=True)
        return zarr.storage.LocalStore(url)


def json_bytes(doc: dict[str, Any]) -> bytes:
    """A metadata document as plexhub writes it (indented, no NaN)."""
    return json.dumps(doc, indent=2, allow_nan=False).encode()


UPLOAD_THREADS = 8  # PUTs in flight per process: a task computes on while its shards upload
_UPLOADS: ThreadPoolExecutor | None = None
_UPLOADS_LOCK = threading.Lock()


def _uploads() -> ThreadPoolExecutor:
    global _UPLOADS
    with _UPLOADS_LOCK:
        if _UPLOADS is None:
            _UPLOADS = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="plexhub-upload")
        return _UPLOADS


@dataclass(frozen=True)
class Codec:
    """Blosc settings shared by the metadata and the encoder."""

    cname: str = "lz4"
    clevel: int = 5

    @property
    def enabled(self) -> bool:
        return self.cname != "none"

    def blosc(self) -> Blosc:
        return Blosc(cname=self.cname, clevel=self.clevel, shuffle=Blosc.SHUFFLE)

    def encode(self, chunk: Array) -> bytes:
        data = np.ascontiguousarray(chunk.astype(chunk.dtype.newbyteorder("<"), copy=False))
        if not self.enabled:
            return data.tobytes()
        return bytes(self.blosc().encode(data))

    def array_metadata(self, shape: tuple[int, ...], chunks: tuple[int, ...],
                       shards: tuple[int, ...] | None, dtype: np.dtype[Any], zarr_format: int,
                       dimension_names: list[str] | None = None,
                       separator: str = "/") -> dict[str, Any]:
        """The array metadata document (``zarr.json`` or ``.zarray``) that
        ``zarr.create_array`` writes for these arguments, fill value 0, without importing
        zarr-python (~0.3 s) on a conversion's critical path. Parity with zarr-python is
        tested for every dtype and codec plexhub writes."""
        dtype = np.dtype(dtype)
        fill: Any = False if dtype.kind == "b" else (0.0 if dtype.kind == "f" else 0)
        if zarr_format == 2:
            comp = None if not self.enabled else {
                "id": "blosc", "cname": self.cname, "clevel": self.clevel,
                "shuffle": Blosc.SHUFFLE, "blocksize": 0}
            return {"shape": list(shape), "chunks": list(chunks), "dtype": dtype.str,
                    "fill_value": fill, "order": "C", "filters": None,
                    "dimension_separator": separator, "compressor": comp, "zarr_format": 2}
        little = {"name": "bytes", "configuration": {"endian": "little"}}
        inner: list[dict[str, Any]] = [little if dtype.itemsize > 1 else {"name": "bytes"}]
        if self.enabled:
            inner.append({"name": "blosc", "configuration": {
                "typesize": dtype.itemsize, "cname": self.cname, "clevel": self.clevel,
                "shuffle": "shuffle", "blocksize": 0}})
        codecs = inner
        grid = list(chunks)
        if shards is not None:
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": list(chunks), "codecs": inner,
                "index_codecs": [little, {"name": "crc32c"}], "index_location": "end"}}]
            grid = list(shards)
        doc: dict[str, Any] = {
            "shape": list(shape), "data_type": "bool" if dtype.kind == "b" else dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": fill, "codecs": codecs, "attributes": {}}
        if dimension_names is not None:
            doc["dimension_names"] = list(dimension_names)
        doc.update({"zarr_format": 3, "node_type": "array", "storage_transformers": []})
        return doc


def remove_stale_temporaries(root: str) -> int:
    """Delete the temporary files a killed writer left in the local store ``root``; returns
    how many. Only for a store no one else is writing (the conversion holds its lock). Never
    follows a symbolic link: a link (even named like a temporary) is left alone, and so is
    everything behind it; nothing outside ``root`` is touched."""
    removed = 0
    try:
        if stat.S_ISLNK(os.lstat(root).st_mode):
            return 0
    except FileNotFoundError:
        return 0
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def pad_to(block: Array, shape: tuple[int, ...], fill: Any = 0) -> Array:
    if block.shape == shape:
        return block
    out = np.full(shape, fill, block.dtype)
    out[tuple(slice(0, n) for n in block.shape)] = block
    return out


def chunk_key(prefix: str, index: tuple[int, ...], zarr_format: int) -> str:
    parts = "/".join(str(i) for i in index)
    return f"{prefix}/c/{parts}" if zarr_format == 3 else f"{prefix}/{parts}"


def encode_shard(codec: Codec, block: Array, chunk: tuple[int, ...],
                 shard: tuple[int, ...]) -> list[bytes]:
    """Encode ``block`` (the in-bounds part of one shard) as a v3 ``sharding_indexed`` blob.

    Inner chunks are in C order, the index (offset, length per chunk, uint64) follows them,
    then its CRC32C; chunks wholly outside the array are marked empty. Returned as the parts
    to write one after another (the writer copies them once, into its write buffer).
    """
    grid = tuple(s // c for s, c in zip(shard, chunk, strict=True))
    pieces: list[bytes | None] = []
    for pos in np.ndindex(*grid):
        sl = tuple(slice(p * c, (p + 1) * c) for p, c in zip(pos, chunk, strict=True))
        piece = block[sl]
        pieces.append(None if piece.size == 0 else codec.encode(pad_to(piece, chunk)))
    return shard_parts(pieces, grid)


def encode_tile_shard(codec: Codec, tiles: Array, grid: tuple[int, ...]) -> list[bytes]:
    """Like :func:`encode_shard` for a full shard given as its inner chunks, ``tiles`` of
    shape (ny, nx, chunk_y, chunk_x) in C order of ``grid``: each is encoded where it is."""
    return shard_parts([codec.encode(tiles[pos]) for pos in np.ndindex(*tiles.shape[:2])],
                       grid)


def shard_parts(pieces: list[bytes | None], grid: tuple[int, ...]) -> list[bytes]:
    """The encoded inner chunks (C order of ``grid``; None = empty), their index and CRC."""
    index = np.full((*grid, 2), MAX_UINT64, dtype="<u8")
    flat = index.reshape(-1, 2)
    parts: list[bytes] = []
    offset = 0
    for i, data in enumerate(pieces):
        if data is None:
            continue
        flat[i] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    index_bytes = index.tobytes()
    crc = int(google_crc32c.value(index_bytes)).to_bytes(4, "little")
    return [*parts, index_bytes, crc]
