"""Peer review of findings (issue 19) on SQLite and PostgreSQL: the study director assigns a
primary pathologist and a peer reviewer; the peer agrees or disagrees per finding; open
disagreements block the sign-off until the primary revises or the peer agrees (both audited,
with the reason a GLP study needs); both sign off with an electronic signature (approved,
reviewed), which locks the findings (403 naming the sign-off). The slides' review state shows
in the image list; the findings export carries pathologist, peer, review state and the
signatures; sponsors with view_findings see signed-off findings and annotations only, others
none."""

from __future__ import annotations

import csv
import io
from typing import Any

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic

LIVER = {"tissue": "liver", "term": "necrosis, hepatocellular"}


def _finding(api: Api, image: str, token: str, severity: int, **more: Any) -> dict[str, Any]:
    r = api.post(f"/api/v1/images/{image}/findings", {**LIVER, "severity": severity, **more},
                 token=token)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _states(api: Api, code: str, token: str | None = None) -> list[str]:
    r = api.get(f"/api/v1/studies/{code}/images", *([token] if token else []))
    assert r.status_code == 200, r.text
    return [im["review_state"] for im in r.json()]


def test_peer_review_from_assignment_to_locked_signed_findings(api: Api) -> None:
    api.study("PR1")
    image, _ = ingest_synthetic(api, "PR1", "pr1.ome.tif", 4, {"animal_id": "A-1"})
    pat, rev = api.token("pat", "scientist"), api.token("rev", "scientist")
    sam, ana = api.token("sam", "scientist"), api.token("ana", "analyst")
    reader = api.token("rae", "sponsor", ["initech"])
    viewer = api.token("vic", "sponsor", ["acme"])
    for group, caps in (("acme", ["view"]), ("initech", ["view", "view_findings"])):
        assert api.post("/api/v1/studies/PR1/grants", {"principal": f"group:{group}",
                                                        "capabilities": caps}).status_code == 201
    review = "/api/v1/studies/PR1/review"
    # only the study director (its creator, here the admin) assigns; two different people
    assert api.client.put(review, json={"primary": "pat", "peer": "rev"},
                          headers=api.h(sam)).status_code == 403
    assert api.client.put(review, json={"primary": "pat", "peer": "rev"},
                          headers=api.h(reader)).status_code == 403
    r = api.client.put(review, json={"primary": "pat", "peer": "pat"}, headers=api.h())
    assert r.status_code == 422, r.text
    r = api.client.put(review, json={"primary": "pat", "peer": "rev"}, headers=api.h())
    assert r.status_code == 200, r.text
    assert (r.json()["primary"], r.json()["peer"]) == ("pat", "rev")
    assert _states(api, "PR1") == ["not_reviewed"]
    annotations = f"/api/v1/images/{image}/annotations"
    r = api.post(annotations, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 6]},
         "properties": {"class": "necrosis", "note": "centrilobular, draft"}}]}, token=pat)
    assert r.status_code == 201, r.text

    # only the primary records findings now
    assert api.post(f"/api/v1/images/{image}/findings", {**LIVER, "severity": 1},
                    token=sam).status_code == 403
    f1, f2, f3 = (_finding(api, image, pat, s) for s in (1, 2, 3))
    done = api.post(f"/api/v1/images/{image}/review/complete", {}, token=pat)
    assert done.json()["review_state"] == "primary_done", done.text
    assert _states(api, "PR1") == ["primary_done"]
    # the peer may not complete the slide before judging each finding
    assert api.post(f"/api/v1/images/{image}/review/complete", {},
                    token=rev).status_code == 403

    verdicts = f"/api/v1/images/{image}/verdicts"
    assert api.post(verdicts, {"finding": f1["id"], "verdict": "agree"},
                    token=pat).status_code == 403
    assert api.post(verdicts, {"finding": f1["id"], "verdict": "agree"},
                    token=ana).status_code == 403
    for f, verdict, comment in ((f1, "agree", ""), (f2, "disagree", "grade 1 at most"),
                                (f3, "disagree", "is it autolysis?")):
        r = api.post(verdicts, {"finding": f["id"], "verdict": verdict, "comment": comment},
                     token=rev)
        assert r.status_code == 201, r.text
    # the peer sees the primary's findings slide by slide, with its verdicts
    seen = {f["id"]: f["review"] for f in api.get(f"/api/v1/images/{image}/findings",
                                                  rev).json()}
    assert seen[f2["id"]]["verdict"] == "disagree"
    assert seen[f2["id"]]["open"]
    assert seen[f1["id"]]["open"] is False
    assert api.post(f"/api/v1/images/{image}/review/complete", {},
                    token=rev).json()["review_state"] == "peer_reviewed"
    assert _states(api, "PR1") == ["peer_reviewed"]
    listed = api.get(review, pat).json()
    assert {d["id"] for d in listed["disagreements"]} == {f2["id"], f3["id"]}
    assert api.get(review, reader).status_code == 403

    # no sign-off while disagreements are open; sponsors see nothing yet
    signoff = "/api/v1/studies/PR1/review/signoff"
    r = api.post(signoff, {"credential": pat}, token=pat)
    assert (r.status_code, "disagreement" in r.text) == (409, True), r.text
    assert api.get(f"/api/v1/images/{image}/findings", reader).json() == []
    assert api.get(annotations, reader).json()["features"] == []
    assert 'id="signed-review"' not in api.get(f"/portal/images/{image}", reader).text
    # resolved: the primary revises one, the peer changes its mind on the other
    _finding(api, image, pat, 1, id=f2["id"])
    r = api.post(verdicts, {"finding": f3["id"], "verdict": "agree", "comment": "autolysis"},
                 token=rev)
    assert r.status_code == 201, r.text
    assert api.get(review, pat).json()["disagreements"] == []
    actions = [e["action"] for e in api.get("/api/v1/audit?study=PR1").json()]
    assert actions.count("review.verdict") == 3
    assert actions.count("review.change") == 1
    assert "finding.edit" in actions
    assert "review.assign" in actions

    # sign-offs: the signer's own credential, each once, with its meaning
    assert api.post(signoff, {"credential": rev}, token=pat).status_code == 403
    assert api.post(signoff, {"credential": pat}, token=sam).status_code == 403
    r = api.post(signoff, {"credential": pat}, token=pat)
    assert r.status_code == 200, r.text
    assert r.json()["signoffs"]["primary"]["meaning"] == "approved"
    assert r.json()["locked_at"] is None
    assert api.post(signoff, {"credential": pat}, token=pat).status_code == 409
    assert api.get("/api/v1/studies/PR1/findings.csv", token=reader).text.count("\n") == 1
    r = api.post(signoff, {"credential": rev}, token=rev)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["locked_at"] is not None
    assert (body["signoffs"]["peer"]["signer"], body["signoffs"]["peer"]["meaning"],
            body["signoffs"]["peer"]["valid"]) == ("rev", "reviewed", True)
    assert _states(api, "PR1") == ["signed_off"]

    # locked: every change is refused, naming the sign-off
    for url, body_, token in (
            (f"/api/v1/images/{image}/findings", {**LIVER, "severity": 4}, pat),
            (f"/api/v1/images/{image}/findings", {**LIVER, "severity": 4, "id": f1["id"]}, pat),
            (verdicts, {"finding": f1["id"], "verdict": "disagree"}, rev),
            (signoff, {"credential": pat}, pat)):
        r = api.post(url, body_, token=token)
        assert (r.status_code, "sign-off" in r.text) == (403, True), (url, r.text)
    r = api.client.put(review, json={"primary": "sam", "peer": "rev"}, headers=api.h())
    assert r.status_code == 403
    assert "sign-off" in r.text

    # findings out: pathologist, peer, review state and signatures
    rows = list(csv.DictReader(io.StringIO(api.get("/api/v1/studies/PR1/findings.csv").text)))
    assert len(rows) == 3
    assert {(r["MIEVAL"], r["MIPEER"], r["MIRVSTAT"], r["MISTAT"]) for r in rows} == \
        {("pat", "rev", "signed_off", "signed")}
    assert sorted(r["MISEV"] for r in rows) == ["MINIMAL", "MINIMAL", "MODERATE"]
    assert "pat (approved, " in rows[0]["MISIGN"]
    assert "rev (reviewed, " in rows[0]["MISIGN"]
    assert body["signoffs"]["peer"]["hash"] in rows[0]["MISIGN"]
    # sponsors: view_findings sees the signed findings, view alone none
    assert api.get("/api/v1/studies/PR1/findings.csv", token=reader).text == \
        api.get("/api/v1/studies/PR1/findings.csv").text
    assert len(api.get("/api/v1/studies/PR1/findings.json", token=reader).json()) == 3
    assert {f["state"] for f in api.get(f"/api/v1/images/{image}/findings",
                                        reader).json()} == {"signed"}
    assert api.get(f"/api/v1/images/{image}/findings", viewer).json() == []
    # and the annotations with them (geometry, class and note; QuPath's export too)
    shown = api.get(annotations, reader).json()["features"]
    assert [(f["geometry"], f["properties"]["class"], f["properties"]["note"])
            for f in shown] == [({"type": "Point", "coordinates": [5, 6]}, "necrosis",
                                 "centrilobular, draft")]
    assert len(api.get(annotations, reader, params={"format": "qupath"})
               .json()["features"]) == 1
    assert api.get(annotations, viewer).json()["features"] == []
    # the portal's slide page shows them to the same sponsors, read-only
    page = api.get(f"/portal/images/{image}", reader)
    assert page.status_code == 200, page.text
    section = page.text[page.text.index('id="signed-review"'):]
    section = section[:section.index("</section>")]
    assert "<td>liver</td><td>necrosis, hepatocellular</td><td>3 (moderate)</td>" in section
    assert "<td>necrosis</td><td>centrilobular, draft</td><td>point</td>" in section
    assert 'id="signed-review"' not in api.get(f"/portal/images/{image}", viewer).text
    assert 'id="signed-review"' not in api.get(f"/portal/images/{image}").text  # staff: tools
    assert api.get("/api/v1/studies/PR1/findings.json", token=viewer).json() == []
    assert len(api.get("/api/v1/studies/PR1/findings.csv", token=viewer).text.splitlines()) == 1
    assert _states(api, "PR1", reader) == ["signed_off"]
    assert _states(api, "PR1", viewer) == [None]


def test_a_glp_review_needs_reasons_for_assignment_revision_and_change(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "GR", "title": "GLP", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    write_ome_tiff(api.incoming / "gr.ome.tif", SyntheticSpec(size_y=64, size_x=64,
                                                              channels=2, tile=64, seed=5))
    r = api.client.post("/api/v1/studies/GR/images", json={"source": "gr.ome.tif"},
                        headers={**api.h(), "X-Plexhub-Reason": "slides received"})
    assert r.status_code == 202, r.text
    image = r.json()["image_id"]
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    pat, rev = api.token("pat", "scientist"), api.token("rev", "scientist")
    review = "/api/v1/studies/GR/review"
    assert api.client.put(review, json={"primary": "pat", "peer": "rev"},
                          headers=api.h()).status_code == 422
    assert api.client.put(review, json={"primary": "pat", "peer": "rev",
                                        "reason": "study plan"},
                          headers=api.h()).status_code == 200
    f = _finding(api, image, pat, 2)
    verdicts = f"/api/v1/images/{image}/verdicts"
    assert api.post(verdicts, {"finding": f["id"], "verdict": "disagree"},
                    token=rev).status_code == 201
    # a change of verdict and a revision each need a reason
    assert api.post(verdicts, {"finding": f["id"], "verdict": "agree"},
                    token=rev).status_code == 422
    r = api.post(f"/api/v1/images/{image}/findings", {**LIVER, "severity": 1, "id": f["id"]},
                 token=pat)
    assert (r.status_code, "reason" in r.text) == (422, True), r.text
    _finding(api, image, pat, 1, id=f["id"], reason="peer review: grade lowered")
    assert api.post(verdicts, {"finding": f["id"], "verdict": "agree",
                               "reason": "revision accepted"}, token=rev).status_code == 201
    events = {e["action"]: e["reason"] for e in api.get("/api/v1/audit?study=GR").json()}
    assert (events["review.assign"], events["finding.edit"], events["review.change"]) == (
        "study plan", "peer review: grade lowered", "revision accepted")
