"""The peer review of a study's findings (issue 19): the facts the rules of
``policies/review.py`` need, read from the catalog, and what a sign-off signs.

A study's review is its :class:`~plexhub.api.models.Review` row (the pathologists the study
director assigned; ``locked_at`` once both signed off), the peer's verdicts
(:class:`~plexhub.api.models.ReviewVerdict`, newest per finding counts) and the slides each
pathologist completed (:class:`~plexhub.api.models.SlideRead`). The sign-offs are electronic
signatures (``api/signatures.py``) of entity ``review`` / the study's code whose content is
:func:`signed_content`: every current finding and verdict. A sign-off counts while it still
verifies against the current content and its signer is still the assigned pathologist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import signatures
from plexhub.api.db import newest_versions, utcnow
from plexhub.api.deps import grants_of
from plexhub.api.models import Finding, Image, Review, ReviewVerdict, Signature, SlideRead, Study
from plexhub.errors import PermissionDeniedError
from plexhub.policies.access import Principal, is_staff
from plexhub.policies.review import (
    MEANINGS,
    Assignment,
    ReviewRole,
    SlideState,
    review_visibility,
    slide_state,
)
from plexhub.policies.vocabulary import load_vocabulary

ENTITY = "review"
SIGNOFF = "review.signoff"


def current_findings(session: Session, study_id: int,
                     image_id: str | None = None) -> list[Finding]:
    """The newest version of each finding of the study (or of one slide)."""
    where = [Finding.study_id == study_id]
    if image_id is not None:
        where.append(Finding.image_id == image_id)
    return newest_versions(session, Finding, Finding.finding_id, *where)


def latest_verdicts(session: Session, study_id: int) -> dict[str, ReviewVerdict]:
    """The peer's newest verdict per finding id."""
    out: dict[str, ReviewVerdict] = {}
    for v in session.scalars(select(ReviewVerdict).where(ReviewVerdict.study_id == study_id)
                             .order_by(ReviewVerdict.id)):
        out[v.finding_id] = v
    return out


def verdict_out(v: ReviewVerdict | None, finding: Finding) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"verdict": v.verdict, "comment": v.comment, "reviewer": v.reviewer,
            "finding_version": v.finding_version,
            "open": v.verdict == "disagree" and v.finding_version == finding.version,
            "revised_since": v.finding_version != finding.version,
            "at": v.created_at.isoformat()}


@dataclass
class ReviewFacts:
    """Everything about a study's review, gathered once."""

    study: Study
    review: Review | None
    findings: list[Finding]
    verdicts: dict[str, ReviewVerdict]
    reads: dict[str, set[str]]  # image id -> roles that completed it
    images: list[Image]
    signoffs: dict[ReviewRole, Signature] = field(default_factory=dict)

    @property
    def assignment(self) -> Assignment | None:
        if self.review is None:
            return None
        return Assignment(self.review.primary_pathologist, self.review.peer_reviewer)

    @property
    def locked(self) -> bool:
        return self.review is not None and self.review.locked_at is not None

    def open_disagreements(self) -> list[Finding]:
        return [f for f in self.findings if (v := self.verdicts.get(f.finding_id)) is not None
                and v.verdict == "disagree" and v.finding_version == f.version]

    def unjudged(self, image_id: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.finding_id not in self.verdicts
                and (image_id is None or f.image_id == image_id)]

    def slide_state(self, image_id: str) -> SlideState:
        return _state(self.reads.get(image_id, set()), self.locked)

    def slides_not_peer_reviewed(self) -> list[Image]:
        return [im for im in self.images if im.status == "ready" and im.retired_at is None
                and "peer" not in self.reads.get(im.id, set())]


def review_of(session: Session, study_id: int) -> Review | None:
    return session.get(Review, study_id)


def is_locked(session: Session, study_id: int) -> bool:
    locked = session.scalar(select(Review.locked_at).where(Review.study_id == study_id))
    return locked is not None


def sees_review(session: Session, user: Principal, study: Study) -> bool:
    """Whether ``user`` sees the study's findings and annotations (the rule:
    :func:`plexhub.policies.review.review_visibility`); staff without a query."""
    if is_staff(user):
        return True
    return bool(review_visibility(user, grants_of(session, study.id), utcnow(),
                                  is_locked(session, study.id)))


def slide_reads(session: Session, study_id: int) -> dict[str, set[str]]:
    """Per slide (image id), the review roles that completed it."""
    reads: dict[str, set[str]] = {}
    for image_id, role in session.execute(select(SlideRead.image_id, SlideRead.role)
                                          .where(SlideRead.study_id == study_id)):
        reads.setdefault(image_id, set()).add(role)
    return reads


def _state(roles: set[str], locked: bool) -> SlideState:
    return slide_state("primary" in roles, "peer" in roles, locked)


def slide_states(session: Session, study_id: int) -> dict[str, SlideState]:
    """The review state of each slide of the study."""
    locked = is_locked(session, study_id)
    reads = slide_reads(session, study_id)
    image_ids = session.scalars(select(Image.id).where(Image.study_id == study_id)).all()
    return {i: _state(reads.get(i, set()), locked) for i in image_ids}


def facts(session: Session, study: Study) -> ReviewFacts:
    reads = slide_reads(session, study.id)
    images = list(session.scalars(select(Image).where(Image.study_id == study.id)
                                  .order_by(Image.created_at, Image.series_index)))
    out = ReviewFacts(study, review_of(session, study.id),
                      current_findings(session, study.id), latest_verdicts(session, study.id),
                      reads, images)
    out.signoffs = valid_signoffs(session, out)
    return out


def signed_content(f: ReviewFacts) -> dict[str, Any]:
    """What a sign-off signs: the assignment, every current finding and its verdict."""
    a = f.assignment
    return {
        "study": f.study.code,
        "primary": a.primary if a else None, "peer": a.peer if a else None,
        "findings": sorted(({"id": x.finding_id, "version": x.version, "image": x.image_id,
                             "tissue": x.tissue, "term": x.term, "severity": x.severity,
                             "distribution": x.distribution, "text": x.text,
                             "author": x.author} for x in f.findings),
                           key=lambda d: str(d["id"])),
        "verdicts": sorted(({"finding": v.finding_id, "version": v.finding_version,
                             "verdict": v.verdict, "comment": v.comment,
                             "reviewer": v.reviewer} for v in f.verdicts.values()),
                           key=lambda d: str(d["finding"])),
    }


def valid_signoffs(session: Session, f: ReviewFacts) -> dict[ReviewRole, Signature]:
    """The sign-offs that still count: by the assigned pathologist of their meaning, and
    verifying against the review's content as it is now (newest first wins)."""
    a = f.assignment
    if a is None:
        return {}
    content = signed_content(f)
    out: dict[ReviewRole, Signature] = {}
    for sig in reversed(signatures.of(session, ENTITY, f.study.code)):
        for role, meaning in MEANINGS.items():
            who = a.primary if role == "primary" else a.peer
            if role not in out and sig.action == SIGNOFF and sig.meaning == meaning \
                    and sig.signer == who \
                    and signatures.verify(sig, ENTITY, f.study.code, content):
                out[role] = sig
    return out


def signature_text(sigs: Iterable[Signature]) -> str:
    """The sign-offs in one export cell: ``signer (meaning, UTC time, sha256:hash)``."""
    return "; ".join(f"{s.signer} ({s.meaning}, {s.signed_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                     f"sha256:{s.hash})" for s in sigs)


def refuse_if_locked(session: Session, study: Study) -> None:
    """403 naming the sign-off when the study's findings are locked."""
    review = review_of(session, study.id)
    if review is None or review.locked_at is None:
        return
    sigs = [s for s in signatures.of(session, ENTITY, study.code) if s.action == SIGNOFF]
    who = ", ".join(f"{s.signer} ({s.meaning})" for s in sigs[-2:])
    raise PermissionDeniedError(
        f"findings of study {study.code}",
        f"are locked by the peer-review sign-off of {who} at "
        f"{review.locked_at.strftime('%Y-%m-%d %H:%M')} UTC",
        "signed-off findings cannot change")


# --------------------------------------------------------------------------- findings out

# SEND MI-domain-like columns: MIEVAL is the pathologist who recorded the finding, MIPEER
# the peer reviewer, MIRVSTAT the slide's review state, MISTAT draft or signed, MISIGN the
# sign-offs (signer, meaning, UTC time and the signature record's SHA-256)
SEND_COLUMNS = ("STUDYID", "USUBJID", "MISPEC", "MISTRESC", "MISEV", "MIDISTR", "MIORRES",
                "MIIMAGE", "MIEVAL", "MIPEER", "MIRVSTAT", "MISTAT", "MISIGN")


def export_rows(session: Session, study: Study, signed_only: bool) -> list[dict[str, Any]]:
    """The study's findings, one row per finding (``signed_only``: none until the review's
    sign-offs locked them)."""
    f = facts(session, study)
    if signed_only and not f.locked:
        return []
    grades = load_vocabulary().severity
    a = f.assignment
    sign = signature_text(f.signoffs[r] for r in MEANINGS if r in f.signoffs) \
        if f.locked else ""
    images = {im.id: im for im in f.images}
    out: list[dict[str, Any]] = []
    for x in sorted(f.findings, key=lambda x: (x.image_id, x.created_at, x.id)):
        image = images[x.image_id]
        animal = str((image.metadata_ or {}).get("animal_id") or "")
        out.append({"STUDYID": study.code, "USUBJID": animal, "MISPEC": x.tissue.upper(),
                    "MISTRESC": x.term.upper(),
                    "MISEV": grades.get(x.severity, "").upper() if x.severity else "",
                    "MIDISTR": x.distribution.upper(), "MIORRES": x.text,
                    "MIIMAGE": image.id, "MIEVAL": x.author, "MIPEER": a.peer if a else "",
                    "MIRVSTAT": f.slide_state(image.id),
                    "MISTAT": "signed" if f.locked else x.state, "MISIGN": sign})
    return out
