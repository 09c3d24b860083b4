"""Guided views (issue 19), as Minerva Story gives non-expert readers of multiplexed
images: staff compose an ordered list of waypoints (an image of the study, a preset version
or channel settings, a viewport, optionally one of the image's annotations, a short text)
that a sponsor steps through with next / previous in the portal (``/portal/guides/{id}``).

Published like notebooks: publishing a name again makes its next version (rows are never
changed); a version can be revoked (audited, with a reason where the study's profile asks),
after which it is a 404 for sponsors and drops out of the study's list. Sponsors need the
``view`` capability on the study (they see its images anyway).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, preset_store
from plexhub.api.db import commit_version, next_version, utcnow
from plexhub.api.deps import CurrentUser, DbSession, Scope, VisibleGuide, VisibleStudy
from plexhub.api.models import Annotation, GuidedView, Image, Study
from plexhub.api.schemas import Strict
from plexhub.errors import ConflictError, InputError, NotFoundError
from plexhub.limits import GUIDE_TEXT_CHARS, GUIDE_WAYPOINTS
from plexhub.policies.access import Principal, is_staff

router = APIRouter(prefix="/api/v1", tags=["guides"])


class Waypoint(Strict):
    image_id: str = Field(min_length=1, max_length=32)
    title: str = Field(default="", max_length=200)
    text: str = Field(default="", max_length=GUIDE_TEXT_CHARS)
    preset: str = Field(default="", max_length=80, description="<preset id>@<version>")
    c: str = Field(default="", max_length=4000, description="channel settings (viewer c=)")
    x: float | None = Field(default=None, ge=0)
    y: float | None = Field(default=None, ge=0)
    zoom: float | None = Field(default=None, gt=0, le=1000)
    annotation_id: str = Field(default="", max_length=32)


class GuidePublish(Strict):
    name: str = Field(min_length=1, max_length=200)
    title: str = Field(default="", max_length=200)
    waypoints: list[Waypoint] = Field(min_length=1, max_length=GUIDE_WAYPOINTS)
    reason: str = Field(default="", max_length=2000)


class GuideRevoke(Strict):
    reason: str = Field(default="", max_length=2000)


def guide_out(row: GuidedView, study: Study) -> dict[str, Any]:
    return {"id": row.id, "study": study.code, "name": row.name, "version": row.version,
            "title": row.title, "waypoints": row.waypoints, "content_hash": row.content_hash,
            "published_by": row.published_by, "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def summary(row: GuidedView) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "version": row.version, "title": row.title,
            "steps": len(row.waypoints), "published_by": row.published_by,
            "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def study_guides(session: Session, study: Study, user: Principal) -> list[GuidedView]:
    """Per name, the newest version that is not revoked (staff: every version); for
    non-staff, not one that shows a retired image (as the portal's guide page does not)."""
    rows = session.scalars(select(GuidedView).where(GuidedView.study_id == study.id)
                           .order_by(GuidedView.name, GuidedView.version.desc())).all()
    if is_staff(user):
        return list(rows)
    newest: dict[str, GuidedView] = {}
    for row in rows:
        if row.revoked_at is None and row.name not in newest:
            newest[row.name] = row
    retired = _retired_images(session, study)
    return [row for row in newest.values() if not _shows(row, retired)]


def _retired_images(session: Session, study: Study) -> set[str]:
    return set(session.scalars(select(Image.id).where(Image.study_id == study.id,
                                                      Image.retired_at.is_not(None))))


def _shows(row: GuidedView, images: set[str]) -> bool:
    return any(w.get("image_id") in images for w in row.waypoints)


def _check_waypoint(session: Session, user: Principal, study: Study, w: Waypoint) -> None:
    image = session.get(Image, w.image_id)
    if image is None or image.study_id != study.id:
        raise InputError(f"image {w.image_id}", f"is not an image of study {study.code}")
    if image.retired_at is not None:
        raise InputError(f"image {w.image_id}", "is retired", "unretire it first")
    if w.preset:
        preset_store.resolve(session, user, image, study, w.preset)
    if w.annotation_id:
        found = session.scalar(select(Annotation.deleted).where(
            Annotation.annotation_id == w.annotation_id, Annotation.image_id == image.id)
            .order_by(Annotation.version.desc()).limit(1))
        if found is None or found:
            raise InputError(f"annotation {w.annotation_id}",
                             f"is not an annotation of image {image.id}")


@router.post("/studies/{code}/guides", status_code=201)
def publish_guide(study: VisibleStudy, user: Annotated[Principal, Scope("presets:write")],
                  session: DbSession, body: GuidePublish) -> dict[str, Any]:
    """Publish the next version of guided view ``name``."""
    name = body.name.strip()
    if not name:
        raise InputError("name", "is blank")
    for w in body.waypoints:
        _check_waypoint(session, user, study, w)
    waypoints = [w.model_dump(mode="json", exclude_defaults=True) for w in body.waypoints]
    title = body.title.strip() or name
    digest = hashlib.sha256(json.dumps({"title": title, "waypoints": waypoints},
                                       sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    number = next_version(session, GuidedView, GuidedView.study_id == study.id,
                          GuidedView.name == name)
    row = GuidedView(id=uuid.uuid4().hex, study_id=study.id, name=name, version=number,
                     title=title, waypoints=waypoints, content_hash=digest,
                     published_by=user.user, created_at=utcnow())
    session.add(row)
    audit.record(session, user, "guide.publish", "guide", row.id, study_code=study.code,
                 after={"name": name, "version": number, "content_hash": digest,
                        "steps": len(waypoints)}, reason=body.reason)
    commit_version(session, f"guide {name!r} version {number}")
    return guide_out(row, study)


@router.get("/studies/{code}/guides")
def list_guides(study: VisibleStudy, user: Annotated[Principal, Scope("read")],
                session: DbSession) -> list[dict[str, Any]]:
    """The study's guided views: the newest published version of each (staff: all)."""
    return [summary(row) for row in study_guides(session, study, user)]


@router.get("/guides/{guide_id}")
def get_guide(found: VisibleGuide, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    """One version: its waypoints. To non-staff, one that shows a retired image is the 404
    of an unknown guide."""
    if not is_staff(user) and _shows(found.guide, _retired_images(session, found.study)):
        raise NotFoundError(f"guide {found.guide.id}", "not found")
    return guide_out(found.guide, found.study)


@router.post("/guides/{guide_id}/revoke")
def revoke_guide(found: VisibleGuide, user: Annotated[Principal, Scope("presets:write")],
                 session: DbSession, body: GuideRevoke) -> dict[str, Any]:
    """Withdraw this version: sponsors no longer see it (the row stays, audited)."""
    row, study = found
    if row.revoked_at is not None:
        raise ConflictError(f"guide {row.id}", "is already revoked")
    row.revoked_at, row.revoked_by = utcnow(), user.user
    audit.record(session, user, "guide.revoke", "guide", row.id, study_code=study.code,
                 before={"revoked_at": None},
                 after={"revoked_at": row.revoked_at.isoformat()}, reason=body.reason)
    session.commit()
    return guide_out(row, study)
