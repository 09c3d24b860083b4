"""Issue 14: the hub's failed logins are in the tamper-evident chain, on SQLite and PostgreSQL.

The hub's spool (``login-audit.jsonl``, written by its LoginGuard) is forwarded by
``plexhub.hub.loginforward`` to ``POST /api/v1/audit/login-events`` of an API running as a hub
service (here in process: the forwarder posts through the test client); only the hub may call
it; the API records each event id once, so a lost answer and a resend leave one event; while
the API is down the events wait in the spool. The same against a real JupyterHub:
tests/integration/hub/test_hub_login_audit.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plexhub.api.auditchain import verify
from plexhub.api.cli import verify_audit
from plexhub.hub.lockout import AUDIT_NAME, LoginGuard
from plexhub.hub.loginforward import CURSOR_NAME, ForwardError, LoginEventForwarder
from plexhub.policies.lockout import LockoutRule
from plexhub.policies.loginaudit import ACTION, PATH, hub_key
from tests.helpers.api import Api
from tests.helpers.net import free_port

SERVICE_TOKEN = "service-token-the-hub-gave-the-api-0123456789"
RULE = LockoutRule(max_failures=3, window=900, lock_seconds=900)
ADDRESS_RULE = LockoutRule(max_failures=20, window=900, lock_seconds=900)
pytestmark = pytest.mark.requirement("audit.login_failures")


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment JupyterHub gives its managed service (nothing listens at the hub's
    address: these routes never ask the hub)."""
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{free_port()}/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", SERVICE_TOKEN)


@pytest.fixture
def service(hub_env: None, api: Api) -> Api:
    """The API app in service mode (``hub_env`` is set up before ``api`` makes the app)."""
    assert api.client.app.state.plexhub.hub is not None  # type: ignore[attr-defined]
    return api


def forwarder(api: Api, folder: Path, key: str = hub_key(SERVICE_TOKEN)) -> LoginEventForwarder:
    return LoginEventForwarder(folder, f"{api.client.base_url}{PATH}", key, client=api.client)


def login_events(api: Api) -> list[dict[str, Any]]:
    return [e for e in api.get("/api/v1/audit", params={"limit": 1000}).json()
            if e["action"] == ACTION]


def all_events(api: Api) -> list[dict[str, Any]]:
    from plexhub.api import audit

    with api.client.app.state.plexhub.db.session() as session:  # type: ignore[attr-defined]
        return list(audit.rows(session))


def spool(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / AUDIT_NAME).read_text().splitlines()]


def test_failed_hub_logins_enter_the_global_chain_once(service: Api, tmp_path: Path) -> None:
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE)
    for _ in range(3):  # the third starts a lock
        guard.failed("sponsor", "192.0.2.7")
    assert guard.check("sponsor", "192.0.2.8") is not None  # refused: locked out
    guard.failed("nobody", "198.51.100.4")
    guard.unlock("sponsor", actor="test-admin")  # not a failed login: not forwarded
    fwd = forwarder(service, tmp_path)
    assert fwd.forward() == 5
    events = login_events(service)
    assert [(e["actor"], e["role"], e["study"], e["entity_type"], e["entity_id"],
             e["after"]["user"], e["after"]["reason"], e["client"]) for e in events] == [
        *[("anonymous", None, None, "hub", "login", "sponsor", "bad_password",
           "192.0.2.7")] * 3,
        ("anonymous", None, None, "hub", "login", "sponsor", "locked_out", "192.0.2.8"),
        ("anonymous", None, None, "hub", "login", "nobody", "bad_password", "198.51.100.4")]
    ids = [e["id"] for e in spool(tmp_path) if e["event"] in ("login.failure", "login.refused")]
    assert [e["request_id"] for e in events] == ids  # the hub's ids, in its order
    assert all(e["after"]["source"] == "hub" and e["after"]["at"] for e in events)
    assert fwd.forward() == 0  # nothing new

    # the answer was lost: the hub sends everything again; the chain keeps each event once
    (tmp_path / CURSOR_NAME).unlink()
    r = service.client.post(PATH, json={"events": [
        {"id": ids[0], "user": "sponsor", "client": "192.0.2.7", "reason": "bad_password",
         "at": "2026-01-01T00:00:00Z"}] * 2},
        headers={"Authorization": f"Bearer {hub_key(SERVICE_TOKEN)}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"recorded": 0, "repeated": 2}
    assert fwd.forward() == 5  # sent again, taken as repeats
    assert len(login_events(service)) == 5
    checked, broken = verify(all_events(service))
    assert broken is None
    assert checked == len(all_events(service))
    intact, said = verify_audit(service.settings.catalog_url)
    assert intact, said


def test_while_the_api_is_down_the_spool_keeps_the_failures(service: Api,
                                                            tmp_path: Path) -> None:
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE)
    guard.failed("analyst", "192.0.2.9")
    down = LoginEventForwarder(tmp_path, f"http://127.0.0.1:{free_port()}{PATH}",
                               hub_key(SERVICE_TOKEN), timeout=2)
    with pytest.raises(ForwardError, match="not reachable"):
        down.forward()
    assert down.offset() == 0
    guard.failed("analyst", "192.0.2.9")
    # a partly written line (the hub writing it now) waits for its end
    with (tmp_path / AUDIT_NAME).open("a") as f:
        f.write('{"event": "login.failure", "user": "half')
    assert forwarder(service, tmp_path).forward() == 2
    assert [e["after"]["user"] for e in login_events(service)] == ["analyst", "analyst"]
    with (tmp_path / AUDIT_NAME).open("a") as f:
        f.write('", "address": "192.0.2.10", "ts": "2026-01-01T00:00:00+00:00"}\n')
    assert forwarder(service, tmp_path).forward() == 1  # an id from its place and content
    assert [e["after"]["user"] for e in login_events(service)][-1] == "half"
    # a wrong key is refused like an unknown route; nothing moves
    guard.failed("analyst", "192.0.2.9")
    with pytest.raises(ForwardError, match="answered 404"):
        forwarder(service, tmp_path, key=hub_key("another-service-token")).forward()
    assert len(login_events(service)) == 3


EVENT = {"id": "0123456789abcdef", "user": "sponsor", "client": "192.0.2.1",
         "reason": "bad_password", "at": "2026-01-01T00:00:00Z"}


def test_only_the_hub_may_record_login_events(service: Api) -> None:
    """Users (admins too), a sponsor without any grant, anonymous callers and a wrong key
    get the 404 of an unknown route; a password is never taken."""
    service.study("S1")
    sponsor = service.token("stranger", "sponsor", ["elsewhere"])
    body = {"events": [EVENT]}
    for headers in ({}, service.h(), service.h(sponsor), service.h(SERVICE_TOKEN),
                    service.h(hub_key("not-the-service-token"))):
        r = service.client.post(PATH, json=body, headers=headers)
        assert r.status_code == 404, (headers, r.text)
    hub = service.h(hub_key(SERVICE_TOKEN))
    r = service.client.post(PATH, json={"events": [{**EVENT, "password": "secret"}]},
                            headers=hub)
    assert r.status_code == 422
    r = service.client.post(PATH, json={"events": [{**EVENT, "reason": "guessed"}]},
                            headers=hub)
    assert r.status_code == 422
    assert login_events(service) == []
    assert service.client.post(PATH, json=body, headers=hub).json() == \
        {"recorded": 1, "repeated": 0}


def test_a_standalone_api_has_no_login_events_route(api: Api) -> None:
    r = api.client.post(PATH, json={"events": [EVENT]}, headers=api.h(hub_key("")))
    assert r.status_code == 404
    assert api.post(PATH, {"events": [EVENT]}).status_code == 404


def test_the_auditor_report_lists_failed_logins(service: Api, tmp_path: Path) -> None:
    service.study("S1")
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE)
    guard.failed("sponsor", "192.0.2.77")
    assert forwarder(service, tmp_path).forward() == 1
    service.client.post("/portal/login", data={"token": "phk_guess"}, follow_redirects=False)
    r = service.get("/api/v1/studies/S1/audit/report")
    assert r.status_code == 200, r.text
    html = r.text
    section = html[html.index("<h2>Failed logins</h2>"):html.index("<h2>Electronic")]
    assert "Failed logins to the system since the study was created: 2 (all shown)" in section
    assert "192.0.2.77" in section
    assert "bad_password" in section
    assert ">hub<" in section
    assert ">portal<" in section
    assert "phk_guess" not in html


def test_hostile_names_tried_do_not_hold_up_the_spool(service: Api, tmp_path: Path) -> None:
    """A name tried is whatever the form was sent: a NUL, a lone surrogate, a huge name, a
    hand-edited line without a usable id or time are forwarded all the same (cleaned), and
    the failures after them too."""
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE)
    guard.failed("a\x00b", "192.0.2.1")
    with (tmp_path / AUDIT_NAME).open("a") as f:  # (tornado refuses such a form: 400)
        f.write(json.dumps({"event": "login.failure", "id": "0123456789abcdef1",
                            "user": "lone\udcffsurrogate", "ts": "2026-01-01T00:00:00"})
                + "\n")
    guard.failed("x" * 5000, "192.0.2.1")
    with (tmp_path / AUDIT_NAME).open("a") as f:
        f.write(json.dumps({"event": "login.failure", "id": "not an id!", "user": "edited",
                            "ts": "yesterday"}) + "\n")
    guard.failed("after", "192.0.2.1")
    assert forwarder(service, tmp_path).forward() == 5
    users = [e["after"]["user"] for e in login_events(service)]
    assert users[:2] == ["a\ufffdb", "lone?surrogate"]
    assert users[2].startswith("x" * 100)
    assert len(users[2]) == 200
    assert users[3:] == ["edited", "after"]
    assert all(e["request_id"] for e in login_events(service))


def test_an_event_the_api_refuses_is_passed_over(service: Api, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Should an event still be refused as invalid (422), the others of its batch are
    recorded and the spool moves on (the refused line stays in the file)."""
    from plexhub.hub import loginforward

    monkeypatch.setattr(loginforward, "_text", lambda value, limit: str(value))  # no cleaning
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE)
    for name in ("before", "nul\x00name", "after"):
        guard.failed(name, "192.0.2.1")
    fwd = forwarder(service, tmp_path)
    assert fwd.forward() == 3  # sent
    assert [e["after"]["user"] for e in login_events(service)] == ["before", "after"]
    assert fwd.forward() == 0
    assert "nul\\u0000name" in (tmp_path / AUDIT_NAME).read_text()
