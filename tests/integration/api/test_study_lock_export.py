"""Study locks and the auditor's export (issue 14), on SQLite and PostgreSQL: a locked study
refuses every change with 403 naming the lock until a role its profile allows unlocks it;
reads and exports still work; the per-study export (JSON, CSV) verifies with the standalone
verifier run by a bare Python (no plexhub), and fails naming the event once edited. Sponsors:
tests/security/test_compliance_access.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import ADMIN, Api

REASON = {"X-Plexhub-Reason": "protocol amendment 2"}
PRESET = {"name": "tox", "channels": [{"label": "DAPI", "color": "0000FF",
                                       "window": {"start": 0, "end": 1000}}]}


def _glp(api: Api, code: str) -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": "Tox", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text


def _post(api: Api, url: str, body: Any = None, token: str | None = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return api.client.post(url, json=body, headers={**api.h(*(t for t in [token] if t)),
                                                    **(headers or {})})


@pytest.mark.requirement("study.lock", "profile.unlock_roles")
def test_a_locked_study_refuses_every_change_until_unlocked(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    r = _post(api, "/api/v1/studies/G1/lock", {}, sci)
    assert r.status_code == 422  # GLP: the lock needs a reason too
    assert r.json()["detail"].startswith("reason: is required")
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "study report signed"}, sci)
    assert r.status_code == 422  # GLP: and the signer's signature (tests/.../test_signatures)
    assert r.json()["detail"].startswith("credential: is required")
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "study report signed",
                                               "credential": sci}, sci)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "locked"
    assert _post(api, "/api/v1/studies/G1/lock", {"reason": "again"}, sci).status_code == 409
    for r in (
        api.client.patch("/api/v1/studies/G1", json={"title": "x", "reason": "r"},
                         headers=api.h()),
        _post(api, "/api/v1/studies/G1/grants", {"principal": "user:spon", "reason": "r"}),
        _post(api, "/api/v1/presets", {"scope": "study", "target": "G1", "document": PRESET},
              headers=REASON),
    ):
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("study G1: the study is locked; unlock it first")
    assert api.get("/api/v1/studies/G1").json()["title"] == "Tox"  # reads still work
    # GLP lets only admins unlock
    r = _post(api, "/api/v1/studies/G1/unlock", {"reason": "amendment"}, sci)
    assert r.status_code == 403
    assert "profile glp lets only admin unlock" in r.json()["detail"]
    r = _post(api, "/api/v1/studies/G1/unlock", {"reason": "amendment", "credential": ADMIN})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "open"
    r = api.client.patch("/api/v1/studies/G1", json={"title": "Tox v2", "reason": "amended"},
                         headers=api.h())
    assert r.status_code == 200, r.text
    events = api.get("/api/v1/audit?study=G1").json()
    assert [(e["action"], e["actor"], e["reason"]) for e in events] == [
        ("study.create", "admin", ""),
        ("signature.sign", "sci", "study report signed"),
        ("study.lock", "sci", "study report signed"),
        ("signature.sign", "admin", "amendment"),
        ("study.unlock", "admin", "amendment"), ("study.update", "admin", "amended")]
    # non-GLP: a scientist may unlock
    api.study("N1")
    assert _post(api, "/api/v1/studies/N1/lock", {}, sci).status_code == 200
    assert _post(api, "/api/v1/studies/N1/unlock", {}, sci).status_code == 200


def _verify_bare(path: Path, verifier: Path) -> subprocess.CompletedProcess[str]:
    """The verifier under ``python -I -S``: no site-packages, so no plexhub and nothing else
    but the standard library."""
    return subprocess.run([sys.executable, "-I", "-S", str(verifier), str(path)],
                          capture_output=True, text=True, timeout=60, cwd=path.parent)


@pytest.mark.requirement("audit.export")
def test_the_export_verifies_without_plexhub_and_an_edit_is_named(api: Api,
                                                                  tmp_path: Path) -> None:
    _glp(api, "G1")
    api.study("N1")  # another study's events interleave in the global chain
    for code, title in (("G1", "Tox (Zürich)"), ("N1", "n"), ("G1", "Tox 3")):
        r = api.client.patch(f"/api/v1/studies/{code}", json={"title": title, "reason": "r"},
                             headers=api.h())
        assert r.status_code == 200, r.text
    verifier = tmp_path / "verify_audit.py"
    r = api.get("/api/v1/audit/verifier.py")
    assert r.status_code == 200
    verifier.write_bytes(r.content)
    for fmt in ("json", "csv"):
        r = api.get(f"/api/v1/studies/G1/audit?format={fmt}")
        assert r.status_code == 200, r.text
        assert f'filename="study-G1-audit.{fmt}"' in r.headers["content-disposition"]
        export = tmp_path / f"study-G1-audit.{fmt}"
        export.write_bytes(r.content)
        done = _verify_bare(export, verifier)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("study G1: audit chain intact: ")
    doc = json.loads((tmp_path / "study-G1-audit.json").read_text())
    assert doc["profile"] == "glp"
    assert [e["action"] for e in doc["events"]] == [
        "study.create", "study.update", "study.update", "audit.export"]
    assert all(e["study_code"] == "G1" for e in doc["events"])
    # an auditor's copy edited after the export: the verifier names the event
    doc["events"][1]["reason"] = "approved by QA"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    done = _verify_bare(edited, verifier)
    assert done.returncode == 1
    seq = doc["events"][1]["seq"]
    assert f"audit chain BROKEN at event {seq}: its content does not match" in done.stderr
    csv_text = (tmp_path / "study-G1-audit.csv").read_text()
    (tmp_path / "edited.csv").write_text(csv_text.replace("Tox 3", "Tox 4"))
    done = _verify_bare(tmp_path / "edited.csv", verifier)
    assert done.returncode == 1
    assert "does not match its hash" in done.stderr
