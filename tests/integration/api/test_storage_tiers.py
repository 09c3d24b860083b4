"""Storage tiers (issue 14's tier moves, the mission's hot/archive rules): an image's store moves
between two local storage roots as a job, verified before the catalog commits, audited with
the old and new root and tier; an archived image's tiles, DZI and raw zarr answer 409 naming
how to restore it; restore on demand by a grant holder; a failure or a crash mid-move leaves
the image readable where it was. On SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api import tiermove
from plexhub.api.jobs import HOST
from plexhub.api.main import create_app
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.s3 import files

READS = ("tiles/0/0/0.png", "image.dzi", "image_files/7/0_0.jpeg", "zarr/zarr.json",
         "zarr/0/zarr.json")


def _settings(tmp_path: Path, url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                    database_url=url, chunk_size=64, block_size=128,
                    store_roots={"archive": str(tmp_path / "archive")}, archive_root="archive",
                    job_heartbeat_seconds=0.2, job_lease_seconds=1.0)


def _api(settings: Settings) -> Generator[Api, None, None]:
    incoming = settings.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(settings, migrate=True)) as client:
        yield Api(client, settings, incoming)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    from tests.helpers.postgres import fresh_database

    if request.param == "postgresql":
        return fresh_database(request.getfixturevalue("pg_server"))
    return None


@pytest.fixture
def api(tmp_path: Path, db_url: str | None) -> Iterator[Api]:
    yield from _api(_settings(tmp_path, db_url))


def _image(api: Api, code: str = "T1", profile: str = "non-glp") -> str:
    r = api.post("/api/v1/studies", {"code": code, "title": "t", "sponsor": "acme",
                                     "profile": profile})
    assert r.status_code == 201, r.text
    write_ome_tiff(api.incoming / f"{code}.ome.tif",
                   SyntheticSpec(size_y=300, size_x=300, channels=2, tile=64, seed=3))
    r = api.client.post(f"/api/v1/studies/{code}/images", json={"source": f"{code}.ome.tif"},
                        headers={**api.h(), "X-Plexhub-Reason": "new slide"})
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    return str(r.json()["image_id"])


def _store(api: Api, root: str) -> Path:
    """The one store folder under the root ``root`` (stores or archive)."""
    base = api.settings.stores_dir if root == "stores" else \
        Path(api.settings.store_roots["archive"])
    found = list(base.glob("*/*.ome.zarr"))
    assert len(found) == 1, found
    return found[0]


def _events(api: Api, code: str, image: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/studies/{code}/audit", params={"format": "json"})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["action"] in ("image.tier", "image.restore")
            and e["entity_id"] == image]


def _move(api: Api, image: str, body: dict[str, Any], token: str = ADMIN,
          path: str = "tier") -> dict[str, Any]:
    r = api.post(f"/api/v1/images/{image}/{path}", body, token)
    assert r.status_code == 202, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "done", job
    return job


@pytest.mark.requirement("storage.tier_move", "audit.attribution")
def test_archive_and_restore_move_the_store_verified_and_audited(api: Api) -> None:
    image = _image(api)
    hot = _store(api, "stores")
    before = files(hot)
    tiles = {p: api.get(f"/api/v1/images/{image}/{p}").content for p in READS}
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive", "reason": "study closed"})
    assert r.status_code == 202, r.text
    assert r.json()["tier"] == "archiving"
    assert r.json()["image_ids"] == [image]
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "done", job
    assert job["progress"] == 1.0, job
    assert job["image_ids"] == [image]
    # the store is in the archive root, byte for byte, and gone from the hot one
    archived = _store(api, "archive")
    assert files(archived) == before
    assert not hot.exists()
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "archived"
    # every read of its store: 409 naming the image, that it is archived, how to restore
    for p in READS:
        got = api.get(f"/api/v1/images/{image}/{p}")
        assert got.status_code == 409, (p, got.text)
        detail = got.json()["detail"]
        assert f"image {image}" in detail, detail
        assert "archived" in detail, detail
        assert f"POST /api/v1/images/{image}/restore" in detail, detail
    # a second archive request is a conflict, not a second job
    again = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive", "reason": "x"})
    assert again.status_code == 409, again.text
    # restore on demand, then everything reads again
    _move(api, image, {"reason": "sponsor audit"}, path="restore")
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"
    assert files(_store(api, "stores")) == before
    assert not archived.exists()
    for p in READS:
        got = api.get(f"/api/v1/images/{image}/{p}")
        assert got.status_code == 200, (p, got.text)
        assert got.content == tiles[p], p
    # audited: the request (who, why) and the commit (old and new root and tier)
    events = _events(api, "T1", image)
    assert [(e["action"], e["actor"], e["before"]["tier"], e["after"]["tier"])
            for e in events] == [
        ("image.tier", "admin", "hot", "archiving"),
        ("image.tier", "system", "archiving", "archived"),
        ("image.restore", "admin", "archived", "restoring"),
        ("image.tier", "system", "restoring", "hot")]
    assert events[1]["before"]["root"] == "stores"
    assert events[1]["after"]["root"] == "archive"
    assert events[1]["reason"] == "study closed"
    assert events[1]["after"]["requested_by"] == "admin"
    assert events[3]["before"]["root"] == "archive"
    assert events[3]["after"]["root"] == "stores"
    assert events[2]["reason"] == "sponsor audit"
    from plexhub.api.cli import verify_audit

    assert verify_audit(api.settings.catalog_url, "T1")[0]


@pytest.mark.requirement("storage.tier_move")
def test_a_failed_copy_leaves_the_image_hot_and_readable(api: Api,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image(api)
    hot = _store(api, "stores")
    before = files(hot)
    real = tiermove.copy_object
    calls = {"n": 0}

    def failing(*args: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(tiermove, "copy_object", failing)
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive"})
    assert r.status_code == 202, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "failed", job
    assert "No space left" in job["error"], job
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"
    assert files(hot) == before  # untouched, and nothing half-copied is left behind
    assert not list(Path(api.settings.store_roots["archive"]).rglob("*.json"))
    for p in READS:
        assert api.get(f"/api/v1/images/{image}/{p}").status_code == 200, p
    events = _events(api, "T1", image)
    assert [(e["before"]["tier"], e["after"]["tier"]) for e in events] == [
        ("hot", "archiving"), ("archiving", "hot")]
    assert "No space left" in events[1]["after"]["outcome"]
    # a verification mismatch is a failure too
    monkeypatch.setattr(tiermove, "copy_object", real)
    real_hash = tiermove._hash
    monkeypatch.setattr(tiermove, "_hash", lambda fs, path: "0" * 64 if path.endswith(
        "zarr.json") else real_hash(fs, path))
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive"})
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "failed", job
    assert "differs from its source" in job["error"], job
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"
    assert files(hot) == before


@pytest.mark.requirement("storage.tier_move")
def test_a_crash_mid_copy_leaves_the_image_readable_and_a_new_process_finishes(
        tmp_path: Path, db_url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, db_url)
    gen = _api(settings)
    api = next(gen)
    image = _image(api)
    before = files(_store(api, "stores"))
    started = threading.Event()
    real = tiermove.copy_object
    runner = api.client.app.state.plexhub.jobs  # type: ignore[attr-defined]

    def slow(*args: Any) -> str:  # copies once the process is going away
        started.set()
        for ev in list(runner.cancel_events.values()):
            ev.wait(30)
        return real(*args)

    monkeypatch.setattr(tiermove, "copy_object", slow)
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert started.wait(30)
    # mid-copy: archiving, and still read from the hot copy
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "archiving"
    for p in READS:
        assert api.get(f"/api/v1/images/{image}/{p}").status_code == 200, p
    # the process stops mid-copy (its job goes back to the queue, the copy is abandoned)
    gen.close()
    monkeypatch.setattr(tiermove, "copy_object", real)
    assert list(Path(settings.store_roots["archive"]).rglob("*"))  # a partial copy
    # ... and, worse, a process that was killed: the job is left running by an owner that
    # is gone (no heartbeat will come)
    from sqlalchemy import create_engine, text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    engine = create_engine(settings.catalog_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET state = 'running', owner = :owner, "
                          "heartbeat_at = CURRENT_TIMESTAMP WHERE id = :id"),
                     {"owner": f"{HOST}:{dead}:dead0000", "id": job_id})
        tier = conn.execute(text("SELECT tier FROM images WHERE id = :id"),
                            {"id": image}).scalar()
    engine.dispose()
    assert tier == "archiving"
    # a new process: the image is still readable where it was, and the move completes
    gen2 = _api(settings)
    api2 = next(gen2)
    try:
        job = api2.wait_job(job_id)
        assert job["state"] == "done", job
        assert api2.get(f"/api/v1/images/{image}").json()["tier"] == "archived"
        assert files(_store(api2, "archive")) == before
        assert not list(settings.stores_dir.glob("*/*.ome.zarr"))
    finally:
        gen2.close()


@pytest.mark.requirement("profile.archive_before_lock", "profile.tier_moves_when_locked",
                         "profile.reason_required")
def test_profiles_decide_on_locked_and_open_studies(api: Api) -> None:
    image = _image(api, "G1", profile="glp")
    # GLP: a reason for every move, and nothing archived before sign-off
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive", "reason": "space"})
    assert r.status_code == 403, r.text
    assert "signed off" in r.json()["detail"]
    r = api.post("/api/v1/studies/G1/lock", {"reason": "report signed", "credential": ADMIN})
    assert r.status_code == 200, r.text
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive"})
    assert r.status_code == 422, r.text
    assert "reason" in r.json()["detail"], r.text
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"
    # locked: GLP allows the tier move (no data changes), with its reason
    _move(api, image, {"tier": "archive", "reason": "signed off 90 days ago"})
    # a sponsor with a grant may restore it on a locked study
    assert api.post("/api/v1/studies/G1/unlock", {"reason": "grant",
                                                 "credential": ADMIN}).status_code == 200
    assert api.post("/api/v1/studies/G1/grants", {"principal": "user:sue",
                                                  "reason": "sponsor"}).status_code == 201
    assert api.post("/api/v1/studies/G1/lock", {"reason": "again",
                                               "credential": ADMIN}).status_code == 200
    sue = api.token("sue", "sponsor")
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "hot", "reason": "x"}, sue)
    assert r.status_code == 403, r.text  # the tier move itself is staff's
    _move(api, image, {}, token=sue, path="restore")
    assert api.get(f"/api/v1/images/{image}", sue).json()["tier"] == "hot"
    restore = _events(api, "G1", image)[-2]
    assert (restore["action"], restore["actor"], restore["role"]) == \
        ("image.restore", "sue", "sponsor")


def test_sponsors_without_a_grant_get_the_404_of_an_unknown_image(api: Api) -> None:
    image = _image(api)
    other = api.token("olga", "sponsor", ["globex"])
    for path, body in (("tier", {"tier": "archive", "reason": "x"}), ("restore", {})):
        got = api.post(f"/api/v1/images/{image}/{path}", body, other)
        unknown = api.post(f"/api/v1/images/{'0' * 32}/{path}", body, other)
        assert got.status_code == unknown.status_code == 404, got.text
        assert got.json()["detail"].replace(image, "X") == \
            unknown.json()["detail"].replace("0" * 32, "X")
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"


def test_without_an_archive_root_nothing_is_archived(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                        chunk_size=64, block_size=128)
    for api in _api(settings):
        image = _image(api)
        r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive"})
        assert r.status_code == 409, r.text
        assert "PLEXHUB_ARCHIVE_ROOT" in r.json()["detail"], r.text


def test_plexhub_tiers_dry_run_then_apply(api: Api, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from plexhub.cli import main
    from plexhub.settings import get_settings

    rules = tmp_path / "tiers.yaml"
    rules.write_text("rules:\n  - name: at-sign-off\n    study_locked_days: 0\n")
    kept = _image(api, "OPEN")  # an open study: no rule fires
    image = _image(api, "DONE")
    assert api.post("/api/v1/studies/DONE/lock", {"credential": ADMIN}).status_code == 200
    s = api.settings
    env = {"PLEXHUB_DATA_DIR": str(s.data_dir), "PLEXHUB_DATABASE_URL": s.database_url or "",
           "PLEXHUB_STORE_ROOTS": f'{{"archive": "{s.store_roots["archive"]}"}}',
           "PLEXHUB_ARCHIVE_ROOT": "archive", "PLEXHUB_TIER_RULES_FILE": str(rules)}
    for k, v in env.items():
        if v:
            monkeypatch.setenv(k, v)
        else:
            monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    try:
        assert main(["tiers"]) == 0
        out = capsys.readouterr().out
        assert f"archive DONE {image}" in out, out
        assert "rule at-sign-off" in out, out
        assert kept not in out
        assert "1 image(s) would be archived (dry run" in out
        assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"  # nothing moved
        assert main(["tiers", "--apply"]) == 0
        out = capsys.readouterr().out
        assert "1 image(s) queued" in out, out
        job_id = out.split("(job ")[1].split()[0]
    finally:
        get_settings.cache_clear()
    assert api.wait_job(job_id)["state"] == "done"  # the service's runner ran it
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "archived"
    assert api.get(f"/api/v1/images/{kept}").json()["tier"] == "hot"
    (event,) = [e for e in _events(api, "DONE", image) if e["after"]["tier"] == "archiving"]
    assert event["actor"] == "system"
    assert "at-sign-off" in event["reason"]


def test_restore_asked_twice_is_one_job_and_a_cancelled_move_goes_back(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image(api)
    _move(api, image, {"tier": "archive", "reason": "cold"})
    runner = api.client.app.state.plexhub.jobs  # type: ignore[attr-defined]
    started = threading.Event()
    real = tiermove.copy_object

    def blocked(*args: Any) -> str:  # copies only once the job is cancelled
        started.set()
        for ev in list(runner.cancel_events.values()):
            ev.wait(30)
        return real(*args)

    monkeypatch.setattr(tiermove, "copy_object", blocked)
    first = api.post(f"/api/v1/images/{image}/restore", {"reason": "needed"})
    assert first.status_code == 202, first.text
    assert started.wait(30)
    again = api.post(f"/api/v1/images/{image}/restore", {})
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.json()["tier"] == "restoring"
    got = api.get(f"/api/v1/images/{image}/tiles/0/0/0.png")
    assert got.status_code == 409
    assert "being restored" in got.json()["detail"]
    job_id = first.json()["job_id"]
    r = api.post(f"/api/v1/jobs/{job_id}/cancel", {"reason": "not now"})
    assert r.status_code == 200, r.text
    assert api.wait_job(job_id)["state"] == "cancelled"
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "archived"
    assert not list(api.settings.stores_dir.rglob("*.json"))  # the partial hot copy is gone
    assert files(_store(api, "archive"))  # the archived copy is whole
    assert api.post(f"/api/v1/jobs/{job_id}/retry", {}).status_code == 409  # ask again instead
    monkeypatch.setattr(tiermove, "copy_object", real)
    _move(api, image, {}, path="restore")
    assert api.get(f"/api/v1/images/{image}/tiles/0/0/0.png").status_code == 200
