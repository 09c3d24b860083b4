"""The retention purge (issue 14) of stores on object storage: ``PLEXHUB_STORE_ROOT`` on a
real S3-compatible server (moto's, on loopback, as tests/integration/api/test_s3_storage.py
uses), the catalog on SQLite and PostgreSQL. A purged image's objects are gone; its row stays
as a tombstone and its audited ``image.purge`` stays in the chain. One series of a shared
store loses only its group's objects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api import retention
from plexhub.api.cli import verify_audit
from plexhub.api.main import create_app
from plexhub.policies.profiles import builtin_profiles
from plexhub.settings import Settings
from plexhub.storage import StoreRoots
from tests.helpers.api import ADMIN, Api
from tests.helpers.s3 import objects, s3_server
from tests.helpers.sample_data import ingest_synthetic
from tests.helpers.tiff_writers import write_ome_tiff_series

pytestmark = [pytest.mark.s3,
              pytest.mark.requirement("retention.purge", "profile.hard_deletes")]
ROOT = "s3://plexhub-stores/prod"
LATER = timedelta(days=3 * 365)  # past the non-GLP profile's 2 years


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    from tests.helpers.postgres import fresh_database

    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
    with s3_server(monkeypatch, "plexhub-stores"):
        settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                            database_url=url, chunk_size=64, block_size=128, store_root=ROOT)
        incoming = tmp_path / "data" / "incoming"
        incoming.mkdir(parents=True)
        with TestClient(create_app(settings, migrate=True)) as client:
            yield Api(client, settings, incoming)


def _retire(api: Api, image: str) -> None:
    r = api.post(f"/api/v1/images/{image}/retire", {"reason": "duplicate scan"})
    assert r.status_code == 200, r.text


def _purge(api: Api) -> str:
    rc, said = retention.run(api.settings.catalog_url, builtin_profiles(),
                             StoreRoots.from_settings(api.settings),
                             datetime.now(UTC) + LATER, None, True)
    assert rc == 0, said
    return said


def _purges(api: Api, code: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/studies/{code}/audit")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["action"] == "image.purge"]


def _store_keys(api: Api, code: str) -> dict[str, str]:
    return {e["entity_id"]: e["after"]["store"] for e in api.get(
        f"/api/v1/studies/{code}/audit").json()["events"] if e["action"] == "image.ready"}


def test_purge_removes_the_objects_and_keeps_the_tombstone_and_its_event(api: Api) -> None:
    api.study("N1")
    a, _ = ingest_synthetic(api, "N1", "a.ome.tif", 1)
    kept, _ = ingest_synthetic(api, "N1", "k.ome.tif", 2)
    keys = _store_keys(api, "N1")
    before = {i: objects(f"{ROOT}/{keys[i]}") for i in (a, kept)}
    assert all(before.values())
    tile = api.get(f"/api/v1/images/{kept}/tiles/0/0/0.png")
    assert tile.status_code == 200, tile.text
    _retire(api, a)
    _purge(api)
    assert objects(f"{ROOT}/{keys[a]}") == {}  # every object of the store is gone
    assert objects(f"{ROOT}/{keys[kept]}") == before[kept]
    assert api.get(f"/api/v1/images/{kept}/tiles/0/0/0.png").content == tile.content
    body = api.get(f"/api/v1/images/{a}").json()  # the tombstone
    assert body["retired_at"] is not None
    assert body["purged_at"] is not None
    assert api.get(f"/api/v1/images/{a}/tiles/0/0/0.png").status_code == 404
    (event,) = _purges(api, "N1")
    assert (event["entity_id"], event["actor"], event["before"]["state"],
            event["after"]["state"], event["after"]["removed"]) == (
        a, "system", "retired", "purged", "store")
    assert (event["before"]["storage_root"], event["before"]["store"]) == ("stores", keys[a])
    assert "s3://" not in str(event["before"])  # the catalog's names, never the URL
    csv = api.get("/api/v1/studies/N1/audit", params={"format": "csv"}).text
    assert "image.purge" in csv
    assert verify_audit(api.settings.catalog_url)[0]
    assert verify_audit(api.settings.catalog_url, "N1")[0]
    # a second run finds nothing more to remove and writes no second event
    assert "purged" in next(x for x in _purge(api).splitlines() if x.startswith(a))
    assert len(_purges(api, "N1")) == 1


def test_purging_one_series_on_s3_removes_only_its_groups_objects(api: Api) -> None:
    rng = np.random.default_rng(7)
    write_ome_tiff_series(api.incoming / "multi.ome.tif", [
        (f"series{i}", rng.integers(0, 4000, (2, 70 + 10 * i, 80), dtype=np.uint16))
        for i in range(3)])
    api.study("N2")
    body = api.post("/api/v1/studies/N2/images", {"source": "multi.ome.tif"}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    first, gone, last = body["image_ids"]
    (key,) = set(_store_keys(api, "N2").values())  # one store for the three series
    everything = objects(f"{ROOT}/{key}")
    tiles = {i: api.get(f"/api/v1/images/{i}/tiles/0/0/0.png") for i in (first, last)}
    assert all(t.status_code == 200 for t in tiles.values())
    _retire(api, gone)
    _purge(api)
    (event,) = _purges(api, "N2")
    assert (event["entity_id"], event["after"]["removed"]) == (gone, "group")
    group = str(event["before"]["group"]).strip("/")
    assert group
    left = objects(f"{ROOT}/{key}")
    assert left == {k: v for k, v in everything.items() if not k.startswith(f"{group}/")}
    assert len(left) < len(everything)
    for i in (first, last):
        r = api.get(f"/api/v1/images/{i}/tiles/0/0/0.png")
        assert r.status_code == 200, r.text
        assert r.content == tiles[i].content
    assert verify_audit(api.settings.catalog_url)[0]
