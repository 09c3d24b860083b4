"""Storage tiers: move an image's store to the archive root and back (``api/tiermove.py``).

- ``POST /images/{id}/tier`` (staff with ``images:write``): ``archive`` or ``hot``, with the
  reason the study's profile asks for (GLP: always) and a signature where it asks for one.
  A locked study takes it when its profile says ``tier_moves_when_locked`` (both built-in
  profiles do: the bytes do not change, they are verified after the copy); an open study's
  images are archived only where the profile says ``archive_before_lock`` (GLP does not).
- ``POST /images/{id}/restore``: restore on demand, for staff and for a sponsor holding a grant
  on the study (what a sponsor gets with the 409 of an archived image's tiles); it changes no
  data, so a locked study takes it too. Asking again while it is restored answers the same
  job.

Both answer 202 with the job (poll ``GET /jobs/{job_id}``); every step is audited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body
from pydantic import AliasChoices, BaseModel, Field

from plexhub.api import requestctx, signatures, tiermove
from plexhub.api.deps import DbSession, Scope, State, VisibleImage
from plexhub.api.schemas import CREDENTIAL_HELP, Strict
from plexhub.policies.access import Principal

router = APIRouter(prefix="/api/v1", tags=["images"])


class TierChange(Strict):
    tier: Literal["archive", "hot"] = Field(
        description="archive: move the store to the archive root (PLEXHUB_ARCHIVE_ROOT); "
        "hot: back to PLEXHUB_STORE_ROOT")
    reason: str = Field(default="", max_length=2000,
                        description="the reason for the move (required by GLP)")
    credential: str | None = Field(
        default=None, max_length=1000, validation_alias=AliasChoices("credential", "signature"),
        description="the electronic signature's re-authentication, where the profile asks "
        f"for one for image.tier: {CREDENTIAL_HELP}")


class RestoreRequest(Strict):
    reason: str = Field(default="", max_length=2000,
                        description="why it is needed (recorded in the audit trail)")


class TierAccepted(BaseModel):
    job_id: str = Field(description="the tier move's job (GET /api/v1/jobs/{job_id})")
    image_ids: list[str] = Field(description="the images that move (one store holds every "
                                 "series of a source file)")
    tier: str = Field(description="the image's tier now: archiving or restoring")


@router.post("/images/{image_id}/tier", response_model=TierAccepted, status_code=202)
def change_tier(found: VisibleImage, body: TierChange,
                user: Annotated[Principal, Scope("images:write")], st: State,
                session: DbSession) -> TierAccepted:
    """Move the image's store to the archive root or back to hot storage (a job)."""
    image, study = found
    reason = body.reason.strip() or requestctx.current().reason
    signatures.sign_if_required(
        session, signatures.verifier_of(st.settings, st.tokens), user, body.credential,
        study_code=study.code, action="image.tier", entity_type="image", entity_id=image.id,
        content={"image": image.id, "tier": body.tier, "root": image.storage_root,
                 "checksum": image.checksum}, reason=reason)
    job = tiermove.queue_move(session, st.settings, image, study, body.tier, user, reason)
    session.commit()
    st.jobs.submit(job.id)
    return TierAccepted(job_id=job.id, image_ids=list(job.params["images"]), tier=image.tier)


@router.post("/images/{image_id}/restore", response_model=TierAccepted, status_code=202)
def restore(found: VisibleImage, user: Annotated[Principal, Scope("read")], st: State,
            session: DbSession,
            body: Annotated[RestoreRequest | None, Body()] = None) -> TierAccepted:
    """Restore an archived image to hot storage on demand (a job); its tiles, DZI and raw
    zarr answer again once its tier is ``hot``."""
    image, study = found
    if image.tier == "restoring":  # asked again: the same job
        running = tiermove.active_job(session, image)
        if running is not None:
            return TierAccepted(job_id=running.id, image_ids=list(running.params["images"]),
                                tier=image.tier)
    reason = (body.reason.strip() if body else "") or requestctx.current().reason
    job = tiermove.queue_move(session, st.settings, image, study, "hot", user, reason,
                              action="image.restore")
    session.commit()
    st.jobs.submit(job.id)
    return TierAccepted(job_id=job.id, image_ids=list(job.params["images"]), tier=image.tier)
