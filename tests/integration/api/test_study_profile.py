"""A study's compliance profile changes only by a signed, audited action (issue 14,
``study.profile``), on SQLite and PostgreSQL: ``PUT /api/v1/studies/{code}/profile`` with the
new profile, a reason and the signer's credential. Refused on a locked study (403 naming the
lock), for roles the current profile does not allow (``profile_change_roles``), without a
reason or a signature where either profile asks for one, and for an unknown profile (422
naming the known ones). The audit event carries the old and the new profile; the signature
shows on the study. Sponsors: tests/security/test_compliance_access.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.api import ADMIN, Api

pytestmark = pytest.mark.requirement("study.profile")


def _put(api: Api, code: str, body: dict[str, Any], token: str = ADMIN) -> httpx.Response:
    return api.client.put(f"/api/v1/studies/{code}/profile", json=body, headers=api.h(token))


def _glp(api: Api, code: str) -> None:
    r = api.post("/api/v1/studies", {"code": code, "title": f"Tox {code}", "sponsor": "acme",
                                     "profile": "glp"})
    assert r.status_code == 201, r.text


def _events(api: Api, code: str, action: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/audit?study={code}")
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["action"] == action]


@pytest.mark.requirement("profile.signatures", "signature.reauthentication")
def test_a_glp_study_changes_profile_by_a_signed_audited_action(api: Api) -> None:
    _glp(api, "G1")
    r = _put(api, "G1", {"profile": "non-glp", "reason": "study reclassified (SOP-7)",
                         "credential": ADMIN})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["profile"], body["state"]) == ("G1", "non-glp", "open")
    (sig,) = body["signatures"]
    assert (sig["signer"], sig["role"], sig["meaning"], sig["action"], sig["entity_type"],
            sig["entity_id"], sig["method"], sig["valid"]) == (
        "admin", "admin", "approved", "study.profile", "study", "G1", "token", True)
    assert api.get("/api/v1/studies/G1").json()["profile"] == "non-glp"
    assert api.get("/api/v1/studies/G1/signatures").json() == [sig]
    (event,) = _events(api, "G1", "study.profile")
    assert (event["actor"], event["role"], event["reason"], event["before"],
            event["after"]) == ("admin", "admin", "study reclassified (SOP-7)",
                                {"profile": "glp"}, {"profile": "non-glp"})
    (signed,) = _events(api, "G1", "signature.sign")
    assert signed["after"]["content_hash"] == sig["content_hash"]
    assert signed["seq"] < event["seq"]
    # the new profile rules from now on: a change without a reason goes through
    r = api.client.patch("/api/v1/studies/G1", json={"title": "Tox G1 (discovery)"},
                         headers=api.h())
    assert r.status_code == 200, r.text
    # and the chain holds
    r = api.get("/api/v1/studies/G1/audit")
    assert r.status_code == 200


@pytest.mark.requirement("profile.profile_change_roles", "profile.reason_required")
def test_glp_refuses_a_change_without_reason_signature_or_allowed_role(api: Api) -> None:
    _glp(api, "G1")
    sci = api.token("sci", "scientist")
    r = _put(api, "G1", {"profile": "non-glp", "credential": ADMIN})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("reason: is required: profile glp requires a reason "
                                         "for study.profile")
    r = _put(api, "G1", {"profile": "non-glp", "reason": "r"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("credential: is required: study.profile needs your "
                                         "electronic signature (approved)")
    r = _put(api, "G1", {"profile": "non-glp", "reason": "r", "credential": sci}, sci)
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == ("sci: may not change the profile of study G1 (profile glp "
                                  "lets only admin change the profile)")
    r = _put(api, "G1", {"profile": "non-glp", "reason": "r", "credential": "wrong"})
    assert r.status_code == 403, r.text
    assert "refused: the token is not yours" in r.json()["detail"]
    assert [e["after"] for e in _events(api, "G1", "signature.refused")] == [
        {"action": "study.profile", "why": "wrong token"}]
    r = _put(api, "G1", {"profile": "gcp", "reason": "r", "credential": ADMIN})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == ("profile 'gcp': is not a known compliance profile "
                                  "(choose one of glp, non-glp)")
    r = _put(api, "G1", {"profile": "glp", "reason": "r", "credential": ADMIN})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == "study G1: has profile glp already"
    # nothing changed, nothing signed, no profile event
    assert api.get("/api/v1/studies/G1").json()["profile"] == "glp"
    assert api.get("/api/v1/studies/G1/signatures").json() == []
    assert _events(api, "G1", "study.profile") == []


@pytest.mark.requirement("study.lock")
def test_a_locked_study_keeps_its_profile(api: Api) -> None:
    _glp(api, "G1")
    r = api.post("/api/v1/studies/G1/lock", {"reason": "final", "credential": ADMIN})
    assert r.status_code == 200, r.text
    r = _put(api, "G1", {"profile": "non-glp", "reason": "r", "credential": ADMIN})
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("study G1: the study is locked; unlock it first")
    assert api.get("/api/v1/studies/G1").json()["profile"] == "glp"
    assert [s["action"] for s in api.get("/api/v1/studies/G1/signatures").json()] == [
        "study.lock"]


def test_moving_into_glp_is_signed_and_needs_a_reason_too(api: Api) -> None:
    api.study("N1")  # non-glp: scientists may change its profile
    sci = api.token("sci", "scientist")
    analyst = api.token("ana", "analyst")
    r = _put(api, "N1", {"profile": "glp", "reason": "r", "credential": analyst}, analyst)
    assert r.status_code == 403, r.text  # the analyst role lacks studies:write
    r = _put(api, "N1", {"profile": "glp", "credential": sci}, sci)
    assert r.status_code == 422, r.text  # GLP, the new profile, asks for a reason
    assert "profile glp requires a reason for study.profile" in r.json()["detail"]
    r = _put(api, "N1", {"profile": "glp", "reason": "now regulated"}, sci)
    assert r.status_code == 422, r.text  # ... and for a signature
    assert r.json()["detail"].startswith("credential: is required")
    r = api.client.put("/api/v1/studies/N1/profile", json={"profile": "glp", "credential": sci},
                       headers={**api.h(sci), "X-Plexhub-Reason": "now regulated"})
    assert r.status_code == 200, r.text
    (sig,) = r.json()["signatures"]
    assert (sig["signer"], sig["action"], sig["meaning"]) == ("sci", "study.profile",
                                                               "approved")
    (event,) = _events(api, "N1", "study.profile")
    assert (event["before"], event["after"], event["reason"]) == (
        {"profile": "non-glp"}, {"profile": "glp"}, "now regulated")
    # GLP rules now: a scientist can no longer move it back, and changes need a reason
    r = _put(api, "N1", {"profile": "non-glp", "reason": "r", "credential": sci}, sci)
    assert r.status_code == 403, r.text
    r = api.client.patch("/api/v1/studies/N1", json={"title": "Tox"}, headers=api.h(sci))
    assert r.status_code == 422, r.text


@pytest.mark.requirement("reason.clients")
def test_the_api_client_changes_a_profile_with_reason_and_signature(api: Api) -> None:
    from plexhub.client import ApiError

    _glp(api, "G1")
    client = api.client_as()
    with pytest.raises(ApiError, match="credential: is required"):
        client.change_study_profile("G1", "non-glp", reason="reclassified")
    study = client.change_study_profile("G1", "non-glp", reason="reclassified",
                                        credential=ADMIN)
    assert study["profile"] == "non-glp"
    assert [s["action"] for s in study["signatures"]] == ["study.profile"]
