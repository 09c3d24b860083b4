"""Conversion jobs shared by several API processes: one claim per job, leases, orphaned jobs
queued again, cancels that reach the owner, and ``plexhub serve --workers 2`` for real."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from plexhub.api.db import Database, utcnow
from plexhub.api.jobs import HOST, JobRunner
from plexhub.api.models import Job, Study
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.httpapi import ingest, ok
from tests.helpers.hub import wait_ok
from tests.helpers.net import free_port
from tests.helpers.postgres import fresh_database
from tests.helpers.procs import stop_group

TOKEN = "lease-admin-token-0123456789abcdef"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest,
            tmp_path: Path) -> Iterator[tuple[Settings, Database]]:
    """A migrated catalog with one study, on SQLite and on a fresh PostgreSQL database."""
    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(TOKEN), chunk_size=64,
                        block_size=128, database_url=url)
    (settings.data_dir / "incoming").mkdir(parents=True)
    db = Database(settings.catalog_url)
    db.create()
    with db.session() as s:
        s.add(Study(code="S1", title="t", sponsor="acme", profile="non-glp", created_by="t"))
        s.commit()
    yield settings, db
    db.dispose()


def add_job(db: Database, source: str, **fields: object) -> str:
    job_id = os.urandom(8).hex()
    with db.session() as s:
        study = s.query(Study).one()
        s.add(Job(id=job_id, study_id=study.id, source_uri=source, fingerprint=job_id * 4,
                  created_by="t", **fields))
        s.commit()
    return job_id


def job(db: Database, job_id: str) -> Job:
    with db.session() as s:
        found = s.get(Job, job_id)
        assert found is not None
        return found


def wait_state(db: Database, job_id: str, states: set[str], timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while (j := job(db, job_id)).state not in states:
        assert time.monotonic() < deadline, f"job stayed {j.state}"
        time.sleep(0.05)
    return j


def test_only_one_runner_claims_a_job(catalog: tuple[Settings, Database]) -> None:
    settings, db = catalog
    a, b = JobRunner(db, settings), JobRunner(db, settings)
    first, second = add_job(db, "x.tif"), add_job(db, "y.tif")
    assert a._claim(first)
    assert not b._claim(first)  # already running
    assert job(db, first).owner == a.owner
    # max_concurrent_jobs (1) counts the whole service, not one process
    assert not b._claim(second)
    assert job(db, second).state == "queued"


def _claim_at(gate: threading.Barrier, runner: JobRunner, job_id: str,
              won: dict[str, bool]) -> None:
    gate.wait()
    won[job_id] = runner._claim(job_id)


def test_simultaneous_claims_respect_the_service_wide_limit(
        catalog: tuple[Settings, Database]) -> None:
    """Two runners claiming two different queued jobs at the same instant, 50 times: with
    PLEXHUB_MAX_CONCURRENT_JOBS=1 exactly one may win each time (on PostgreSQL, READ COMMITTED
    let both conditional UPDATEs count 0 running jobs)."""
    settings, db = catalog
    assert settings.max_concurrent_jobs == 1
    a, b = JobRunner(db, settings), JobRunner(db, settings)
    both = 0
    for _ in range(50):
        first, second = add_job(db, "x.tif"), add_job(db, "y.tif")
        gate = threading.Barrier(2)
        won: dict[str, bool] = {}
        threads = [threading.Thread(target=_claim_at, args=(gate, runner, job_id, won))
                   for runner, job_id in ((a, first), (b, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        both += won[first] and won[second]
        assert won[first] or won[second]  # the limit is one, not zero
        with db.session() as s:  # finish them: the next pair starts from an idle service
            for job_id in (first, second):
                j = s.get(Job, job_id)
                assert j is not None
                j.state, j.owner = "done", None
            s.commit()
    assert both == 0, f"{both} of 50 simultaneous pairs both claimed a job"


def test_a_silent_hosts_job_is_taken_over_within_the_lease(
        catalog: tuple[Settings, Database]) -> None:
    """PLEXHUB_JOB_LEASE_SECONDS bounds the takeover: runners look every heartbeat, so a job
    silent for lease - heartbeat is queued again (by the next look, within the lease)."""
    settings, db = catalog
    settings = settings.model_copy(update={"job_heartbeat_seconds": 1.0,
                                           "job_lease_seconds": 4.0})
    runner = JobRunner(db, settings)
    assert (runner.HEARTBEAT, runner.LEASE) == (1.0, 4.0)
    runner._stopping.set()  # requeue only: claim nothing
    alive = add_job(db, "a.tif", state="running", owner="elsewhere:1:x",
                    heartbeat_at=utcnow() - timedelta(seconds=2.5))
    silent = add_job(db, "b.tif", state="running", owner="elsewhere:2:x",
                     heartbeat_at=utcnow() - timedelta(seconds=3.1))
    runner.tick()
    # a tick a heartbeat from now would find b silent for 4.1 s, past the lease: queue it now
    assert job(db, silent).state == "queued"
    assert job(db, alive).state == "running"


def test_lease_must_outlast_three_heartbeats() -> None:
    with pytest.raises(ValueError, match="at least 3 x job_heartbeat_seconds"):
        Settings(job_heartbeat_seconds=5, job_lease_seconds=10)


def test_orphaned_jobs_are_queued_again(catalog: tuple[Settings, Database]) -> None:
    settings, db = catalog
    runner = JobRunner(db, settings)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    fresh = utcnow()
    stale = fresh - timedelta(seconds=JobRunner.LEASE + 5)
    jobs = {
        "dead pid here": add_job(db, "a.tif", state="running", owner=f"{HOST}:{dead}:x",
                                 heartbeat_at=fresh),
        "silent elsewhere": add_job(db, "b.tif", state="running", owner="elsewhere:1:x",
                                    heartbeat_at=stale),
        "alive elsewhere": add_job(db, "c.tif", state="running", owner="elsewhere:2:x",
                                   heartbeat_at=fresh),
        "alive here": add_job(db, "d.tif", state="running", owner=f"{HOST}:{os.getpid()}:x",
                              heartbeat_at=fresh),
        "ours, not running": add_job(db, "e.tif", state="running", owner=runner.owner,
                                     heartbeat_at=fresh),
    }
    runner._stopping.set()  # requeue only: claim nothing
    runner.tick()
    states = {name: job(db, j).state for name, j in jobs.items()}
    assert states == {"dead pid here": "queued", "silent elsewhere": "queued",
                      "alive elsewhere": "running", "alive here": "running",
                      "ours, not running": "queued"}
    assert job(db, jobs["dead pid here"]).owner is None


def test_a_cancel_reaches_the_process_that_runs_the_job(
        catalog: tuple[Settings, Database]) -> None:
    settings, db = catalog
    write_ome_tiff(settings.data_dir / "incoming" / "big.ome.tif",
                   SyntheticSpec(size_y=2048, size_x=2048, channels=4, tile=256))
    owner, other = JobRunner(db, settings), JobRunner(db, settings)
    owner.HEARTBEAT = 0.2
    job_id = add_job(db, str(settings.data_dir / "incoming" / "big.ome.tif"))
    owner.start()
    try:
        wait_state(db, job_id, {"running"})
        assert other.cancel(job_id, "tester").state in ("running", "cancelled")
        done = wait_state(db, job_id, {"cancelled", "done", "failed"}, timeout=30)
        assert done.state == "cancelled"
        assert done.owner is None
    finally:
        owner.shutdown()


def test_a_stopping_service_gives_its_job_back(catalog: tuple[Settings, Database]) -> None:
    settings, db = catalog
    write_ome_tiff(settings.data_dir / "incoming" / "big.ome.tif",
                   SyntheticSpec(size_y=2048, size_x=2048, channels=4, tile=256))
    job_id = add_job(db, str(settings.data_dir / "incoming" / "big.ome.tif"))
    first = JobRunner(db, settings)
    first.start()
    wait_state(db, job_id, {"running"})
    first.shutdown()
    left = job(db, job_id)
    assert (left.state, left.owner) == ("queued", None)  # not cancelled, not stuck
    second = JobRunner(db, settings)
    second.start()
    try:
        assert wait_state(db, job_id, {"done", "failed"}, timeout=120).state == "done"
    finally:
        second.shutdown()


def test_serve_with_two_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "incoming").mkdir(parents=True)
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "PLEXHUB_DATA_DIR": str(data), "PLEXHUB_ADMIN_TOKEN": TOKEN,
           "PLEXHUB_CHUNK_SIZE": "128", "PLEXHUB_BLOCK_SIZE": "256"}
    proc = subprocess.Popen([sys.executable, "-m", "plexhub", "serve", "--port", str(port),
                             "--workers", "2", "--log-level", "warning"], env=env,
                            start_new_session=True, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_ok(f"{base}/health", proc, log, timeout=60)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2, children  # two workers (uvicorn may add a helper)
        h = {"Authorization": f"Bearer {TOKEN}"}
        ok(httpx.post(f"{base}/studies", headers=h, json={
            "code": "S1", "title": "t", "sponsor": "acme", "profile": "non-glp"}))
        image = ingest(base, TOKEN, data / "incoming", "S1", "a.ome.tif",
                       SyntheticSpec(size_y=600, size_x=700, channels=3, tile=128))
        # every tile, whichever worker answers, renders the same bytes
        urls = [f"{base}/images/{image}/tiles/0/{r}/{c}.png" for r in range(2)
                for c in range(2)]
        with httpx.Client(headers=h, timeout=30) as client:
            first = [client.get(u) for u in urls]
            assert all(r.status_code == 200 for r in first)
            for _ in range(3):
                again = [client.get(u).content for u in urls]
                assert again == [r.content for r in first]
    finally:
        stop_group(proc)


def test_an_idle_tick_keeps_the_tile_routes_cached_lookups(
        catalog: tuple[Settings, Database]) -> None:
    """Every commit of the process drops the tiles' cached catalog answers; the runner's
    polling every 2 s must not be one when there is nothing to do."""
    from plexhub.api import tiles

    settings, db = catalog
    runner = JobRunner(db, settings)
    before = tiles.generation()
    runner.tick()
    assert tiles.generation() == before
    job_id = add_job(db, "x.tif", state="running", owner="elsewhere:1:x", heartbeat_at=None)
    after_add = tiles.generation()
    runner._stopping.set()
    runner.tick()  # requeues it: that is a change, and it is committed
    assert job(db, job_id).state == "queued"
    assert tiles.generation() != after_add
