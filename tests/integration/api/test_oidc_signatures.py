"""Electronic signatures of OIDC users (issue 14), on SQLite and PostgreSQL, against a
standards-conforming OpenID Connect provider served on loopback (tests/helpers/oidc.py): the
signer's fresh ``prompt=login`` round trip gives a one-time credential that signs once; a
provider that answers from an old session (``auth_time``), another user's login, a forged
state, a reused or foreign credential are refused (and the refusals at signing audited)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tests.helpers.api import ADMIN, Api
from tests.helpers.oidc import Provider, running_provider

pytestmark = pytest.mark.requirement("signature.reauthentication")


@pytest.fixture
def idp(api: Api) -> Iterator[Provider]:
    """The provider, and the API configured as its client."""
    with running_provider({"alice": "alice-idp-pw", "bob": "bob-idp-pw"}) as provider:
        state = api.client.app.state.plexhub  # type: ignore[attr-defined]
        state.settings = state.settings.model_copy(update={
            "oidc_issuer": provider.base, "oidc_client_id": provider.client_id,
            "oidc_client_secret": SecretStr(provider.client_secret)})
        yield provider


def login(api: Api, idp: Provider, token: str, user: str, password: str) -> httpx.Response:
    """The signer's round trip: start, log in at the provider, come back to the API."""
    r = api.get("/api/v1/signatures/oidc/start", token=token)
    assert r.status_code == 200, r.text
    url = r.json()["authorize_url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert (query["prompt"], query["max_age"], query["code_challenge_method"]) == (
        "login", "0", "S256")
    assert url.startswith(f"{idp.base}/authorize?")
    assert httpx.get(url, timeout=10).status_code == 200  # the provider's login form
    r = httpx.post(f"{idp.base}/login", data={**query, "username": user,
                                              "password": password}, timeout=10)
    assert r.status_code == 302, r.text
    back = urlsplit(r.headers["location"])
    assert back.path == "/api/v1/signatures/oidc/callback"
    params = {k: v[0] for k, v in parse_qs(back.query).items()}
    return api.client.get(back.path, params=params)  # the browser, without a bearer token


def _glp(api: Api, code: str) -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": "Tox", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text


def _lock(api: Api, code: str, credential: str, token: str) -> httpx.Response:
    return api.client.post(f"/api/v1/studies/{code}/lock",
                           json={"reason": "final", "credential": credential},
                           headers=api.h(token))


def _events(api: Api, code: str, action: str) -> list[dict[str, Any]]:
    return [e for e in api.get(f"/api/v1/audit?study={code}").json() if e["action"] == action]


def test_a_fresh_provider_login_signs_once(api: Api, idp: Provider) -> None:
    _glp(api, "G1")
    _glp(api, "G2")
    alice = api.token("alice", "scientist")
    r = login(api, idp, alice, "alice", "alice-idp-pw")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["signer"] == "alice"
    credential = answer["credential"]
    assert credential.startswith("oidc:")
    r = _lock(api, "G1", credential, alice)
    assert r.status_code == 200, r.text
    (sig,) = r.json()["signatures"]
    assert (sig["signer"], sig["method"], sig["meaning"], sig["valid"]) == (
        "alice", "oidc", "approved", True)
    (signed,) = _events(api, "G1", "signature.sign")
    assert signed["after"]["method"] == "oidc"
    assert signed["after"]["auth_time"] == answer["auth_time"]
    assert len(signed["after"]["oidc_login"]) == 32
    assert "alice-idp-pw" not in str(api.get("/api/v1/audit").json())
    # once: the same credential does not sign another object
    r = _lock(api, "G2", credential, alice)
    assert r.status_code == 403, r.text
    assert "the OIDC login credential is not yours, used or expired" in r.json()["detail"]
    assert [e["after"]["why"] for e in _events(api, "G2", "signature.refused")] == [
        "wrong oidc"]
    # nor does it sign for someone else
    bob = api.token("bob", "scientist")
    r = _lock(api, "G2", login(api, idp, alice, "alice", "alice-idp-pw").json()["credential"],
              bob)
    assert r.status_code == 403, r.text
    assert api.get("/api/v1/studies/G2").json()["state"] == "open"
    # a forged credential (its seal broken) neither
    r = _lock(api, "G2", credential[:-4] + "AAAA", alice)
    assert r.status_code == 403, r.text


def test_a_login_that_is_not_fresh_or_not_the_signers_is_refused(api: Api,
                                                                 idp: Provider) -> None:
    alice = api.token("alice", "scientist")
    r = login(api, idp, alice, "bob", "bob-idp-pw")  # bob logs in at alice's signature
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("OIDC signature login: refused: the login is not "
                                         "alice's")
    idp.stale_login = True  # the provider ignores prompt=login: an hour-old session
    r = login(api, idp, alice, "alice", "alice-idp-pw")
    assert r.status_code == 403, r.text
    assert "the provider did not ask for the credential again" in r.json()["detail"]
    idp.stale_login = False
    r = api.get("/api/v1/signatures/oidc/start", token=alice)
    state = parse_qs(urlsplit(r.json()["authorize_url"]).query)["state"][0]
    forged = state.replace(state[5], "A" if state[5] != "A" else "B", 1)
    r = api.client.get("/api/v1/signatures/oidc/callback",
                       params={"code": "x", "state": forged})
    assert r.status_code == 403, r.text
    assert "the state is not one this service issued" in r.json()["detail"]
    r = api.client.get("/api/v1/signatures/oidc/callback", params={"code": "x",
                                                                   "state": state})
    assert r.status_code == 403, r.text  # an unknown code: the provider does not exchange it
    assert "did not exchange the code" in r.json()["detail"]


def test_without_a_provider_the_flow_says_what_to_set(api: Api) -> None:
    r = api.get("/api/v1/signatures/oidc/start", token=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("OIDC signatures: are not configured")
    assert api.client.get("/api/v1/signatures/oidc/start").status_code == 401


def test_the_portal_drives_the_provider_login_and_shows_the_credential(api: Api,
                                                                       idp: Provider) -> None:
    """The browser flow for a signer without a password: from the portal session to the
    provider and back to a page with the one-time credential, which then signs."""
    import html
    import re

    _glp(api, "G1")
    alice = api.token("alice", "scientist")
    c = api.client
    assert c.get("/portal/sign/oidc", follow_redirects=False).headers["location"] \
        .startswith("/portal/login")  # a session first
    assert c.post("/portal/login", data={"token": alice},
                  follow_redirects=False).status_code == 303
    review = c.get("/portal/studies/G1/review")  # the sign-off form links the flow
    assert review.status_code == 200, review.text
    assert 'id="signoff-oidc" href="/portal/sign/oidc"' in review.text
    r = c.get("/portal/sign/oidc", follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    assert url.startswith(f"{idp.base}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert (query["prompt"], query["max_age"]) == ("login", "0")
    assert query["redirect_uri"].endswith("/portal/sign/oidc/done")
    r = httpx.post(f"{idp.base}/login", data={**query, "username": "alice",
                                              "password": "alice-idp-pw"}, timeout=10)
    back = urlsplit(r.headers["location"])
    assert back.path == "/portal/sign/oidc/done"
    params = {k: v[0] for k, v in parse_qs(back.query).items()}
    page = c.get(back.path, params=params)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    assert '<strong id="signer">alice</strong>' in page.text
    found = re.search(r'id="signature-credential"[^>]*value="([^"]+)"', page.text)
    assert found is not None
    credential = html.unescape(found.group(1))
    assert credential.startswith("oidc:")
    assert len(credential) <= 500  # fits the portal's signature field
    r = _lock(api, "G1", credential, alice)
    assert r.status_code == 200, r.text
    assert r.json()["signatures"][0]["method"] == "oidc"
    # a replayed or forged return is a refusal page, not a credential
    forged = {**params, "state": params["state"][:-4] + "AAAA"}
    r = c.get(back.path, params=forged)
    assert r.status_code == 403
    assert 'role="alert"' in r.text
    assert "oidc:" not in r.text
