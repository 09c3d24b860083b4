"""The hub deployment end to end: a real JupyterHub, configurable-http-proxy, the API as a
managed service and JupyterLab servers, on free loopback ports (one hub for the module).

The tests run in file order; the last one deletes the sponsor from the hub.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.hub import ADMIN_TOKEN, PREFIX, Hub, descendants, running_hub

REFUSED_WITHIN = 10.0  # seconds: the bound for revocation and removal


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub")) as h:
        for code in ("S1", "S2", "S3"):
            r = h.api("POST", "/studies", json={"code": code, "title": f"Study {code}",
                                                "sponsor": "acme"})
            assert r.status_code == 201, r.text
        for code, principal in (("S1", "user:sponsor"), ("S3", "group:acme")):
            r = h.api("POST", f"/studies/{code}/grants",
                      json={"principal": principal, "reason": "test"})
            assert r.status_code == 201, r.text
        yield h


@pytest.fixture(scope="module")
def sponsor_token(hub: Hub) -> str:
    return hub.user_token("sponsor")


def codes(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(s["code"] for s in r.json())


def poll_until(check: Any, timeout: float = 30, every: float = 0.2) -> float:
    """Seconds until ``check()`` is true (fails past ``timeout``)."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(every)
    return time.monotonic() - t0


def test_api_under_prefix_with_admin_token(hub: Hub) -> None:
    assert httpx.get(f"{hub.base}{PREFIX}/api/v1/health").status_code == 200
    me = hub.api("GET", "/me")
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    assert codes(hub.api("GET", "/studies")) == ["S1", "S2", "S3"]
    assert hub.api("GET", "/studies", token="not-a-token-at-all").status_code == 401
    assert httpx.get(f"{hub.base}{PREFIX}/api/v1/studies").status_code == 401


def test_groups_loaded_at_start(hub: Hub) -> None:
    groups = {g["name"]: g["users"] for g in hub.hub_api("GET", "/groups").json()}
    assert groups["plexhub-scientists"] == ["scientist"]
    assert groups["plexhub-analysts"] == ["analyst"]
    assert groups["plexhub-sponsors"] == ["sponsor"]
    assert groups["org-acme"] == ["sponsor"]
    assert "plexhub-admins" in groups
    # grants are mirrored into study groups by the service (its own hub token)
    assert groups["study-S1"] == ["sponsor"]
    assert groups["study-S3"] == ["sponsor"]


def test_scientist_and_analyst_servers_spawn(hub: Hub) -> None:
    for path in ("/users/scientist/server", "/users/analyst/servers/s1"):  # named servers too
        r = hub.hub_api("POST", path)
        assert r.status_code in (201, 202), r.text
    hub.wait_ready("scientist")
    hub.wait_ready("analyst", "s1")
    token = hub.user_token("scientist")
    h = {"Authorization": f"token {token}"}
    status = httpx.get(f"{hub.base}/user/scientist/api/status", headers=h)
    assert status.status_code == 200
    assert "started" in status.json()
    lab = httpx.get(f"{hub.base}/user/scientist/lab", headers=h)
    assert lab.status_code == 200
    assert "JupyterLab" in lab.text
    r = httpx.get(f"{hub.base}/user/analyst/s1/api/status",
                  headers={"Authorization": f"token {hub.user_token('analyst')}"})
    assert r.status_code == 200


def test_first_start_prepares_the_scientists_home(hub: Hub) -> None:
    """The first server start: the project's notebooks in ~/plexhub, JupyterLab opens on the
    quick start, the news pop-up is off, the environment's bin leads PATH (kernels inherit
    it, so ``!plexhub publish`` works)."""
    home = hub.data_dir / "hub" / "homes" / "scientist"
    assert (home / "plexhub" / "viewer-quickstart.ipynb").is_file()
    news = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    assert (news / "notification.jupyterlab-settings").read_text().strip() == \
        '{"fetchNews": "false"}'
    envs = [p.environ() for p in descendants(hub.proc.pid)
            if any("jupyterhub-singleuser" in a for a in p.cmdline())]
    env = next(e for e in envs if e.get("JUPYTERHUB_USER") == "scientist")
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/plexhub/viewer-quickstart.ipynb"
    first = Path(env["PATH"].split(":")[0])
    assert (first / "plexhub").exists()
    assert (first / "jupyter").exists()


def test_hub_pages_carry_plexhubs_name_and_sponsors_see_no_server_buttons(hub: Hub) -> None:
    login = httpx.get(f"{hub.base}/hub/login")
    assert "<title>plexhub</title>" in login.text.replace("\n", "").replace(" ", "")
    assert "plexhub-login-title" in login.text
    sponsor, _ = hub.login("sponsor")
    home = sponsor.get("/hub/home")
    assert home.status_code == 200
    assert "My Server" not in home.text
    assert "Add New Server" not in home.text
    assert f'href="/{PREFIX.strip("/")}/portal/"' in home.text
    scientist, _ = hub.login("scientist")
    assert "My Server" in scientist.get("/hub/home").text


def test_kernels_reach_the_api_with_their_servers_token(hub: Hub) -> None:
    """A notebook's kernel inherits PLEXHUB_API_URL and the server's JUPYTERHUB_API_TOKEN:
    with those alone the viewer reaches the API as the server's owner."""
    envs = [p.environ() for p in descendants(hub.proc.pid)
            if any("jupyterhub-singleuser" in a for a in p.cmdline())]
    env = next(e for e in envs if e.get("JUPYTERHUB_USER") == "scientist")
    url = env["PLEXHUB_API_URL"]
    assert url == f"{hub.base}{PREFIX}"
    me = httpx.get(f"{url}/api/v1/me", timeout=10,
                   headers={"Authorization": f"Bearer {env['JUPYTERHUB_API_TOKEN']}"})
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "scientist"
    assert me.json()["role"] == "scientist"


def test_singleuser_auth_cache_is_short(hub: Hub) -> None:
    """A revoked token is refused by a running JupyterLab within seconds: the servers run
    with --HubOAuth.cache_max_age=5 (JupyterHub's default would keep it 300 s)."""
    cmdlines = [p.cmdline() for p in descendants(hub.proc.pid)]
    servers = [c for c in cmdlines if any("jupyterhub-singleuser" in a for a in c)]
    assert len(servers) >= 2  # scientist and analyst/s1
    assert all("--HubOAuth.cache_max_age=5" in c for c in servers)
    r = hub.hub_api("POST", "/users/scientist/tokens", json={"expires_in": 600})
    token, token_id = r.json()["token"], r.json()["id"]
    url, h = f"{hub.base}/user/scientist/api/status", {"Authorization": f"token {token}"}
    assert httpx.get(url, headers=h).status_code == 200  # now cached by the server
    assert hub.hub_api("DELETE", f"/users/scientist/tokens/{token_id}").status_code == 204
    took = poll_until(lambda: httpx.get(url, headers=h).status_code in (401, 403))
    assert took < REFUSED_WITHIN


def test_sponsor_login_lands_on_portal_without_server(hub: Hub) -> None:
    client, location = hub.login("sponsor")
    assert location == f"{PREFIX}/portal/"
    assert hub.hub_api("GET", "/users/sponsor").json()["servers"] == {}
    # a scientist's login goes to JupyterHub's default (spawn / the running server)
    _, scientist_location = hub.login("scientist")
    assert scientist_location.startswith(("/hub/spawn", "/user/scientist"))
    # a wrong password is refused
    r = client.post("/hub/login", data={"username": "sponsor", "password": "wrong-password",
                                        "_xsrf": client.cookies.get("_xsrf", "")})
    assert r.status_code != 302


def test_sponsor_cannot_start_a_server(hub: Hub, sponsor_token: str) -> None:
    for path in ("/users/sponsor/server", "/users/sponsor/servers/x"):
        assert hub.hub_api("POST", path, token=sponsor_token).status_code == 403
    client, _ = hub.login("sponsor")
    for path in ("/hub/spawn", "/hub/spawn/sponsor", "/hub/spawn/sponsor/x"):
        assert client.get(path).status_code == 403, path
    assert client.post("/hub/spawn", data={"_xsrf": client.cookies.get("_xsrf", "")}
                       ).status_code == 403
    assert hub.hub_api("GET", "/users/sponsor").json()["servers"] == {}


def test_api_accepts_hub_tokens(hub: Hub, sponsor_token: str) -> None:
    me = hub.api("GET", "/me", token=sponsor_token).json()
    assert me == {"user": "sponsor", "role": "sponsor", "groups": ["acme"]}
    assert codes(hub.api("GET", "/studies", token=sponsor_token)) == ["S1", "S3"]
    assert hub.api("GET", "/studies/S2", token=sponsor_token).status_code == 404
    scientist = hub.user_token("scientist")
    assert codes(hub.api("GET", "/studies", token=scientist)) == ["S1", "S2", "S3"]
    assert hub.api("POST", "/studies", token=sponsor_token,
                   json={"code": "X", "title": "x", "sponsor": "acme"}).status_code == 403


def test_api_accepts_oauth_logins(hub: Hub) -> None:
    client, _ = hub.login("sponsor")
    client.follow_redirects = True
    r = client.get(f"{PREFIX}/hub-login", params={"next": f"{PREFIX}/api/v1/me"})
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "sponsor"
    assert [h.url.path for h in r.history] == [f"{PREFIX}/hub-login",
                                               "/hub/api/oauth2/authorize",
                                               f"{PREFIX}/oauth_callback"]
    assert codes(client.get(f"{PREFIX}/api/v1/studies")) == ["S1", "S3"]
    # the OAuth token itself reads the user's model with groups from the hub
    oauth_token = client.cookies.get("plexhub-session")
    assert oauth_token
    model = hub.hub_api("GET", "/user", token=oauth_token).json()
    assert model["name"] == "sponsor"
    assert "org-acme" in model["groups"]


def test_revoked_grant_refused_within_10s(hub: Hub, sponsor_token: str) -> None:
    grants = hub.api("GET", "/studies/S3/grants").json()
    assert codes(hub.api("GET", "/studies", token=sponsor_token)) == ["S1", "S3"]
    for g in grants:
        assert hub.api("DELETE", f"/grants/{g['id']}", params={"reason": "test"}
                       ).status_code == 200
    took = poll_until(lambda: hub.api("GET", "/studies/S3", token=sponsor_token)
                      .status_code == 404)
    assert took < REFUSED_WITHIN
    assert codes(hub.api("GET", "/studies", token=sponsor_token)) == ["S1"]
    assert "study-S3" not in hub.hub_api("GET", "/users/sponsor").json()["groups"]


def test_removed_user_refused_within_10s(hub: Hub, sponsor_token: str) -> None:
    client, _ = hub.login("sponsor")
    client.follow_redirects = True
    assert client.get(f"{PREFIX}/hub-login",
                      params={"next": f"{PREFIX}/api/v1/me"}).status_code == 200
    client.follow_redirects = False
    assert hub.api("GET", "/me", token=sponsor_token).status_code == 200  # cached now
    assert hub.hub_api("DELETE", "/users/sponsor").status_code == 204
    took = poll_until(lambda: hub.api("GET", "/studies", token=sponsor_token)
                      .status_code == 401
                      and client.get(f"{PREFIX}/api/v1/studies").status_code == 401)
    assert took < REFUSED_WITHIN
    assert hub.api("GET", "/studies", token=ADMIN_TOKEN).status_code == 200


def test_hub_log_has_no_errors(hub: Hub) -> None:
    text = Path(hub.log_path).read_text(errors="replace")
    assert "Traceback" not in text, hub.log_tail()
