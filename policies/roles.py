"""Roles as JupyterHub groups: the one mapping the hub config and the API both use.

A hub user's plexhub role is its role group (``plexhub-admins``, ``plexhub-scientists``,
``plexhub-analysts``, ``plexhub-sponsors``; hub admins are plexhub admins), the most
privileged one when it is in several; a hub user in none of them is not a plexhub user. Its
organisations are its ``org-<name>`` groups; the API mirrors a study's grants into
``study-<code>``. Staff (every role but sponsor) may run JupyterLab servers; sponsors never get
a server or a kernel.
"""

from __future__ import annotations

from collections.abc import Iterable

from plexhub.policies.access import INTERNAL_ROLES, ROLES, Principal, Role

# role -> hub group, from the most to the least privileged (ROLES' order)
ROLE_GROUPS: dict[Role, str] = {"admin": "plexhub-admins", "scientist": "plexhub-scientists",
                                "analyst": "plexhub-analysts", "sponsor": "plexhub-sponsors"}
ORG_PREFIX = "org-"
STUDY_GROUP_PREFIX = "study-"
# the roles whose members may start JupyterLab servers of their own, and their groups
SERVER_ROLES: frozenset[Role] = frozenset(r for r in ROLES if r in INTERNAL_ROLES)
SERVER_GROUPS = frozenset(ROLE_GROUPS[r] for r in SERVER_ROLES)


def role_of(groups: Iterable[str], hub_admin: bool = False) -> Role | None:
    """The plexhub role of a hub user in ``groups`` (None: not a plexhub user)."""
    if hub_admin:
        return "admin"
    names = set(groups)
    return next((r for r in ROLES if ROLE_GROUPS[r] in names), None)


def orgs_of(groups: Iterable[str]) -> frozenset[str]:
    """The organisations a hub user belongs to, from its ``org-<name>`` groups."""
    return frozenset(g[len(ORG_PREFIX):] for g in groups
                     if g.startswith(ORG_PREFIX) and len(g) > len(ORG_PREFIX))


def principal_of(name: str, groups: Iterable[str], hub_admin: bool = False) -> Principal | None:
    """The plexhub caller a hub user is (None: in no role group, or without a name)."""
    groups = list(groups)
    role = role_of(groups, hub_admin)
    if role is None or not name:
        return None
    return Principal(user=name, role=role, groups=orgs_of(groups))


def may_run_servers(groups: Iterable[str], hub_admin: bool = False) -> bool:
    """Whether a hub user may start JupyterLab servers (staff yes, sponsors and others no)."""
    role = role_of(groups, hub_admin)
    return role is not None and role in SERVER_ROLES


def org_group(org: str) -> str:
    return f"{ORG_PREFIX}{org}"


def study_group(code: str) -> str:
    return f"{STUDY_GROUP_PREFIX}{code}"
