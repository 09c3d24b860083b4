"""Toxicologic-pathology peer review (issue 19): who may do what, as pure rules.

- The **study director** of a study is the staff member who created it (``Study.created_by``)
  while their role may still write studies (``studies:write``: scientist, admin); an admin
  acts for any study. Only the study director assigns the study's **primary pathologist**
  and **peer reviewer** (two different people).
- Only the primary pathologist records and revises findings on an assigned study; only the
  peer reviewer records agree / disagree verdicts. Both need ``images:write`` (staff who
  write to images: scientist, admin).
- A disagreement is *open* while the peer's newest verdict on the finding is ``disagree`` on
  the finding's current version: the primary revises the finding, or the peer changes the
  verdict to ``agree``.
- Each signs off once: the primary with meaning ``approved``, the peer with ``reviewed``;
  refused while a disagreement is open, a finding has no verdict, or a slide is not peer
  reviewed. After both sign-offs the study's findings are locked.
- **What a sponsor sees of the review** (:func:`review_visibility`): the findings and the
  annotations (geometry, class and note) of a study only with an active grant that carries
  ``view_findings`` and only once the review is signed off; staff see them all the time. An
  annotation that a published guided view shows at one of its waypoints is the exception:
  staff chose to show it, so it shows on that waypoint to whoever may read the guide.

The API (``plexhub.api.review``) gathers the facts and applies these rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from plexhub.policies.access import (
    Capability,
    Decision,
    GrantFacts,
    Principal,
    can_see_study,
    has_scope,
    is_staff,
)

ReviewRole = Literal["primary", "peer"]
Verdict = Literal["agree", "disagree"]
SlideState = Literal["not_reviewed", "primary_done", "peer_reviewed", "signed_off"]
# the review states of a slide, in the order a slide goes through them
SLIDE_STATES: tuple[SlideState, ...] = ("not_reviewed", "primary_done", "peer_reviewed",
                                        "signed_off")
MEANINGS: dict[ReviewRole, Literal["approved", "reviewed"]] = {"primary": "approved",
                                                              "peer": "reviewed"}
WRITE_SCOPE = "images:write"  # what a pathologist's role needs


def may_direct(principal: Principal, study_created_by: str) -> Decision:
    """Whether ``principal`` is the study director of a study created by
    ``study_created_by`` (or an admin acting for it)."""
    if principal.role == "admin":
        return Decision(True, "admins act as study director of any study")
    if not has_scope(principal, "studies:write"):
        return Decision(False, f"role {principal.role} cannot direct a study")
    if principal.user == study_created_by:
        return Decision(True, f"{principal.user} created the study: its study director")
    return Decision(False, f"only the study director ({study_created_by}) or an admin "
                    "assigns the pathologists")


def review_visibility(principal: Principal, grants: Iterable[GrantFacts], now: datetime,
                      signed_off: bool) -> Decision:
    """Whether ``principal`` sees a study's review records, its findings and its annotations
    (geometry, class and note): staff always; a sponsor with an active grant carrying
    ``view_findings`` once the review is signed off (``signed_off``: both pathologists
    signed, the findings locked). A guided view's waypoint annotation is not asked here: a
    published guide shows it to its readers."""
    if is_staff(principal):
        return Decision(True, f"{principal.role} is internal staff")
    granted = can_see_study(principal, grants, now, Capability.VIEW_FINDINGS)
    if not granted:
        return Decision(False, "no active grant carries view_findings")
    if not signed_off:
        return Decision(False, "the review is not signed off yet")
    return Decision(True, f"{granted.reason} with view_findings, and the review is signed off")


def assignment_decision(primary: str, peer: str) -> Decision:
    if not primary.strip() or not peer.strip():
        return Decision(False, "both a primary pathologist and a peer reviewer are needed")
    if primary == peer:
        return Decision(False, "the peer reviewer must not be the primary pathologist")
    return Decision(True, "two different pathologists")


@dataclass(frozen=True)
class Assignment:
    primary: str
    peer: str

    def role_of(self, user: str) -> ReviewRole | None:
        if user == self.primary:
            return "primary"
        if user == self.peer:
            return "peer"
        return None


def _pathologist(principal: Principal) -> Decision:
    return has_scope(principal, WRITE_SCOPE)


def finding_decision(principal: Principal, assignment: Assignment | None,
                     locked: bool) -> Decision:
    """Whether ``principal`` may record or revise a finding of the study."""
    if locked:
        return Decision(False, "the findings are signed off and locked")
    if not _pathologist(principal):
        return _pathologist(principal)
    if assignment is None:
        return Decision(True, "no pathologists assigned yet: staff record findings")
    if principal.user == assignment.primary:
        return Decision(True, "the primary pathologist")
    return Decision(False, f"only the primary pathologist ({assignment.primary}) records "
                    "findings on this study")


def verdict_decision(principal: Principal, assignment: Assignment | None,
                     locked: bool) -> Decision:
    """Whether ``principal`` may record a peer-review verdict on the study's findings."""
    if locked:
        return Decision(False, "the findings are signed off and locked")
    if assignment is None:
        return Decision(False, "no peer reviewer is assigned to this study")
    if not _pathologist(principal):
        return _pathologist(principal)
    if principal.user == assignment.peer:
        return Decision(True, "the peer reviewer")
    return Decision(False, f"only the peer reviewer ({assignment.peer}) records verdicts")


def completion_decision(role: ReviewRole | None, primary_done: bool, unjudged: int,
                        locked: bool) -> Decision:
    """Whether the caller (``role`` in the review) may mark a slide as read: the primary
    any time, the peer after the primary and with a verdict on each of its findings."""
    if locked:
        return Decision(False, "the findings are signed off and locked")
    if role is None:
        return Decision(False, "only the study's primary pathologist or peer reviewer "
                        "completes a slide")
    if role == "peer" and not primary_done:
        return Decision(False, "the primary pathologist has not completed this slide")
    if role == "peer" and unjudged:
        return Decision(False, f"{unjudged} finding(s) of this slide have no verdict yet")
    return Decision(True, f"the {role} completes the slide")


def signoff_decision(role: ReviewRole | None, open_disagreements: int, unjudged: int,
                     slides_not_reviewed: int, already_signed: bool) -> Decision:
    """Whether the caller (``role`` in the review) may sign the study's findings off."""
    if role is None:
        return Decision(False, "only the study's primary pathologist and peer reviewer "
                        "sign off")
    if already_signed:
        return Decision(False, f"the {role} has already signed off")
    if open_disagreements:
        return Decision(False, f"{open_disagreements} disagreement(s) are open: the primary "
                        "revises the finding or the peer reviewer agrees")
    if unjudged:
        return Decision(False, f"{unjudged} finding(s) have no peer-review verdict")
    if slides_not_reviewed:
        return Decision(False, f"{slides_not_reviewed} slide(s) are not peer reviewed yet")
    return Decision(True, f"the {role} signs off")


def slide_state(primary_done: bool, peer_done: bool, signed_off: bool) -> SlideState:
    if signed_off:
        return "signed_off"
    if peer_done:
        return "peer_reviewed"
    if primary_done:
        return "primary_done"
    return "not_reviewed"
