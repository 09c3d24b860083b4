"""Issue 14 on a real JupyterHub (configurable-http-proxy, the API as its managed service): a
wrong password at the hub's login form ends up in the global audit chain that
``plexhub audit verify`` checks and in the study's auditor report; while the API does not
answer the failure waits in the hub's spool and arrives once when it answers again; no caller
but the hub may record login events.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from plexhub.hub.lockout import AUDIT_NAME
from plexhub.policies.loginaudit import ACTION, PATH
from tests.helpers.hub import PASSWORD, PREFIX, Hub, clean_env, descendants, form_login, running_hub

pytestmark = pytest.mark.requirement("audit.login_failures")
FORWARDED_WITHIN = 30.0  # seconds; the hub tries at once, then every 10 s


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub")) as h:
        r = h.api("POST", "/studies", json={"code": "S1", "title": "Study S1",
                                            "sponsor": "acme"})
        assert r.status_code == 201, r.text
        yield h


def failed_logins(hub: Hub) -> list[dict[str, Any]]:
    r = hub.api("GET", "/audit", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["action"] == ACTION]


def wait_for(check: Callable[[], bool], timeout: float = FORWARDED_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.5)


def verify(hub: Hub) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plexhub", "audit", "verify"],
                          env=clean_env(PLEXHUB_DATA_DIR=str(hub.data_dir)),
                          capture_output=True, text=True, timeout=120)


def test_a_wrong_password_at_the_hub_is_in_the_chain_and_the_report(hub: Hub) -> None:
    r = form_login(hub, "sponsor", "wrong-password-1")
    assert r.status_code == 403
    wait_for(lambda: len(failed_logins(hub)) == 1)
    event = failed_logins(hub)[0]
    assert (event["actor"], event["study"], event["entity_type"], event["client"]) \
        == ("anonymous", None, "hub", "127.0.0.1")
    assert (event["after"]["user"], event["after"]["reason"]) == ("sponsor", "bad_password")
    spooled = [json.loads(line) for line in
               (hub.data_dir / "hub" / AUDIT_NAME).read_text().splitlines()]
    assert event["request_id"] == next(e["id"] for e in spooled
                                       if e["event"] == "login.failure")
    all_events = hub.api("GET", "/audit", params={"limit": 1000}).text
    assert "wrong-password-1" not in all_events

    done = verify(hub)
    assert done.returncode == 0, done.stderr
    assert re.search(r"the audit chains intact: \d+ events", done.stdout), done.stdout

    report = hub.api("GET", "/studies/S1/audit/report")
    assert report.status_code == 200, report.text
    section = report.text[report.text.index("<h2>Failed logins</h2>"):
                          report.text.index("<h2>Electronic signatures</h2>")]
    assert "since the study was created: 1 (all shown)" in section
    assert "<td>sponsor</td><td>bad_password</td><td>127.0.0.1</td>" in section
    assert "wrong-password-1" not in report.text


def test_only_the_hub_may_record_login_events(hub: Hub) -> None:
    """Through the proxy, as anyone but the hub: the 404 of an unknown route."""
    body = {"events": [{"id": "0123456789abcdef", "user": "x", "client": "192.0.2.1",
                        "reason": "bad_password", "at": "2026-01-01T00:00:00Z"}]}
    url = f"{hub.base}{PREFIX}{PATH}"
    sponsor = hub.user_token("sponsor")  # a sponsor with no grant on any study
    for headers in ({}, {"Authorization": "Bearer admin-token-for-hub-tests-0123456789"},
                    {"Authorization": f"Bearer {sponsor}"},
                    {"Authorization": f"token {sponsor}"}):
        r = httpx.post(url, json=body, headers=headers, timeout=30)
        assert r.status_code == 404, (headers, r.status_code, r.text)
    assert not [e for e in failed_logins(hub) if e["after"]["user"] == "x"]


@contextlib.contextmanager
def api_stopped(hub: Hub) -> Iterator[None]:
    """The API service's processes paused (SIGSTOP): it does not answer, the hub keeps it."""
    procs = []
    for p in descendants(hub.proc.pid):
        with contextlib.suppress(psutil.Error):
            cmd = p.cmdline()
            if "plexhub" in " ".join(cmd) and "serve" in cmd:
                procs += [p, *p.children(recursive=True)]
    assert procs
    for p in procs:
        p.suspend()
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.resume()


def test_while_the_api_is_down_the_failure_waits_and_arrives_once(hub: Hub) -> None:
    before = len(failed_logins(hub))
    with api_stopped(hub):
        r = form_login(hub, "analyst", "wrong-password-2")
        assert r.status_code == 403  # the login form answers without the API
        time.sleep(7)  # the hub's first try times out (5 s) meanwhile
        spooled = (hub.data_dir / "hub" / AUDIT_NAME).read_text()
        assert '"user": "analyst"' in spooled
    wait_for(lambda: len(failed_logins(hub)) == before + 1)
    time.sleep(12)  # a further retry of the hub would add a duplicate now: none comes
    events = failed_logins(hub)
    assert [e["after"]["user"] for e in events[before:]] == ["analyst"]
    assert verify(hub).returncode == 0
    assert hub.login("analyst", PASSWORD)[1]  # the right password still logs in


def test_hub_log_has_no_errors(hub: Hub) -> None:
    text = Path(hub.log_path).read_text(errors="replace")
    assert "Traceback" not in text, hub.log_tail()
    assert "failed logins not forwarded yet" in text  # the pause above was noticed
