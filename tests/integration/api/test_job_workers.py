"""API replicas that only serve (``plexhub serve --no-jobs``) and job workers that only convert
(``plexhub worker``), separate processes sharing nothing but the PostgreSQL catalog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.httpapi import ok
from tests.helpers.hub import wait_ok
from tests.helpers.net import free_port
from tests.helpers.postgres import fresh_database
from tests.helpers.procs import stop_group

TOKEN = "workers-admin-token-0123456789abcdef"


@contextmanager
def plexhub(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "plexhub", *args], env=env,
                            start_new_session=True, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_group(proc, timeout=60)


def test_worker_help_exits_0() -> None:
    res = subprocess.run([sys.executable, "-m", "plexhub", "worker", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--scheduler" in res.stdout


def test_no_jobs_api_queues_and_a_separate_worker_converts(tmp_path: Path,
                                                           pg_server: str) -> None:
    url = fresh_database(pg_server)
    api_dir, worker_dir = tmp_path / "api", tmp_path / "worker"  # each its own data dir
    stores = tmp_path / "shared-stores"  # what they share: the database and the store root
    (api_dir / "incoming").mkdir(parents=True)
    common = {**os.environ, "PLEXHUB_DATABASE_URL": url, "PLEXHUB_ADMIN_TOKEN": TOKEN,
              "PLEXHUB_STORE_ROOT": str(stores),
              "PLEXHUB_CHUNK_SIZE": "128", "PLEXHUB_BLOCK_SIZE": "256",
              "PLEXHUB_JOB_HEARTBEAT_SECONDS": "0.5", "PLEXHUB_JOB_LEASE_SECONDS": "5"}
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    h = {"Authorization": f"Bearer {TOKEN}"}
    with plexhub(["serve", "--no-jobs", "--port", str(port), "--log-level", "warning"],
                 {**common, "PLEXHUB_DATA_DIR": str(api_dir)}, tmp_path / "api.log") as api:
        wait_ok(f"{base}/health", api, tmp_path / "api.log", timeout=60)
        ok(httpx.post(f"{base}/studies", headers=h, json={
            "code": "S1", "title": "t", "sponsor": "acme", "profile": "non-glp"}))
        write_ome_tiff(api_dir / "incoming" / "a.ome.tif",
                       SyntheticSpec(size_y=600, size_x=700, channels=3, tile=128))
        with ApiClient(base, TOKEN) as client:
            body = client.ingest("S1", "a.ome.tif")
            time.sleep(3)  # six of the API's heartbeats, were it running jobs
            assert client.job(body["job_id"])["state"] == "queued"
            with plexhub(["worker"], {**common, "PLEXHUB_DATA_DIR": str(worker_dir)},
                         tmp_path / "worker.log") as worker:
                job = client.wait_for_job(body["job_id"], 120, interval=0.1)
                assert job["state"] == "done", (job, (tmp_path / "worker.log").read_text())
                os.killpg(worker.pid, signal.SIGTERM)
                assert worker.wait(timeout=60) == 0  # SIGTERM: a clean exit
        # the worker wrote the store under the shared root, nothing under either data dir;
        # the API serves it
        assert list(stores.rglob("zarr.json"))
        for own in (api_dir, worker_dir):
            assert not (own / "stores").exists() or not any((own / "stores").iterdir())
        r = httpx.get(f"{base}/images/{body['image_id']}/tiles/0/0/0.png", headers=h,
                      timeout=30)
        assert r.status_code == 200, r.text
        assert r.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("run_jobs", [True, False])
def test_run_jobs_setting(tmp_path: Path, run_jobs: bool) -> None:
    """The app factory starts the runner only when PLEXHUB_RUN_JOBS is true."""
    from fastapi.testclient import TestClient

    from plexhub.api.main import create_app
    from plexhub.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(TOKEN), run_jobs=run_jobs)
    with TestClient(create_app(settings, migrate=True)) as client:
        runner = client.app.state.plexhub.jobs  # type: ignore[attr-defined]
        assert (runner._thread is not None) == run_jobs
