"""A conversion killed mid-way resumes and yields exactly what an uninterrupted run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.execute import Accumulator
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.faults import fail_task

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


def arrays(root: Path) -> dict[str, np.ndarray]:
    out = {}
    g = zarr.open_group(root, mode="r")
    for path, arr in g.arrays():
        out[path] = arr[...]
    for path, sub in g.groups():
        for name, arr in sub.arrays():
            out[f"{path}/{name}"] = arr[...]
    return out


def assert_same_store(a: Path, b: Path) -> None:
    xa, xb = arrays(a), arrays(b)
    assert sorted(xa) == sorted(xb)
    for key in xa:
        assert np.array_equal(xa[key], xb[key]), key
    assert json.loads((a / "histograms.json").read_text()) == \
        json.loads((b / "histograms.json").read_text())
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
