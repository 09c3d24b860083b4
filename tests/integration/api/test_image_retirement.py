"""Retiring an image (issue 14, "no hard deletes on GLP studies: records are retired, hidden
from normal lists, kept for the profile's retention period, and still exported"), on SQLite
and PostgreSQL: ``POST /api/v1/images/{id}/retire`` and ``/unretire``, the image list with
``include_retired``, what sponsors get (the 404 of an unknown image), the audit trail.
Purging after the retention period: tests/integration/api/test_retention.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import ingest_synthetic

pytestmark = pytest.mark.requirement("image.retire", "profile.hard_deletes")
REASON = {"X-Plexhub-Reason": "sponsor access"}


def _events(api: Api, code: str, action: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/audit?study={code}")
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["action"] == action]


def _ids(api: Api, code: str, token: str = ADMIN, **params: str) -> list[str]:
    r = api.get(f"/api/v1/studies/{code}/images", token, params=params)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()]


def _study(api: Api, code: str, profile: str) -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": f"Study {code}", "sponsor": "acme",
                                     "profile": profile})
    assert r.status_code == 201, r.text


def _grant(api: Api, code: str) -> str:
    r = api.client.post(f"/api/v1/studies/{code}/grants", json={"principal": "group:acme"},
                        headers={**api.h(), **REASON})
    assert r.status_code == 201, r.text
    return api.token("spon", "sponsor", ["acme"])


IMAGE_URLS = ("/api/v1/images/{id}", "/api/v1/images/{id}/thumbnail.png",
              "/api/v1/images/{id}/tiles/0/0/0.png", "/api/v1/images/{id}/zarr/zarr.json",
              "/api/v1/images/{id}/image.dzi", "/api/v1/images/{id}/original",
              "/portal/images/{id}")


def test_a_retired_image_is_hidden_from_lists_and_sponsors_and_kept_for_staff(api: Api) -> None:
    _study(api, "N1", "non-glp")
    sponsor = _grant(api, "N1")
    a, _ = ingest_synthetic(api, "N1", "a.ome.tif", 1)
    b, _ = ingest_synthetic(api, "N1", "b.ome.tif", 2)
    for url in IMAGE_URLS[:5]:
        r = api.get(url.format(id=a), sponsor)
        assert r.status_code == 200, (url, r.text)
    guide = api.post("/api/v1/studies/N1/guides", {"name": "tour", "waypoints": [
        {"image_id": a}]}).json()["id"]
    assert api.get(f"/portal/guides/{guide}", sponsor).status_code == 200
    r = api.post(f"/api/v1/images/{a}/retire", {"reason": "scanned twice"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert api.get(f"/portal/guides/{guide}", sponsor).status_code == 404
    assert body["id"] == a
    assert body["retired_at"] is not None
    assert body["purged_at"] is None
    retired_year = int(body["retired_at"][:4])
    assert body["retained_until"].startswith(str(retired_year + 2))  # non-glp: 2 years
    # hidden from the normal lists, for everyone; listed for staff who ask
    assert _ids(api, "N1") == [b]
    assert _ids(api, "N1", sponsor) == [b]
    listed = api.get("/api/v1/studies/N1/images", params={"include_retired": "true"}).json()
    assert [(i["id"], i["retired_at"] is not None) for i in listed] == [(a, True), (b, False)]
    r = api.get("/api/v1/studies/N1/images", sponsor, params={"include_retired": "true"})
    assert r.status_code == 403, r.text
    page = api.get("/portal/studies/N1", sponsor)
    assert page.status_code == 200, page.text
    assert re.findall(r'data-image="([^"]+)"', page.text) == [b]
    # to a sponsor the retired image is an unknown one: the same 404 and detail
    for url in IMAGE_URLS:
        r = api.get(url.format(id=a), sponsor)
        unknown = api.get(url.format(id="f" * 32), sponsor)
        assert r.status_code == unknown.status_code == 404, (url, r.text)
        if "portal" not in url:
            assert r.json()["detail"] == f"image {a}: not found"
    # staff still open it (kept for the retention period), through the API only
    page = api.get("/portal/studies/N1")
    assert re.findall(r'data-image="([^"]+)"', page.text) == [b]
    assert api.get(f"/portal/images/{a}").status_code == 404
    assert api.get(f"/api/v1/images/{a}").json()["retired_at"] == body["retired_at"]
    assert api.get(f"/api/v1/images/{a}/tiles/0/0/0.png").status_code == 200
    # audited with the old and the new state, and in the study's audit export
    (event,) = _events(api, "N1", "image.retire")
    assert (event["entity_type"], event["entity_id"], event["actor"], event["reason"],
            event["before"], event["after"]["state"]) == (
        "image", a, "admin", "scanned twice", {"state": "active"}, "retired")
    export = api.get("/api/v1/studies/N1/audit").json()
    assert [e["entity_id"] for e in export["events"] if e["action"] == "image.retire"] == [a]
    csv = api.get("/api/v1/studies/N1/audit", params={"format": "csv"}).text
    assert "image.retire" in csv
    assert a in csv
    # once, then restored (audited as well)
    r = api.post(f"/api/v1/images/{a}/retire", {"reason": "again"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"image {a}: is retired already"
    r = api.post(f"/api/v1/images/{a}/unretire", {"reason": "was the right scan"})
    assert r.status_code == 200, r.text
    assert r.json()["retired_at"] is None
    assert r.json()["retained_until"] is None
    assert _ids(api, "N1", sponsor) == [a, b]
    assert api.get(f"/api/v1/images/{a}", sponsor).status_code == 200
    (back,) = _events(api, "N1", "image.unretire")
    assert (back["before"], back["after"], back["reason"]) == (
        {"state": "retired"}, {"state": "active"}, "was the right scan")
    r = api.post(f"/api/v1/images/{a}/unretire", {})
    assert r.status_code == 409, r.text


@pytest.mark.requirement("profile.reason_required", "study.lock")
def test_glp_retirement_needs_a_reason_and_a_locked_study_refuses_it(api: Api) -> None:
    _study(api, "G1", "non-glp")
    img, _ = ingest_synthetic(api, "G1", "g.ome.tif", 3)
    r = api.client.put("/api/v1/studies/G1/profile", headers=api.h(), json={
        "profile": "glp", "reason": "now regulated", "credential": ADMIN})
    assert r.status_code == 200, r.text
    r = api.post(f"/api/v1/images/{img}/retire", {})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("reason: is required: profile glp requires a reason "
                                         "for image.retire")
    r = api.post("/api/v1/studies/G1/lock", {"reason": "final report", "credential": ADMIN})
    assert r.status_code == 200, r.text
    r = api.post(f"/api/v1/images/{img}/retire", {"reason": "duplicate"})
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("study G1: the study is locked; unlock it first")
    assert _events(api, "G1", "image.retire") == []
    assert api.get(f"/api/v1/images/{img}").json()["retired_at"] is None
    r = api.post("/api/v1/studies/G1/unlock", {"reason": "amendment", "credential": ADMIN})
    assert r.status_code == 200, r.text
    # the reason from the header works as anywhere else
    r = api.client.post(f"/api/v1/images/{img}/retire", json={},
                        headers={**api.h(), "X-Plexhub-Reason": "duplicate scan"})
    assert r.status_code == 200, r.text
    assert r.json()["retained_until"].startswith(str(int(r.json()["retired_at"][:4]) + 15))
    (event,) = _events(api, "G1", "image.retire")
    assert event["reason"] == "duplicate scan"
    r = api.post(f"/api/v1/images/{img}/unretire", {})
    assert r.status_code == 422, r.text
    assert "requires a reason for image.unretire" in r.json()["detail"]


def test_retiring_is_for_staff_sponsors_without_a_grant_get_404(api: Api) -> None:
    _study(api, "N2", "non-glp")
    granted = _grant(api, "N2")
    outsider = api.token("out", "sponsor", ["other-org"])
    analyst = api.token("ana", "analyst")
    img, _ = ingest_synthetic(api, "N2", "c.ome.tif", 4)
    for action in ("retire", "unretire"):
        for image in (img, "f" * 32):
            r = api.post(f"/api/v1/images/{image}/{action}", {"reason": "x"}, outsider)
            assert r.status_code == 404, r.text
            assert r.json() == {"detail": f"image {image}: not found"}
        for token in (granted, analyst):
            r = api.post(f"/api/v1/images/{img}/{action}", {"reason": "x"}, token)
            assert r.status_code == 403, r.text
    assert api.get(f"/api/v1/images/{img}").json()["retired_at"] is None
    assert _events(api, "N2", "image.retire") == []


@pytest.mark.requirement("profile.signatures", "signature.reauthentication")
def test_a_profile_that_asks_for_a_signature_gets_one(tmp_path: Path) -> None:
    """A CRO's own profile may ask for a signature to retire an image: without the
    credential 422, with a wrong one 403 (audited), with the signer's own it is signed."""
    from fastapi.testclient import TestClient

    from plexhub.api.main import create_app

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "gcp.yaml").write_text(
        "name: gcp\ntitle: GCP\nreason_required: [image.retire]\n"
        "signatures: {image.retire: approved}\nretention_years: 25\nhard_deletes: false\n")
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                        profiles_dir=profiles, chunk_size=64, block_size=128)
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with TestClient(create_app(settings, migrate=True)) as client:
        api = Api(client, settings, incoming)
        api.study("C1")
        img, _ = ingest_synthetic(api, "C1", "c.ome.tif", 7)
        r = api.client.put("/api/v1/studies/C1/profile", headers=api.h(),
                           json={"profile": "gcp"})
        assert r.status_code == 200, r.text
        r = api.post(f"/api/v1/images/{img}/retire", {"reason": "damaged slide"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("credential: is required: image.retire needs "
                                             "your electronic signature (approved)")
        r = api.post(f"/api/v1/images/{img}/retire", {"reason": "damaged slide",
                                                      "credential": "wrong"})
        assert r.status_code == 403, r.text
        assert api.get(f"/api/v1/images/{img}").json()["retired_at"] is None
        assert [e["after"]["action"] for e in _events(api, "C1", "signature.refused")] == [
            "image.retire"]
        r = api.post(f"/api/v1/images/{img}/retire", {"reason": "damaged slide",
                                                      "credential": ADMIN})
        assert r.status_code == 200, r.text
        (sig,) = r.json()["signatures"]
        assert (sig["action"], sig["meaning"], sig["entity_type"], sig["entity_id"],
                sig["valid"]) == ("image.retire", "approved", "image", img, True)
        assert r.json()["retained_until"].startswith(str(int(r.json()["retired_at"][:4]) + 25))


def test_retired_images_leave_the_phenotype_summary_and_their_presets(api: Api) -> None:
    """What walks a study's images hides a retired one as the image list does: the phenotype
    summary (JSON and CSV) and the presets reached through it (its own, a panel preset that
    fits only retired images); staff ask for it with ``include_retired``."""
    _study(api, "N5", "non-glp")
    sponsor = _grant(api, "N5")
    a, _ = ingest_synthetic(api, "N5", "a.ome.tif", 11)
    b, _ = ingest_synthetic(api, "N5", "b.ome.tif", 12)
    url = "/api/v1/studies/N5/phenotypes"

    def summary(token: str = ADMIN, **params: str) -> list[tuple[str, Any]]:
        r = api.get(url, token, params=params)
        assert r.status_code == 200, r.text
        return [(e["image_id"], e.get("retired")) for e in r.json()["images"]]

    (own,) = [p["id"] for p in api.get(f"/api/v1/images/{a}/presets").json()
              if p["scope"] == "image"]
    label = api.get(f"/api/v1/images/{a}").json()["channels"][0]["label"]
    r = api.post("/api/v1/presets", {"scope": "panel", "target": "N5-panel", "document": {
        "name": "n5", "channels": [{"label": label, "color": "FF00FF",
                                    "window": {"start": 1, "end": 50}}]}})
    assert r.status_code == 201, r.text
    panel = r.json()["id"]
    assert summary(sponsor) == [(a, None), (b, None)]
    for pid in (own, panel):
        assert api.get(f"/api/v1/presets/{pid}", sponsor).status_code == 200
    assert api.post(f"/api/v1/images/{a}/retire", {"reason": "duplicate"}).status_code == 200
    for token in (ADMIN, sponsor):
        assert summary(token) == [(b, None)]
        assert [row.split(",")[0] for row in api.get(
            url, token, params={"format": "csv"}).text.splitlines()] == ["image_id"]
    assert summary(include_retired="true") == [(a, True), (b, False)]
    r = api.get(url, sponsor, params={"include_retired": "true"})
    assert r.status_code == 403, r.text
    # the retired image's own preset is staff's alone, with the same 404 as an unknown one
    r = api.get(f"/api/v1/presets/{own}", sponsor)
    unknown = api.get(f"/api/v1/presets/{'f' * 32}", sponsor)
    assert r.status_code == unknown.status_code == 404, r.text
    assert api.get(f"/api/v1/presets/{own}").status_code == 200
    assert api.get(f"/api/v1/presets/{panel}", sponsor).status_code == 200  # b fits it
    assert api.post(f"/api/v1/images/{b}/retire", {"reason": "duplicate"}).status_code == 200
    assert summary(sponsor) == []
    assert api.get(f"/api/v1/presets/{panel}", sponsor).status_code == 404
    assert api.get(f"/api/v1/presets/{panel}").status_code == 200
    # a study without a grant stays the 404 of an unknown study
    outsider = api.token("out", "sponsor", ["other-org"])
    for path in (url, "/api/v1/studies/NOPE/phenotypes"):
        r = api.get(path, outsider, params={"include_retired": "true"})
        assert r.status_code == 404, r.text


def test_a_guide_that_shows_a_retired_image_is_staffs_and_none_is_published_on_one(
        api: Api) -> None:
    _study(api, "N7", "non-glp")
    sponsor = _grant(api, "N7")
    a, _ = ingest_synthetic(api, "N7", "a.ome.tif", 13)
    b, _ = ingest_synthetic(api, "N7", "b.ome.tif", 14)
    tour = api.post("/api/v1/studies/N7/guides", {"name": "tour", "waypoints": [
        {"image_id": b}, {"image_id": a}]}).json()["id"]
    other = api.post("/api/v1/studies/N7/guides", {"name": "b-only", "waypoints": [
        {"image_id": b}]}).json()["id"]

    def listed(token: str = ADMIN) -> list[str]:
        r = api.get("/api/v1/studies/N7/guides", token)
        assert r.status_code == 200, r.text
        return sorted(g["id"] for g in r.json())

    assert listed(sponsor) == sorted([tour, other])
    assert api.post(f"/api/v1/images/{a}/retire", {"reason": "duplicate"}).status_code == 200
    assert listed(sponsor) == [other]
    assert listed() == sorted([tour, other])
    r = api.get(f"/api/v1/guides/{tour}", sponsor)
    unknown = api.get(f"/api/v1/guides/{'0' * 32}", sponsor)
    assert r.status_code == unknown.status_code == 404, r.text
    assert r.json()["detail"] == f"guide {tour}: not found"
    assert api.get(f"/api/v1/guides/{tour}").status_code == 200
    assert api.get(f"/api/v1/guides/{other}", sponsor).status_code == 200
    page = api.get("/portal/studies/N7", sponsor)
    assert other in page.text
    assert tour not in page.text
    r = api.post("/api/v1/studies/N7/guides", {"name": "new", "waypoints": [{"image_id": a}]})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"image {a}: is retired")
    assert api.post(f"/api/v1/images/{a}/unretire", {"reason": "back"}).status_code == 200
    assert listed(sponsor) == sorted([tour, other])
    assert api.get(f"/api/v1/guides/{tour}", sponsor).status_code == 200


def test_a_retired_image_stays_in_the_findings_and_the_audit_exports(api: Api) -> None:
    """Hidden from the normal lists, never from what an auditor gets: the findings export,
    the peer review (marked retired), the audit export and the audit report."""
    _study(api, "N8", "non-glp")
    a, _ = ingest_synthetic(api, "N8", "a.ome.tif", 15)
    b, _ = ingest_synthetic(api, "N8", "b.ome.tif", 16)
    r = api.post(f"/api/v1/images/{a}/findings", {"tissue": "liver",
                                                  "term": "necrosis, hepatocellular",
                                                  "severity": 2})
    assert r.status_code == 201, r.text
    assert api.post(f"/api/v1/images/{a}/retire", {"reason": "duplicate"}).status_code == 200
    assert _ids(api, "N8") == [b]
    rows = api.get("/api/v1/studies/N8/findings.json")
    assert rows.status_code == 200, rows.text
    assert [row["MIIMAGE"] for row in rows.json()] == [a]
    assert a in api.get("/api/v1/studies/N8/findings.csv").text
    review = api.get("/api/v1/studies/N8/review").json()
    assert [(s["id"], s["retired"], len(s["findings"])) for s in review["slides"]] == [
        (a, True, 1), (b, False, 0)]
    done = api.post(f"/api/v1/images/{a}/review/complete", {})  # nothing to read on it
    assert done.status_code == 409, done.text
    assert done.json()["detail"].startswith(f"image {a}: is retired")
    export = api.get("/api/v1/studies/N8/audit").json()
    assert [e["entity_id"] for e in export["events"] if e["action"] == "image.retire"] == [a]
    report = api.get("/api/v1/studies/N8/audit/report")
    assert report.status_code == 200, report.text
    assert "image.retire" in report.text
    assert a in report.text
