"""Retention and purge of retired images (issue 14), on SQLite and PostgreSQL, with a clock
the test sets (``now=``): ``plexhub retention`` lists the retired images with the day their
retention ends (the profile's ``retention_years`` from the retirement); ``--apply`` purges
only those whose retention has ended and whose profile allows hard deletes, with an audited
``image.purge`` first and the row kept as a tombstone. A GLP image is never purged."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plexhub.api import retention
from plexhub.api.cli import verify_audit
from plexhub.api.db import Database
from plexhub.api.models import Image
from plexhub.policies.profiles import builtin_profiles
from plexhub.storage import StoreRoots
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import ingest_synthetic

pytestmark = pytest.mark.requirement("retention.purge", "profile.retention_years",
                                     "profile.hard_deletes")
PROFILES = builtin_profiles()


def _retire(api: Api, image: str) -> str:
    r = api.post(f"/api/v1/images/{image}/retire", {"reason": "duplicate scan"})
    assert r.status_code == 200, r.text
    return str(r.json()["retired_at"])


def _store(api: Api, image: str) -> Path:
    db = Database(api.settings.catalog_url, store_roots=StoreRoots.from_settings(api.settings))
    try:
        with db.session() as s:
            row = s.get(Image, image)
            assert row is not None
            found = row.location(group=False)
            assert found is not None
            return found.path
    finally:
        db.dispose()


def _run(api: Api, now: datetime, apply: bool = False,
         study: str | None = None) -> tuple[int, str]:
    return retention.run(api.settings.catalog_url, PROFILES,
                         StoreRoots.from_settings(api.settings), now, study, apply)


def _plan(api: Api, now: datetime) -> dict[str, retention.RetentionItem]:
    db = Database(api.settings.catalog_url)
    try:
        with db.session() as s:
            return {i.image_id: i for i in retention.plan(s, PROFILES, now)}
    finally:
        db.dispose()


def test_purge_only_after_retention_and_only_where_hard_deletes_are_allowed(api: Api) -> None:
    api.study("N1")  # non-glp: 2 years, hard deletes allowed
    a, _ = ingest_synthetic(api, "N1", "a.ome.tif", 1)
    kept, _ = ingest_synthetic(api, "N1", "k.ome.tif", 2)  # never retired
    api.study("G1")
    g, _ = ingest_synthetic(api, "G1", "g.ome.tif", 3)
    r = api.client.put("/api/v1/studies/G1/profile", headers=api.h(), json={
        "profile": "glp", "reason": "now regulated", "credential": ADMIN})
    assert r.status_code == 200, r.text
    _retire(api, a)
    _retire(api, g)
    stores = {i: _store(api, i) for i in (a, kept, g)}
    assert all(p.is_dir() for p in stores.values())
    now = datetime.now(UTC)
    # the dry run: both kept, with the day their retention ends
    plan = _plan(api, now)
    assert sorted(plan) == sorted([a, g])
    assert plan[a].outcome == plan[g].outcome == "keep"
    assert plan[a].retained_until.year == plan[a].retired_at.year + 2
    assert plan[g].retained_until.year == plan[g].retired_at.year + 15
    assert plan[a].why.startswith("retention (2 years, profile non-glp) runs until ")
    assert plan[g].why.startswith("profile glp keeps records: no hard deletes (retention "
                                  "until ")
    rc, said = _run(api, now + timedelta(days=3 * 365), apply=False)
    assert rc == 0
    assert f"{a}  N1     non-glp" in said
    assert "would purge" in said
    assert all(p.is_dir() for p in stores.values())  # a dry run changes nothing
    assert _plan(api, now)[a].outcome == "keep"
    # apply before the end: nothing happens
    rc, said = _run(api, now + timedelta(days=365), apply=True)
    assert rc == 0, said
    assert all(p.is_dir() for p in stores.values())
    # apply after the end: the non-GLP image goes, the GLP one stays (and says until when)
    later = now + timedelta(days=3 * 365)
    rc, said = _run(api, later, apply=True)
    assert rc == 0, said
    assert not stores[a].exists()
    assert stores[kept].is_dir()
    assert stores[g].is_dir()
    line_g = next(x for x in said.splitlines() if x.startswith(g))
    assert "kept" in line_g
    assert "profile glp keeps records" in line_g
    assert f"{plan[g].retained_until:%Y-%m-%d}" in line_g
    # the row stays: a tombstone staff still read; its store answers 404
    body = api.get(f"/api/v1/images/{a}").json()
    assert body["purged_at"] is not None
    assert body["retired_at"] is not None
    r = api.get(f"/api/v1/images/{a}/tiles/0/0/0.png")
    assert r.status_code == 404, r.text
    listed = api.get("/api/v1/studies/N1/images", params={"include_retired": "true"}).json()
    assert {i["id"]: i["purged_at"] is not None for i in listed} == {a: True, kept: False}
    r = api.post(f"/api/v1/images/{a}/unretire", {"reason": "too late"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith(f"image {a}: was purged")
    # audited: the purge after the retirement, by the system, in the study's export
    events = [e for e in api.get("/api/v1/studies/N1/audit").json()["events"]
              if e["entity_id"] == a]
    assert [e["action"] for e in events][-2:] == ["image.retire", "image.purge"]
    purge = events[-1]
    assert (purge["actor"], purge["role"], purge["before"]["state"],
            purge["after"]["state"]) == ("system", "system", "retired", "purged")
    assert purge["before"]["storage_root"] == "stores"
    assert str(stores[a]).endswith("/" + purge["before"]["store"])
    assert purge["after"]["removed"] == "store"
    assert purge["reason"].startswith("retention ended: retention ended on ")
    assert verify_audit(api.settings.catalog_url)[0]
    # again: nothing more to purge, the report says purged
    rc, said = _run(api, later, apply=True, study="N1")
    assert rc == 0
    assert "purged" in next(x for x in said.splitlines() if x.startswith(a))
    assert g not in said  # --study N1 only
    assert len([e for e in api.get("/api/v1/audit?study=N1").json()
                if e["action"] == "image.purge"]) == 1


def test_a_locked_study_keeps_its_retired_images(api: Api) -> None:
    api.study("N3")
    a, _ = ingest_synthetic(api, "N3", "a.ome.tif", 5)
    _retire(api, a)
    r = api.post("/api/v1/studies/N3/lock", {"reason": "final"})
    assert r.status_code == 200, r.text
    later = datetime.now(UTC) + timedelta(days=3 * 365)
    rc, said = _run(api, later, apply=True)
    assert rc == 0
    assert "the study is locked" in said
    assert _store(api, a).is_dir()
    assert api.get(f"/api/v1/images/{a}").json()["purged_at"] is None


def test_a_store_being_moved_between_tiers_is_not_purged(api: Api) -> None:
    """A tier move copies the store while it runs: purge waits for it to end."""
    api.study("N4")
    a, _ = ingest_synthetic(api, "N4", "a.ome.tif", 5)
    _retire(api, a)
    db = Database(api.settings.catalog_url)
    try:
        with db.session() as s:
            row = s.get(Image, a)
            assert row is not None
            row.tier = "archiving"  # what a queued archive move leaves until its job commits
            s.commit()
    finally:
        db.dispose()
    later = datetime.now(UTC) + timedelta(days=3 * 365)
    assert _plan(api, later)[a].outcome == "keep"
    rc, said = _run(api, later, apply=True)
    assert rc == 0
    assert "tier move" in said
    assert _store(api, a).is_dir()
    assert api.get(f"/api/v1/images/{a}").json()["purged_at"] is None


def test_the_cli_lists_retired_images_as_a_dry_run(api: Api) -> None:
    api.study("N4")
    a, _ = ingest_synthetic(api, "N4", "a.ome.tif", 6)
    retired = _retire(api, a)
    env = {**os.environ, "PLEXHUB_DATA_DIR": str(api.settings.data_dir)}
    if api.settings.database_url:
        env["PLEXHUB_DATABASE_URL"] = api.settings.database_url
    done = subprocess.run([sys.executable, "-m", "plexhub", "retention", "--study", "N4"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(a)]
    year = int(retired[:4])
    assert line.split()[1:6] == ["N4", "non-glp", retired[:10], f"{year + 2}{retired[4:10]}",
                                 "kept"]
    assert _store(api, a).is_dir()


def test_purging_one_series_of_a_shared_store_removes_only_its_group(api: Api) -> None:
    """A multi-series source is one store with one image group per series: purging one
    series removes its group alone; the other series still serve their tiles."""
    import numpy as np

    from tests.helpers.tiff_writers import write_ome_tiff_series

    rng = np.random.default_rng(5)
    write_ome_tiff_series(api.incoming / "multi.ome.tif", [
        (f"series{i}", rng.integers(0, 4000, (2, 70 + 10 * i, 80), dtype=np.uint16))
        for i in range(3)])
    api.study("N6")
    body = api.post("/api/v1/studies/N6/images", {"source": "multi.ome.tif"}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    first, gone, last = body["image_ids"]
    whole = _store(api, gone)
    assert whole == _store(api, first) == _store(api, last)  # one store, three groups
    db = Database(api.settings.catalog_url, store_roots=StoreRoots.from_settings(api.settings))
    try:
        with db.session() as s:
            groups = {}
            for i in (first, gone, last):
                row = s.get(Image, i)
                assert row is not None
                found = row.location(group=True)
                assert found is not None
                groups[i] = found.path
    finally:
        db.dispose()
    assert len(set(groups.values())) == 3
    assert all(p.is_dir() and p != whole for p in groups.values())
    before = {i: api.get(f"/api/v1/images/{i}/tiles/0/0/0.png") for i in (first, last)}
    assert all(r.status_code == 200 for r in before.values())
    _retire(api, gone)
    rc, said = _run(api, datetime.now(UTC) + timedelta(days=3 * 365), apply=True)
    assert rc == 0, said
    assert not groups[gone].exists()
    assert whole.is_dir()
    assert groups[first].is_dir()
    assert groups[last].is_dir()
    for i in (first, last):
        r = api.get(f"/api/v1/images/{i}/tiles/0/0/0.png")
        assert r.status_code == 200, r.text
        assert r.content == before[i].content
    assert api.get(f"/api/v1/images/{gone}/tiles/0/0/0.png").status_code == 404
    (purge,) = [e for e in api.get("/api/v1/studies/N6/audit").json()["events"]
                if e["action"] == "image.purge"]
    assert (purge["entity_id"], purge["after"]["removed"]) == (gone, "group")
    assert purge["before"]["group"] != ""
    # the last unpurged series of the store takes the store with it
    _retire(api, first)
    _retire(api, last)
    rc, said = _run(api, datetime.now(UTC) + timedelta(days=3 * 365), apply=True)
    assert rc == 0, said
    assert not whole.exists()
    removed = [e["after"]["removed"] for e in api.get("/api/v1/studies/N6/audit").json()
               ["events"] if e["action"] == "image.purge"]
    assert sorted(removed) == ["group", "group", "store"]
    assert verify_audit(api.settings.catalog_url)[0]
