"""A conversion killed mid-way resumes and yields exactly what an uninterrupted run does."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import plexhub.ome_pipeline.diskwrite as diskwrite
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.execute import Accumulator
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.ome_pipeline.writer import TaskResult
from plexhub.settings import Settings
from tests.helpers.faults import fail_task
from tests.helpers.zarrs import arrays

SPEC = SyntheticSpec(size_y=1536, size_x=1280, channels=3, tile=256, seed=5)
ENV = {"PLEXHUB_CHUNK_SIZE": "64", "PLEXHUB_BLOCK_SIZE": "128", "PLEXHUB_WORKERS": "1",
       "PLEXHUB_CHECKPOINT_SECONDS": "0"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("resume") / "src.ome.tif", SPEC)


def run_cli(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV}
    return subprocess.run([sys.executable, "-m", "plexhub", "convert", "-q", *map(str, args)],
                          env=env, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def assert_same_store(a: Path, b: Path) -> None:
    xa, xb = arrays(a), arrays(b)
    assert sorted(xa) == sorted(xb)
    for key in xa:
        assert np.array_equal(xa[key], xb[key]), key
    assert json.loads((a / "histograms" / "zarr.json").read_text()) == \
        json.loads((b / "histograms" / "zarr.json").read_text())
    assert json.loads((a / "zarr.json").read_text()) == json.loads((b / "zarr.json").read_text())


def test_sigkill_then_rerun_resumes_and_matches(source: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.ome.zarr"
    assert run_cli(source, ref).returncode == 0
    dst = tmp_path / "dst.ome.zarr"
    state = tmp_path / ".dst.ome.zarr.partial" / ".plexhub" / "state.npz"
    proc = subprocess.Popen([sys.executable, "-m", "plexhub", "convert", "-q", str(source),
                             str(dst)], env={**os.environ, **ENV})
    done_at_kill = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            done_at_kill = len(Accumulator.from_bytes(state.read_bytes()).done)
            if done_at_kill >= 40:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the conversion finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not dst.exists(), "a killed conversion must not leave anything at DST"
    assert done_at_kill >= 40
    res = run_cli(source, dst)
    assert res.returncode == 0, res.stderr
    resumed = int(res.stdout.split("resumed: ")[1].split(" of ")[0])
    assert resumed >= done_at_kill
    assert not (tmp_path / ".dst.ome.zarr.partial").exists()
    assert not (dst / ".plexhub").exists()
    assert_same_store(ref, dst)


def test_crash_in_a_task_keeps_the_partial_and_resumes(source: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(chunk_size=64, block_size=128, workers=2, checkpoint_seconds=0.05)
    ref = tmp_path / "ref.ome.zarr"
    convert(source, ref, settings=settings)
    restore = fail_task(monkeypatch, 60, "disk went away")
    dst = tmp_path / "dst.ome.zarr"
    with pytest.raises(OSError, match="disk went away"):
        convert(source, dst, settings=settings)
    assert not dst.exists()
    assert (tmp_path / ".dst.ome.zarr.partial" / ".plexhub" / "state.npz").exists()
    restore()
    result = convert(source, dst, settings=settings)
    assert result.tasks_resumed >= 55  # all finished before the crash
    assert_same_store(ref, dst)


def test_a_partial_from_other_options_is_discarded(source: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(chunk_size=64, block_size=128, workers=1, checkpoint_seconds=0.0)
    restore = fail_task(monkeypatch, 30, "boom")
    dst = tmp_path / "dst.ome.zarr"
    with pytest.raises(OSError, match="boom"):
        convert(source, dst, settings=settings)
    restore()
    result = convert(source, dst, settings=settings, ngff_version="0.4")
    assert result.tasks_resumed == 0
    assert (dst / ".zattrs").exists()
    assert not list(dst.glob("zarr.json"))


# Shards large enough (1024^2 uint16) to go through the background I/O thread with O_DIRECT.
BIG = SyntheticSpec(size_y=2048, size_x=2048, channels=2, tile=512, seed=7)
BIG_SETTINGS = Settings(chunk_size=256, block_size=1024, workers=2, checkpoint_seconds=0.0)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("resume-big") / "big.ome.tif", BIG)


@pytest.fixture(scope="module")
def big_ref(big_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = tmp_path_factory.mktemp("resume-big-ref") / "ref.ome.zarr"
    convert(big_source, ref, settings=BIG_SETTINGS)
    return ref


def before_each_direct_write(monkeypatch: pytest.MonkeyPatch,
                             hook: Callable[[int], None]) -> None:
    """Call ``hook(n)`` before the n-th (from 1) O_DIRECT write of the I/O thread."""
    real_direct = diskwrite._write_direct
    calls = {"n": 0}

    def hooked(*args: object) -> bool:
        calls["n"] += 1
        hook(calls["n"])
        return real_direct(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(diskwrite, "_write_direct", hooked)


def test_a_task_counts_as_done_only_once_its_shards_are_on_disk(
        big_source: Path, big_ref: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    slow_writes: list[int] = []

    def slow_disk(n: int) -> None:
        slow_writes.append(n)
        time.sleep(0.05)  # the task goes on (and may finish) while its shard is in flight

    before_each_direct_write(monkeypatch, slow_disk)
    work = tmp_path / ".dst.ome.zarr.partial"
    real_record = Accumulator.record
    checked: list[str] = []

    def record(self: Accumulator, result: TaskResult) -> None:
        _image, pass_index, _t, _z, c, by, bx = result.task_id.split(":")
        if pass_index == "p0":  # its level-0 shard is the file a resume would skip
            assert (work / "0" / "c" / c[1:] / by / bx).is_file(), result.task_id
            checked.append(result.task_id)
        real_record(self, result)

    monkeypatch.setattr(Accumulator, "record", record)
    dst = tmp_path / "dst.ome.zarr"
    convert(big_source, dst, settings=BIG_SETTINGS)
    assert len(slow_writes) >= 8
    assert len(checked) == 8
    assert_same_store(big_ref, dst)


def test_a_failed_background_write_fails_the_conversion_and_it_resumes(
        big_source: Path, big_ref: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full_once(n: int) -> None:
        if n == 5:
            raise OSError(errno.ENOSPC, "No space left on device")

    before_each_direct_write(monkeypatch, disk_full_once)
    dst = tmp_path / "dst.ome.zarr"
    with pytest.raises(OSError, match="could not be written: no space left on device"):
        convert(big_source, dst, settings=BIG_SETTINGS)
    assert not dst.exists()
    partial = tmp_path / ".dst.ome.zarr.partial"
    assert not list(partial.rglob("*.tmp"))  # no torn or temporary file is left
    result = convert(big_source, dst, settings=BIG_SETTINGS)
    assert result.tasks_resumed >= 1
    assert_same_store(big_ref, dst)
