"""Summaries of the cell tables: per study (``GET /studies/{code}/phenotypes``, JSON and
CSV, with the images' LIMS metadata as the caller may see it) and per annotation
(``GET /images/{id}/cells/summary?by=annotation``), following the study's grants."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from plexhub.api.models import Image
from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import ADMIN, Api

RULES = ["T: CD3+", "B: CD20+ CD3-"]


def store_root(api: Api, image_id: str) -> Path:
    state = api.client.app.state.plexhub  # type: ignore[attr-defined]
    with state.db.new_session() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return image.store_root().path


def ingest(api: Api, code: str, seed: int, meta: dict[str, str]) -> str:
    write_ome_tiff(api.incoming / f"s{seed}.ome.tif",
                   SyntheticSpec(size_y=220, size_x=240, channels=4, tile=64, seed=seed))
    r = api.post(f"/api/v1/studies/{code}/images",
                 {"source": f"s{seed}.ome.tif", "metadata": meta})
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    return str(r.json()["image_id"])


@pytest.mark.slow
def test_study_phenotypes_and_annotation_counts(api: Api,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("PHENO", sponsor="acme")
    vehicle = ingest(api, "PHENO", 3, {"dose_group": "vehicle", "animal_id": "A1",
                                       "slide_id": "SL-1", "tissue": "liver"})
    high = ingest(api, "PHENO", 8, {"dose_group": "=high", "animal_id": "A2",
                                    "slide_id": "SL-2", "tissue": "liver"})
    url = "/api/v1/studies/PHENO/phenotypes"
    r = api.get(url)
    assert r.status_code == 200, r.text
    assert [e["analysed"] for e in r.json()["images"]] == [False, False]

    results = {i: analyze(store_root(api, i), nuclear="DAPI", phenotypes=RULES,
                          segmenter_options={"expand": 2}, show_progress=False)
               for i in (vehicle, high)}
    doc = api.get(url).json()
    assert doc["study"] == "PHENO"
    assert doc["phenotypes"] == ["T", "B", "other"]
    by_id = {e["image_id"]: e for e in doc["images"]}
    for image_id, result in results.items():
        entry = by_id[image_id]
        assert entry["analysed"] is True
        assert entry["counts"] == result.phenotype_counts
        assert entry["cells"] == result.cells > 20
        assert result.density_per_mm2 is not None
        assert entry["area_mm2"] > 0
        for kind, density in result.density_per_mm2.items():
            assert entry["density_per_mm2"][kind] == pytest.approx(density, rel=1e-3)
        assert entry["rules"] == RULES
    assert by_id[vehicle]["metadata"]["dose_group"] == "vehicle"
    assert by_id[vehicle]["metadata"]["slide_id"] == "SL-1"  # staff see it

    r = api.get(url, params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="PHENO-phenotypes.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0])[:5] == ["image_id", "name", "dose_group", "animal_id", "tissue"]
    assert len(rows) == 2 * 3
    table = pd.DataFrame(rows)
    assert set(table["dose_group"]) == {"vehicle", "'=high"}  # never a spreadsheet formula
    got = table[table["image_id"] == high].set_index("phenotype")["count"].astype(int)
    assert got.to_dict() == results[high].phenotype_counts

    # sponsors: 404 without a grant; with one, no slide ids (view_labels is not granted)
    acme = api.token("anna", "sponsor", ["acme"])
    assert api.get(url, acme).status_code == 404
    assert api.get(url, acme).json() == {"detail": "study PHENO: not found"}
    assert api.get("/api/v1/studies/NOPE/phenotypes", acme).status_code == 404
    assert api.get(f"/api/v1/images/{vehicle}/cells/summary", acme).status_code == 404
    assert api.post("/api/v1/studies/PHENO/grants", {"principal": "group:acme"}).is_success
    doc = api.get(url, acme).json()
    assert all("slide_id" not in e["metadata"] for e in doc["images"])
    assert {e["metadata"]["dose_group"] for e in doc["images"]} == {"vehicle", "=high"}
    assert "SL-1" not in api.get(url, acme, params={"format": "csv"}).text

    # counts per annotation: a rectangle, a triangle, a point (encloses nothing), a deleted one
    table = pd.read_csv(io.StringIO(api.get(f"/api/v1/images/{vehicle}/cells").text))
    downloads = [e for e in api.get("/api/v1/audit?study=PHENO").json()
                 if e["action"] == "cells.download"]  # the download is audited (issue 14)
    assert [(e["entity_id"], e["after"]) for e in downloads] == [
        (vehicle, {"format": "csv", "rows": len(table)})]
    annotations = f"/api/v1/images/{vehicle}/annotations"
    rect = [[20, 30], [150, 30], [150, 140], [20, 140], [20, 30]]
    tri = [[0, 0], [240, 0], [0, 220], [0, 0]]
    r = api.post(annotations, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [rect]},
         "properties": {"class": "tumour", "shape": "rectangle"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [tri]},
         "properties": {"class": "stroma"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10, 10]},
         "properties": {"class": "mitosis"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [rect]},
         "properties": {"class": "gone"}}]})
    assert r.status_code == 201, r.text
    rect_id, tri_id, _, gone = r.json()["ids"]
    r = api.post(annotations, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": gone, "geometry": {"type": "Polygon", "coordinates": [rect]},
         "properties": {"deleted": True}}]})
    assert r.status_code == 201, r.text

    # a sponsor sees annotations only with view_findings once the review is signed off
    # (policies/review.py): the whole-image counts, no regions
    r = api.get(f"/api/v1/images/{vehicle}/cells/summary", acme, params={"by": "annotation"})
    assert r.status_code == 200, r.text
    assert r.json()["annotations"] == []
    assert r.json()["counts"] == results[vehicle].phenotype_counts
    r = api.get(f"/api/v1/images/{vehicle}/cells/summary", params={"by": "annotation"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["counts"] == results[vehicle].phenotype_counts
    assert [a["id"] for a in doc["annotations"]] == [rect_id, tri_id]
    cx, cy = table["centroid_x"] + 0.5, table["centroid_y"] + 0.5
    in_rect = (cx >= 20) & (cx < 150) & (cy >= 30) & (cy < 140)
    in_tri = cx / 240 + cy / 220 < 1
    for ann, hit in zip(doc["annotations"], [in_rect, in_tri], strict=True):
        want = table[hit]["phenotype"].value_counts().to_dict()
        assert {k: v for k, v in ann["counts"].items() if v} == want
        assert set(ann["counts"]) == {"T", "B", "other"}
        assert ann["cells"] == int(hit.sum()) > 0
    rect_doc = doc["annotations"][0]
    assert (rect_doc["class"], rect_doc["shape"], rect_doc["area_px"]) == \
        ("tumour", "rectangle", 130 * 110)
    assert rect_doc["area_mm2"] > 0
    assert rect_doc["density_per_mm2"]["T"] == pytest.approx(
        rect_doc["counts"]["T"] / rect_doc["area_mm2"], rel=1e-3)
    assert api.get(f"/api/v1/images/{high}/cells/summary",
                   params={"by": "annotation"}).json()["annotations"] == []
    assert api.get(f"/api/v1/images/{vehicle}/cells/summary",
                   params={"by": "region"}).status_code == 422

    # the stored summary the study route reads is size-limited (a 4xx naming the limit)
    from plexhub.api.routes import cells

    with monkeypatch.context() as m:
        m.setattr(cells, "CELL_SUMMARY_BYTES", 10)
        r = api.get(url)
        assert 400 <= r.status_code < 500, r.text
        assert "more than the API serves (10)" in r.json()["detail"]

    # a retired image leaves the study's summary (staff ask for it) and stays in the cell
    # results the findings webhook carries, marked retired (issue 14)
    r = api.post(f"/api/v1/images/{vehicle}/retire", {"reason": "duplicate scan"})
    assert r.status_code == 200, r.text
    for token in (ADMIN, acme):
        assert [e["image_id"] for e in api.get(url, token).json()["images"]] == [high]
        csv_ids = {row["image_id"] for row in csv.DictReader(io.StringIO(
            api.get(url, token, params={"format": "csv"}).text))}
        assert csv_ids == {high}
    both = api.get(url, params={"include_retired": "true"}).json()["images"]
    assert [(e["image_id"], e["retired"], e["cells"]) for e in both] == [
        (vehicle, True, results[vehicle].cells), (high, False, results[high].cells)]
    assert api.get(url, acme, params={"include_retired": "true"}).status_code == 403
    state = api.client.app.state.plexhub  # type: ignore[attr-defined]
    with state.db.new_session() as s:
        from sqlalchemy import select

        from plexhub.api.models import Study
        from plexhub.api.routes.cells import study_cell_results

        study = s.scalars(select(Study).where(Study.code == "PHENO")).one()
        sent = {e["image_id"]: e.get("retired", False) for e in study_cell_results(s, study)}
    assert sent == {vehicle: True, high: False}
