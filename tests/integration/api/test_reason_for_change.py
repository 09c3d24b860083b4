"""Reason for change (issue 14), on SQLite and PostgreSQL: on a GLP study every change
without a reason is refused with 422 naming `reason` and leaves nothing behind; the reason
comes in the body's `reason` field (where the route has one) or the X-Plexhub-Reason header
(any write route); a non-GLP study takes one optionally. Unknown profiles are refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from plexhub.api import audit
from plexhub.api.jobs import JobRunner
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api

REASON = "X-Plexhub-Reason"


def _glp(api: Api, code: str = "G1") -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": "Tox 28-day", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    assert r.json()["profile"] == "glp"


def _patch(api: Api, code: str, body: dict[str, Any],
           headers: dict[str, str] | None = None) -> httpx.Response:
    return api.client.patch(f"/api/v1/studies/{code}", json=body,
                            headers={**api.h(), **(headers or {})})


def _events(api: Api, code: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/audit?study={code}&limit=1000")
    assert r.status_code == 200, r.text
    return list(r.json())


def _refused(r: httpx.Response, action: str) -> None:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("reason: is required: "), detail
    assert f"profile glp requires a reason for {action}" in detail
    assert "`reason`" in detail
    assert REASON in detail


PRESET = {"name": "tox", "channels": [{"label": "DAPI", "color": "0000FF",
                                       "window": {"start": 0, "end": 1000}}]}


@pytest.mark.requirement("profile.reason_required")
def test_glp_changes_without_a_reason_are_refused_and_leave_nothing(api: Api) -> None:
    _glp(api)
    _refused(_patch(api, "G1", {"title": "renamed"}), "study.update")
    _refused(_patch(api, "G1", {"title": "renamed", "reason": "   "}), "study.update")
    _refused(api.post("/api/v1/studies/G1/grants", {"principal": "user:spon"}),
             "grant.create")
    _refused(api.post("/api/v1/presets", {"scope": "study", "target": "G1",
                                          "document": PRESET}), "preset.save")
    assert api.get("/api/v1/studies/G1").json()["title"] == "Tox 28-day"
    assert api.get("/api/v1/studies/G1/grants").json() == []
    assert [e["action"] for e in _events(api, "G1")] == ["study.create"]


@pytest.mark.requirement("profile.reason_required")
def test_glp_changes_with_a_reason_in_the_body_or_the_header(api: Api) -> None:
    _glp(api)
    r = _patch(api, "G1", {"title": "renamed", "reason": "sponsor asked for the protocol title"})
    assert r.status_code == 200, r.text
    r = _patch(api, "G1", {"title": "Zürich tox"},
               {REASON: quote("typo: Zürich, not Zurich")})  # percent-encoded UTF-8
    assert r.status_code == 200, r.text
    r = api.client.post("/api/v1/studies/G1/grants", json={"principal": "user:spon"},
                        headers={**api.h(), REASON: "sponsor QA audit"})
    assert r.status_code == 201, r.text
    grant = r.json()["id"]
    _refused(api.delete(f"/api/v1/grants/{grant}"), "grant.revoke")
    r = api.delete(f"/api/v1/grants/{grant}?reason=audit+finished")
    assert r.status_code == 200, r.text
    r = api.client.post("/api/v1/presets", json={"scope": "study", "target": "G1",
                                                 "document": PRESET},
                        headers={**api.h(), REASON: "window agreed with the pathologist"})
    assert r.status_code == 201, r.text
    got = [(e["action"], e["reason"]) for e in _events(api, "G1")]
    assert got == [("study.create", ""),
                   ("study.update", "sponsor asked for the protocol title"),
                   ("study.update", "typo: Zürich, not Zurich"),
                   ("grant.create", "sponsor QA audit"),
                   ("grant.revoke", "audit finished"),
                   ("preset.save", "window agreed with the pathologist")]


def test_non_glp_takes_a_reason_optionally(api: Api) -> None:
    api.study("N1")
    assert _patch(api, "N1", {"title": "no reason"}).status_code == 200
    assert _patch(api, "N1", {"title": "with one"}, {REASON: "clearer"}).status_code == 200
    assert [(e["action"], e["reason"]) for e in _events(api, "N1")] == [
        ("study.create", ""), ("study.update", ""), ("study.update", "clearer")]


def test_bad_reason_headers_and_unknown_profiles_are_refused(api: Api) -> None:
    _glp(api)
    r = _patch(api, "G1", {"title": "x"}, {REASON: "a" * 2001})
    assert r.status_code == 422
    assert r.json()["detail"] == f"{REASON}: is longer than 2000 characters"
    r = _patch(api, "G1", {"title": "x"}, {REASON: "%FF%FE"})
    assert r.status_code == 422
    assert r.json()["detail"] == f"{REASON}: is not percent-encoded UTF-8"
    r = api.post("/api/v1/studies", {"code": "C1", "title": "t", "sponsor": "a",
                                     "profile": "gcp"})
    assert r.status_code == 422
    assert r.json()["detail"] == \
        "profile 'gcp': is not a known compliance profile (choose one of glp, non-glp)"
    assert api.get("/api/v1/studies/C1").status_code == 404


def test_glp_ingest_and_job_cancel_need_a_reason_and_name_the_user(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _glp(api)
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=96, size_x=96, channels=2, tile=64, seed=3))
    monkeypatch.setattr(JobRunner, "_claim", lambda self, job_id: False)  # stays queued
    _refused(api.post("/api/v1/studies/G1/images", {"source": "a.ome.tif"}), "image.ingest")
    r = api.client.post("/api/v1/studies/G1/images", json={"source": "a.ome.tif"},
                        headers={**api.h(), REASON: "slide 1 of 40"})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    _refused(api.post(f"/api/v1/jobs/{job}/cancel"), "job.cancel")
    r = api.client.post(f"/api/v1/jobs/{job}/cancel", headers={**api.h(), REASON: "wrong slide"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    with api.client.app.state.plexhub.db.session() as s:  # type: ignore[attr-defined]
        got = [(e["action"], e["actor"], e["role"], e["reason"]) for e in audit.rows(s, "G1")]
    assert got[1:] == [("image.ingest", "admin", "admin", "slide 1 of 40"),
                       ("job.cancel", "admin", "admin", "wrong slide")]
