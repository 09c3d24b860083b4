"""The storage-tier rules (policies/tiers.py): data validated by a schema, pure evaluators
that return a decision and its reason, and the profiles' say on archiving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plexhub.errors import ConfigurationError
from plexhub.policies.profiles import builtin_profiles, change_decision
from plexhub.policies.tiers import (
    TierFacts,
    TierRules,
    archive_decision,
    load_rules,
    move_decision,
    parse_rules,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PROFILES = builtin_profiles()
RULES = parse_rules({"rules": [{"name": "signed-off", "study_locked_days": 90},
                               {"name": "idle", "idle_days": 365}]}, "test")


def facts(state: str = "open", locked_days: int | None = None, used_days: int = 0,
          tier: str = "hot") -> TierFacts:
    return TierFacts(tier=tier, ready=True, study_state=state,
                     locked_at=NOW - timedelta(days=locked_days) if locked_days is not None
                     else None, last_used=NOW - timedelta(days=used_days))


def test_the_built_in_rules_load_and_validate() -> None:
    rules = load_rules()
    assert [r.name for r in rules.rules] == ["signed-off", "idle"]


@pytest.mark.parametrize(("doc", "problem"), [
    ({"rules": [{"name": "x"}]}, "names no condition"),
    ({"rules": [{"name": "x", "idle_days": 1}, {"name": "x", "idle_days": 2}]}, "unique"),
    ({"rules": [{"name": "x", "idle_days": -1}]}, "idle_days"),
    ({"rules": [{"name": "x", "idle_days": 1, "typo": 1}]}, "typo"),
    (["not", "a", "mapping"], "YAML mapping"),
])
def test_bad_rule_documents_are_refused_naming_the_problem(doc: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_rules(doc, "mine.yaml")


def test_a_rules_file_that_cannot_be_read_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PLEXHUB_TIER_RULES_FILE"):
        load_rules(tmp_path / "missing.yaml")


def test_rules_fire_on_lock_age_and_idleness() -> None:
    non = PROFILES["non-glp"]
    d = archive_decision(RULES, non, facts("locked", locked_days=91), NOW)
    assert d
    assert "signed-off" in d.reason
    d = archive_decision(RULES, non, facts("locked", locked_days=10), NOW)
    assert not d
    assert d.reason == "no rule fires"
    d = archive_decision(RULES, non, facts("open", used_days=400), NOW)
    assert d
    assert "idle" in d.reason
    assert not archive_decision(RULES, non, facts("open", used_days=30), NOW)
    assert not archive_decision(RULES, non, facts("locked", 400, 400, tier="archived"), NOW)
    assert not archive_decision(TierRules(), non, facts("locked", 400, 400), NOW)


@pytest.mark.requirement("profile.archive_before_lock")
def test_glp_keeps_images_hot_until_sign_off_and_moves_them_after() -> None:
    glp = PROFILES["glp"]
    d = archive_decision(RULES, glp, facts("open", used_days=1000), NOW)
    assert not d
    assert "signed off" in d.reason
    assert archive_decision(RULES, glp, facts("locked", locked_days=100), NOW)
    assert change_decision(glp, "locked", "image.tier")  # a locked study takes tier moves
    assert change_decision(glp, "locked", "image.restore")
    assert not change_decision(glp, "locked", "image.retire")
    assert "image.tier" in glp.reason_required


@pytest.mark.requirement("profile.tier_moves_when_locked")
def test_a_profile_may_refuse_tier_moves_on_locked_studies() -> None:
    strict = PROFILES["glp"].model_copy(update={"tier_moves_when_locked": False})
    d = archive_decision(RULES, strict, facts("locked", locked_days=100), NOW)
    assert not d
    assert "locked" in d.reason


def test_moves_need_the_right_tier() -> None:
    non = PROFILES["non-glp"]
    assert move_decision(non, "open", "hot", "archive")
    assert not move_decision(non, "open", "archiving", "archive")
    assert move_decision(non, "open", "archived", "hot")
    assert not move_decision(non, "open", "hot", "hot")


def test_rules_may_name_profiles() -> None:
    only = parse_rules({"rules": [{"name": "glp-only", "idle_days": 1,
                                   "profiles": ["glp"]}]}, "t")
    assert not archive_decision(only, PROFILES["non-glp"], facts("open", used_days=9), NOW)
