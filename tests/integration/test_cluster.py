"""The whole cluster on one machine: PostgreSQL, SeaweedFS (S3), a Dask scheduler with 2
workers started without any AWS variable, 2 API replicas (``serve --no-jobs``) and a job
worker (``plexhub worker``), each its own process on loopback. A source on S3 is ingested into
an S3 store root; the job worker is killed mid-job (another takes the job over) and a Dask
worker mid-task; the store must be the local conversion's, object for object, served the same
by both replicas, with one image row, one job and one store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from plexhub.client import ApiClient
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.hub import wait_ok
from tests.helpers.net import free_port
from tests.helpers.postgres import fresh_database
from tests.helpers.procs import stop_group
from tests.helpers.s3 import AWS, files, filesystem, objects, put_tree
from tests.helpers.seaweedfs import seaweedfs_server

TOKEN = "cluster-admin-token-0123456789abcdef"
SPEC = SyntheticSpec(size_y=1536, size_x=1536, channels=4, tile=256, seed=15)
SIZES = {"PLEXHUB_CHUNK_SIZE": "128", "PLEXHUB_BLOCK_SIZE": "256"}


def _bare_env() -> dict[str, str]:
    """This process's environment without any AWS or plexhub setting."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "FSSPEC_S3", "PLEXHUB_"))}


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_group(proc)


def _until(what: str, check: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                              for p in logs if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.s3
def test_the_whole_cluster_on_one_machine(tmp_path: Path, pg_server: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_ome_tiff(tmp_path / "a.ome.tif", SPEC)
    local = tmp_path / "local.ome.zarr"
    convert(source, local, settings=Settings(chunk_size=128, block_size=256))
    db = fresh_database(pg_server)
    logs: list[Path] = []

    def log(name: str) -> Path:
        logs.append(tmp_path / f"{name}.log")
        return logs[-1]

    with ExitStack() as stack:
        endpoint = stack.enter_context(seaweedfs_server())
        for k, v in {**AWS, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(k, v)  # this process (the test) only
        fs = filesystem()
        for bucket in ("incoming", "stores"):
            fs.mkdir(bucket)
        put_tree(source, "s3://incoming/a.ome.tif")

        # Dask: a scheduler and 2 workers (no nanny: a killed worker stays dead), no AWS_*
        sched_port = free_port()
        scheduler = f"tcp://127.0.0.1:{sched_port}"
        bare = _bare_env()
        stack.enter_context(_process(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(sched_port), "--no-dashboard", "--no-show"], bare, log("scheduler")))

        def dask_worker(name: str) -> subprocess.Popen[bytes]:
            return stack.enter_context(_process(
                [sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
                 "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--name", name], bare, log(name)))

        dask_workers = [dask_worker("dask-a"), dask_worker("dask-b")]

        common = {**bare, **AWS, "AWS_ENDPOINT_URL": endpoint, **SIZES,
                  "PLEXHUB_DATABASE_URL": db, "PLEXHUB_ADMIN_TOKEN": TOKEN,
                  "PLEXHUB_STORE_ROOT": "s3://stores/plexhub",
                  "PLEXHUB_INGEST_ROOTS": '["s3://incoming"]',
                  "PLEXHUB_DASK_SCHEDULER": scheduler, "PLEXHUB_CHECKPOINT_SECONDS": "0",
                  "PLEXHUB_JOB_HEARTBEAT_SECONDS": "0.5", "PLEXHUB_JOB_LEASE_SECONDS": "3"}

        def plexhub(args: list[str], name: str) -> subprocess.Popen[bytes]:
            data = tmp_path / name  # each process its own data dir: they share no disk
            return stack.enter_context(_process(
                [sys.executable, "-m", "plexhub", *args],
                {**common, "PLEXHUB_DATA_DIR": str(data)}, log(name)))

        bases = []
        for name in ("api-1", "api-2"):
            port = free_port()
            api = plexhub(["serve", "--no-jobs", "--port", str(port), "--log-level",
                           "warning"], name)
            bases.append(f"http://127.0.0.1:{port}/api/v1")
            wait_ok(f"{bases[-1]}/health", api, logs[-1], timeout=90)
        h = {"Authorization": f"Bearer {TOKEN}"}
        httpx.post(f"{bases[0]}/studies", headers=h, timeout=30, json={
            "code": "S1", "title": "t", "sponsor": "acme", "profile": "non-glp"
        }).raise_for_status()

        with ApiClient(bases[1], TOKEN) as client:
            accepted = client.ingest("S1", "s3://incoming/a.ome.tif")
            job_id = accepted["job_id"]

            def progress() -> float:
                return float(client.job(job_id)["progress"])

            # the first job worker: killed (SIGKILL, no hand-back) once the job has moved
            first = plexhub(["worker"], "worker-1")
            _until("the job to start", lambda: progress() > 0.05, 120, logs)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            at_kill = progress()
            assert client.job(job_id)["state"] == "running"
            assert at_kill < 1.0

            # a second worker takes the job over once the lease lapses
            plexhub(["worker"], "worker-2")
            _until("the takeover to make progress", lambda: progress() > at_kill + 0.05, 120,
                   logs)
            # a Dask worker dies mid-task; the scheduler reruns its tasks on the other
            os.kill(dask_workers[0].pid, signal.SIGKILL)
            dask_workers[0].wait(timeout=30)
            job = client.wait_for_job(job_id, 180, interval=0.2)
            assert job["state"] == "done", (job, [p.read_text()[-3000:] for p in logs])

        # one store on S3, the local conversion's object for object; nothing else written
        stores = sorted({k.split(".ome.zarr/")[0] for k in objects("s3://stores/plexhub")})
        assert stores == ["S1/" + stores[0].split("/")[1]], stores
        store_url = f"s3://stores/plexhub/{stores[0]}.ome.zarr"
        assert objects(store_url) == files(local)
        for name in ("api-1", "api-2", "worker-1", "worker-2"):
            written = [p for p in (tmp_path / name).rglob("*")
                       if p.is_file() and ("zarr" in p.name or ".partial" in str(p))]
            assert written == [], (name, written)

        # one image row, one job
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from images")).scalar() == 1
            assert conn.execute(sa.text("select count(*) from jobs")).scalar() == 1
            assert conn.execute(sa.text("select state from jobs")).scalar() == "done"
        engine.dispose()

        # tiles through both replicas, the same bytes
        image = accepted["image_id"]
        tiles = []
        for base in bases:
            r = httpx.get(f"{base}/images/{image}/tiles/0/0/0.png", headers=h, timeout=30)
            assert r.status_code == 200, r.text
            assert r.content.startswith(b"\x89PNG")
            tiles.append(r.content)
            raw = httpx.get(f"{base}/images/{image}/zarr/zarr.json", headers=h, timeout=30)
            assert raw.status_code == 200
            assert raw.content == (local / "zarr.json").read_bytes()
        assert tiles[0] == tiles[1]
