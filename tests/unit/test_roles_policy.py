"""Roles as hub groups (policies/roles.py): the one mapping the hub config and the API use."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plexhub.hub import config as hubconfig
from plexhub.policies.access import INTERNAL_ROLES, ROLES, Principal
from plexhub.policies.roles import (
    ROLE_GROUPS,
    SERVER_GROUPS,
    may_run_servers,
    orgs_of,
    principal_of,
    role_of,
    study_group,
)

GROUP_NAMES = st.sets(st.sampled_from([*ROLE_GROUPS.values(), "org-acme", "org-beta",
                                       "study-S1", "other", "org-"]))


def test_every_role_has_its_own_group() -> None:
    assert set(ROLE_GROUPS) == set(ROLES)
    assert len(set(ROLE_GROUPS.values())) == len(ROLES)
    assert ROLE_GROUPS["sponsor"] == "plexhub-sponsors"
    assert {"plexhub-admins", "plexhub-scientists", "plexhub-analysts"} == SERVER_GROUPS


def test_a_role_group_makes_a_plexhub_user() -> None:
    assert role_of(["plexhub-sponsors", "org-acme"]) == "sponsor"
    assert role_of(["org-acme", "study-S1"]) is None  # no role group: not a plexhub user
    assert role_of([]) is None
    assert role_of([], hub_admin=True) == "admin"  # hub admins are plexhub admins
    assert role_of(["plexhub-sponsors"], hub_admin=True) == "admin"


@given(GROUP_NAMES)
def test_the_most_privileged_role_group_wins(groups: set[str]) -> None:
    role = role_of(groups)
    held = [r for r in ROLES if ROLE_GROUPS[r] in groups]
    assert role == (held[0] if held else None)  # ROLES runs from most to least privileged


def test_organisations_come_from_org_groups() -> None:
    assert orgs_of(["org-acme", "org-beta", "plexhub-sponsors", "study-S1"]) == {"acme",
                                                                                 "beta"}
    assert orgs_of(["org-", "organisation"]) == frozenset()


def test_a_hub_user_becomes_a_principal() -> None:
    assert principal_of("ann", ["plexhub-sponsors", "org-acme"]) == Principal(
        user="ann", role="sponsor", groups=frozenset({"acme"}))
    assert principal_of("bob", ["org-acme"]) is None
    assert principal_of("", ["plexhub-admins"]) is None
    boss = principal_of("boss", [], hub_admin=True)
    assert boss is not None
    assert boss.role == "admin"


@given(GROUP_NAMES, st.booleans())
def test_only_staff_run_servers(groups: set[str], admin: bool) -> None:
    role = role_of(groups, admin)
    assert may_run_servers(groups, admin) == (role in INTERNAL_ROLES)
    assert may_run_servers(groups, admin) == (admin or bool(groups & SERVER_GROUPS))


def test_the_hub_config_uses_the_rule() -> None:
    """The hub's roles and groups come from the same mapping (one definition)."""
    roles = {r["name"]: r for r in hubconfig.roles()}
    assert roles["admin"]["groups"] == [ROLE_GROUPS["admin"]]
    assert set(roles["plexhub-server-users"]["groups"]) == SERVER_GROUPS
    assert study_group("S1") == "study-S1"
