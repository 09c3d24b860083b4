"""Electronic signatures (issue 14), on SQLite and PostgreSQL: a GLP study's lock, unlock,
notebook publication and preset approval need the signer's own credential (a local user's
password, else their own API token typed in again); the signature records signer, role,
meaning, UTC time and the SHA-256 of what was signed, shows on the signed object and in the
audit trail, and cannot be copied to another object. A wrong credential is refused (403),
audited as ``signature.refused``, and repeated refusals lock signing (429). Sponsors:
tests/security/test_compliance_access.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from plexhub.api import signatures
from plexhub.api.db import Database
from plexhub.api.models import Signature
from plexhub.policies.passwords import hash_password
from tests.helpers.api import ADMIN, Api

NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Tox summary"}]}
PRESET = {"name": "tox", "channels": [{"label": "DAPI", "color": "0000FF",
                                       "window": {"start": 0, "end": 1000}}]}


def _db(api: Api) -> Database:
    return api.client.app.state.plexhub.db  # type: ignore[attr-defined]


def _glp(api: Api, code: str) -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": f"Tox {code}", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text


def _post(api: Api, url: str, body: Any, token: str = ADMIN) -> httpx.Response:
    return api.client.post(url, json=body, headers=api.h(token))


def _events(api: Api, code: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/audit?study={code}")
    assert r.status_code == 200, r.text
    return list(r.json())


def _local_user(api: Api, name: str, password: str) -> None:
    """A hub user with a password in the registry the API reads (hub/users.py's format)."""
    path = api.settings.hub_users_path
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "users": {name: {"role": "scientist", "orgs": [],
                                          "password": hash_password(password)}}}
    path.write_text(json.dumps(doc))


@pytest.mark.requirement("signature.reauthentication", "profile.signatures")
def test_a_glp_lock_is_signed_with_the_signers_own_token(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    before = datetime.now(UTC)
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "report final", "credential": sci}, sci)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "locked"
    (sig,) = body["signatures"]
    assert (sig["signer"], sig["role"], sig["meaning"], sig["action"], sig["method"],
            sig["entity_type"], sig["entity_id"], sig["valid"]) == (
        "sci", "scientist", "approved", "study.lock", "token", "study", "G1", True)
    assert datetime.fromisoformat(sig["signed_at"]) >= before.replace(microsecond=0)
    assert len(sig["content_hash"]) == len(sig["hash"]) == 64
    # in the audit trail, chained: the signature's hashes and its reason
    signed = [e for e in _events(api, "G1") if e["action"] == "signature.sign"]
    assert len(signed) == 1
    assert (signed[0]["actor"], signed[0]["reason"]) == ("sci", "report final")
    assert signed[0]["after"]["content_hash"] == sig["content_hash"]
    assert signed[0]["after"]["hash"] == sig["hash"]
    assert api.get("/api/v1/studies/G1/signatures").json() == [sig]
    # the unlock is signed too (GLP: by an admin), with its own signature
    r = _post(api, "/api/v1/studies/G1/unlock", {"reason": "amendment", "credential": ADMIN})
    assert r.status_code == 200, r.text
    assert [(s["signer"], s["action"]) for s in r.json()["signatures"]] == [
        ("sci", "study.lock"), ("admin", "study.unlock")]


@pytest.mark.requirement("signature.refusal")
def test_a_wrong_credential_is_refused_audited_and_repeated_failures_lock(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    other = api.token("other", "scientist")
    body = {"reason": "report final", "credential": other}  # someone else's token
    r = _post(api, "/api/v1/studies/G1/lock", body, sci)
    assert r.status_code == 403
    assert r.json()["detail"].startswith("signature of sci: refused: the token is not yours")
    assert api.get("/api/v1/studies/G1").json()["state"] == "open"  # nothing changed
    refused = [e for e in _events(api, "G1") if e["action"] == "signature.refused"]
    assert [(e["actor"], e["role"], e["after"]) for e in refused] == [
        ("sci", "scientist", {"action": "study.lock", "why": "wrong token"})]
    for _ in range(4):  # the fifth refusal within 15 minutes locks signing
        assert _post(api, "/api/v1/studies/G1/lock", body, sci).status_code == 403
    r = _post(api, "/api/v1/studies/G1/lock", {**body, "credential": sci}, sci)
    assert r.status_code == 429, r.text  # even the right credential, while locked
    assert "is locked after repeated refused signatures" in r.json()["detail"]
    assert 800 < int(r.headers["retry-after"]) <= 901
    assert api.get("/api/v1/studies/G1").json()["state"] == "open"
    whys = [e["after"]["why"] for e in _events(api, "G1") if e["action"] == "signature.refused"]
    assert whys == ["wrong token"] * 5 + ["locked"]
    # another signer is not locked
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "r", "credential": other}, other)
    assert r.status_code == 200, r.text


@pytest.mark.requirement("signature.reauthentication")
def test_a_local_user_signs_with_the_password_only(api: Api) -> None:
    _glp(api, "G1")
    _local_user(api, "alice", "correct horse battery")
    alice = api.token("alice", "scientist")
    for wrong in ("wrong password", alice):  # a local user's token is not their signature
        r = _post(api, "/api/v1/studies/G1/lock", {"reason": "r", "credential": wrong}, alice)
        assert r.status_code == 403, r.text
        assert "refused: the password is not yours" in r.json()["detail"]
    r = _post(api, "/api/v1/studies/G1/lock",
              {"reason": "r", "credential": "correct horse battery"}, alice)
    assert r.status_code == 200, r.text
    (sig,) = r.json()["signatures"]
    assert (sig["signer"], sig["method"]) == ("alice", "password")
    assert "correct horse" not in json.dumps(_events(api, "G1"))


@pytest.mark.requirement("signature.binding", "audit.append_only")
def test_a_signature_cannot_be_copied_to_another_object(api: Api) -> None:
    _glp(api, "G1")
    _glp(api, "G2")
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "r", "credential": ADMIN})
    assert r.status_code == 200, r.text
    db = _db(api)
    with db.session() as s:
        sig = s.scalars(select(Signature).where(Signature.entity_id == "G1")).one()
        content = json.loads(sig.content)["content"]
        assert signatures.verify(sig, "study", "G1", content)
        other = {**content, "code": "G2", "title": "Tox G2"}
        assert not signatures.verify(sig, "study", "G2", other)  # the hash does not match
        assert not signatures.verify(sig, "study", "G2", content)  # it names G1
        # the record copied and re-pointed at G2: its own hash and its content give it away
        copied = Signature(**{c.key: getattr(sig, c.key)
                              for c in Signature.__table__.columns})
        copied.id, copied.entity_id, copied.study_code = "c" * 32, "G2", "G2"
        assert not signatures.intact(copied)
        copied.hash = signatures.record_hash(copied)
        assert not signatures.intact(copied)  # the content still names G1
        assert not signatures.verify(copied, "study", "G2", other)
        s.add(copied)
        s.commit()
    assert [x["valid"] for x in api.get("/api/v1/studies/G1/signatures").json()] == [True]
    # the copy shows on G2 as not valid
    assert [x["valid"] for x in api.get("/api/v1/studies/G2/signatures").json()] == [False]
    # the signatures table is append-only
    with db.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE signatures SET signer = 'mallory'"))


@pytest.mark.requirement("profile.signatures")
def test_publishing_and_approving_on_glp_are_signed(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    body: dict[str, Any] = {"name": "summary", "notebook": NOTEBOOK, "reason": "final"}
    r = _post(api, "/api/v1/studies/G1/notebooks", body, sci)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("credential: is required: notebook.publish")
    r = _post(api, "/api/v1/studies/G1/notebooks", {**body, "credential": sci}, sci)
    assert r.status_code == 201, r.text
    published = r.json()
    (sig,) = published["signatures"]
    assert (sig["entity_type"], sig["entity_id"], sig["meaning"]) == (
        "notebook", published["id"], "approved")
    r = api.client.post("/api/v1/presets", json={"scope": "study", "target": "G1",
                                                 "document": PRESET},
                        headers={**api.h(sci), "X-Plexhub-Reason": "reference look"})
    assert r.status_code == 201, r.text
    preset = r.json()["id"]
    r = _post(api, f"/api/v1/presets/{preset}/approve", {"reason": "SOP-12"}, sci)
    assert r.status_code == 422
    r = _post(api, f"/api/v1/presets/{preset}/approve",
              {"reason": "SOP-12", "credential": "nope"}, sci)
    assert r.status_code == 403
    r = _post(api, f"/api/v1/presets/{preset}/approve",
              {"reason": "SOP-12", "credential": sci}, sci)
    assert r.status_code == 200, r.text
    approved = r.json()
    assert (approved["version"], approved["study"]) == (1, "G1")
    (sig,) = approved["signatures"]
    assert (sig["entity_id"], sig["action"]) == (f"{preset}@1", "preset.approve")
    assert api.get(f"/api/v1/presets/{preset}/signatures").json() == [sig]
    actions = [e["action"] for e in _events(api, "G1")]
    assert actions[-2:] == ["signature.sign", "preset.approve"]
    assert len(api.get("/api/v1/studies/G1/signatures").json()) == 2


def test_non_glp_needs_no_signature(api: Api) -> None:
    api.study("N1")
    r = _post(api, "/api/v1/studies/N1/lock", {})
    assert r.status_code == 200, r.text
    assert r.json()["signatures"] == []
    assert api.get("/api/v1/studies/N1/signatures").json() == []


@pytest.mark.requirement("audit.report")
def test_the_auditor_report_shows_access_signatures_and_reasons(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    r = _post(api, "/api/v1/studies/G1/grants", {"principal": "group:acme",
                                                 "reason": "sponsor QA <script>x</script>"})
    assert r.status_code == 201, r.text
    r = api.client.post("/api/v1/presets", json={"scope": "study", "target": "G1",
                                                 "document": PRESET},
                        headers={**api.h(sci), "X-Plexhub-Reason": "brighter DAPI"})
    assert r.status_code == 201, r.text
    r = _post(api, "/api/v1/studies/G1/lock", {"reason": "final", "credential": sci}, sci)
    assert r.status_code == 200, r.text
    r = api.get("/api/v1/studies/G1/audit/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-disposition"] == \
        'attachment; filename="study-G1-audit-report.html"'
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    assert "<script>" not in page
    assert "sponsor QA &lt;script&gt;x&lt;/script&gt;" in page  # the grant, escaped
    assert "group:acme" in page
    assert "brighter DAPI" in page  # the preset change's reason
    assert "audit chain intact" in page
    assert "<td>sci</td><td>scientist</td><td>approved</td><td>study.lock</td>" in page
    assert "profile</th><td>glp: GLP (regulated)" in page
    assert '"plexhub"' not in page
    assert "plexhub</td>" in page
    # the report is audited (its last event) and the chain stays intact
    assert _events(api, "G1")[-1]["after"] == {"format": "html"}
