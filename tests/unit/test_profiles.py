"""Compliance profiles as data (issue 14): the built-in YAML documents validate, a CRO's own
load from a folder, bad documents are refused naming the file, the evaluators decide, and the
README's profile table is generated from the profiles (an undocumented rule fails here)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plexhub.cli import main
from plexhub.errors import ConfigurationError, InputError
from plexhub.policies.profiles import (
    ACTIONS,
    RULES,
    ComplianceProfile,
    builtin_profiles,
    change_decision,
    delete_decision,
    load_profiles,
    markdown,
    profile_change_decision,
    profile_change_meaning,
    profile_change_reason,
    profile_of,
    reason_decision,
    retained_until,
    signature_meaning,
    unlock_decision,
)

README = Path(__file__).resolve().parents[2] / "README.md"
GCP = """name: gcp
title: GCP (clinical)
reason_required: [study.update, preset.save]
signatures: {study.lock: reviewed}
retention_years: 25
hard_deletes: false
unlock_roles: [admin, scientist]
"""


@pytest.mark.requirement("profile.signatures")
def test_builtin_profiles_load_and_differ() -> None:
    found = builtin_profiles()
    assert set(found) == {"glp", "non-glp"}
    glp, non = found["glp"], found["non-glp"]
    assert {"study.update", "preset.save", "grant.create", "grant.revoke",
            "notebook.publish"} <= glp.reason_required
    assert non.reason_required == frozenset()
    assert not glp.hard_deletes
    assert non.hard_deletes
    assert glp.retention_years > non.retention_years
    assert glp.unlock_roles == frozenset({"admin"})
    assert signature_meaning(glp, "study.lock") == "approved"
    assert signature_meaning(non, "study.lock") is None


@pytest.mark.requirement("profile.reason_required")
def test_reason_decision() -> None:
    p = builtin_profiles()
    refused = reason_decision(p["glp"], "preset.save", "  ")
    assert not refused
    assert refused.reason == "profile glp requires a reason for preset.save"
    assert reason_decision(p["glp"], "preset.save", "new window for CD8")
    assert reason_decision(p["glp"], "image.download", "")  # not a rule of glp
    assert reason_decision(p["non-glp"], "preset.save", "")


@pytest.mark.requirement("profile.unlock_roles", "profile.hard_deletes", "profile.retention_years")
def test_lock_unlock_delete_and_retention_decisions() -> None:
    glp = builtin_profiles()["glp"]
    locked = change_decision(glp, "locked", "preset.save")
    assert not locked
    assert "locked" in locked.reason
    assert change_decision(glp, "locked", "study.unlock")
    assert change_decision(glp, "locked", "image.download")
    assert change_decision(glp, "locked", "audit.export")
    assert change_decision(glp, "open", "preset.save")
    assert unlock_decision(glp, "admin")
    assert not unlock_decision(glp, "scientist")
    assert not delete_decision(glp)
    assert delete_decision(builtin_profiles()["non-glp"])
    leap = datetime(2024, 2, 29, tzinfo=UTC)
    assert retained_until(glp, leap) == datetime(2039, 2, 28, tzinfo=UTC)


@pytest.mark.requirement("profile.profile_change_roles", "study.profile")
def test_profile_change_decisions() -> None:
    p = builtin_profiles()
    glp, non = p["glp"], p["non-glp"]
    assert profile_change_decision(glp, non, "admin")
    refused = profile_change_decision(glp, non, "scientist")
    assert not refused
    assert refused.reason == "profile glp lets only admin change the profile"
    assert profile_change_decision(non, glp, "scientist")
    assert not profile_change_decision(non, glp, "analyst")
    assert not profile_change_decision(glp, glp, "admin")  # nothing to change
    # a reason and a signature where either side asks: into GLP as much as out of it
    assert not profile_change_reason(non, glp, " ")
    assert not profile_change_reason(glp, non, "")
    assert profile_change_reason(non, glp, "now regulated")
    assert profile_change_meaning(glp, non) == profile_change_meaning(non, glp) == "approved"
    gcp = ComplianceProfile(name="gcp", title="GCP", retention_years=1, hard_deletes=False,
                            signatures={"study.profile": "reviewed"})
    assert profile_change_meaning(gcp, glp) == "reviewed"  # the current profile's meaning
    assert profile_change_meaning(glp, gcp) == "approved"
    free = ComplianceProfile(name="free", title="Free", retention_years=1, hard_deletes=True)
    assert profile_change_meaning(non, free) is None
    assert profile_change_reason(non, free, "")
    assert free.profile_change_roles == frozenset({"admin"})  # the default


def test_a_cro_adds_its_own_profile(tmp_path: Path) -> None:
    (tmp_path / "gcp.yaml").write_text(GCP)
    found = load_profiles(tmp_path)
    assert set(found) == {"glp", "non-glp", "gcp"}
    assert found["gcp"].retention_years == 25
    assert signature_meaning(found["gcp"], "study.lock") == "reviewed"
    assert "`gcp`" in markdown(found)


@pytest.mark.parametrize(("name", "text", "says"), [
    ("gcp.yaml", GCP.replace("preset.save", "preset.sav"), "unknown actions ['preset.sav']"),
    ("gcp.yaml", GCP + "deletes: true\n", "deletes: Extra inputs are not permitted"),
    ("gcp.yaml", GCP.replace("[admin, scientist]", "[janitor]"), "unlock_roles"),
    ("gcp.yaml", GCP.replace("reviewed", "liked"), "signatures"),
    ("other.yaml", GCP, "names itself 'gcp'"),
    ("glp.yaml", GCP.replace("name: gcp", "name: glp"), "redefines profile glp"),
    ("gcp.yaml", "- a list\n", "is not a YAML mapping"),
    ("gcp.yaml", "name: [\n", "is not valid YAML"),
])
def test_bad_profiles_are_refused_naming_the_file(tmp_path: Path, name: str, text: str,
                                                  says: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_profiles(tmp_path)
    assert name in str(caught.value)
    assert says in str(caught.value)


def test_missing_folder_and_unknown_profile_name() -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_profiles(Path("/nonexistent/profiles"))
    with pytest.raises(InputError, match="choose one of glp, non-glp"):
        profile_of(builtin_profiles(), "gcp")


def test_every_rule_and_action_is_documented() -> None:
    doc = markdown(builtin_profiles())
    for rule in RULES:
        help_ = ComplianceProfile.model_fields[rule].description
        assert help_, f"rule {rule} has no description"
        assert f"| `{rule}`: {help_} |" in doc, f"rule {rule} is not in the documentation"
    for action, help_ in ACTIONS.items():
        assert help_.strip(), f"action {action} has no description"
        assert f"| `{action}` | {help_} |" in doc
    # every action a built-in profile names is one the documentation explains
    named = set().union(*(p.reason_required | p.signatures.keys()
                          for p in builtin_profiles().values()))
    assert named <= set(re.findall(r"^\| `([a-z.]+)` \|", doc, re.M))


def test_readme_table_is_generated_from_the_profiles() -> None:
    text = README.read_text()
    start = text.index("<!-- profiles-table -->\n") + len("<!-- profiles-table -->\n")
    end = text.index("<!-- /profiles-table -->")
    assert text[start:end] == markdown(builtin_profiles()), \
        "regenerate the README's profile table with `plexhub profiles`"


def test_profiles_command_prints_the_installation_profiles(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gcp.yaml").write_text(GCP)
    assert main(["profiles", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == markdown(load_profiles(tmp_path))
