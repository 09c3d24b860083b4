"""Hub mode with two API worker processes (``PLEXHUB_API_WORKERS=2``): a browser's OAuth
login starts on whichever worker its connection lands on, and the hub sends it back to
``/oauth_callback``, which may land on the other one. Every login must work wherever its two
halves land: the OAuth state cannot live in one process's memory.

The proxy keeps one upstream connection alive for a client that sends one request at a time,
so every request of a sequential test would reach the same worker; browsers open several. The
test therefore sends the API's steps each on a new connection straight to the service's port
(the kernel hands each new connection to either worker), the hub's steps through the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from tests.helpers.hub import PREFIX, Hub, descendants, running_hub

LOGINS = 24  # two workers taking connections at random: P(all on one worker) ~ 2**-23


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub2"), timeout=240, PLEXHUB_API_WORKERS="2") as h:
        r = h.api("POST", "/studies", json={"code": "S1", "title": "Study S1",
                                            "sponsor": "acme"})
        assert r.status_code == 201, r.text
        r = h.api("POST", "/studies/S1/grants", json={"principal": "user:sponsor",
                                                      "reason": "test"})
        assert r.status_code == 201, r.text
        yield h


def api_serve(hub: Hub) -> psutil.Process:
    """The API service's ``plexhub serve`` process."""
    serve = [p for p in descendants(hub.proc.pid)
             if "serve" in p.cmdline() and "plexhub" in p.cmdline()]
    assert len(serve) == 1, [p.cmdline() for p in serve]
    return serve[0]


def api_workers(hub: Hub) -> list[psutil.Process]:
    """Its worker processes (started by multiprocessing's spawn; the resource tracker is a
    child too)."""
    return [p for p in api_serve(hub).children() if "spawn_main" in " ".join(p.cmdline())]


def api_base(hub: Hub) -> str:
    """The service's own address (not the proxy's)."""
    cmd = api_serve(hub).cmdline()
    return f"http://127.0.0.1:{cmd[cmd.index('--port') + 1]}"


NEW_CONNECTION = {"Connection": "close"}


def test_the_api_runs_two_workers(hub: Hub) -> None:
    assert len(api_workers(hub)) == 2


def test_oauth_logins_work_whichever_worker_the_callback_reaches(hub: Hub) -> None:
    api = api_base(hub)
    client, _ = hub.login("sponsor")  # the hub's session (the cookie jar ignores ports)
    failures = []
    for i in range(LOGINS):
        start = client.get(f"{api}{PREFIX}/hub-login", headers=NEW_CONNECTION,
                           params={"next": f"{PREFIX}/api/v1/me"})
        assert start.status_code == 302, start.text
        authorize = client.get(start.headers["location"])  # the hub, through the proxy
        assert authorize.status_code == 302, authorize.text
        callback = authorize.headers["location"]
        assert callback.startswith(f"{PREFIX}/oauth_callback?"), callback
        done = client.get(f"{api}{callback}", headers=NEW_CONNECTION)
        if done.status_code != 302:
            failures.append(f"login {i}: {done.status_code} {done.text[:200]}")
            continue
        assert done.headers["location"] == f"{PREFIX}/api/v1/me"
        me = client.get(f"{api}{PREFIX}/api/v1/me", headers=NEW_CONNECTION)
        assert me.status_code == 200, me.text
        assert me.json()["user"] == "sponsor"
    assert not failures, f"{len(failures)} of {LOGINS} logins failed:\n" + "\n".join(failures)
    # and through the proxy, as a browser follows it
    client.follow_redirects = True
    r = client.get(f"{PREFIX}/hub-login", params={"next": f"{PREFIX}/api/v1/studies"})
    assert r.status_code == 200, r.text
    assert [h.url.path for h in r.history] == [f"{PREFIX}/hub-login",
                                               "/hub/api/oauth2/authorize",
                                               f"{PREFIX}/oauth_callback"]
    assert [s["code"] for s in r.json()] == ["S1"]


def test_a_callback_without_its_login_is_refused(hub: Hub) -> None:
    """A state the API never issued (or a replayed one) is refused on every worker."""
    client, _ = hub.login("sponsor")
    for _ in range(6):
        r = client.get(f"{PREFIX}/oauth_callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 403, r.text
    assert "plexhub-session" not in client.cookies
    # a state that was used once does not log in again (its code is spent, its cookie gone)
    client.follow_redirects = False
    start = client.get(f"{PREFIX}/hub-login", params={"next": f"{PREFIX}/api/v1/me"})
    assert start.status_code == 302
    authorize = client.get(start.headers["location"])
    assert authorize.status_code == 302, authorize.text
    callback = authorize.headers["location"]
    first = client.get(callback)
    assert first.status_code == 302, first.text
    assert client.get(callback).status_code in (400, 403)


def test_hub_log_has_no_errors(hub: Hub) -> None:
    text = hub.log_path.read_text(errors="replace")
    assert "Traceback" not in text, hub.log_tail()
