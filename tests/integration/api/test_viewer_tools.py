"""The viewer's own API (issue 19) on both databases: a reader's saved views (its own only,
reopened by URL, no preset touched), the values under the cursor (staff, a size-limited
window of the store, the stored pixel values), guided views (published, versioned,
revocable, listed on the study page) and a freehand annotation; a sponsor without a grant
gets the 404 of an unknown id everywhere, a granted one what its role allows."""

from __future__ import annotations

import numpy as np

from plexhub.limits import VALUES_WINDOW
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile, write_ome_tiff
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic


def _setup(api: Api) -> tuple[str, str, str, str]:
    api.study("W1")
    image, _ = ingest_synthetic(api, "W1", "w1.ome.tif", 3, {"animal_id": "A-1"})
    r = api.post("/api/v1/studies/W1/grants",
                 {"principal": "group:acme", "capabilities": ["view"]})
    assert r.status_code == 201, r.text
    return (image, api.token("sue", "sponsor", ["acme"]), api.token("sam", "sponsor", ["acme"]),
            api.token("nob", "sponsor", ["globex"]))


def presets_state(api: Api, image: str) -> list[tuple[str, list[int]]]:
    return sorted((p["id"], api.get(f"/api/v1/presets/{p['id']}/versions").json())
                  for p in api.get(f"/api/v1/images/{image}/presets").json())


def test_saved_views_are_their_owners_alone(api: Api) -> None:
    image, sue, sam, outsider = _setup(api)
    before = presets_state(api, image)
    preset = api.get(f"/api/v1/images/{image}/presets").json()[0]["id"]
    body = {"name": "CD8 bright", "preset": f"{preset}@1", "c": "-1|0:100,2|5:900|1.5",
            "x": 32, "y": 30.5, "zoom": 2}
    r = api.post(f"/api/v1/images/{image}/views", body, token=sue)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["url"] == f"/portal/views/{view['id']}"
    assert view["view"] == {"preset": f"{preset}@1", "c": "-1|0:100,2|5:900|1.5",
                            "x": 32, "y": 30.5, "zoom": 2}
    # the same name again replaces it; the list is the owner's only
    r = api.post(f"/api/v1/images/{image}/views", {**body, "zoom": 4}, token=sue)
    assert r.status_code == 201
    assert r.json()["id"] == view["id"]
    mine = api.get(f"/api/v1/images/{image}/views", token=sue).json()
    assert [(v["name"], v["view"]["zoom"]) for v in mine] == [("CD8 bright", 4)]
    assert api.get(f"/api/v1/images/{image}/views", token=sam).json() == []
    assert api.get(f"/api/v1/images/{image}/views").json() == []  # not even an admin's list
    # reopened by its URL: the image page with the view's settings; anyone else: 404
    r = api.client.get(view["url"], headers=api.h(sue), follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"].startswith(f"/portal/images/{image}?preset={preset}%401")
    assert "c=-1%7C0%3A100%2C2%7C5%3A900%7C1.5" in r.headers["location"]
    assert "zoom=4" in r.headers["location"]
    for other in (sam, outsider):
        assert api.client.get(view["url"], headers=api.h(other)).status_code == 404
    # a preset the image does not have, or an outsider: 404; no preset changed
    r = api.post(f"/api/v1/images/{image}/views", {**body, "preset": "9" * 32}, token=sue)
    assert r.status_code == 404
    for url in (f"/api/v1/images/{image}/views", f"/api/v1/images/{'0' * 32}/views"):
        assert api.post(url, body, token=outsider).status_code == 404
        assert api.get(url, token=outsider).status_code == 404
    assert presets_state(api, image) == before
    # the grant revoked: the saved view is gone with the image
    grant = api.get("/api/v1/studies/W1/grants").json()[0]["id"]
    assert api.delete(f"/api/v1/grants/{grant}").status_code in (200, 204)
    assert api.client.get(view["url"], headers=api.h(sue)).status_code == 404


def test_values_under_the_cursor_for_staff(api: Api) -> None:
    image, sue, _, outsider = _setup(api)
    sci = api.token("pat", "scientist")
    # the synthetic source's pixels (ingest_synthetic: 64 x 64, 2 channels, seed 3)
    spec = SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=3)
    pixels = np.stack([np.asarray(render_tile(spec, c, 0, 0, 64, 64)) for c in range(2)])
    r = api.get(f"/api/v1/images/{image}/values", token=sci, params={"x": 10, "y": 20})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["x"], doc["y"], doc["size"]) == (10, 20, 1)
    assert [c["value"] for c in doc["channels"]] == \
        [int(pixels[c, 20, 10]) for c in range(2)]
    r = api.get(f"/api/v1/images/{image}/values", token=sci,
                params={"x": 0, "y": 0, "size": 5})
    assert r.json()["window"] == {"x": 0, "y": 0, "width": 3, "height": 3}
    means = [c["mean"] for c in r.json()["channels"]]
    assert means == [round(float(pixels[c, :3, :3].mean()), 3)
                     for c in range(2)]
    # the window's limit, outside the image
    r = api.get(f"/api/v1/images/{image}/values", token=sci,
                params={"x": 1, "y": 1, "size": VALUES_WINDOW + 1})
    assert r.status_code == 422
    r = api.get(f"/api/v1/images/{image}/values", token=sci, params={"x": 64, "y": 1})
    assert r.status_code == 422
    assert "outside the image" in r.text
    # a granted sponsor: 403; a sponsor without a grant: the 404 of an unknown image
    assert api.get(f"/api/v1/images/{image}/values", token=sue,
                   params={"x": 1, "y": 1}).status_code == 403
    mine = api.get(f"/api/v1/images/{image}/values", token=outsider, params={"x": 1, "y": 1})
    unknown = api.get(f"/api/v1/images/{'0' * 32}/values", token=outsider,
                      params={"x": 1, "y": 1})
    assert mine.status_code == unknown.status_code == 404
    assert mine.text.replace(image, "X") == unknown.text.replace("0" * 32, "X")


def test_guided_views_are_published_versioned_and_revocable(api: Api) -> None:
    image, sue, _, outsider = _setup(api)
    other, _ = ingest_synthetic(api, "W1", "w2.ome.tif", 4)
    ann = api.post(f"/api/v1/images/{image}/annotations", {"type": "FeatureCollection",
                   "features": [{"type": "Feature", "geometry": {"type": "Polygon",
                                 "coordinates": [[[2, 2], [30, 2], [20, 25], [2, 2]]]},
                                 "properties": {"class": "necrosis"}}]}).json()["ids"][0]
    preset = api.get(f"/api/v1/images/{image}/presets").json()[0]["id"]
    body = {"name": "tour", "title": "Liver, vehicle vs high dose", "waypoints": [
        {"image_id": image, "title": "Overview", "text": "The whole section.",
         "preset": f"{preset}@1"},
        {"image_id": image, "text": "Necrosis here.", "c": "1|0:500", "x": 20, "y": 12,
         "zoom": 3, "annotation_id": ann},
        {"image_id": other, "text": "The high dose."}]}
    r = api.post("/api/v1/studies/W1/guides", body)
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert (v1["version"], len(v1["waypoints"])) == (1, 3)
    assert v1["waypoints"][1] == {"image_id": image, "text": "Necrosis here.", "c": "1|0:500",
                                  "x": 20, "y": 12, "zoom": 3, "annotation_id": ann}
    v2 = api.post("/api/v1/studies/W1/guides", {**body, "waypoints": body["waypoints"][:2]})
    assert v2.json()["version"] == 2
    # a waypoint on another study's image, or an annotation it does not have: refused
    api.study("W2")
    foreign, _ = ingest_synthetic(api, "W2", "x.ome.tif", 5)
    bad = {**body, "waypoints": [{"image_id": foreign}]}
    assert api.post("/api/v1/studies/W1/guides", bad).status_code == 422
    bad = {**body, "waypoints": [{"image_id": other, "annotation_id": ann}]}
    assert api.post("/api/v1/studies/W1/guides", bad).status_code == 422
    # the sponsor sees the newest version, reads it, and its study page lists it
    listed = api.get("/api/v1/studies/W1/guides", token=sue).json()
    assert [(g["name"], g["version"], g["steps"]) for g in listed] == [("tour", 2, 2)]
    assert api.get(f"/api/v1/guides/{v1['id']}", token=sue).json()["version"] == 1
    page = api.client.get("/portal/studies/W1", headers=api.h(sue))
    assert v2.json()["id"] in page.text
    assert "Liver, vehicle vs high dose" in page.text
    step = api.client.get(f"/portal/guides/{v1['id']}?step=2", headers=api.h(sue))
    assert step.status_code == 200
    assert "Step 2 of 3" in step.text
    assert "Necrosis here." in step.text
    assert 'data-view="c=1%7C0%3A500&amp;x=20&amp;y=12&amp;zoom=3"' in step.text
    assert "necrosis" in step.text  # the waypoint's annotation, drawn by guide.js
    # the exception to the review's rule (policies/review.py): staff chose to show this one;
    # the sponsor's plain view grant shows no annotation anywhere else
    assert api.get(f"/api/v1/images/{image}/annotations", token=sue).json()["features"] == []
    assert 'id="signed-review"' not in api.client.get(f"/portal/images/{image}",
                                                      headers=api.h(sue)).text
    # a sponsor may neither publish nor revoke
    assert api.post("/api/v1/studies/W1/guides", body, token=sue).status_code == 403
    assert api.post(f"/api/v1/guides/{v1['id']}/revoke", {}, token=sue).status_code == 403
    # revoked: gone for the sponsor (404 like an unknown id), still there for staff, audited
    r = api.post(f"/api/v1/guides/{v2.json()['id']}/revoke", {"reason": "wrong slide"})
    assert r.status_code == 200
    assert r.json()["revoked_at"]
    assert api.post(f"/api/v1/guides/{v2.json()['id']}/revoke", {}).status_code == 409
    gone = api.get(f"/api/v1/guides/{v2.json()['id']}", token=sue)
    unknown = api.get(f"/api/v1/guides/{'0' * 32}", token=sue)
    assert gone.status_code == unknown.status_code == 404
    assert api.client.get(f"/portal/guides/{v2.json()['id']}",
                          headers=api.h(sue)).status_code == 404
    listed = api.get("/api/v1/studies/W1/guides", token=sue).json()
    assert [(g["name"], g["version"]) for g in listed] == [("tour", 1)]
    assert api.get(f"/api/v1/guides/{v2.json()['id']}").json()["revoked_at"]
    events = [e for e in api.get("/api/v1/audit").json() if e["entity_type"] == "guide"]
    assert sorted(e["action"] for e in events) == ["guide.publish"] * 2 + ["guide.revoke"]
    # a sponsor without a grant: the 404 of an unknown guide or study, for every route
    for url in (f"/api/v1/guides/{v1['id']}", "/api/v1/studies/W1/guides"):
        assert api.get(url, token=outsider).status_code == 404
    assert api.client.get(f"/portal/guides/{v1['id']}",
                          headers=api.h(outsider)).status_code == 404
    assert api.post(f"/api/v1/guides/{v1['id']}/revoke", {},
                    token=outsider).status_code == 404
    assert api.post("/api/v1/studies/W1/guides", body, token=outsider).status_code == 404


def test_a_freehand_outline_is_a_polygon(api: Api) -> None:
    image, *_ = _setup(api)
    ring = [[4, 4], [9, 3], [15, 6], [17, 12], [12, 18], [5, 14], [4, 4]]
    r = api.post(f"/api/v1/images/{image}/annotations", {"type": "FeatureCollection",
                 "features": [{"type": "Feature", "properties": {"shape": "freehand"},
                               "geometry": {"type": "Polygon", "coordinates": [ring]}}]})
    assert r.status_code == 201, r.text
    (got,) = api.get(f"/api/v1/images/{image}/annotations").json()["features"]
    assert got["properties"]["shape"] == "freehand"
    assert got["geometry"] == {"type": "Polygon", "coordinates": [ring]}


def test_save_as_preset_asks_for_the_reason_a_glp_study_needs(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "G1", "title": "GLP", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    write_ome_tiff(api.incoming / "g1.ome.tif", SyntheticSpec(size_y=64, size_x=64, channels=2,
                                                              tile=64, seed=6))
    r = api.client.post("/api/v1/studies/G1/images", json={"source": "g1.ome.tif"},
                        headers={**api.h(), "X-Plexhub-Reason": "day 28"})
    assert r.status_code == 202, r.text
    image = r.json()["image_id"]
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    sci = api.token("pat", "scientist")
    page = api.client.get(f"/portal/images/{image}", headers=api.h(sci))
    assert 'id="save-preset"' in page.text
    assert 'id="preset-reason"' in page.text  # the page asks for it
    doc = {"name": "bright", "channels": [
        {"index": i, "color": "FF0000", "window": {"start": 0, "end": 100}} for i in (0, 1)]}
    url = f"/api/v1/images/{image}/presets"
    refused = api.post(url, doc, token=sci)
    assert refused.status_code == 422
    assert "requires a reason" in refused.text
    r = api.client.post(url, json=doc, headers={**api.h(sci),
                                                "X-Plexhub-Reason": "brighter%20CD8"})
    assert r.status_code == 201, r.text
    # a sponsor is offered neither
    r = api.client.post("/api/v1/studies/G1/grants", json={
        "principal": "group:acme", "capabilities": ["view"]},
        headers={**api.h(), "X-Plexhub-Reason": "sponsor review"})
    assert r.status_code == 201, r.text
    page = api.client.get(f"/portal/images/{image}", headers=api.h(api.token(
        "sue", "sponsor", ["acme"])))
    assert 'id="save-view"' in page.text
    assert 'id="save-preset"' not in page.text


def test_side_by_side_needs_both_slides_visible(api: Api) -> None:
    image, sue, _, outsider = _setup(api)
    other, _ = ingest_synthetic(api, "W1", "w2.ome.tif", 4, {"animal_id": "A-2"})
    api.study("W2", sponsor="globex")
    foreign, _ = ingest_synthetic(api, "W2", "x.ome.tif", 5)
    url = f"/portal/images/{image}/compare"
    page = api.client.get(url, params={"with": other}, headers=api.h(sue))
    assert page.status_code == 200
    assert "A-1" in page.text
    assert "A-2" in page.text  # each slide's metadata above it
    assert 'id="compare-sides"' in page.text
    # the second slide not visible, or the first: the 404 page of an unknown one
    for first, second, who in ((image, foreign, sue), (foreign, image, sue),
                               (image, other, outsider), (image, "0" * 32, sue)):
        r = api.client.get(f"/portal/images/{first}/compare", params={"with": second},
                           headers=api.h(who))
        assert r.status_code == 404, (first, second)
        assert foreign not in r.text
        assert "W2" not in r.text
