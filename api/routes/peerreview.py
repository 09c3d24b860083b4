"""Peer review of a study's findings (issue 19; the rules are ``policies/review.py``).

- ``PUT /studies/{code}/review``: the study director assigns the primary pathologist and the
  peer reviewer (``review.assign``; a reason on GLP).
- ``GET /studies/{code}/review``: the assignment, every slide's review state, each finding
  with the peer's verdict, the open disagreements and the sign-offs (staff).
- ``POST /images/{id}/verdicts``: the peer reviewer agrees or disagrees with a finding, with
  a comment (``review.verdict``; changing a recorded verdict is ``review.change``, with a
  reason on GLP). The primary resolves a disagreement by revising the finding
  (``POST /images/{id}/findings`` with its id: ``finding.edit``).
- ``POST /images/{id}/review/complete``: the primary (read done) or the peer (peer review
  done, every finding of the slide judged) completes the slide.
- ``POST /studies/{code}/review/signoff``: each signs off with an electronic signature
  (the primary ``approved``, the peer ``reviewed``), refused (409) while disagreements are
  open; after both the findings are locked (changes: 403 naming the sign-off) and the
  findings webhook is queued.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview, signatures, webhooks
from plexhub.api.db import utcnow
from plexhub.api.deps import DbSession, Scope, State, VisibleImage, VisibleStudy
from plexhub.api.models import Review, ReviewVerdict, SlideRead, Study
from plexhub.api.schemas import CREDENTIAL_HELP, Strict
from plexhub.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from plexhub.policies.access import Decision, Principal, is_staff
from plexhub.policies.review import (
    MEANINGS,
    assignment_decision,
    completion_decision,
    may_direct,
    signoff_decision,
    verdict_decision,
)

router = APIRouter(prefix="/api/v1", tags=["review"])


def _allow(decision: Decision, subject: str) -> None:
    if not decision:
        raise PermissionDeniedError(subject, f"may not do this ({decision.reason})")


class ReviewAssign(Strict):
    primary: str = Field(min_length=1, max_length=200, description="primary pathologist")
    peer: str = Field(min_length=1, max_length=200, description="peer reviewer")
    reason: str = Field(default="", max_length=2000)


class VerdictCreate(Strict):
    finding: str = Field(min_length=1, max_length=32, description="the finding's id")
    verdict: Literal["agree", "disagree"]
    comment: str = Field(default="", max_length=5000)
    reason: str = Field(default="", max_length=2000)


class SlideComplete(Strict):
    reason: str = Field(default="", max_length=2000)


class SignOff(Strict):
    credential: str = Field(default="", max_length=500,
                            description=CREDENTIAL_HELP)
    reason: str = Field(default="", max_length=2000)


def review_public(session: Session, study: Study) -> dict[str, Any]:
    f = peerreview.facts(session, study)
    a = f.assignment
    by_image: dict[str, list[dict[str, Any]]] = {}
    for x in f.findings:
        by_image.setdefault(x.image_id, []).append({
            "id": x.finding_id, "version": x.version, "tissue": x.tissue, "term": x.term,
            "severity": x.severity, "distribution": x.distribution, "text": x.text,
            "annotations": x.annotations, "author": x.author,
            "review": peerreview.verdict_out(f.verdicts.get(x.finding_id), x)})
    return {
        "study": study.code,
        "primary": a.primary if a else None, "peer": a.peer if a else None,
        "assigned_by": f.review.assigned_by if f.review else None,
        "locked_at": f.review.locked_at.isoformat() if f.review and f.review.locked_at
        else None,
        # a retired slide stays (its findings are in the export) and says so
        "slides": [{"id": im.id, "name": im.name, "review_state": f.slide_state(im.id),
                    "retired": im.retired_at is not None,
                    "findings": by_image.get(im.id, [])} for im in f.images],
        "disagreements": [{"id": x.finding_id, "image_id": x.image_id, "tissue": x.tissue,
                           "term": x.term, "severity": x.severity,
                           "comment": f.verdicts[x.finding_id].comment}
                          for x in f.open_disagreements()],
        "unjudged": len(f.unjudged()),
        "signoffs": {role: signatures.public(s).model_dump(mode="json")
                     for role, s in f.signoffs.items()},
    }


@router.get("/studies/{code}/review")
def get_review(study: VisibleStudy, user: Annotated[Principal, Scope("read")],
               session: DbSession) -> dict[str, Any]:
    """The study's peer review (staff only: sponsors see signed-off findings in the
    findings export)."""
    _allow(Decision(is_staff(user), "the peer review is staff's"), user.user)
    return review_public(session, study)


@router.put("/studies/{code}/review")
def assign_review(study: VisibleStudy, user: Annotated[Principal, Scope("studies:write")],
                  session: DbSession, body: ReviewAssign) -> dict[str, Any]:
    """Assign the primary pathologist and the peer reviewer (the study director)."""
    _allow(may_direct(user, study.created_by), user.user)
    ok = assignment_decision(body.primary, body.peer)
    if not ok:
        raise InputError("assignment", ok.reason)
    peerreview.refuse_if_locked(session, study)
    row = peerreview.review_of(session, study.id)
    before = None if row is None else {"primary": row.primary_pathologist,
                                       "peer": row.peer_reviewer}
    if row is None:
        row = Review(study_id=study.id, primary_pathologist=body.primary,
                     peer_reviewer=body.peer, assigned_by=user.user, assigned_at=utcnow())
        session.add(row)
    else:
        row.primary_pathologist, row.peer_reviewer = body.primary, body.peer
        row.assigned_by, row.assigned_at = user.user, utcnow()
    audit.record(session, user, "review.assign", "review", study.code, study_code=study.code,
                 before=before, after={"primary": body.primary, "peer": body.peer},
                 reason=body.reason)
    session.commit()
    return review_public(session, study)


@router.post("/images/{image_id}/verdicts", status_code=201)
def record_verdict(found: VisibleImage, user: Annotated[Principal, Scope("images:write")],
                   session: DbSession, body: VerdictCreate) -> dict[str, Any]:
    """The peer reviewer agrees or disagrees with one of the slide's findings."""
    image, study = found
    f = peerreview.facts(session, study)
    peerreview.refuse_if_locked(session, study)
    _allow(verdict_decision(user, f.assignment, f.locked), user.user)
    finding = next((x for x in f.findings if x.finding_id == body.finding
                    and x.image_id == image.id), None)
    if finding is None:
        raise NotFoundError(f"finding {body.finding}", "not found on this image")
    prev = f.verdicts.get(finding.finding_id)
    row = ReviewVerdict(finding_id=finding.finding_id, finding_version=finding.version,
                        image_id=image.id, study_id=study.id, reviewer=user.user,
                        verdict=body.verdict, comment=body.comment, created_at=utcnow())
    session.add(row)
    before = None if prev is None else {"verdict": prev.verdict, "comment": prev.comment,
                                        "finding_version": prev.finding_version}
    audit.record(session, user, "review.change" if prev is not None else "review.verdict",
                 "finding", f"{finding.finding_id}@{finding.version}", study_code=study.code,
                 before=before, after={"verdict": body.verdict, "comment": body.comment},
                 reason=body.reason)
    session.commit()
    out = peerreview.verdict_out(row, finding)
    assert out is not None
    return {"finding": finding.finding_id, **out}


@router.post("/images/{image_id}/review/complete")
def complete_slide(found: VisibleImage, user: Annotated[Principal, Scope("images:write")],
                   session: DbSession, body: SlideComplete) -> dict[str, Any]:
    """The primary (or, after it, the peer reviewer) has completed this slide."""
    image, study = found
    if image.retired_at is not None:  # sign-off skips it; a read of it would count for nothing
        raise ConflictError(f"image {image.id}", "is retired",
                            "unretire it first (POST /api/v1/images/{id}/unretire) to review it")
    f = peerreview.facts(session, study)
    peerreview.refuse_if_locked(session, study)
    a = f.assignment
    role = a.role_of(user.user) if a is not None else None
    done = f.reads.get(image.id, set())
    _allow(completion_decision(role, "primary" in done, len(f.unjudged(image.id)), f.locked),
           user.user)
    assert role is not None
    if role not in done:
        session.add(SlideRead(image_id=image.id, study_id=study.id, role=role,
                              reader=user.user, created_at=utcnow()))
        audit.record(session, user, "review.complete", "image", image.id,
                     study_code=study.code, after={"role": role}, reason=body.reason)
        session.commit()
        done = done | {role}
    f.reads[image.id] = done
    return {"image_id": image.id, "review_state": f.slide_state(image.id)}


@router.post("/studies/{code}/review/signoff")
def sign_off(study: VisibleStudy, user: Annotated[Principal, Scope("images:write")],
             session: DbSession, st: State, body: SignOff) -> dict[str, Any]:
    """Sign the study's findings off (the primary: approved; the peer: reviewed) with an
    electronic signature; the second sign-off locks them and queues the webhook."""
    # sign-offs of one catalog are serialised (the audit chain's lock, held until the
    # commit), so that two sign-offs at once cannot both miss the other and leave the
    # findings unlocked
    audit.lock_chain(session)
    f = peerreview.facts(session, study)
    peerreview.refuse_if_locked(session, study)
    a = f.assignment
    role = a.role_of(user.user) if a is not None else None
    ok = signoff_decision(role, len(f.open_disagreements()), len(f.unjudged()),
                          len(f.slides_not_peer_reviewed()),
                          role is not None and role in f.signoffs)
    if role is None:
        _allow(ok, user.user)
    if not ok:
        raise ConflictError(f"sign-off of study {study.code}", ok.reason)
    assert role is not None
    content = peerreview.signed_content(f)
    sig = signatures.sign(session, signatures.verifier_of(st.settings, st.tokens), user,
                          body.credential, action=peerreview.SIGNOFF,
                          meaning=MEANINGS[role], entity_type=peerreview.ENTITY,
                          entity_id=study.code, content=content, study_code=study.code,
                          reason=body.reason)
    f.signoffs[role] = sig
    if len(f.signoffs) == len(MEANINGS) and f.review is not None:
        f.review.locked_at = utcnow()
        audit.record(session, user, "review.lock", "review", study.code,
                     study_code=study.code, after={
                         "signatures": [s.id for s in f.signoffs.values()]}, enforce=False)
        session.flush()
        webhooks.enqueue_signoff(session, st.settings, study)
    session.commit()
    if st.webhooks is not None:
        st.webhooks.wake()
    return review_public(session, study)
