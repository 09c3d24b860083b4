"""Grant capabilities and study visibility (policies/access.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plexhub.policies.access import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    Capability,
    GrantFacts,
    Principal,
    can_see_study,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SPONSOR = Principal(user="sue", role="sponsor", groups=frozenset({"acme"}))


def grant(*caps: str, principal: str = "user:sue", **kw: datetime) -> GrantFacts:
    return GrantFacts(principal, frozenset(caps), **kw)


def test_the_capabilities_are_one_table() -> None:
    assert CAPABILITIES == ("view", "view_notebooks", "download", "view_labels", "view_findings")
    assert [c.value for c in Capability] == list(CAPABILITIES)
    assert DEFAULT_CAPABILITIES == ("view",)
    stored: str = "download"  # what grants store
    assert stored == Capability.DOWNLOAD


@pytest.mark.parametrize("cap", list(Capability))
def test_a_grant_gives_exactly_its_capabilities(cap: Capability) -> None:
    g = grant(cap)
    for other in Capability:
        assert bool(can_see_study(SPONSOR, [g], NOW, other)) == (other == cap)


def test_a_grant_to_the_organisation_counts() -> None:
    g = grant(Capability.VIEW, principal="group:acme")
    assert can_see_study(SPONSOR, [g], NOW)
    assert not can_see_study(Principal(user="sue", role="sponsor"), [g], NOW)
    assert not can_see_study(SPONSOR, [grant(Capability.VIEW, principal="user:bob")], NOW)


def test_expired_and_revoked_grants_do_not_count() -> None:
    hour = timedelta(hours=1)
    assert not can_see_study(SPONSOR, [grant("view", expires_at=NOW - hour)], NOW)
    assert can_see_study(SPONSOR, [grant("view", expires_at=NOW + hour)], NOW)
    assert not can_see_study(SPONSOR, [grant("view", revoked_at=NOW)], NOW)
    assert can_see_study(SPONSOR, [grant("view", revoked_at=NOW + hour)], NOW)


@pytest.mark.parametrize("role", ["admin", "scientist", "analyst"])
def test_staff_need_no_grant(role: str) -> None:
    staff = Principal(user="x", role=role)  # type: ignore[arg-type]
    for cap in Capability:
        assert can_see_study(staff, [], NOW, cap)
