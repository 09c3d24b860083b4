"""Preset visibility: who may see, change and re-scope a render preset.

A preset is ``private`` (its owner's and admins'), ``study`` or ``public``. Beyond this rule a
visible preset is seen only through what the caller may see (the API checks that): an image
preset through its image, a study preset through its study, a panel preset through an image
whose channels carry every marker of the panel; staff see every study and so every panel
preset. Only its owner or an admin may change a preset's visibility.
"""

from __future__ import annotations

from typing import Literal

from plexhub.policies.access import INTERNAL_ROLES, Decision, Principal

Visibility = Literal["private", "study", "public"]
VISIBILITIES: tuple[Visibility, ...] = ("private", "study", "public")
DEFAULT_VISIBILITY: Visibility = "study"  # a new preset's, when none is given


def _owner_or_admin(principal: Principal, owner: str) -> Decision:
    if principal.role == "admin":
        return Decision(True, "admins manage every preset")
    if owner == principal.user:
        return Decision(True, "the caller's own preset")
    return Decision(False, f"the preset is {owner}'s")


def can_see_preset(principal: Principal, visibility: str, owner: str) -> Decision:
    """The private-preset rule: a private preset is its owner's and admins' alone; any
    other is visible as far as its image, study or panel is (checked by the caller)."""
    if visibility != "private":
        return Decision(True, f"a {visibility} preset")
    return _owner_or_admin(principal, owner)


def can_change_visibility(principal: Principal, owner: str) -> Decision:
    """Make a preset private, study-wide or public: its owner or an admin."""
    return _owner_or_admin(principal, owner)


def sees_every_panel(principal: Principal) -> bool:
    """Staff see every study, hence every panel preset; others only panel presets that fit
    an image of a study granted to them."""
    return principal.role in INTERNAL_ROLES
