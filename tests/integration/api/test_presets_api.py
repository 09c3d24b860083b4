"""Render presets through the API: versions, panel binding, auto-contrast, formats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_qptiff


def ready_image(api: Api, real: Path, code: str = "S001") -> str:
    return ingest_qptiff(api, real, code, {"stain_panel": {"FITC": "CD8", "Cy3": "PanCK"}})


PRESET: dict[str, Any] = {
    "name": "tumour",
    "channels": [
        {"label": "DAPI", "active": True, "color": "#0000ff", "window": {"start": 5, "end": 80}},
        {"marker": "CD8", "active": True, "color": "00FF00", "window": {"start": 10, "end": 90},
         "gamma": 1.5},
        {"label": "Cy3", "active": False, "color": "ff0000",
         "window": {"start": 0, "end": 255, "min": 0, "max": 255}},
    ],
}


def test_default_preset_exists_after_ingest(api: Api, real: Path) -> None:
    image = ready_image(api, real)
    presets = api.get(f"/api/v1/images/{image}/presets").json()
    default = next(p for p in presets if p["is_default"])
    assert default["name"] == "default"
    assert default["latest_version"] == 1
    doc = api.get(f"/api/v1/presets/{default['id']}").json()["document"]
    assert doc["provenance"]["method"] == "percentile"
    assert [c["label"] for c in doc["channels"]] == ["DAPI", "FITC", "Cy3"]
    assert doc["channels"][1]["marker"] == "CD8"
    assert all(c["window"]["end"] > c["window"]["start"] for c in doc["channels"])


def test_save_versions_normalises_colours_and_warns(api: Api, real: Path) -> None:
    image = ready_image(api, real)
    r = api.post(f"/api/v1/images/{image}/presets", PRESET)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"] == 1
    assert first["warnings"] == []
    again = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    assert again["id"] == first["id"]
    assert again["version"] == 2
    doc = api.get(f"/api/v1/presets/{first['id']}/versions/1").json()["document"]
    assert [c["color"] for c in doc["channels"]] == ["0000FF", "00FF00", "FF0000"]
    assert api.get(f"/api/v1/presets/{first['id']}/versions").json() == [1, 2]
    extra = {**PRESET, "name": "with-extra",
             "channels": [*PRESET["channels"], {"marker": "Ki67", "color": "FFFFFF",
                                                "window": {"start": 0, "end": 1}}]}
    r = api.post(f"/api/v1/images/{image}/presets", extra)
    assert r.status_code == 201
    assert any("Ki67" in w for w in r.json()["warnings"])


@pytest.mark.parametrize(("change", "words"), [
    ({"channels": [{"index": 0, "color": "GGGGGG", "window": {"start": 0, "end": 1}}]},
     ["color"]),
    ({"channels": [{"index": 0, "color": "FFFFFF", "window": {"start": 5, "end": 1}}]},
     ["window"]),
    ({"channels": [{"index": 0, "color": "FFFFFF", "window": {"start": 0, "end": 1}}]},
     ["3 channels"]),
    ({"channels": [], "bogus": 1}, ["channels"]),
])
def test_bad_presets_are_422_with_a_reason(api: Api, real: Path, change: dict[str, Any],
                                           words: list[str]) -> None:
    image = ready_image(api, real)
    r = api.post(f"/api/v1/images/{image}/presets", {"name": "bad", **change})
    assert r.status_code == 422, r.text
    for w in words:
        assert w in r.json()["detail"]


def test_panel_presets_bind_by_marker_on_other_images(api: Api, real: Path) -> None:
    image = ready_image(api, real)
    r = api.post("/api/v1/presets", {"scope": "panel", "target": "IO-panel",
                                     "document": {"name": "io", "channels": [
                                         {"marker": "PanCK", "color": "FF00FF",
                                          "window": {"start": 1, "end": 50}},
                                         {"marker": "CD8", "color": "00FFFF",
                                          "window": {"start": 2, "end": 60}}]}})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    applied = api.post(f"/api/v1/images/{image}/presets:apply", {"preset": f"{pid}@1"}).json()
    by_label = {c["label"]: c for c in applied["document"]["channels"]}
    assert by_label["Cy3"]["color"] == "FF00FF"  # PanCK is Cy3 on this image
    assert by_label["FITC"]["color"] == "00FFFF"
    assert applied["warnings"] == []
    r = api.post("/api/v1/presets", {"scope": "panel", "target": "x", "document": {
        "name": "by-index", "channels": [{"index": 0, "color": "FFFFFF",
                                          "window": {"start": 0, "end": 1}}]}})
    assert r.status_code == 422


def test_sixty_channel_preset_and_fast_autocontrast(api: Api) -> None:
    api.study("BIG")
    write_ome_tiff(api.incoming / "sixty.ome.tif",
                   SyntheticSpec(size_y=64, size_x=64, channels=60, tile=64))
    body = api.post("/api/v1/studies/BIG/images", {"source": "sixty.ome.tif"}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    image = body["image_id"]
    t0 = time.perf_counter()
    auto = api.get(f"/api/v1/images/{image}/autocontrast",
                   params={"lower": 1, "upper": 99}).json()
    assert time.perf_counter() - t0 < 1.0
    assert len(auto["channels"]) == 60
    assert auto["provenance"]["lower"] == 1
    auto["name"] = "sixty"
    r = api.post(f"/api/v1/images/{image}/presets", auto)
    assert r.status_code == 201
    doc = api.get(f"/api/v1/presets/{r.json()['id']}").json()["document"]
    assert len(doc["channels"]) == 60


def test_formats_round_trip_through_the_api(api: Api, real: Path) -> None:
    image = ready_image(api, real)
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    base = f"/api/v1/presets/{saved['id']}/versions/1/export"
    query = api.get(base, params={"format": "omero-query"}).text
    assert query.startswith("c=1|5:80$0000FF")
    yaml_text = api.get(base, params={"format": "omero-yaml"}).text
    assert "version: 2" in yaml_text
    napari = api.get(base, params={"format": "napari"}).json()
    assert napari[1]["contrast_limits"] == [10, 90]
    assert napari[1]["gamma"] == 1.5
    ngff = api.get(base, params={"format": "ngff-omero"}).json()
    r = api.post(f"/api/v1/images/{image}/presets:import",
                 {"format": "ngff-omero", "content": ngff, "name": "from-ngff", "save": True})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    r = api.post(f"/api/v1/images/{image}/presets:import",
                 {"format": "omero-query", "content": query, "name": "from-omero"})
    chans = r.json()["document"]["channels"]
    assert chans[0]["window"]["start"] == 5
    assert chans[2]["active"] is False


def test_sponsors_read_presets_of_granted_studies_only(api: Api, real: Path) -> None:
    image = ready_image(api, real)
    sponsor = api.token("sue", "sponsor", ["acme"])
    assert api.get(f"/api/v1/images/{image}/presets", sponsor).status_code == 404
    api.post("/api/v1/studies/S001/grants", {"principal": "group:acme"})
    assert api.get(f"/api/v1/images/{image}/presets", sponsor).status_code == 200
    r = api.post(f"/api/v1/images/{image}/presets", PRESET, sponsor)
    assert r.status_code == 403
