"""Retiring an image and restoring it (issue 14, "no hard deletes"; see api/retention.py).

``POST /images/{id}/retire`` takes what the study's profile asks for ``image.retire`` (GLP:
a reason; a signature where a profile names one) and is refused on a locked study (403
naming the lock); its audit event, in the same transaction, carries the old and the new
state and the day its retention ends. ``POST /images/{id}/unretire`` restores a retired
image that has not been purged (``image.unretire``, the same rules). Staff only: a sponsor
without a grant gets the 404 of an unknown image, one with a grant 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy.orm import Session

from plexhub.api import audit, requestctx, signatures
from plexhub.api.db import utcnow
from plexhub.api.deps import AppState, DbSession, Scope, State, VisibleImage
from plexhub.api.models import Image, Study
from plexhub.api.retention import retention_end
from plexhub.api.routes.images import _image_public
from plexhub.api.schemas import ImagePublic, SignaturePublic, SignedChange
from plexhub.errors import ConflictError
from plexhub.policies.access import Principal
from plexhub.policies.profiles import profile_of

router = APIRouter(prefix="/api/v1", tags=["images"])


class RetireChange(SignedChange):
    """Retire or unretire an image (``image.retire``, ``image.unretire``)."""


class ImageRetired(ImagePublic):
    retained_until: str | None = Field(
        default=None, description="the day (UTC, ISO 8601) the retired image's retention "
        "ends: `plexhub retention --apply` may purge it after that when its profile allows")
    signatures: list[SignaturePublic] = Field(default_factory=list)


def _state(image: Image) -> str:
    return "purged" if image.purged_at is not None else \
        "retired" if image.retired_at is not None else "active"


def _answer(session: Session, image: Image, study: Study) -> ImageRetired:
    until = None
    if image.retired_at is not None:
        profile = profile_of(audit.profiles(session), study.profile)
        until = retention_end(profile, image.retired_at).date().isoformat()
    return ImageRetired(**_image_public(image, study.code).model_dump(), retained_until=until,
                        signatures=signatures.publics(signatures.of(session, "image",
                                                                    image.id)))


def _change(found: Any, body: RetireChange, user: Principal, st: AppState, session: Session,
            action: str, to: str) -> ImageRetired:
    image, study = found
    before = _state(image)
    if before == "purged":
        raise ConflictError(f"image {image.id}", "was purged after its retention period",
                            "its audit trail keeps what it was")
    if before == to:
        raise ConflictError(f"image {image.id}", f"is {to} already")
    reason = body.reason.strip() or requestctx.current().reason
    audit.check_change(session, study.code, action, reason)  # the lock, the reason
    now = utcnow()
    after: dict[str, Any] = {"state": to}
    if to == "retired":
        profile = profile_of(audit.profiles(session), study.profile)
        after["retained_until"] = retention_end(profile, now).isoformat()
    signatures.sign_if_required(
        session, signatures.verifier_of(st.settings, st.tokens), user, body.credential,
        study_code=study.code, action=action, entity_type="image", entity_id=image.id,
        content={"image": image.id, "study": study.code, "name": image.name,
                 "checksum": image.checksum, "state": to}, reason=reason)
    audit.record(session, user, action, "image", image.id, study_code=study.code,
                 before={"state": before}, after=after, reason=reason)
    image.retired_at, image.retired_by = (now, user.user) if to == "retired" else (None, None)
    session.commit()
    return _answer(session, image, study)


@router.post("/images/{image_id}/retire", response_model=ImageRetired)
def retire_image(found: VisibleImage, body: RetireChange,
                 user: Annotated[Principal, Scope("images:write")], st: State,
                 session: DbSession) -> ImageRetired:
    """Retire the image: hidden from the study's lists and from sponsors, kept for its
    profile's retention period and still in every audit export (``image.retire``: a reason
    and a signature where the profile asks; refused on a locked study)."""
    return _change(found, body, user, st, session, "image.retire", "retired")


@router.post("/images/{image_id}/unretire", response_model=ImageRetired)
def unretire_image(found: VisibleImage, body: RetireChange,
                   user: Annotated[Principal, Scope("images:write")], st: State,
                   session: DbSession) -> ImageRetired:
    """Restore a retired image that has not been purged (``image.unretire``)."""
    return _change(found, body, user, st, session, "image.unretire", "active")
