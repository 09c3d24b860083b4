"""The compliance endpoints (issue 14: study lock and unlock, the profile change, the audit
export) answer a sponsor without a grant on the study exactly as for a study that does not
exist (404), and a sponsor with one 403 (staff only); the export's verifier is for staff
too."""

from __future__ import annotations

from tests.helpers.api import Api

REASON = {"X-Plexhub-Reason": "sponsor QA audit"}


def test_sponsors_get_404_without_a_grant_and_403_with_one(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "G1", "title": "Tox", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    outsider = api.token("out", "sponsor", ["other-org"])
    granted = api.token("spon", "sponsor", ["acme"])
    r = api.client.post("/api/v1/studies/G1/grants", json={"principal": "group:acme"},
                        headers={**api.h(), **REASON})
    assert r.status_code == 201, r.text
    calls = [("post", "/api/v1/studies/G1/lock"), ("post", "/api/v1/studies/G1/unlock"),
             ("put", "/api/v1/studies/G1/profile"),
             ("get", "/api/v1/studies/G1/audit"), ("get", "/api/v1/studies/G1/audit?format=csv"),
             ("get", "/api/v1/studies/G1/signatures"),
             ("get", "/api/v1/studies/G1/audit/report")]
    for method, url in calls:
        for code in ("G1", "NOPE"):
            r = api.client.request(method, url.replace("G1", code), json={},
                                   headers=api.h(outsider))
            assert r.status_code == 404, (url, code, r.text)
            assert r.json() == {"detail": f"study {code}: not found"}
        r = api.client.request(method, url, json={}, headers=api.h(granted))
        assert r.status_code == 403, (url, r.text)
    assert api.get("/api/v1/audit/verifier.py", token=outsider).status_code == 403
    assert api.get("/api/v1/studies/G1").json()["state"] == "open"
    assert api.get("/api/v1/studies/G1").json()["profile"] == "glp"


def test_preset_approval_and_signatures_are_404_to_sponsors_without_a_grant(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "G1", "title": "Tox", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text
    r = api.client.post("/api/v1/presets", json={"scope": "study", "target": "G1", "document": {
        "name": "ref", "channels": [{"label": "DAPI", "color": "0000FF",
                                     "window": {"start": 0, "end": 100}}]}},
                        headers={**api.h(), **REASON})
    assert r.status_code == 201, r.text
    preset = r.json()["id"]
    outsider = api.token("out", "sponsor", ["other-org"])
    granted = api.token("spon", "sponsor", ["acme"])
    r = api.client.post("/api/v1/studies/G1/grants", json={"principal": "group:acme"},
                        headers={**api.h(), **REASON})
    assert r.status_code == 201, r.text
    for method, url in (("post", "/api/v1/presets/{p}/approve"),
                        ("get", "/api/v1/presets/{p}/signatures")):
        for pid in (preset, "6" * 32):
            r = api.client.request(method, url.format(p=pid), json={"credential": outsider},
                                   headers=api.h(outsider))
            assert r.status_code == 404, (url, r.text)
            assert r.json() == {"detail": f"preset {pid}: not found"}
    r = api.client.post(f"/api/v1/presets/{preset}/approve", json={"credential": granted},
                        headers=api.h(granted))
    assert r.status_code in (403, 404), r.text  # a role's scope, or a preset it cannot see
    assert api.get("/api/v1/studies/G1/signatures").json() == []
