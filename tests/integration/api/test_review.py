"""Annotations and findings (issue 19) on both databases: GeoJSON in level-0 pixels in and
Feature ids out, edits as versions with audit events (and the GLP reason), QuPath's
GeoJSON read and written, findings from the controlled vocabulary, the study's SEND
MI-like export, and what sponsors see (nothing without a grant: 404; findings and
annotations only with view_findings, and only once signed off)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic

POLYGON = {"type": "Polygon", "coordinates": [[[2, 2], [40, 2], [40, 30], [2, 2]]]}


def feature(geometry: Mapping[str, object], **props: object) -> dict[str, object]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def test_annotations_are_versioned_audited_and_exported_for_qupath(api: Api) -> None:
    api.study("R1")
    image, _ = ingest_synthetic(api, "R1", "r1.ome.tif", 1, {"animal_id": "A-7"})
    url = f"/api/v1/images/{image}/annotations"
    r = api.post(url, {"type": "FeatureCollection", "features": [
        feature(POLYGON, **{"class": "necrosis", "note": "centrilobular"}),
        feature({"type": "Point", "coordinates": [10, 12]}, **{"class": "mitosis"}),
        feature({"type": "Polygon", "coordinates": [[[0, 0], [8, 0], [8, 8], [0, 8],
                                                     [0, 0]]]}, shape="rectangle")]})
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    assert len(ids) == 3
    got = api.get(url).json()
    assert [f["properties"]["shape"] for f in got["features"]] == \
        ["polygon", "point", "rectangle"]
    assert got["features"][0]["geometry"] == POLYGON
    assert got["features"][0]["properties"]["class"] == "necrosis"
    # an edit is the next version; a deletion hides it; both audited
    r = api.post(url, {"type": "FeatureCollection", "features": [
        {**feature(POLYGON, **{"class": "necrosis", "note": "bridging"}), "id": ids[0]},
        {**feature({"type": "Point", "coordinates": [10, 12]}, deleted=True), "id": ids[1]}]})
    assert r.json()["ids"] == ids[:2]
    got = api.get(url).json()["features"]
    assert {f["id"]: f["properties"]["version"] for f in got} == {ids[0]: 2, ids[2]: 1}
    assert [f["properties"]["note"] for f in got if f["id"] == ids[0]] == ["bridging"]
    actions = [e["action"] for e in api.get("/api/v1/audit").json()
               if e["entity_type"] == "annotation"]
    assert sorted(actions) == ["annotation.create"] * 3 + ["annotation.delete",
                                                           "annotation.edit"]
    # QuPath: exported with classification, and its export read back in
    qp = api.get(url, params={"format": "qupath"}).json()
    qp["features"] = [f for f in qp["features"] if f["id"] == str(uuid.UUID(ids[0]))]
    assert qp["features"][0]["properties"]["classification"] == {"name": "necrosis"}
    assert qp["features"][0]["properties"]["objectType"] == "annotation"
    qp["features"][0]["id"] = "4c1e8f3e-6b1f-4f6e-9a55-3f0c2b7f5a10"  # QuPath's own UUID
    r = api.post(url, {"type": "FeatureCollection", "features": qp["features"][:1]})
    assert r.status_code == 201, r.text
    new = [f for f in api.get(url).json()["features"] if f["id"] == r.json()["ids"][0]]
    assert new[0]["properties"]["class"] == "necrosis"
    # outside the image, or not closed: refused, nothing written
    for bad in ({"type": "Point", "coordinates": [10_000, 1]},
                {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5]]]}):
        r = api.post(url, {"type": "FeatureCollection", "features": [feature(bad)]})
        assert r.status_code == 422, r.text
    assert len(api.get(url).json()["features"]) == 3


def test_findings_vocabulary_export_and_sponsors(api: Api) -> None:
    api.study("R2")
    image, _ = ingest_synthetic(api, "R2", "r2.ome.tif", 2, {"animal_id": "A-9"})
    ann = api.post(f"/api/v1/images/{image}/annotations", {
        "type": "FeatureCollection", "features": [feature(POLYGON)]}).json()["ids"]
    url = f"/api/v1/images/{image}/findings"
    vocab = api.get("/api/v1/findings/vocabulary").json()
    assert "necrosis, hepatocellular" in vocab["organs"]["liver"]
    assert vocab["severity"]["3"] == "moderate"
    r = api.post(url, {"tissue": "liver", "term": "necrosis, hepatocellular", "severity": 3,
                       "distribution": "multifocal", "text": "=centrilobular",
                       "annotations": ann})
    assert r.status_code == 201, r.text
    finding = r.json()
    assert (finding["version"], finding["state"], finding["author"]) == (1, "draft", "admin")
    for bad, what in (({"term": "unicorn"}, "term"), ({"severity": 6}, "severity"),
                      ({"tissue": "heart"}, "tissue"), ({"annotations": ["x"]}, "annotations")):
        body = {"tissue": "liver", "term": "necrosis, hepatocellular", "severity": 2, **bad}
        r = api.post(url, body)
        assert r.status_code == 422, (bad, r.text)
        assert what in r.text
    r = api.post(url, {"id": finding["id"], "tissue": "liver",
                       "term": "necrosis, hepatocellular", "severity": 2})
    assert r.json()["version"] == 2
    assert [f["severity"] for f in api.get(url).json()] == [2]
    rows = list(csv.DictReader(io.StringIO(api.get("/api/v1/studies/R2/findings.csv").text)))
    assert rows == [{"STUDYID": "R2", "USUBJID": "A-9", "MISPEC": "LIVER",
                     "MISTRESC": "NECROSIS, HEPATOCELLULAR", "MISEV": "MILD", "MIDISTR": "",
                     "MIORRES": "", "MIIMAGE": image, "MIEVAL": "admin", "MIPEER": "",
                     "MIRVSTAT": "not_reviewed", "MISTAT": "draft", "MISIGN": ""}]
    assert api.get("/api/v1/studies/R2/findings.json").json()[0]["MISEV"] == "MILD"

    # sponsors: no grant -> 404 everywhere; a grant without view_findings -> no findings
    outsider = api.token("out", "sponsor", ["globex"])
    viewer = api.token("vic", "sponsor", ["acme"])
    reader = api.token("rae", "sponsor", ["initech"])
    for group, caps in (("acme", ["view"]), ("initech", ["view", "view_findings"])):
        r = api.post("/api/v1/studies/R2/grants", {"principal": f"group:{group}",
                                                   "capabilities": caps})
        assert r.status_code == 201, r.text
    for path in (url, f"/api/v1/images/{image}/annotations", "/api/v1/studies/R2/findings.csv",
                 "/api/v1/studies/R2/findings.json"):
        assert api.get(path, token=outsider).status_code == 404, path
    assert api.get(url, token=viewer).json() == []
    assert len(api.get("/api/v1/studies/R2/findings.csv", token=viewer).text.splitlines()) == 1
    # annotations follow the findings' rule (issue 19): a plain view grant sees none, in
    # either format; view_findings sees them once the review is signed off
    # (tests/integration/api/test_peer_review.py), not before
    for token in (viewer, reader):
        for fmt in ("plexhub", "qupath"):
            r = api.get(f"/api/v1/images/{image}/annotations", token=token,
                        params={"format": fmt})
            assert r.status_code == 200, r.text
            assert r.json() == {"type": "FeatureCollection", "features": []}
    assert len(api.get(f"/api/v1/images/{image}/annotations").json()["features"]) == 1
    assert api.get(url, token=reader).json() == []
    assert api.post(url, {"tissue": "liver", "term": "necrosis, hepatocellular",
                          "severity": 1}, token=viewer).status_code == 403


def test_an_annotation_on_a_glp_study_keeps_its_reason(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "G1", "title": "GLP", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    write_ome_tiff(api.incoming / "g1.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                              channels=2, tile=64, seed=3))
    r = api.client.post("/api/v1/studies/G1/images", json={"source": "g1.ome.tif"},
                        headers={**api.h(), "X-Plexhub-Reason": "slides received"})
    assert r.status_code == 202, r.text
    image = r.json()["image_id"]
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    url = f"/api/v1/images/{image}/annotations"
    body = {"type": "FeatureCollection", "features": [feature(POLYGON)],
            "reason": "primary read"}
    assert api.post(url, body).status_code == 201
    events = [e for e in api.get("/api/v1/audit").json() if e["action"] == "annotation.create"]
    assert [e["reason"] for e in events] == ["primary read"]
    # an edit or a deletion on a GLP study needs a reason (422 without, nothing written)
    fid = api.get(url).json()["features"][0]["id"]
    edit = {"type": "FeatureCollection",
            "features": [{**feature(POLYGON, **{"class": "fibrosis"}), "id": fid}]}
    r = api.post(url, edit)
    assert r.status_code == 422, r.text
    assert "reason" in r.text
    gone = {"type": "FeatureCollection",
            "features": [{**feature(POLYGON, deleted=True), "id": fid}]}
    assert api.post(url, gone).status_code == 422
    assert api.get(url).json()["features"][0]["properties"]["version"] == 1
    assert api.post(url, {**edit, "reason": "class corrected"}).status_code == 201
    events = [e for e in api.get("/api/v1/audit").json() if e["action"] == "annotation.edit"]
    assert [e["reason"] for e in events] == ["class corrected"]


def test_qupath_round_trip_edits_the_same_annotation(api: Api) -> None:
    """Exported for QuPath (ids as dashed UUIDs, points as QuPath writes them back: a
    one-point MultiPoint), changed there and imported: each is its annotation's next
    version, nothing new."""
    api.study("R3")
    image, _ = ingest_synthetic(api, "R3", "r3.ome.tif", 1, {"animal_id": "A-3"})
    url = f"/api/v1/images/{image}/annotations"
    ids = api.post(url, {"type": "FeatureCollection", "features": [
        feature(POLYGON, **{"class": "necrosis", "note": "focal"}),
        feature({"type": "Point", "coordinates": [10, 12]}, **{"class": "mitosis"})]}
    ).json()["ids"]
    qp = api.get(url, params={"format": "qupath"}).json()
    assert [f["id"] for f in qp["features"]] == [str(uuid.UUID(i)) for i in ids]
    poly, point = qp["features"]
    poly["properties"]["classification"] = {"name": "fibrosis", "color": [255, 0, 0]}
    poly["properties"]["name"] = "bridging"
    point["geometry"] = {"type": "MultiPoint", "coordinates": [[11, 13]]}
    r = api.post(url, qp)
    assert r.status_code == 201, r.text
    assert r.json()["ids"] == ids
    got = {f["id"]: f for f in api.get(url).json()["features"]}
    assert set(got) == set(ids)
    assert got[ids[0]]["properties"] | {"updated_at": ""} == {
        "class": "fibrosis", "note": "bridging", "shape": "polygon", "version": 2,
        "author": "admin", "updated_at": ""}
    assert got[ids[1]]["geometry"] == {"type": "Point", "coordinates": [11, 13]}
    assert got[ids[1]]["properties"]["version"] == 2
    # a MultiPoint of several points is not one annotation: refused
    many = feature({"type": "MultiPoint", "coordinates": [[1, 1], [2, 2]]})
    assert api.post(url, {"type": "FeatureCollection", "features": [many]}).status_code == 422
