"""Conversions that are killed or run out of space.

- SIGKILL while a file is written (after its temporary is complete, before the rename: the
  moment a stray ``.tmp`` is left), then the same command again: the finished store is
  byte-identical to an uninterrupted run, every file compared by name and bytes, no ``.tmp``.
  Both write paths: the small buffered files and the large shards of the background I/O
  thread. (Before, the stray temporary ended up in the finished store.)
- A destination that runs out of space: ``plexhub convert`` fails with one line naming the
  DESTINATION and "no space left on device" (before: the source and an OSError), exit code
  2, nothing at DST. The ENOSPC is real where this machine lets a test mount a small tmpfs in
  a private mount namespace (``unshare -m``, root, or ``unshare -Urm``), else simulated in
  the write function. An API conversion job fails with the same message (before: "internal
  error while converting") and a retry resumes once there is space.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import plexhub.ome_pipeline.diskwrite as diskwrite
from plexhub.cli import main
from plexhub.ome_pipeline.chunkio import remove_stale_temporaries
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api

SMALL = SyntheticSpec(size_y=1536, size_x=1280, channels=3, tile=256, seed=5)
SMALL_ENV = {"PLEXHUB_CHUNK_SIZE": "64", "PLEXHUB_BLOCK_SIZE": "128", "PLEXHUB_WORKERS": "2",
             "PLEXHUB_CHECKPOINT_SECONDS": "0"}
# 1024² uint16 shards: over DIRECT_MIN_BYTES, written by the background I/O thread
BIG = SyntheticSpec(size_y=2048, size_x=2048, channels=2, tile=512, seed=7)
BIG_ENV = {"PLEXHUB_CHUNK_SIZE": "256", "PLEXHUB_BLOCK_SIZE": "1024", "PLEXHUB_WORKERS": "2",
           "PLEXHUB_CHECKPOINT_SECONDS": "0"}

# Runs `plexhub convert` and SIGKILLs the process right before the n-th rename of a finished
# temporary file of at least `size` bytes (argv: n, size, src, dst), on whichever thread
# does it (the workers for small files, the I/O thread for large shards).
KILL_AT_RENAME = textwrap.dedent("""
    import os, signal, sys, types
    import plexhub.ome_pipeline.diskwrite as dw
    n, size, seen = int(sys.argv[1]), int(sys.argv[2]), [0]
    def replace(tmp, path):
        if os.path.getsize(tmp) >= size:
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, path)
    proxy = types.ModuleType("os")
    proxy.__dict__.update(os.__dict__)
    proxy.replace = replace
    dw.os = proxy
    from plexhub.cli import main
    sys.exit(main(["convert", "-q", sys.argv[3], sys.argv[4]]))
""")


def cli(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plexhub", "convert", "-q", *map(str, args)],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)


def every_file(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "env", "kill_at", "size"), [
    (SMALL, SMALL_ENV, 300, 0),  # the 300th file: several passes' tasks are done
    (BIG, BIG_ENV, 5, 1 << 20),  # the 5th of the eight level-0 shards (2 MiB, I/O thread)
], ids=["small", "big"])
def test_sigkill_while_writing_then_resume_is_byte_identical(
        tmp_path: Path, spec: SyntheticSpec, env: dict[str, str], kill_at: int,
        size: int) -> None:
    src = write_ome_tiff(tmp_path / "src.ome.tif", spec)
    ref, dst = tmp_path / "ref.ome.zarr", tmp_path / "dst.ome.zarr"
    assert cli(env, src, ref).returncode == 0
    killed = subprocess.run([sys.executable, "-c", KILL_AT_RENAME, str(kill_at), str(size),
                             str(src), str(dst)], env={**os.environ, **env},
                            capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    partial = tmp_path / ".dst.ome.zarr.partial"
    assert list(partial.rglob("*.tmp")), "the kill must leave a temporary file behind"
    assert not dst.exists()
    res = cli(env, src, dst)
    assert res.returncode == 0, res.stderr
    assert "resumed:" in res.stdout
    assert not partial.exists()
    want, got = every_file(ref), every_file(dst)
    assert sorted(got) == sorted(want)  # no .tmp, no .plexhub, nothing missing
    assert [k for k in want if got[k] != want[k]] == []


def test_stale_temporaries_are_removed_without_following_links(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "0" / "c").mkdir(parents=True)
    (store / "0" / "c" / ".7.0123456789abcdef.tmp").write_bytes(b"torn")
    (store / "0" / "c" / "7").write_bytes(b"chunk")
    (store / ".zattrs").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".x.0123456789abcdef.tmp").write_bytes(b"not ours")
    (store / "linked").symlink_to(outside, target_is_directory=True)
    (store / ".y.fedcba9876543210.tmp").symlink_to(outside / ".x.0123456789abcdef.tmp")
    assert remove_stale_temporaries(str(store)) == 1
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == \
        [".y.fedcba9876543210.tmp", ".zattrs", "0", "0/c", "0/c/7", "linked"]
    assert (outside / ".x.0123456789abcdef.tmp").read_bytes() == b"not ours"
    link_root = tmp_path / "link-root"
    link_root.symlink_to(outside, target_is_directory=True)
    assert remove_stale_temporaries(str(link_root)) == 0
    assert (outside / ".x.0123456789abcdef.tmp").exists()


# ------------------------------------------------------------------ disk full

def _private_tmpfs() -> list[str] | None:
    """The command prefix that runs a shell in a private mount namespace where it may mount
    a tmpfs, or None where this machine does not allow it."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-Urm"]):
        probe = subprocess.run([*prefix, "sh", "-c", 'd=$(mktemp -d) && '
                                'mount -t tmpfs -o size=64k plexhub-probe "$d"'],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return prefix
    return None


def _enospc_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> Callable[[], None]:
    """Every buffered or direct file write after the first ``writes`` fails with ENOSPC, as
    os.write does on a full disk. Returns a function that gives the disk its space back."""
    real_all, real_direct = diskwrite._write_all, diskwrite._write_direct
    count = [0]

    def full() -> None:
        count[0] += 1
        if count[0] > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_all(*args: object) -> None:
        full()
        real_all(*args)  # type: ignore[arg-type]

    def write_direct(*args: object) -> bool:
        full()
        return real_direct(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(diskwrite, "_write_all", write_all)
    monkeypatch.setattr(diskwrite, "_write_direct", write_direct)
    return monkeypatch.undo


def _assert_names_destination(line: str, dst: Path, src: Path) -> None:
    assert line.startswith(f"plexhub: error: {dst}: could not be written: "
                           "no space left on device"), line
    assert str(src) not in line
    assert "Traceback" not in line


@pytest.mark.slow
def test_disk_full_cli_names_the_destination(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = write_ome_tiff(tmp_path / "src.ome.tif", SMALL)
    disk = tmp_path / "disk"
    disk.mkdir()
    dst = disk / "out.ome.zarr"
    prefix = _private_tmpfs()
    if prefix is not None:  # a real ENOSPC: a 1 MiB tmpfs, the store needs several
        script = (f'mount -t tmpfs -o size=1m plexhub-full "{disk}" || exit 99\n'
                  f'"{sys.executable}" -m plexhub convert -q "{src}" "{dst}"\n'
                  f'echo "rc=$?" >&2\nls -A "{disk}" >&2\n')
        res = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True,
                             env={**os.environ, **SMALL_ENV}, timeout=300)
        lines = res.stderr.strip().splitlines()
        assert "rc=2" in lines, res.stderr
        errors = [ln for ln in lines if ln.startswith("plexhub:")]
        assert len(errors) == 1, res.stderr
        _assert_names_destination(errors[0], dst, src)
        left = lines[lines.index("rc=2") + 1:]
        assert "out.ome.zarr" not in left  # only the hidden partial, for a rerun to resume
        assert not dst.exists()  # and nothing of it outside the namespace
        return
    for key, value in SMALL_ENV.items():  # no tmpfs here: the same failure, simulated
        monkeypatch.setenv(key, value)
    _enospc_after(monkeypatch, writes=50)
    assert main(["convert", "-q", str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    _assert_names_destination(err[0], dst, src)
    assert not dst.exists()


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_disk_full_api_job_names_the_destination_and_a_retry_resumes(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("S1")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=512, size_x=512, channels=2, tile=128, seed=2))
    give_space_back = _enospc_after(monkeypatch, writes=20)
    body = api.post("/api/v1/studies/S1/images", {"source": "a.ome.tif"}).json()
    job = api.wait_job(body["job_id"])
    assert job["state"] == "failed", job
    stores = api.settings.stores_dir / "S1"
    [partial] = stores.glob(".*.partial")  # kept for the retry; nothing visible
    dst = stores / partial.name[1:].removesuffix(".partial")
    assert job["error"].startswith(f"{dst}: could not be written: no space left on device")
    assert "internal error" not in job["error"]
    assert not dst.exists()
    assert api.get(f"/api/v1/images/{body['image_id']}").json()["status"] == "failed"
    give_space_back()
    r = api.post(f"/api/v1/jobs/{body['job_id']}/retry")
    assert r.status_code == 200, r.text
    assert api.wait_job(body["job_id"])["state"] == "done"
    assert dst.is_dir()
    assert not list(dst.rglob("*.tmp"))


def test_cli_names_the_file_an_os_error_is_about(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Any other OSError that names a file: the one line names that file, not the source."""
    import plexhub.ome_pipeline.conversion as conversion

    src = write_ome_tiff(tmp_path / "src.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                                 channels=1, tile=64))
    companion = tmp_path / "src.companion.ome"

    def unreadable(*args: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(companion))

    monkeypatch.setattr(conversion, "open_source", unreadable)
    assert main(["convert", "-q", str(src), str(tmp_path / "out.ome.zarr")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"plexhub: error: {companion}: input/output error"), line


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_an_unreadable_source_fails_the_job_naming_the_source(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError reading the source: the job says which file and why (before: "internal
    error while converting; see the logs")."""
    import plexhub.ome_pipeline.conversion as conversion

    api.study("S1")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=64, size_x=64, channels=1, tile=64))

    def unreadable(path: str, *args: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), path)

    monkeypatch.setattr(conversion, "open_source", unreadable)
    body = api.post("/api/v1/studies/S1/images", {"source": "a.ome.tif"}).json()
    job = api.wait_job(body["job_id"])
    assert job["state"] == "failed", job
    assert job["error"] == f"{api.incoming / 'a.ome.tif'}: could not be converted: " \
                           "input/output error"
