"""The peer-review rules of policies/review.py (issue 19), pure: who directs a study, who
records findings and verdicts, when a slide may be completed and a review signed off; and the
findings webhook's settings and body signature."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from plexhub.api.webhooks import body_signature
from plexhub.policies.access import GrantFacts, Principal
from plexhub.policies.review import (
    Assignment,
    assignment_decision,
    completion_decision,
    finding_decision,
    may_direct,
    review_visibility,
    signoff_decision,
    slide_state,
    verdict_decision,
)
from plexhub.settings import Settings

ADMIN = Principal("root", "admin")
PAT, REV = Principal("pat", "scientist"), Principal("rev", "scientist")
ANA, SUE = Principal("ana", "analyst"), Principal("sue", "sponsor")
TEAM = Assignment("pat", "rev")


def test_the_study_director_is_its_creator_or_an_admin() -> None:
    assert may_direct(ADMIN, "someone")
    assert may_direct(PAT, "pat")
    assert not may_direct(PAT, "rev")
    assert "only the study director (rev)" in may_direct(PAT, "rev").reason
    assert not may_direct(ANA, "ana")  # an analyst cannot write studies
    assert not may_direct(SUE, "sue")
    assert assignment_decision("pat", "rev")
    assert not assignment_decision("pat", "pat")
    assert not assignment_decision("pat", " ")


def test_findings_are_the_primarys_and_verdicts_the_peers() -> None:
    assert finding_decision(REV, None, False)  # nobody assigned yet: staff who write
    assert not finding_decision(ANA, None, False)
    assert finding_decision(PAT, TEAM, False)
    assert not finding_decision(REV, TEAM, False)
    assert not finding_decision(PAT, TEAM, True)
    assert verdict_decision(REV, TEAM, False)
    assert not verdict_decision(PAT, TEAM, False)
    assert not verdict_decision(REV, None, False)
    assert not verdict_decision(REV, TEAM, True)
    assert not verdict_decision(Principal("rev", "analyst"), Assignment("pat", "rev"), False)


def test_slides_and_signoffs_wait_for_the_work_before_them() -> None:
    assert completion_decision("primary", False, 3, False)
    assert not completion_decision("peer", False, 0, False)
    assert not completion_decision("peer", True, 1, False)
    assert completion_decision("peer", True, 0, False)
    assert not completion_decision(None, True, 0, False)
    assert signoff_decision("primary", 0, 0, 0, False)
    assert "disagreement" in signoff_decision("peer", 1, 0, 0, False).reason
    assert not signoff_decision("peer", 0, 2, 0, False)
    assert not signoff_decision("peer", 0, 0, 1, False)
    assert not signoff_decision("peer", 0, 0, 0, True)
    assert not signoff_decision(None, 0, 0, 0, False)
    assert [slide_state(p, q, s) for p, q, s in ((False, False, False), (True, False, False),
                                                 (True, True, False), (True, True, True))] == [
        "not_reviewed", "primary_done", "peer_reviewed", "signed_off"]


def test_the_webhook_needs_a_real_secret_and_signs_the_body() -> None:
    with pytest.raises(ValidationError, match="findings_webhook_secret"):
        Settings(findings_webhook="https://lims.example/hook")
    with pytest.raises(ValidationError, match="findings_webhook_secret"):
        Settings(findings_webhook="https://lims.example/hook",
                 findings_webhook_secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="http"):
        Settings(findings_webhook="ftp://lims.example/hook",
                 findings_webhook_secret=SecretStr("s" * 16))
    s = Settings(findings_webhook="https://lims.example/hook",
                 findings_webhook_secret=SecretStr("s" * 16))
    assert "s" * 16 not in repr(s)
    body = b'{"study": "T1"}'
    assert body_signature("k" * 16, body) == \
        "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()


def test_sponsors_see_findings_and_annotations_with_view_findings_once_signed_off() -> None:
    """One rule for both (issue 19's open question, decided as a tox-path CRO would)."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    view = GrantFacts("group:acme", frozenset({"view"}))
    findings = GrantFacts("user:sue", frozenset({"view", "view_findings"}))
    expired = GrantFacts("user:sue", frozenset({"view", "view_findings"}),
                         expires_at=now - timedelta(days=1))
    revoked = GrantFacts("user:sue", frozenset({"view", "view_findings"}),
                         revoked_at=now - timedelta(seconds=1))
    sue = Principal("sue", "sponsor", frozenset({"acme"}))
    for staff in (ADMIN, PAT, ANA):
        assert review_visibility(staff, [], now, signed_off=False)
    assert review_visibility(sue, [findings], now, signed_off=True)
    assert review_visibility(sue, [view, findings], now, signed_off=True)
    refused = {
        "no active grant carries view_findings": [
            ([view], True), ([expired], True), ([revoked], True), ([], True)],
        "the review is not signed off yet": [([findings], False)]}
    for reason, cases in refused.items():
        for grants, signed in cases:
            decision = review_visibility(sue, grants, now, signed_off=signed)
            assert (decision.allowed, decision.reason) == (False, reason), (grants, signed)
