"""Who may do what: roles as a table of scopes, grant capabilities, study visibility from
grants."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

Role = Literal["admin", "scientist", "analyst", "sponsor"]
ROLES: tuple[Role, ...] = ("admin", "scientist", "analyst", "sponsor")

# Scopes per role. "read" covers catalog reads, tiles and the raw store of visible studies.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "studies:write", "images:write", "presets:write",
                        "grants:write", "tokens:write", "audit:read", "jobs:write"}),
    "scientist": frozenset({"read", "studies:write", "images:write", "presets:write",
                            "grants:write", "audit:read", "jobs:write"}),
    "analyst": frozenset({"read", "presets:write"}),
    "sponsor": frozenset({"read"}),
}
INTERNAL_ROLES = frozenset({"admin", "scientist", "analyst"})


class Capability(StrEnum):
    """What a grant lets its sponsor (user or organisation) do with one study; staff can do
    all of it without a grant. The values are what grants store."""

    VIEW = "view"  # the study, its images, tiles and raw stores
    VIEW_NOTEBOOKS = "view_notebooks"  # its published notebooks
    DOWNLOAD = "download"  # the original source files of its images
    VIEW_LABELS = "view_labels"  # slide identifiers, label and macro images
    VIEW_FINDINGS = "view_findings"  # the pathologists' signed findings


CAPABILITIES: tuple[str, ...] = tuple(c.value for c in Capability)
DEFAULT_CAPABILITIES: tuple[str, ...] = (Capability.VIEW.value,)  # a grant that names none


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: str
    role: Role
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def names(self) -> frozenset[str]:
        """The grant principals that designate this caller."""
        return frozenset({f"user:{self.user}"} | {f"group:{g}" for g in self.groups})


@dataclass(frozen=True)
class GrantFacts:
    principal: str  # "user:<name>" or "group:<organisation>"
    capabilities: frozenset[str]
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def is_staff(principal: Principal) -> bool:
    """Whether ``principal`` works for the CRO (admin, scientist, analyst), not a sponsor."""
    return principal.role in INTERNAL_ROLES


def has_scope(principal: Principal, scope: str) -> Decision:
    if scope in ROLE_SCOPES.get(principal.role, frozenset()):
        return Decision(True, f"role {principal.role} has {scope}")
    return Decision(False, f"role {principal.role} lacks {scope}")


def can_see_study(principal: Principal, grants: Iterable[GrantFacts], now: datetime,
                  capability: str = Capability.VIEW) -> Decision:
    """Staff see every study (and may do all a grant allows); a sponsor only studies with an
    active grant to it or its group that gives ``capability``."""
    if principal.role in INTERNAL_ROLES:
        return Decision(True, f"{principal.role} is internal staff")
    names = principal.names
    for g in grants:
        if g.principal in names and capability in g.capabilities and g.active(now):
            return Decision(True, f"granted to {g.principal}")
    return Decision(False, "no active grant")


def can_manage_token(principal: Principal, owner: str) -> Decision:
    """List or revoke an API token: admins any (``tokens:write``), everyone else their own
    (the token's user is the caller's name); asking for another's token is a 404."""
    if "tokens:write" in ROLE_SCOPES.get(principal.role, frozenset()):
        return Decision(True, f"role {principal.role} has tokens:write")
    if owner == principal.user:
        return Decision(True, "the caller's own token")
    return Decision(False, "another user's token")
