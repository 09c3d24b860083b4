"""Issue 12, tokens and sessions: tokens can be listed, revoked and expired, the creation
answer names the token's id, revocation reaches every process within 2 s, and the portal's
cookie is a session of its own that logout (or the token's revocation) ends."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from plexhub.api.auth import CACHE_SECONDS
from plexhub.api.db import Database
from plexhub.api.main import create_app
from plexhub.api.models import PortalSession
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.server import running_server

COOKIE = "plexhub-session"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def create(api: Api, user: str, role: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/api/v1/tokens", {"user": user, "role": role, "groups": [], **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def audit_actions(api: Api) -> list[tuple[str, str]]:
    events = api.get("/api/v1/audit", params={"limit": 1000}).json()
    return [(e["action"], e["entity_id"]) for e in events]


def portal_login(client: TestClient | httpx.Client, token: str) -> str:
    """The session cookie a portal login with ``token`` sets (taken out of the client's
    jar, so that every later request names its cookie explicitly)."""
    r = client.post("/portal/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = client.cookies.get(COOKIE)
    client.cookies.clear()
    assert cookie
    return str(cookie)


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


# -- tokens ------------------------------------------------------------------------------

def test_creation_answers_the_id_and_listing_never_shows_a_secret(api: Api) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    sue = create(api, "sue", "sponsor", expires_at=iso(later))
    sam = create(api, "sam", "scientist")
    assert len(sue["id"]) == 32
    assert sue["token"].startswith("phk_")
    assert abs(parse(sue["expires_at"]) - later) < timedelta(seconds=1)
    assert sam["expires_at"] is None
    assert api.get("/api/v1/me", sue["token"]).json()["user"] == "sue"

    listed = api.get("/api/v1/tokens")
    assert listed.status_code == 200
    by_id = {t["id"]: t for t in listed.json()}
    assert {sue["id"], sam["id"]} <= set(by_id)
    assert sue["token"] not in listed.text
    assert sam["token"] not in listed.text
    assert hashlib.sha256(sue["token"].encode()).hexdigest() not in listed.text
    assert set(by_id[sue["id"]]) == {"id", "user", "role", "groups", "created_by",
                                     "created_at", "expires_at", "revoked_at",
                                     "last_used_at", "active"}
    assert by_id[sue["id"]]["created_by"] == "admin"
    assert by_id[sue["id"]]["active"] is True
    assert by_id[sue["id"]]["last_used_at"] is not None  # sue called /me
    assert by_id[sam["id"]]["last_used_at"] is None

    # everyone else sees their own tokens only, whatever they ask for
    own = api.get("/api/v1/tokens", sue["token"]).json()
    assert [t["id"] for t in own] == [sue["id"]]
    assert api.get("/api/v1/tokens", sue["token"], params={"user": "sam"}).json() == []
    assert [t["id"] for t in api.get("/api/v1/tokens", params={"user": "sam"}).json()] \
        == [sam["id"]]
    assert api.client.get("/api/v1/tokens").status_code == 401
    assert ("token.create", sue["id"]) in audit_actions(api)


def test_delete_revokes_own_or_any_token_and_hides_the_others(api: Api) -> None:
    sue = create(api, "sue", "sponsor")
    sam = create(api, "sam", "scientist")
    # another user's token is "not found", and stays valid
    r = api.delete(f"/api/v1/tokens/{sam['id']}", sue["token"])
    assert r.status_code == 404
    assert r.json() == {"detail": f"token {sam['id']}: not found (GET /api/v1/tokens lists "
                                  "the tokens you may revoke)"}
    assert api.get("/api/v1/me", sam["token"]).status_code == 200
    assert api.delete("/api/v1/tokens/" + "0" * 32).status_code == 404
    assert api.delete("/api/v1/tokens/" + "x" * 65).status_code == 422

    # a user revokes their own; refused at once in this process
    r = api.delete(f"/api/v1/tokens/{sue['id']}", sue["token"], params={"reason": "lost"})
    assert r.status_code == 200, r.text
    gone = r.json()
    assert gone["revoked_at"] is not None
    assert gone["active"] is False
    assert api.get("/api/v1/me", sue["token"]).status_code == 401
    # an admin revokes anyone's; no hard delete, and revoking again changes nothing
    assert api.delete(f"/api/v1/tokens/{sam['id']}").status_code == 200
    assert api.get("/api/v1/me", sam["token"]).status_code == 401
    again = api.delete(f"/api/v1/tokens/{sue['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == gone["revoked_at"]
    listed = {t["id"]: t for t in api.get("/api/v1/tokens").json()}
    assert listed[sue["id"]]["revoked_at"] == gone["revoked_at"]
    active = {t["id"] for t in api.get("/api/v1/tokens", params={"active": "true"}).json()}
    assert not active & {sue["id"], sam["id"]}
    actions = audit_actions(api)
    assert actions.count(("token.revoke", sue["id"])) == 1
    assert ("token.revoke", sam["id"]) in actions


def test_expired_tokens_are_refused_like_revoked_ones(api: Api) -> None:
    past = api.post("/api/v1/tokens", {"user": "x", "role": "analyst",
                                       "expires_at": iso(datetime.now(UTC) - timedelta(1))})
    assert past.status_code == 422
    assert "is not in the future" in past.json()["detail"]
    huge = api.post("/api/v1/tokens", {"user": "x", "role": "analyst",
                                       "expires_at": "9999-12-31T23:59:59-14:00"})
    assert huge.status_code == 422  # past year 9999 in UTC: the client's mistake, no 500
    assert "out of range" in huge.json()["detail"]
    soon = create(api, "ann", "analyst",
                  expires_at=iso(datetime.now(UTC) + timedelta(seconds=3)))
    assert api.get("/api/v1/me", soon["token"]).status_code == 200  # cached now
    time.sleep(max(0.0, (parse(soon["expires_at"]) - datetime.now(UTC)).total_seconds()))
    time.sleep(0.1)
    r = api.get("/api/v1/me", soon["token"])
    assert r.status_code == 401  # at once: a cached answer carries the expiry
    assert r.json() == {"detail": "the token or session is unknown, revoked or expired"}
    listed = {t["id"]: t for t in api.get("/api/v1/tokens").json()}
    assert listed[soon["id"]]["active"] is False
    assert listed[soon["id"]]["revoked_at"] is None


def test_a_longest_lifetime_caps_new_tokens(api: Api) -> None:
    capped = api.settings.model_copy(update={"token_max_days": 2})
    with TestClient(create_app(capped)) as client:
        h = {"Authorization": f"Bearer {ADMIN}"}
        r = client.post("/api/v1/tokens", headers=h, json={"user": "a", "role": "analyst"})
        assert r.status_code == 201
        assert parse(r.json()["expires_at"]) - datetime.now(UTC) > timedelta(days=2, hours=-1)
        far = iso(datetime.now(UTC) + timedelta(days=3))
        r = client.post("/api/v1/tokens", headers=h,
                        json={"user": "a", "role": "analyst", "expires_at": far})
        assert r.status_code == 422
        assert "PLEXHUB_TOKEN_MAX_DAYS" in r.json()["detail"]


def test_a_revoked_token_is_refused_by_another_process_within_2s(tmp_path: Path) -> None:
    """Two servers on one catalog, each with its own cache: a token (and a portal session
    opened with it) revoked through one is refused by the other within CACHE_SECONDS."""
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with running_server(settings) as one, running_server(settings) as two:
        made = httpx.post(f"{one}/api/v1/tokens", headers=admin,
                          json={"user": "sue", "role": "sponsor"}).json()
        bearer = {"Authorization": f"Bearer {made['token']}"}
        with httpx.Client(base_url=two) as browser:
            cookie = portal_login(browser, made["token"])
        for base in (one, two):  # both processes know the token (and the session) now
            assert httpx.get(f"{base}/api/v1/me", headers=bearer).status_code == 200
        assert httpx.get(f"{two}/api/v1/me", headers=with_cookie(cookie)).status_code == 200
        r = httpx.delete(f"{one}/api/v1/tokens/{made['id']}", headers=admin)
        assert r.status_code == 200
        revoked = time.monotonic()
        assert httpx.get(f"{one}/api/v1/me", headers=bearer).status_code == 401  # at once
        refused: dict[str, float] = {}
        while len(refused) < 2 and time.monotonic() - revoked < 10:
            if "bearer" not in refused and \
                    httpx.get(f"{two}/api/v1/me", headers=bearer).status_code == 401:
                refused["bearer"] = time.monotonic() - revoked
            if "cookie" not in refused and httpx.get(
                    f"{two}/api/v1/me", headers=with_cookie(cookie)).status_code == 401:
                refused["cookie"] = time.monotonic() - revoked
            time.sleep(0.05)
        assert set(refused) == {"bearer", "cookie"}
        assert max(refused.values()) <= CACHE_SECONDS + 0.3, refused


# -- portal sessions ---------------------------------------------------------------------

def test_the_portal_cookie_is_a_session_and_logout_ends_it(api: Api) -> None:
    sue = create(api, "sue", "sponsor")
    c = api.client
    cookie = portal_login(c, sue["token"])
    assert cookie != sue["token"]
    assert sue["token"] not in cookie
    assert cookie.startswith("phs_")
    assert c.get("/portal/", headers=with_cookie(cookie)).status_code == 200
    assert c.get("/api/v1/me", headers=with_cookie(cookie)).json()["user"] == "sue"
    db = Database(api.settings.catalog_url)
    try:
        with db.session() as s:
            rows = s.query(PortalSession).all()
            assert [(r.secret_hash, r.token_id, r.user) for r in rows] == [
                (hashlib.sha256(cookie.encode()).hexdigest(), sue["id"], "sue")]
    finally:
        db.dispose()
    # a token is no cookie
    assert c.get("/api/v1/me", headers=with_cookie(sue["token"])).status_code == 401
    assert c.get("/api/v1/me", headers=with_cookie(ADMIN)).status_code == 401

    out = c.post("/portal/logout", headers=with_cookie(cookie), follow_redirects=False)
    assert out.status_code == 303
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    # the old cookie, replayed, is refused: a login redirect for pages, a 401 for the API
    page = c.get("/portal/", headers=with_cookie(cookie), follow_redirects=False)
    assert page.status_code == 302
    assert page.headers["location"].startswith("/portal/login?next=")
    assert c.get("/api/v1/me", headers=with_cookie(cookie)).status_code == 401
    assert api.get("/api/v1/me", sue["token"]).status_code == 200  # the token lives on

    # a new login gets a new secret; revoking the token ends that session too
    second = portal_login(c, sue["token"])
    assert second != cookie
    assert c.get("/api/v1/me", headers=with_cookie(second)).status_code == 200
    assert api.delete(f"/api/v1/tokens/{sue['id']}").status_code == 200
    assert c.get("/api/v1/me", headers=with_cookie(second)).status_code == 401
    actions = [a for a, _ in audit_actions(api)]
    assert actions.count("session.open") == 2
    assert actions.count("session.close") == 1


def test_sessions_end_when_idle_too_long_or_past_their_end(api: Api) -> None:
    sue = create(api, "sue", "sponsor")
    idle = timedelta(minutes=api.settings.portal_session_idle_minutes)
    db = Database(api.settings.catalog_url)

    def set_times(cookie: str, **values: datetime) -> None:
        key = hashlib.sha256(cookie.encode()).hexdigest()
        with db.session() as s:
            s.execute(update(PortalSession).where(PortalSession.secret_hash == key)
                      .values(**values))
            s.commit()

    def status(cookie: str) -> int:
        return int(api.client.get("/api/v1/me", headers=with_cookie(cookie)).status_code)

    try:
        now = datetime.now(UTC)
        idle_one = portal_login(api.client, sue["token"])
        set_times(idle_one, last_seen_at=now - idle - timedelta(minutes=1))
        assert status(idle_one) == 401
        in_use = portal_login(api.client, sue["token"])  # seen recently: pushed on
        set_times(in_use, last_seen_at=now - idle + timedelta(minutes=2))
        assert status(in_use) == 200
        with db.session() as s:
            row = s.query(PortalSession).filter(PortalSession.secret_hash == hashlib.sha256(
                in_use.encode()).hexdigest()).one()
            seen = row.last_seen_at.replace(tzinfo=UTC) if row.last_seen_at.tzinfo is None \
                else row.last_seen_at
            assert datetime.now(UTC) - seen < timedelta(minutes=1)
        old = portal_login(api.client, sue["token"])
        set_times(old, expires_at=now - timedelta(seconds=1))
        assert status(old) == 401
    finally:
        db.dispose()
    # and never past the token's own expiry
    soon = create(api, "ann", "analyst",
                  expires_at=iso(datetime.now(UTC) + timedelta(seconds=3)))
    short = portal_login(api.client, soon["token"])
    assert status(short) == 200
    time.sleep(max(0.0, (parse(soon["expires_at"]) - datetime.now(UTC)).total_seconds()))
    time.sleep(0.1)
    assert status(short) == 401
