"""Compliance profiles: what a study's profile (``glp``, ``non-glp``, a CRO's own) demands.

A profile is a YAML document (``policies/profiles/*.yaml``, shipped with the package; a CRO
adds its own in ``PLEXHUB_PROFILES_DIR``) validated by :class:`ComplianceProfile`. The
evaluators below are pure: they take a profile and the facts and return a
:class:`~plexhub.policies.access.Decision`. Loading the documents (:func:`load_profiles`) is
the only I/O here, done once when the service starts.

The README's profile table is :func:`markdown` of the built-in profiles (``plexhub profiles``
prints it for an installation's own), so every rule is documented where it is defined.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plexhub.errors import ConfigurationError, InputError
from plexhub.policies.access import ROLES, Decision, Role

# Every audited action a profile may name, with what it is. A profile naming another is
# refused when it is loaded (a typo must not silently drop a rule).
ACTIONS: dict[str, str] = {
    "study.create": "create a study (its profile is set here)",
    "study.update": "change a study's title or its staff-only metadata fields",
    "study.profile": "change a study's compliance profile",
    "study.lock": "lock a study: it refuses every change until unlocked",
    "study.unlock": "unlock a locked study",
    "grant.create": "share a study with a sponsor user or organisation",
    "grant.revoke": "revoke a grant",
    "image.ingest": "add an image to a study (a conversion job)",
    "image.retire": "retire an image (hidden from lists, kept and exported)",
    "image.unretire": "restore a retired image before its store is purged",
    "image.download": "download an image's source or store",
    "preset.save": "save a new version of a render preset",
    "preset.visibility": "change who sees a render preset",
    "preset.approve": "approve a preset as the study's reference",
    "notebook.publish": "publish a notebook version to the study's sponsors",
    "job.cancel": "cancel a conversion job",
    "job.retry": "queue a failed or cancelled job again",
    "audit.export": "export a study's audit trail (CSV or JSON)",
    "finding.export": "export a study's findings (the SEND-like JSON or CSV)",
    "cells.download": "download an image's cell table (CSV or Parquet)",
    "finding.edit": "revise a recorded finding (also how a peer-review disagreement is "
                    "resolved by the primary pathologist)",
    "review.assign": "assign a study's primary pathologist and peer reviewer",
    "review.change": "change a recorded peer-review verdict (e.g. disagree to agree)",
    "annotation.edit": "change a recorded annotation (its next version)",
    "annotation.delete": "delete an annotation (a version marked deleted; the earlier ones "
                         "are kept)",
    "guide.publish": "publish a guided view (a version) to the study's sponsors",
    "guide.revoke": "revoke a published guided view version (kept for staff and the audit)",
    "view.save": "save the caller's own view of an image (personal: a locked study still "
                 "takes it)",
    "image.tier": "move an image's store between the hot and the archive storage root "
                  "(requested by staff or a tier rule; the bytes are verified, not changed)",
    "image.restore": "ask for an archived image to be restored to hot storage (a grant "
                     "holder may; it changes no data, so a locked study still takes it)",
}
# actions that read (or keep only the caller's own viewing state): a locked study still
# takes them
READS = frozenset({"image.download", "audit.export", "finding.export", "cells.download",
                   "view.save", "image.restore"})
TIER_MOVE = "image.tier"  # a locked study takes it when its profile says tier_moves_when_locked

Meaning = Literal["approved", "reviewed", "authored"]
NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")  # fits Study.profile (20 characters)
BUILTIN = resources.files("plexhub.policies") / "profiles"


class ComplianceProfile(BaseModel):
    """One compliance profile. Every field is a rule; its description is what the generated
    documentation says about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the profile's name, as studies store it")
    title: str = Field(min_length=1, max_length=200, description="a short human title")
    description: str = Field(default="", max_length=2000,
                             description="what the profile is for")
    reason_required: frozenset[str] = Field(
        default_factory=frozenset,
        description="actions refused (422) without a reason for change")
    signatures: dict[str, Meaning] = Field(
        default_factory=dict,
        description="actions that need an electronic signature, with its meaning")
    retention_years: int = Field(ge=0, le=100,
                                 description="years a retired record is kept, counted from "
                                 "its retirement (`plexhub retention`)")
    hard_deletes: bool = Field(description="whether a retired image's store may be purged "
                               "once its retention ends (else it is kept; the catalog row "
                               "and its audit trail stay either way)")
    unlock_roles: frozenset[Role] = Field(
        default=frozenset({"admin"}),
        description="roles that may unlock a locked study")
    profile_change_roles: frozenset[Role] = Field(
        default=frozenset({"admin"}),
        description="roles that may change a study's profile away from this one "
        "(`study.profile`)")
    archive_before_lock: bool = Field(
        default=True,
        description="whether an open (not yet signed-off) study's images may be moved to "
        "the archive storage root")
    tier_moves_when_locked: bool = Field(
        default=True,
        description="whether a locked study takes tier moves (`image.tier`: the store "
        "moves between storage roots, verified object for object; no data changes)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("profile names are lower-case letters, digits and '-' "
                             "(at most 20, starting with a letter)")
        return v

    @field_validator("reason_required")
    @classmethod
    def _actions(cls, v: frozenset[str]) -> frozenset[str]:
        unknown = sorted(v - ACTIONS.keys())
        if unknown:
            raise ValueError(f"unknown actions {unknown}; choose from {sorted(ACTIONS)}")
        return v

    @field_validator("signatures")
    @classmethod
    def _signed(cls, v: dict[str, Meaning]) -> dict[str, Meaning]:
        unknown = sorted(v.keys() - ACTIONS.keys())
        if unknown:
            raise ValueError(f"unknown actions {unknown}; choose from {sorted(ACTIONS)}")
        return v


RULES = tuple(n for n in ComplianceProfile.model_fields if n not in ("name", "title",
                                                                     "description"))


# --- the evaluators (pure) --------------------------------------------------------------

def reason_decision(profile: ComplianceProfile, action: str, reason: str) -> Decision:
    """Whether ``action`` may go ahead with ``reason`` (blank: none given)."""
    if action not in profile.reason_required:
        return Decision(True, f"profile {profile.name} needs no reason for {action}")
    if reason.strip():
        return Decision(True, "a reason is given")
    return Decision(False, f"profile {profile.name} requires a reason for {action}")


def signature_meaning(profile: ComplianceProfile, action: str) -> Meaning | None:
    """The meaning a signature of ``action`` must carry, or None when none is needed."""
    return profile.signatures.get(action)


def change_decision(profile: ComplianceProfile, study_state: str, action: str) -> Decision:
    """Whether a study in ``study_state`` takes ``action``: a locked study only its unlock
    and reads (:data:`READS`)."""
    if study_state != "locked" or action == "study.unlock" or action in READS:
        return Decision(True, f"the study is {study_state}")
    if action == TIER_MOVE and profile.tier_moves_when_locked:
        return Decision(True, f"profile {profile.name} allows tier moves on a locked study")
    return Decision(False, "the study is locked; unlock it first "
                    f"(profile {profile.name}: {', '.join(sorted(profile.unlock_roles))})")


def unlock_decision(profile: ComplianceProfile, role: str) -> Decision:
    if role in profile.unlock_roles:
        return Decision(True, f"profile {profile.name} lets {role} unlock")
    return Decision(False, f"profile {profile.name} lets only "
                    f"{', '.join(sorted(profile.unlock_roles))} unlock")


def profile_change_decision(current: ComplianceProfile, new: ComplianceProfile,
                            role: str) -> Decision:
    """Whether ``role`` may move a study from profile ``current`` to ``new``: the current
    profile's ``profile_change_roles`` decide."""
    if current.name == new.name:
        return Decision(False, f"the study's profile is {current.name} already")
    if role in current.profile_change_roles:
        return Decision(True, f"profile {current.name} lets {role} change the profile")
    return Decision(False, f"profile {current.name} lets only "
                    f"{', '.join(r for r in ROLES if r in current.profile_change_roles)} "
                    "change the profile")


def profile_change_reason(current: ComplianceProfile, new: ComplianceProfile,
                          reason: str) -> Decision:
    """Whether a change of profile may go ahead with ``reason``: a reason is needed when
    either profile asks for one for ``study.profile`` (moving into GLP needs one as much as
    moving out of it)."""
    for p in (current, new):
        decided = reason_decision(p, "study.profile", reason)
        if not decided:
            return decided
    return Decision(True, "a reason is given" if reason.strip() else "no profile needs one")


def profile_change_meaning(current: ComplianceProfile, new: ComplianceProfile
                           ) -> Meaning | None:
    """The meaning the signature of a change of profile carries: the current profile's for
    ``study.profile``, else the new one's; None when neither asks for a signature."""
    return (signature_meaning(current, "study.profile")
            or signature_meaning(new, "study.profile"))


def delete_decision(profile: ComplianceProfile) -> Decision:
    if profile.hard_deletes:
        return Decision(True, f"profile {profile.name} allows hard deletes")
    return Decision(False, f"profile {profile.name} keeps records: retire instead of delete")


def purge_decision(profile: ComplianceProfile, retired: datetime, now: datetime) -> Decision:
    """Whether a record retired at ``retired`` may be purged at ``now``: only once its
    retention period (:func:`retained_until` from the retirement) has ended, and only on a
    profile that allows hard deletes."""
    until = retained_until(profile, retired)
    if not profile.hard_deletes:
        return Decision(False, f"profile {profile.name} keeps records: no hard deletes "
                        f"(retention until {until:%Y-%m-%d})")
    if now < until:
        return Decision(False, f"retention ({profile.retention_years} years, profile "
                        f"{profile.name}) runs until {until:%Y-%m-%d}")
    return Decision(True, f"retention ended on {until:%Y-%m-%d} and profile {profile.name} "
                    "allows hard deletes")


def retained_until(profile: ComplianceProfile, ended: datetime) -> datetime:
    """The end of the retention period for records of a study that ended at ``ended``."""
    try:
        return ended.replace(year=ended.year + profile.retention_years)
    except ValueError:  # 29 February into a year without it
        return ended.replace(year=ended.year + profile.retention_years, day=28)


# --- loading ------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], doc: Any, what: str, see: str) -> M:
    """``doc`` (a parsed YAML document) as ``model``; else a ConfigurationError naming
    ``what`` (e.g. ``profile gcp.yaml``), the first wrong field and where to ``see``."""
    if not isinstance(doc, dict):
        raise ConfigurationError(what, "is not a YAML mapping")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigurationError(what, f"{where or 'document'}: {first['msg']}", see) from None


def parse_profile(doc: Any, source: str) -> ComplianceProfile:
    """A profile from its YAML document (``source`` names it in errors)."""
    return validated(ComplianceProfile, doc, f"profile {source}",
                     "see `plexhub profiles` and policies/profiles/*.yaml")


def _read(texts: Iterable[tuple[str, str]], builtin: bool,
          into: dict[str, ComplianceProfile]) -> None:
    for source, text in texts:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"profile {source}", f"is not valid YAML ({exc})") from None
        profile = parse_profile(doc, source)
        stem = Path(source).name.removesuffix(".yaml").removesuffix(".yml")
        if profile.name != stem:
            raise ConfigurationError(f"profile {source}", f"names itself {profile.name!r}",
                             f"name the file {profile.name}.yaml")
        if profile.name in into:
            raise ConfigurationError(f"profile {source}", f"redefines profile {profile.name}",
                             "" if builtin else "built-in profiles cannot be replaced; "
                             "give yours another name")
        into[profile.name] = profile


def builtin_profiles() -> dict[str, ComplianceProfile]:
    found: dict[str, ComplianceProfile] = {}
    _read(((f.name, f.read_text(encoding="utf-8")) for f in sorted(
        BUILTIN.iterdir(), key=lambda f: f.name) if f.name.endswith(".yaml")), True, found)
    return found


def load_profiles(extra_dir: Path | None = None) -> dict[str, ComplianceProfile]:
    """The built-in profiles plus those in ``extra_dir`` (``*.yaml``, one profile each,
    the file named after the profile); a bad document is a ConfigurationError naming it."""
    found = builtin_profiles()
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ConfigurationError(f"profiles folder {extra_dir}", "does not exist",
                             "set PLEXHUB_PROFILES_DIR to a folder of *.yaml profiles")
        files = sorted(p for p in extra_dir.iterdir() if p.suffix in (".yaml", ".yml"))
        _read(((str(p), p.read_text(encoding="utf-8")) for p in files), False, found)
    return found


def profile_of(profiles: Mapping[str, ComplianceProfile], name: str) -> ComplianceProfile:
    """The profile called ``name``, or an InputError listing the known ones."""
    try:
        return profiles[name]
    except KeyError:
        raise InputError(f"profile {name!r}", "is not a known compliance profile",
                         f"choose one of {', '.join(sorted(profiles))}") from None


# --- documentation ----------------------------------------------------------------------------

def _cell(profile: ComplianceProfile, rule: str) -> str:
    value = getattr(profile, rule)
    if rule == "reason_required":
        return ", ".join(f"`{a}`" for a in sorted(value)) or "none (optional)"
    if rule == "signatures":
        return ", ".join(f"`{a}` ({m})" for a, m in sorted(value.items())) or "none"
    if rule in ("unlock_roles", "profile_change_roles"):
        return ", ".join(r for r in ROLES if r in value)
    if rule == "hard_deletes":
        return "allowed" if value else "no: retired instead"
    if rule in ("archive_before_lock", "tier_moves_when_locked"):
        return "yes" if value else "no"
    return str(value)


def rule_text(profile: ComplianceProfile, rule: str) -> str:
    """One rule of the profile in words (as the generated documentation shows it)."""
    return _cell(profile, rule)


def markdown(profiles: Mapping[str, ComplianceProfile]) -> str:
    """The documentation of ``profiles``: one row per rule, one column per profile, then
    the actions the rules name."""
    names = sorted(profiles)
    lines = ["| rule | " + " | ".join(f"`{n}`" for n in names) + " |",
             "| --- | " + " | ".join("---" for _ in names) + " |",
             "| title | " + " | ".join(profiles[n].title for n in names) + " |"]
    for rule in RULES:
        help_ = ComplianceProfile.model_fields[rule].description
        lines.append(f"| `{rule}`: {help_} | "
                     + " | ".join(_cell(profiles[n], rule) for n in names) + " |")
    lines += ["", "| action | what it is |", "| --- | --- |"]
    lines += [f"| `{a}` | {text} |" for a, text in sorted(ACTIONS.items())]
    return "\n".join(lines) + "\n"
