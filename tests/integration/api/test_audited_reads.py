"""Issue 14: exports and login failures are audited, on SQLite and PostgreSQL. A findings
export (JSON, CSV) is a ``finding.export`` event of the study, still taken by a locked
study; a failed portal login is a ``login.failure`` event in the global chain that keeps
the client address but never the token tried. (The cell table's download:
tests/integration/api/test_cell_summaries.py; the audit export and image download:
test_study_lock_export.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from plexhub.api import audit, auditchain
from tests.helpers.api import Api

pytestmark = pytest.mark.requirement("audit.attribution")


def _events(api: Api) -> list[dict[str, Any]]:
    state = api.client.app.state.plexhub  # type: ignore[attr-defined]
    with state.db.session() as s:
        return list(audit.rows(s))


def test_a_findings_export_is_audited_also_on_a_locked_study(api: Api) -> None:
    api.study("N1")
    sci = api.token("sci", "scientist")
    assert api.get("/api/v1/studies/N1/findings.json", sci).json() == []
    r = api.get("/api/v1/studies/N1/findings.csv", sci)
    assert r.status_code == 200, r.text
    assert r.text.startswith("STUDYID,")
    assert api.post("/api/v1/studies/N1/lock", {}, sci).status_code == 200
    assert api.get("/api/v1/studies/N1/findings.csv", sci).status_code == 200  # a read
    events = [e for e in api.get("/api/v1/audit?study=N1").json()
              if e["action"] == "finding.export"]
    assert [(e["actor"], e["role"], e["entity_id"], e["after"]) for e in events] == [
        ("sci", "scientist", "N1", {"format": "json", "rows": 0}),
        ("sci", "scientist", "N1", {"format": "csv", "rows": 0}),
        ("sci", "scientist", "N1", {"format": "csv", "rows": 0})]
    assert all(e["request_id"] and e["client"] for e in events)
    assert auditchain.verify(_events(api)) == (len(_events(api)), None)


def test_a_failed_portal_login_is_audited_without_the_token(api: Api) -> None:
    c = api.client
    tried = "phk_guessed-secret-123"
    r = c.post("/portal/login", data={"token": tried}, follow_redirects=False)
    assert r.status_code == 401
    r = c.post("/portal/login", data={"token": ""}, follow_redirects=False)
    assert r.status_code == 401
    failures = [e for e in api.get("/api/v1/audit").json() if e["action"] == "login.failure"]
    assert [(e["actor"], e["role"], e["study"], e["entity_type"], e["after"])
            for e in failures] == [
        ("anonymous", None, None, "portal", {"credential": "unknown"}),
        ("anonymous", None, None, "portal", {"credential": "blank"})]
    assert all(e["client"] and e["request_id"] for e in failures)
    assert tried not in str(_events(api))
    # a good token logs in and is not a failure
    sponsor = api.token("anna", "sponsor", ["acme"])
    r = c.post("/portal/login", data={"token": sponsor}, follow_redirects=False)
    assert r.status_code == 303
    assert len([e for e in api.get("/api/v1/audit").json()
                if e["action"] == "login.failure"]) == 2
    assert auditchain.verify(_events(api))[1] is None
