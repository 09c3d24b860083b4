"""The compliance endpoints (issue 14: study lock and unlock, the audit export) answer a
sponsor without a grant on the study exactly as for a study that does not exist (404), and a
sponsor with one 403 (staff only); the export's verifier is for staff too."""

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
             ("get", "/api/v1/studies/G1/audit"), ("get", "/api/v1/studies/G1/audit?format=csv")]
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
