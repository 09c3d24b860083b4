"""Every audit event of a study's job or image names the study: ``GET /audit?study=`` finds
the cancel, the retry and the image becoming ready (before, those three had no study and the
filter missed them), and another study's filter does not."""

from __future__ import annotations

import pytest

from plexhub.api.jobs import JobRunner
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api


def test_job_and_image_events_are_filed_under_their_study(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("S1")
    api.study("S2")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=96, size_x=96, channels=2, tile=64, seed=3))
    # no runner claims the job until the test lets it: it can be cancelled while queued
    monkeypatch.setattr(JobRunner, "_claim", lambda self, job_id: False)
    r = api.post("/api/v1/studies/S1/images", {"source": "a.ome.tif"})
    assert r.status_code == 202, r.text
    job_id, image_id = r.json()["job_id"], r.json()["image_id"]
    r = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    r = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "queued"
    monkeypatch.undo()
    api.client.app.state.plexhub.jobs.submit(job_id)  # type: ignore[attr-defined]
    assert api.wait_job(job_id)["state"] == "done"

    scientist = api.token("sci", "scientist")
    events = api.get("/api/v1/audit?study=S1&limit=1000", token=scientist).json()
    found = {(e["action"], e["entity_id"]) for e in events}
    assert ("job.cancel", job_id) in found
    assert ("job.retry", job_id) in found
    assert ("image.ready", image_id) in found
    assert all(e["study"] == "S1" for e in events)
    other = api.get("/api/v1/audit?study=S2&limit=1000").json()
    assert not {e["entity_id"] for e in other} & {job_id, image_id}
