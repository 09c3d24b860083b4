"""Preset visibility rules (policies/presets.py): who sees and who re-scopes a preset."""

from __future__ import annotations

import pytest

from plexhub.policies.access import Principal
from plexhub.policies.presets import (
    DEFAULT_VISIBILITY,
    VISIBILITIES,
    can_change_visibility,
    can_see_preset,
    sees_every_panel,
)

ADMIN = Principal(user="boss", role="admin")
OWNER = Principal(user="ann", role="analyst")
OTHERS = [Principal(user="sam", role="scientist"), Principal(user="al", role="analyst"),
          Principal(user="sue", role="sponsor")]


def test_visibilities() -> None:
    assert VISIBILITIES == ("private", "study", "public")
    assert DEFAULT_VISIBILITY == "study"


def test_a_private_preset_is_its_owners_and_admins() -> None:
    assert can_see_preset(OWNER, "private", "ann")
    assert can_see_preset(ADMIN, "private", "ann")
    for p in OTHERS:
        decision = can_see_preset(p, "private", "ann")
        assert not decision
        assert "ann" in decision.reason


@pytest.mark.parametrize("visibility", ["study", "public"])
def test_other_presets_pass_the_rule(visibility: str) -> None:
    """Not private: the rule allows it; the image, study or panel decides the rest."""
    for p in [ADMIN, OWNER, *OTHERS]:
        assert can_see_preset(p, visibility, "ann")


def test_only_owner_or_admin_change_visibility() -> None:
    assert can_change_visibility(OWNER, "ann")
    assert can_change_visibility(ADMIN, "ann")
    assert not any(can_change_visibility(p, "ann") for p in OTHERS)


def test_staff_see_every_panel_sponsors_only_fitting_ones() -> None:
    assert sees_every_panel(ADMIN)
    assert sees_every_panel(OWNER)
    assert not sees_every_panel(Principal(user="sue", role="sponsor"))
