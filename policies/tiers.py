"""Storage tiers: which images move to the archive root, as data plus pure evaluators.

An image's store is *hot* (under ``PLEXHUB_STORE_ROOT``) or *archived* (under the root named by
``PLEXHUB_ARCHIVE_ROOT``); *archiving* and *restoring* are the moves between them (a job). The
rules are a YAML document (``policies/tiers.yaml``, or ``PLEXHUB_TIER_RULES_FILE``) validated by
:class:`TierRules`; the evaluators below take the facts of one image (:class:`TierFacts`) and
return a :class:`~plexhub.policies.access.Decision` with its reason. The study's compliance
profile decides whether an open study's images may be archived at all
(``archive_before_lock``) and whether a locked study takes tier moves
(``tier_moves_when_locked``, see :func:`plexhub.policies.profiles.change_decision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plexhub.errors import ConfigurationError
from plexhub.policies.access import Decision
from plexhub.policies.profiles import TIER_MOVE, ComplianceProfile, change_decision, validated

Tier = Literal["hot", "archiving", "archived", "restoring"]
TIERS: tuple[Tier, ...] = ("hot", "archiving", "archived", "restoring")
# where the bytes are readable from: "archiving" still reads the hot copy (the catalog moves
# only when the archived copy is verified); "restoring" waits for the hot copy
READABLE: frozenset[str] = frozenset({"hot", "archiving"})
BUILTIN = resources.files("plexhub.policies") / "tiers.yaml"


class TierRule(BaseModel):
    """One archiving rule. Every condition it names must hold for it to fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="the rule's name")
    description: str = Field(default="", max_length=500, description="what it is for")
    study_locked_days: int | None = Field(
        default=None, ge=0, le=36500,
        description="fires when the image's study has been locked (signed off) this many days")
    idle_days: int | None = Field(
        default=None, ge=0, le=36500,
        description="fires when the image was not used (created, restored, downloaded) for "
        "this many days")
    profiles: frozenset[str] | None = Field(
        default=None, description="only studies with one of these compliance profiles "
        "(default: every profile)")

    @model_validator(mode="after")
    def _has_a_condition(self) -> TierRule:
        if self.study_locked_days is None and self.idle_days is None:
            raise ValueError(f"rule {self.name} names no condition (study_locked_days, "
                             "idle_days)")
        return self


class TierRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[TierRule, ...] = Field(default=(), description="evaluated in order")

    @model_validator(mode="after")
    def _unique(self) -> TierRules:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {twice}")
        return self


@dataclass(frozen=True)
class TierFacts:
    """What the rules look at for one image (all times timezone-aware UTC)."""

    tier: str
    ready: bool  # converted (a store exists)
    study_state: str
    locked_at: datetime | None  # the study's last lock, when it is locked
    last_used: datetime  # created, restored or downloaded, whichever was last


# --- the evaluators (pure) ----------------------------------------------------------------

def archive_allowed(profile: ComplianceProfile, study_state: str) -> Decision:
    """Whether the study's profile lets its images be archived in ``study_state``."""
    if study_state == "locked" or profile.archive_before_lock:
        return Decision(True, f"profile {profile.name} allows archiving a {study_state} "
                        "study's images")
    return Decision(False, f"profile {profile.name} keeps images hot until the study is "
                    "signed off (locked)")


def move_decision(profile: ComplianceProfile, study_state: str, tier: str,
                  to: Literal["hot", "archive"]) -> Decision:
    """Whether an image in ``tier`` may be moved ``to`` the archive or back to hot now."""
    if to == "archive":
        if tier != "hot":
            return Decision(False, f"the image is {tier}, not hot")
        return archive_allowed(profile, study_state)
    if tier != "archived":
        return Decision(False, f"the image is {tier}, not archived")
    return Decision(True, "an archived image can always be restored")


def rule_fires(rule: TierRule, facts: TierFacts, profile: str, now: datetime) -> Decision:
    """Whether ``rule`` fires for an image with ``facts`` in a study of ``profile``."""
    if rule.profiles is not None and profile not in rule.profiles:
        return Decision(False, f"rule {rule.name} does not apply to profile {profile}")
    if rule.study_locked_days is not None:
        if facts.study_state != "locked" or facts.locked_at is None:
            return Decision(False, f"rule {rule.name}: the study is {facts.study_state}")
        if now - facts.locked_at < timedelta(days=rule.study_locked_days):
            return Decision(False, f"rule {rule.name}: the study was locked less than "
                            f"{rule.study_locked_days} days ago")
    if rule.idle_days is not None and now - facts.last_used < timedelta(days=rule.idle_days):
        return Decision(False, f"rule {rule.name}: used less than {rule.idle_days} days ago")
    parts = []
    if rule.study_locked_days is not None:
        parts.append(f"study locked at least {rule.study_locked_days} days")
    if rule.idle_days is not None:
        parts.append(f"unused for at least {rule.idle_days} days")
    return Decision(True, f"rule {rule.name}: {', '.join(parts)}")


def archive_decision(rules: TierRules, profile: ComplianceProfile, facts: TierFacts,
                     now: datetime) -> Decision:
    """Whether the rules archive this image now: the first rule that fires, within what
    the image's state and the study's profile allow."""
    if not facts.ready:
        return Decision(False, "the image has no converted store")
    allowed = move_decision(profile, facts.study_state, facts.tier, "archive")
    if not allowed:
        return allowed
    unlocked = change_decision(profile, facts.study_state, TIER_MOVE)
    if not unlocked:
        return unlocked
    for rule in rules.rules:
        fired = rule_fires(rule, facts, profile.name, now)
        if fired:
            return fired
    return Decision(False, "no rule fires")


# --- loading ---------------------------------------------------------------------------------

def parse_rules(doc: Any, source: str) -> TierRules:
    """Tier rules from their YAML document (``source`` names it in errors)."""
    return validated(TierRules, doc, f"tier rules {source}", "see policies/tiers.yaml")


def load_rules(path: Path | None = None) -> TierRules:
    """The installation's tier rules (``path``), else the built-in ones."""
    if path is None:
        text, source = BUILTIN.read_text(encoding="utf-8"), "policies/tiers.yaml"
    else:
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigurationError(f"tier rules {path}", f"cannot be read ({exc.strerror})",
                                     "set PLEXHUB_TIER_RULES_FILE to a YAML file") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"tier rules {source}", f"is not valid YAML ({exc})") from None
    return parse_rules(doc, source)
