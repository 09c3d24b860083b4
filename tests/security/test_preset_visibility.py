"""Presets are visible only through what the caller may see (issue 12).

A panel preset (``POST /api/v1/presets``, scope panel) is read and listed by a sponsor only
through an image the sponsor may see whose channels carry the panel's markers; a sponsor
without a grant gets the 404 of an unknown preset. ``visibility`` given with a later version
of a preset takes effect (audited) instead of being ignored.
"""

from __future__ import annotations

from typing import Any

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api


def image_with(api: Api, code: str, channels: int) -> str:
    """A converted synthetic image of ``channels`` channels (DAPI, CD3, CD8, CD20, ...)."""
    name = f"{code}.ome.tif"
    write_ome_tiff(api.incoming / name, SyntheticSpec(size_y=64, size_x=64, channels=channels,
                                                      tile=64, seed=channels))
    r = api.post(f"/api/v1/studies/{code}/images", {"source": name})
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    return str(r.json()["image_id"])


def channel(marker: str, color: str = "FF00FF") -> dict[str, Any]:
    return {"marker": marker, "color": color, "window": {"start": 0, "end": 4000}}


def listed(api: Api, image: str, token: str) -> set[str]:
    r = api.get(f"/api/v1/images/{image}/presets", token)
    assert r.status_code == 200, r.text
    return {p["id"] for p in r.json()}


def test_a_panel_preset_is_seen_only_through_an_image_the_sponsor_may_see(api: Api) -> None:
    api.study("WIDE", sponsor="acme")
    api.study("NARROW", sponsor="other")
    wide = image_with(api, "WIDE", 4)  # DAPI CD3 CD8 CD20
    narrow = image_with(api, "NARROW", 2)  # DAPI CD3
    r = api.post("/api/v1/presets", {"scope": "panel", "target": "T-cell panel", "document": {
        "name": "t-cells", "channels": [channel("CD8"), channel("CD20", "00FFFF")]}})
    assert r.status_code == 201, r.text
    panel = r.json()["id"]
    paths = [f"/api/v1/presets/{panel}", f"/api/v1/presets/{panel}/versions",
             f"/api/v1/presets/{panel}/versions/1"]

    nobody = api.token("nora", "sponsor", ["nobody"])  # no grant at all
    for path in paths:
        r = api.get(path, nobody)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {"detail": f"preset {panel}: not found"}
    assert api.get(f"/api/v1/presets/{panel}/versions/1/export", nobody,
                   params={"format": "napari"}).status_code == 404

    # a grant to a study whose image lacks the panel's markers shows nothing more
    other = api.token("olga", "sponsor", ["other"])
    api.post("/api/v1/studies/NARROW/grants", {"principal": "group:other"})
    assert panel not in listed(api, narrow, other)
    assert api.get(paths[0], other).status_code == 404
    r = api.post(f"/api/v1/images/{narrow}/presets:apply", {"preset": panel}, other)
    assert r.status_code == 404, r.text

    # through an image that carries the markers, the sponsor sees and applies it
    acme = api.token("anna", "sponsor", ["acme"])
    api.post("/api/v1/studies/WIDE/grants", {"principal": "group:acme"})
    assert panel in listed(api, wide, acme)
    assert api.get(paths[0], acme).json()["document"]["name"] == "t-cells"
    r = api.post(f"/api/v1/images/{wide}/presets:apply", {"preset": panel}, acme)
    assert r.status_code == 200, r.text
    r = api.get(f"/api/v1/images/{wide}/tiles/0/0/0.png", acme, params={"preset": panel})
    assert r.status_code == 200, r.text
    # staff see every study, hence every panel preset
    assert api.get(paths[0]).status_code == 200


def test_a_study_preset_is_not_seen_without_a_grant(api: Api) -> None:
    api.study("S1")
    image_with(api, "S1", 2)
    r = api.post("/api/v1/presets", {"scope": "study", "target": "S1", "document": {
        "name": "study-wide", "channels": [channel("DAPI")]}})
    assert r.status_code == 201, r.text
    nobody = api.token("nora", "sponsor", ["nobody"])
    assert api.get(f"/api/v1/presets/{r.json()['id']}", nobody).status_code == 404


def test_private_given_with_a_later_version_takes_effect_and_is_audited(api: Api) -> None:
    api.study("S2", sponsor="acme")
    image = image_with(api, "S2", 2)
    api.post("/api/v1/studies/S2/grants", {"principal": "group:acme"})
    owner = api.token("ada", "analyst")
    colleague = api.token("bob", "analyst")
    sponsor = api.token("sue", "sponsor", ["acme"])
    doc = {"name": "mine", "channels": [channel("DAPI")]}
    first = api.post(f"/api/v1/images/{image}/presets", doc, owner)
    assert first.status_code == 201, first.text
    pid = first.json()["id"]
    assert api.get(f"/api/v1/presets/{pid}", sponsor).status_code == 200  # visibility study

    second = api.post(f"/api/v1/images/{image}/presets", {**doc, "visibility": "private"},
                      owner)
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2
    for token in (sponsor, colleague):
        assert api.get(f"/api/v1/presets/{pid}", token).status_code == 404
        assert pid not in listed(api, image, token)
        r = api.get(f"/api/v1/images/{image}/tiles/0/0/0.png", token, params={"preset": pid})
        assert r.status_code == 404, r.text
    summary = next(p for p in api.get(f"/api/v1/images/{image}/presets", owner).json()
                   if p["id"] == pid)
    assert summary["visibility"] == "private"
    assert api.get(f"/api/v1/presets/{pid}").status_code == 200  # admin
    events = api.get("/api/v1/audit", params={"study": "S2"}).json()
    change = [e for e in events if e["action"] == "preset.visibility"]
    assert len(change) == 1, events
    assert change[0]["actor"] == "ada"
    assert change[0]["before"] == {"visibility": "study"}
    assert change[0]["after"] == {"visibility": "private"}

    # the name is not a way into someone else's private preset
    r = api.post(f"/api/v1/images/{image}/presets", doc, colleague)
    assert r.status_code == 409, r.text
    # a version without visibility keeps it; the owner may open it again
    assert api.post(f"/api/v1/images/{image}/presets", doc, owner).status_code == 201
    assert api.get(f"/api/v1/presets/{pid}", sponsor).status_code == 404
    r = api.post(f"/api/v1/images/{image}/presets", {**doc, "visibility": "study"}, owner)
    assert r.status_code == 201, r.text
    assert api.get(f"/api/v1/presets/{pid}", sponsor).status_code == 200


def test_only_the_owner_or_an_admin_changes_visibility(api: Api) -> None:
    api.study("S3")
    image_with(api, "S3", 2)
    owner = api.token("ada", "analyst")
    colleague = api.token("bob", "analyst")
    body = {"scope": "study", "target": "S3", "document": {"name": "shared",
                                                             "channels": [channel("DAPI")]}}
    first = api.post("/api/v1/presets", body, owner)
    assert first.status_code == 201, first.text
    r = api.post("/api/v1/presets", {**body, "visibility": "private"}, colleague)
    assert r.status_code == 403, r.text
    assert "owner" in r.json()["detail"]
    assert api.post("/api/v1/presets", body, colleague).status_code == 201  # a new version
    r = api.post("/api/v1/presets", {**body, "visibility": "private"})  # admin
    assert r.status_code == 201, r.text
    assert api.get(f"/api/v1/presets/{first.json()['id']}", colleague).status_code == 404
