"""Issue 14 on the reading tools of issues 19 (SQLite and PostgreSQL): on a GLP study a change
of a recorded annotation (an edit, a deletion) and a guided view's publication and
revocation are refused without a reason (422 naming ``reason``), first records are not;
a deleted annotation is retired (hidden from the list, its versions kept and in the audit
export); a saved view is audited and a locked study still takes one (a reader's own)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.policies.profiles import builtin_profiles
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import write_ome_tiff

POLYGON = {"type": "Polygon", "coordinates": [[[2, 2], [30, 2], [20, 25], [2, 2]]]}


def _post(api: Api, url: str, body: Any, reason: str = "") -> httpx.Response:
    headers = {**api.h(), **({"X-Plexhub-Reason": reason} if reason else {})}
    return api.client.post(url, json=body, headers=headers)


def _glp_image(api: Api, code: str) -> str:
    r = api.post("/api/v1/studies", {"code": code, "title": "GLP", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    write_ome_tiff(api.incoming / "g.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                             channels=2, tile=64, seed=9))
    r = _post(api, f"/api/v1/studies/{code}/images", {"source": "g.ome.tif"},
              "slides received")
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    return str(r.json()["image_id"])


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("reason: is required"), r.text


@pytest.mark.requirement("profile.reason_required", "profile.hard_deletes")
def test_glp_annotation_changes_need_a_reason_and_a_deletion_retires(api: Api) -> None:
    assert {"annotation.edit", "annotation.delete", "guide.publish", "guide.revoke"} <= \
        builtin_profiles()["glp"].reason_required
    image = _glp_image(api, "GA")
    url = f"/api/v1/images/{image}/annotations"
    feature = {"type": "Feature", "geometry": POLYGON, "properties": {"class": "necrosis"}}
    r = _post(api, url, {"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 201, r.text  # a first record needs no reason
    fid = r.json()["ids"][0]
    edit = {"type": "FeatureCollection", "features": [
        {**feature, "id": fid, "properties": {"class": "necrosis", "note": "bridging"}}]}
    _refused(_post(api, url, edit))
    assert _post(api, url, {**edit, "reason": "peer review"}).status_code == 201
    gone = {"type": "FeatureCollection", "features": [
        {**feature, "id": fid, "properties": {"deleted": True}}]}
    _refused(_post(api, url, gone))
    assert api.get(url).json()["features"][0]["properties"]["version"] == 2  # untouched
    assert _post(api, url, gone, "drawn on the wrong slide").status_code == 201
    assert api.get(url).json()["features"] == []  # hidden from the list
    # kept: every version is in the study's audit export, the deletion with its reason
    events = [e for e in api.get("/api/v1/studies/GA/audit").json()["events"]
              if e["entity_type"] == "annotation"]
    assert [(e["action"], e["reason"]) for e in events] == [
        ("annotation.create", ""), ("annotation.edit", "peer review"),
        ("annotation.delete", "drawn on the wrong slide")]
    assert events[-1]["before"]["properties"]["note"] == "bridging"


@pytest.mark.requirement("profile.reason_required")
def test_glp_guided_views_need_a_reason_to_publish_and_revoke(api: Api) -> None:
    image = _glp_image(api, "GG")
    body = {"name": "tour", "waypoints": [{"image_id": image, "text": "Overview"}]}
    _refused(_post(api, "/api/v1/studies/GG/guides", body))
    r = _post(api, "/api/v1/studies/GG/guides", {**body, "reason": "for the sponsor"})
    assert r.status_code == 201, r.text
    guide = r.json()["id"]
    _refused(_post(api, f"/api/v1/guides/{guide}/revoke", {}))
    assert _post(api, f"/api/v1/guides/{guide}/revoke", {}, "wrong slide").status_code == 200
    events = [(e["action"], e["reason"]) for e in api.get("/api/v1/audit?study=GG").json()
              if e["entity_type"] == "guide"]
    assert events == [("guide.publish", "for the sponsor"), ("guide.revoke", "wrong slide")]


@pytest.mark.requirement("audit.attribution", "study.lock")
def test_a_saved_view_is_audited_and_a_locked_study_still_takes_one(api: Api) -> None:
    image = _glp_image(api, "GV")
    sue = api.token("sue", "scientist")
    views = f"/api/v1/images/{image}/views"
    r = api.post(views, {"name": "hot spot", "c": "1|0:500", "x": 10, "y": 12, "zoom": 2},
                 token=sue)
    assert r.status_code == 201, r.text
    r = _post(api, "/api/v1/studies/GV/lock", {"reason": "report signed",
                                                "credential": ADMIN})
    assert r.status_code == 200, r.text
    r = api.post(views, {"name": "hot spot", "c": "1|0:900", "zoom": 4}, token=sue)
    assert r.status_code == 201, r.text  # a reader's own view: not a change of the study
    saved = [e for e in api.get("/api/v1/audit?study=GV").json() if e["action"] == "view.save"]
    assert [(e["actor"], e["before"], e["after"]["c"], e["after"]["zoom"]) for e in saved] == [
        ("sue", None, "1|0:500", 2.0),
        ("sue", {"preset": "", "c": "1|0:500", "x": 10.0, "y": 12.0, "zoom": 2.0},
         "1|0:900", 4.0)]
    # everything else is still refused on the locked study
    r = _post(api, f"/api/v1/images/{image}/annotations", {"type": "FeatureCollection",
              "features": [{"type": "Feature", "geometry": POLYGON, "properties": {}}]},
              "late")
    assert r.status_code == 403, r.text
