"""Background, page-cache-bypassing writes of large objects (ome_pipeline/diskwrite.py)."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

import plexhub.ome_pipeline.diskwrite as diskwrite
from plexhub.ome_pipeline.chunkio import OutputStore
from plexhub.ome_pipeline.diskwrite import ALIGN, DIRECT_MIN_BYTES, PendingWrites

SIZES = [DIRECT_MIN_BYTES, DIRECT_MIN_BYTES + 1, 1 << 20, 3 * ALIGN * 100 + 17, 5_000_001]


def blob(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed) & 0xFF for i in range(256)) * (n // 256) + bytes(n % 256)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_large_objects_are_written_exactly_with_o_direct(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path / "s"))
    pending = PendingWrites()
    for i, n in enumerate(SIZES):
        data = blob(n, i)
        store.put_soon(f"a/{i}", [data[:1000], data[1000:]], pending)  # parts, one file
    pending.wait()
    for i, n in enumerate(SIZES):
        assert (tmp_path / "s" / "a" / str(i)).read_bytes() == blob(n, i)
    # this machine's disk (ext4) takes O_DIRECT: every large object went past the page cache
    assert store.disk.enabled
    assert (store.disk.direct_files, store.disk.buffered_files) == (len(SIZES), 0)
    assert leftovers(tmp_path) == []


def test_small_objects_are_written_at_once(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path))
    pending = PendingWrites()
    store.put_soon("x/y", [b"abc", b"def"], pending)
    assert (tmp_path / "x" / "y").read_bytes() == b"abcdef"  # before any wait
    assert store.disk.direct_files == 0


def test_a_filesystem_refusing_o_direct_gets_buffered_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: str, flags: int, *args: int) -> int:
        if flags & diskwrite.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)  # as tmpfs / FUSE answer
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    store = OutputStore(str(tmp_path))
    pending = PendingWrites()
    for i in range(3):
        store.put_soon(f"k{i}", [blob(1 << 20, i)], pending)
    pending.wait()
    assert not store.disk.enabled  # it stopped asking after the first refusal
    assert store.disk.buffered_files == 3
    for i in range(3):
        assert (tmp_path / f"k{i}").read_bytes() == blob(1 << 20, i)


def test_direct_writes_can_be_switched_off(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path), direct=False)
    pending = PendingWrites()
    store.put_soon("k", [blob(1 << 20)], pending)
    pending.wait()
    assert (store.disk.direct_files, store.disk.buffered_files) == (0, 1)
    assert (tmp_path / "k").read_bytes() == blob(1 << 20)


def test_a_failed_write_is_raised_leaves_nothing_and_frees_its_buffer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    store = OutputStore(str(tmp_path))
    for i in range(2 * diskwrite.IN_FLIGHT):  # more failures than buffers: none may leak
        pending = PendingWrites()
        store.put_soon(f"k{i}", [blob(1 << 20)], pending)
        with pytest.raises(OSError, match="No space left"):
            pending.wait()
        assert not (tmp_path / f"k{i}").exists()
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    pending = PendingWrites()
    store.put_soon("ok", [blob(1 << 20)], pending)
    pending.wait()
    assert (tmp_path / "ok").read_bytes() == blob(1 << 20)


def test_when_done_runs_after_every_write_and_never_after_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = OutputStore(str(tmp_path))
    gate = threading.Event()
    real_direct = diskwrite._write_direct

    def slow(*args: object) -> bool:
        gate.wait(10)
        return real_direct(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(diskwrite, "_write_direct", slow)
    seen: list[bool] = []
    pending = PendingWrites()
    store.put_soon("a", [blob(1 << 20)], pending)
    store.put_soon("b", [blob(1 << 20, 1)], pending)
    pending.when_done(lambda: seen.append((tmp_path / "a").exists() and
                                          (tmp_path / "b").exists()))
    assert seen == []  # the disk has not answered yet
    gate.set()
    pending.wait()
    assert seen == [True]

    now: list[int] = []
    PendingWrites().when_done(lambda: now.append(1))  # nothing pending: at once
    assert now == [1]

    def broken(*args: object) -> bool:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(diskwrite, "_write_direct", broken)
    failed = PendingWrites()
    store.put_soon("c", [blob(1 << 20)], failed)
    called: list[int] = []
    failed.when_done(lambda: called.append(1))
    with pytest.raises(OSError, match="Input/output"):
        failed.wait()
    assert called == []


def test_a_conversion_pass_gives_its_buffers_back(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path))
    pending = PendingWrites()
    for i in range(diskwrite.IN_FLIGHT + 2):
        store.put_soon(f"k{i}", [blob(2 << 20, i)], pending)
    pending.wait()
    assert diskwrite._buffers._free  # kept for the next writes of the pass
    diskwrite.release_buffers()
    assert diskwrite._buffers._free == []
    store.put_soon("again", [blob(2 << 20)], pending)  # and new ones are made on demand
    pending.wait()
    assert (tmp_path / "again").read_bytes() == blob(2 << 20)
