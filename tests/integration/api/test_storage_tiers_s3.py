"""Storage tiers on object storage: the archive root (and the hot one) on a real
S3-compatible server (moto's, on loopback, as tests/integration/api/test_s3_storage.py uses):
the move copies and verifies every object, the reads answer 409 while archived, and the restore
brings back byte-identical stores and tiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api.main import create_app
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.s3 import files, objects, s3_server

pytestmark = pytest.mark.s3
ARCHIVE = "s3://plexhub-archive/cold"
READS = ("tiles/0/0/0.png", "image.dzi", "zarr/zarr.json", "zarr/0/zarr.json")


@pytest.fixture(params=["local-hot", "s3-hot"])
def api(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    hot = "s3://plexhub-stores/prod" if request.param == "s3-hot" else None
    with s3_server(monkeypatch, "plexhub-stores", "plexhub-archive"):
        settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                            chunk_size=64, block_size=128, store_root=hot,
                            store_roots={"archive": ARCHIVE}, archive_root="archive")
        incoming = tmp_path / "data" / "incoming"
        incoming.mkdir(parents=True)
        with TestClient(create_app(settings, migrate=True)) as client:
            yield Api(client, settings, incoming)


def _hot_objects(api: Api, key: str) -> dict[str, bytes]:
    root = api.settings.store_root_url
    if root.startswith("s3://"):
        return objects(f"{root}/{key}")
    folder = Path(root) / key
    return files(folder) if folder.exists() else {}


def test_archive_to_s3_and_restore(api: Api) -> None:
    api.study("S1")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=300, size_x=300, channels=2, tile=64, seed=5))
    r = api.post("/api/v1/studies/S1/images", {"source": "a.ome.tif"})
    assert r.status_code == 202, r.text
    image = r.json()["image_id"]
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    (key,) = {e["after"]["store"] for e in api.get(
        "/api/v1/studies/S1/audit").json()["events"] if e["action"] == "image.ready"}
    before = _hot_objects(api, key)
    assert before
    reads = {p: api.get(f"/api/v1/images/{image}/{p}").content for p in READS}
    r = api.post(f"/api/v1/images/{image}/tier", {"tier": "archive", "reason": "cold"})
    assert r.status_code == 202, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "done", job
    assert objects(f"{ARCHIVE}/{key}") == before  # every object, byte for byte
    assert _hot_objects(api, key) == {}  # the hot copy is gone
    for p in READS:
        got = api.get(f"/api/v1/images/{image}/{p}")
        assert got.status_code == 409, (p, got.text)
        assert "restore" in got.json()["detail"]
    r = api.post(f"/api/v1/images/{image}/restore", {})
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    assert _hot_objects(api, key) == before
    assert objects(f"{ARCHIVE}/{key}") == {}
    for p in READS:
        got = api.get(f"/api/v1/images/{image}/{p}")
        assert got.status_code == 200, (p, got.text)
        assert got.content == reads[p], p
