"""Ingest jobs: roots, identity, LIMS metadata, batches, cancel/retry, restart."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from plexhub.api.main import create_app
from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import ADMIN, Api
from tests.helpers.zarrs import level


def test_ingest_converts_and_registers_with_lims_metadata(api: Api, real: Path) -> None:
    api.study("S001")
    name = api.add_file(real / "qptiff" / "small_vectra.qptiff")
    meta = {"animal_id": "A-17", "tissue": "tonsil", "dose_group": "high",
            "stain_panel": {"FITC": "CD8", "Cy3": "PanCK"}}
    r = api.post("/api/v1/studies/S001/images", {"source": name, "metadata": meta})
    assert r.status_code == 202, r.text
    body = r.json()
    job = api.wait_job(body["job_id"])
    assert job["state"] == "done", job
    assert job["progress"] == 1.0
    image = api.get(f"/api/v1/images/{body['image_id']}").json()
    assert image["status"] == "ready"
    assert image["levels"][0] == [3, 1440, 1920]
    assert image["axes"] == "cyx"
    assert image["dtype"] == "uint8"
    assert [(c["label"], c["marker"]) for c in image["channels"]] == [
        ("DAPI", None), ("FITC", "CD8"), ("Cy3", "PanCK")]
    assert image["metadata"]["animal_id"] == "A-17"
    assert image["checksum"] == \
        "e19363d64a2ab7d7c7869cbed443d56d5843b555d8436b4fe08970eeae0c5325"
    # the same content again is idempotent
    again = api.post("/api/v1/studies/S001/images", {"source": name}).json()
    assert again["existing"] is True
    assert again["image_id"] == body["image_id"]
    assert len(api.get("/api/v1/studies/S001/images").json()) == 1


def test_sources_outside_the_ingest_roots_are_refused(api: Api, real: Path,
                                                      tmp_path: Path) -> None:
    api.study("S001")
    for source in ("/etc/passwd", "../../etc/passwd", str(real / "svs"),
                   "s3://bucket/x.tif"):
        r = api.post("/api/v1/studies/S001/images", {"source": source})
        assert r.status_code == 403, source
        assert "PLEXHUB_INGEST_ROOTS" in r.json()["detail"]
    link = api.incoming / "link.svs"
    link.symlink_to(real / "svs" / "tcga-cr-7395-01a-01-ts1.svs")
    r = api.post("/api/v1/studies/S001/images", {"source": "link.svs"})
    assert r.status_code == 403  # a symlink pointing out of the root
    assert api.post("/api/v1/studies/S001/images", {"source": "nope.tif"}).status_code == 422


def test_bad_input_is_a_4xx_before_any_job(api: Api) -> None:
    api.study("S001")
    (api.incoming / "notes.tif").write_text("not an image")
    r = api.post("/api/v1/studies/S001/images", {"source": "notes.tif"})
    assert r.status_code == 422
    assert "not an image format" in r.json()["detail"]
    spec = SyntheticSpec(size_y=100, size_x=100, channels=2, tile=64)
    write_ome_tiff(api.incoming / "s.ome.tif", spec)
    r = api.post("/api/v1/studies/S001/images",
                 {"source": "s.ome.tif", "metadata": {"stain_panel": {"FITC": "CD8"}}})
    assert r.status_code == 422
    assert "FITC" in r.json()["detail"]
    assert "DAPI" in r.json()["detail"]
    r = api.post("/api/v1/studies/S001/images",
                 {"source": "s.ome.tif", "metadata": {"animal": "typo"}})
    assert r.status_code == 422
    assert api.get("/api/v1/studies/S001/images").json() == []


def test_a_multi_image_source_registers_one_image_per_series(api: Api, real: Path) -> None:
    api.study("IMC")
    name = api.add_file(real / "imc" / "20210305_NE_mockData2.mcd")
    body = api.post("/api/v1/studies/IMC/images", {"source": name}).json()
    assert len(body["image_ids"]) == 3
    assert api.wait_job(body["job_id"])["state"] == "done"
    shapes = [api.get(f"/api/v1/images/{i}").json()["levels"][0] for i in body["image_ids"]]
    assert shapes == [[5, 87, 103], [5, 61, 59], [5, 54, 53]]


def test_batch_from_folder_and_manifest(api: Api, real: Path) -> None:
    api.study("S001")
    batch = api.incoming / "batch"
    batch.mkdir()
    for i in range(2):
        write_ome_tiff(batch / f"s{i}.ome.tif",
                       SyntheticSpec(size_y=90, size_x=80, channels=2, tile=64, seed=i))
    r = api.post("/api/v1/studies/S001/images:batch", {"folder": "batch"})
    assert r.status_code == 202, r.text
    assert len(r.json()) == 2
    for item in r.json():
        assert api.wait_job(item["job_id"])["state"] == "done"
    api.add_file(real / "labels" / "E34_imc.tiff")
    (api.incoming / "m.csv").write_text(
        "source,animal_id,tissue,dose_group,stain_panel\n"
        "E34_imc.tiff,A1,pancreas,low,Channel 0=H3;Channel 1=CD99\n")
    r = api.post("/api/v1/studies/S001/images:batch", {"manifest": "m.csv"})
    assert r.status_code == 202, r.text
    image = api.get(f"/api/v1/images/{r.json()[0]['image_id']}").json()
    assert image["metadata"]["tissue"] == "pancreas"
    assert image["channels"][1]["marker"] == "CD99"
    (api.incoming / "bad.json").write_text(json.dumps([{"source": "E34_imc.tiff"},
                                                       {"source": "/etc/passwd"}]))
    before = len(api.get("/api/v1/studies/S001/images").json())
    r = api.post("/api/v1/studies/S001/images:batch", {"manifest": "bad.json"})
    assert r.status_code == 403
    assert len(api.get("/api/v1/studies/S001/images").json()) == before


def test_cancel_and_retry(api: Api) -> None:
    api.study("S001")
    write_ome_tiff(api.incoming / "big.ome.tif",
                   SyntheticSpec(size_y=1024, size_x=1024, channels=3, tile=256))
    write_ome_tiff(api.incoming / "second.ome.tif",
                   SyntheticSpec(size_y=256, size_x=256, channels=1, tile=128, seed=4))
    first = api.post("/api/v1/studies/S001/images", {"source": "big.ome.tif"}).json()
    second = api.post("/api/v1/studies/S001/images", {"source": "second.ome.tif"}).json()
    # one job runs at a time: the second is still queued
    r = api.post(f"/api/v1/jobs/{second['job_id']}/cancel")
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert api.post(f"/api/v1/jobs/{second['job_id']}/cancel").status_code == 409
    assert api.wait_job(first["job_id"])["state"] == "done"
    r = api.post(f"/api/v1/jobs/{second['job_id']}/retry")
    assert r.status_code == 200
    assert api.wait_job(second["job_id"])["state"] == "done"
    assert api.post(f"/api/v1/jobs/{first['job_id']}/retry").status_code == 409
    actions = [e["action"] for e in api.get("/api/v1/audit").json()]
    assert "job.cancel" in actions
    assert "job.retry" in actions


def test_unfinished_jobs_resume_after_a_restart(api: Api) -> None:
    api.study("S001")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=200, size_x=200, channels=2, tile=64))
    body = api.post("/api/v1/studies/S001/images", {"source": "a.ome.tif"}).json()
    api.wait_job(body["job_id"])
    from plexhub.api.models import Job

    db = api.client.app.state.plexhub.db  # type: ignore[attr-defined]
    with db.session() as s:  # pretend the process died while running it
        job = s.get(Job, body["job_id"])
        assert job is not None
        job.state, job.progress = "running", 0.3
        s.commit()
    with TestClient(create_app(api.settings)) as client:
        resumed = ApiClient(str(client.base_url), ADMIN, http=client)
        assert resumed.wait_for_job(body["job_id"], 20, interval=0.05)["state"] == "done"
    image = api.get(f"/api/v1/images/{body['image_id']}").json()
    assert image["status"] == "ready"
    (store,) = (api.settings.stores_dir / "S001").iterdir()
    assert level(store).shape == (2, 200, 200)


def test_originals_download_needs_the_download_capability(api: Api, real: Path) -> None:
    api.study("S001")
    name = api.add_file(real / "labels" / "E34_mask.tiff")
    body = api.post("/api/v1/studies/S001/images", {"source": name}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    url = f"/api/v1/images/{body['image_id']}/original"
    r = api.get(url)
    assert r.status_code == 200
    assert r.content == (real / "labels" / "E34_mask.tiff").read_bytes()
    sponsor = api.token("sue", "sponsor")
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue", "capabilities": ["view"]})
    assert api.get(url, sponsor).status_code == 404
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue",
                                             "capabilities": ["view", "download"]})
    assert api.get(url, sponsor).status_code == 200
    assert any(e["action"] == "image.download" for e in api.get("/api/v1/audit").json())
