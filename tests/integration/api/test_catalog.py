"""Auth, studies, grants and the audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.helpers.api import Api

# the sealed state and the ID token are its check (tests/integration/api/test_oidc_signatures.py)
OIDC_CALLBACK = "/api/v1/signatures/oidc/callback"


def test_health_is_open_and_everything_else_needs_a_token(api: Api) -> None:
    assert api.client.get("/api/v1/health").status_code == 200
    checked = 0
    assert api.client.get("/api/v1/openapi.json").status_code == 401
    assert api.client.get("/openapi.json").status_code == 404
    assert api.client.get("/docs").status_code == 404
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    for path, ops in paths.items():
        if path == "/api/v1/health":
            continue
        if path == OIDC_CALLBACK:  # open: the identity provider sends the browser there
            assert api.client.get(path).status_code == 422  # no code or state: refused
            continue
        url = path.replace("{", "x").replace("}", "")
        for method in ops:
            method = method.upper()
            r = api.client.request(method, url)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json() == {"detail": "a bearer token is required"}
            r = api.client.request(method, url, headers=api.h("phk_wrong"))
            assert r.status_code == 401, (method, path)
            checked += 1
    assert checked >= 12


def test_roles_and_tokens(api: Api) -> None:
    sci = api.token("sam", "scientist")
    assert api.post("/api/v1/tokens", {"user": "x", "role": "admin"}, sci).status_code == 403
    assert api.get("/api/v1/me", sci).json() == {"user": "sam", "role": "scientist",
                                                  "groups": []}
    bad = api.post("/api/v1/tokens", {"user": "a b", "role": "root"})
    assert bad.status_code == 422
    assert isinstance(bad.json()["detail"], str)
    assert "role" in bad.json()["detail"]
    assert "user" in bad.json()["detail"]


def test_studies_crud_and_errors(api: Api) -> None:
    api.study("S001")
    r = api.post("/api/v1/studies", {"code": "S001", "title": "again", "sponsor": "acme"})
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]
    r = api.post("/api/v1/studies", {"code": "../etc", "title": "x", "sponsor": "y"})
    assert r.status_code == 422
    assert api.get("/api/v1/studies/S001").json()["sponsor"] == "acme"
    assert api.get("/api/v1/studies/NOPE").status_code == 404
    analyst = api.token("ann", "analyst")
    r = api.post("/api/v1/studies", {"code": "S2", "title": "x", "sponsor": "y"}, analyst)
    assert r.status_code == 403


def test_sponsor_sees_only_granted_studies_and_revocation_is_fast(api: Api) -> None:
    api.study("S001")
    api.study("S002")
    sponsor = api.token("sue", "sponsor", ["acme"])
    other = api.token("oscar", "sponsor", ["globex"])
    assert api.get("/api/v1/studies", sponsor).json() == []
    assert api.get("/api/v1/studies/S001", sponsor).status_code == 404  # not 403
    gid = api.post("/api/v1/studies/S001/grants",
                   {"principal": "group:acme", "capabilities": ["view"],
                    "reason": "sponsor review"}).json()["id"]
    assert [s["code"] for s in api.get("/api/v1/studies", sponsor).json()] == ["S001"]
    assert api.get("/api/v1/studies/S001", sponsor).status_code == 200
    assert api.get("/api/v1/studies/S002", sponsor).status_code == 404
    assert api.get("/api/v1/studies", other).json() == []
    # sponsors cannot grant themselves more
    r = api.post("/api/v1/studies/S002/grants", {"principal": "user:sue"}, sponsor)
    assert r.status_code == 404
    r = api.delete(f"/api/v1/grants/{gid}", params={"reason": "review finished"})
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    t0 = time.monotonic()
    while api.get("/api/v1/studies/S001", sponsor).status_code != 404:
        assert time.monotonic() - t0 < 5
        time.sleep(0.1)


def test_expired_grants_stop_working_without_a_job(api: Api) -> None:
    api.study("S001")
    sponsor = api.token("sue", "sponsor")
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    r = api.post("/api/v1/studies/S001/grants", {"principal": "user:sue",
                                                 "expires_at": soon.isoformat()})
    assert r.status_code == 201
    assert api.get("/api/v1/studies/S001", sponsor).status_code == 200
    time.sleep(2.0)
    assert api.get("/api/v1/studies/S001", sponsor).status_code == 404


def test_mutations_are_audited(api: Api) -> None:
    api.study("S001")
    gid = api.post("/api/v1/studies/S001/grants",
                   {"principal": "user:sue", "reason": "because"}).json()["id"]
    api.delete(f"/api/v1/grants/{gid}", params={"reason": "done"})
    events = api.get("/api/v1/audit", params={"study": "S001"}).json()
    assert [e["action"] for e in events] == ["study.create", "grant.create", "grant.revoke"]
    assert events[1]["reason"] == "because"
    assert events[2]["before"] == {"revoked_at": None}
    assert events[2]["actor"] == "admin"
    assert all(e["ts"].endswith(("Z", "+00:00")) for e in events)
    sponsor = api.token("sue", "sponsor")
    assert api.get("/api/v1/audit", sponsor).status_code == 403
