"""Sponsors get de-identified images: no slide IDs without view_labels, no study-internal
fields, no server paths, no OME-XML; thumbnails come from the pyramid, not the label."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.api import Api

META = {"animal_id": "A-17", "tissue": "tonsil", "dose_group": "high", "slide_id": "SL-0042",
        "notes": "re-stained after QC"}


def ingest(api: Api, real: Path) -> tuple[str, str]:
    api.study("S001")
    name = api.add_file(real / "qptiff" / "small_vectra.qptiff")
    body = api.post("/api/v1/studies/S001/images", {"source": name, "metadata": META}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    return str(body["image_id"]), str(body["job_id"])


def test_internal_fields_are_staff_only_and_audited(api: Api) -> None:
    api.study("S001")
    sci, analyst = api.token("sam", "scientist"), api.token("ann", "analyst")
    sponsor = api.token("sue", "sponsor")
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue"})
    assert api.get("/api/v1/studies/S001").json()["internal_fields"] == []
    body = {"internal_fields": ["notes", "dose_group", "notes"], "reason": "blinded study"}
    r = api.client.patch("/api/v1/studies/S001", json=body, headers=api.h(sci))
    assert r.status_code == 200, r.text
    assert r.json()["internal_fields"] == ["dose_group", "notes"]
    assert api.client.patch("/api/v1/studies/S001", json=body,
                            headers=api.h(analyst)).status_code == 403
    assert api.client.patch("/api/v1/studies/S001", json=body,
                            headers=api.h(sponsor)).status_code == 403
    assert api.client.patch("/api/v1/studies/S002", json=body,
                            headers=api.h(sponsor)).status_code == 404
    bad = api.client.patch("/api/v1/studies/S001", json={"internal_fields": ["a b"]},
                           headers=api.h(sci))
    assert bad.status_code == 422
    assert api.get("/api/v1/studies/S001", sponsor).json()["internal_fields"] is None
    assert api.get("/api/v1/studies", sponsor).json()[0]["internal_fields"] is None
    (event,) = [e for e in api.get("/api/v1/audit", params={"study": "S001"}).json()
                if e["action"] == "study.update"]
    assert event["before"] == {"internal_fields": []}
    assert event["after"] == {"internal_fields": ["dose_group", "notes"]}
    assert event["reason"] == "blinded study"
    assert event["actor"] == "sam"


def test_sponsor_metadata_jobs_and_store_are_de_identified(api: Api, real: Path) -> None:
    image_id, job_id = ingest(api, real)
    api.client.patch("/api/v1/studies/S001", json={"internal_fields": ["notes"]},
                     headers=api.h())
    sponsor = api.token("sue", "sponsor", ["acme"])
    api.post("/api/v1/studies/S001/grants", {"principal": "group:acme"})

    def meta(token: str) -> tuple[dict[str, str], dict[str, str]]:
        one = api.get(f"/api/v1/images/{image_id}", token).json()["metadata"]
        (listed,) = api.get("/api/v1/studies/S001/images", token).json()
        return one, listed["metadata"]

    assert meta(api.h()["Authorization"][7:]) == (META, META)  # staff see everything
    for seen in meta(sponsor):
        assert seen == {"animal_id": "A-17", "tissue": "tonsil", "dose_group": "high"}
    job = api.get(f"/api/v1/jobs/{job_id}", sponsor).json()
    assert job["source"] == ""
    assert "qptiff" not in str(job)
    assert api.get(f"/api/v1/jobs/{job_id}").json()["source"].endswith("small_vectra.qptiff")

    zarr = f"/api/v1/images/{image_id}/zarr"
    label = f"{zarr}/associated/label/zarr.json"
    assert api.get(label).status_code == 200
    assert api.get(f"{zarr}//associated/label/zarr.json").status_code == 200
    assert api.get(f"{zarr}/zarr.json", sponsor).status_code == 200
    for path in (label, f"{zarr}//associated/label/zarr.json", f"{zarr}/OME/METADATA.ome.xml"):
        assert api.get(path, sponsor).status_code == 404, path

    # view_labels: the label, the macro and slide IDs; still no OME-XML, no internal fields
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue",
                                             "capabilities": ["view_labels"]})
    for seen in meta(sponsor):
        assert seen == {"animal_id": "A-17", "tissue": "tonsil", "dose_group": "high",
                        "slide_id": "SL-0042"}
    assert api.get(label, sponsor).status_code == 200
    assert api.get(f"{zarr}/OME/METADATA.ome.xml", sponsor).status_code == 404
    assert api.get(f"{zarr}/OME/METADATA.ome.xml").status_code == 200


def test_thumbnail_is_rendered_from_the_pyramid(api: Api, real: Path) -> None:
    image_id, _ = ingest(api, real)
    url = f"/api/v1/images/{image_id}/thumbnail.png"
    r = api.get(url, params={"max": 256})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    thumb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert thumb.shape == (192, 256, 3)  # the image's 4:3, not the label's shape
    # the same pixels as level 2 (360 x 480) rendered with the default preset, box-filtered
    tile = api.get(f"/api/v1/images/{image_id}/tiles/2/0/0.png").content
    level = Image.open(io.BytesIO(tile)).convert("RGB")
    assert level.size == (480, 360)
    expect = np.asarray(level.resize((256, 192), Image.Resampling.BOX))
    assert np.abs(thumb.astype(int) - expect.astype(int)).max() <= 1
    small = api.get(url, params={"max": 64})
    assert Image.open(io.BytesIO(small.content)).size == (64, 48)
    again = api.client.get(url, params={"max": 256},
                           headers={**api.h(), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    sponsor = api.token("sue", "sponsor")
    assert api.get(url, sponsor).status_code == 404
    assert api.get(url, params={"max": 5000}).status_code == 422
