"""Ingest (single and batch), images and conversion jobs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview
from plexhub.api.db import utcnow
from plexhub.api.deidentify import can_view_labels, image_metadata, job_view
from plexhub.api.deps import (
    CurrentUser,
    DbSession,
    DownloadableImage,
    Scope,
    State,
    VisibleImage,
    VisibleJob,
    VisibleStudy,
    grants_of,
    study_images,
)
from plexhub.api.ingest import fingerprint, list_folder, read_manifest, resolve_source
from plexhub.api.jobs import image_ids, job_public
from plexhub.api.models import Image, Job, JobState, Study
from plexhub.api.schemas import (
    BatchRequest,
    ChannelPublic,
    ImagePublic,
    IngestAccepted,
    IngestRequest,
    JobPublic,
)
from plexhub.errors import InputError
from plexhub.policies.access import Capability, Principal, can_see_study
from plexhub.settings import Settings

router = APIRouter(prefix="/api/v1")
JOBS_LISTED = 100  # unfinished jobs GET /jobs lists at most


def _image_public(image: Image, code: str,
                  metadata: dict[str, Any] | None = None,
                  review_state: str | None = None) -> ImagePublic:
    """``metadata``: the de-identified LIMS metadata for the caller (default: all of it)."""
    return ImagePublic(
        id=image.id, study=code, name=image.name, status=image.status,
        source_format=image.source_format, ngff_version=image.ngff_version, axes=image.axes,
        levels=[list(lv) for lv in image.levels or []], dtype=image.dtype,
        physical_sizes=image.physical_sizes or {},
        channels=[ChannelPublic(**c) for c in image.channels or []],
        metadata=(image.metadata_ or {}) if metadata is None else metadata,
        checksum=image.checksum, tier=image.tier, review_state=review_state,
        retired_at=image.retired_at, purged_at=image.purged_at)


def ingest_one(session: Session, settings: Settings, study: Study, user: Principal,
               body: IngestRequest) -> tuple[IngestAccepted, str | None]:
    """Register ``body.source`` in ``study``; returns the answer and a job id to start."""
    from plexhub.ome_pipeline import open_source

    source = resolve_source(body.source, settings, user.user)
    fp = fingerprint(source)
    existing = session.scalars(select(Image).where(Image.study_id == study.id,
                                                   Image.fingerprint == fp)
                               .order_by(Image.series_index)).all()
    if existing:  # the same content again: idempotent
        job_id = existing[0].job_id or ""
        return IngestAccepted(job_id=job_id, image_id=existing[0].id,
                              image_ids=[i.id for i in existing], existing=True), None
    doc = open_source(source)  # metadata only; bad input fails here, before any job
    meta = body.metadata.model_dump(exclude_none=True)
    panel = body.metadata.stain_panel or {}
    labels = {ch.label for im in doc.images for ch in im.channels}
    unknown = sorted(set(panel) - labels)
    if unknown:
        raise InputError(f"stain_panel of {body.source}",
                         f"names channels the file does not have: {', '.join(unknown)}",
                         f"the file's channels are: {', '.join(sorted(labels))}")
    job = Job(id=uuid.uuid4().hex, study_id=study.id, source_uri=source, fingerprint=fp,
              params={"ngff_version": body.ngff_version} if body.ngff_version else {},
              created_by=user.user)
    session.add(job)
    ids = []
    for i, im in enumerate(doc.images):
        image = Image(id=uuid.uuid4().hex, study_id=study.id, name=im.name, series_index=i,
                      source_uri=source, source_format=doc.format, fingerprint=fp,
                      job_id=job.id, metadata_=meta,
                      channels=[{"index": c, "label": ch.label, "marker": panel.get(ch.label),
                                 "color": ch.color or "FFFFFF"}
                                for c, ch in enumerate(im.channels)])
        session.add(image)
        ids.append(image.id)
    audit.record(session, user, "image.ingest", "job", job.id, study_code=study.code,
                 after={"source": body.source, "images": ids, "metadata": meta})
    return IngestAccepted(job_id=job.id, image_id=ids[0], image_ids=ids), job.id


@router.post("/studies/{code}/images", response_model=IngestAccepted, status_code=202,
             tags=["images"])
def ingest(body: IngestRequest, study: VisibleStudy,
           user: Annotated[Principal, Scope("images:write")], st: State,
           session: DbSession) -> IngestAccepted:
    """Register a source file; the conversion runs as a job (poll ``/jobs/{job_id}``)."""
    answer, job_id = ingest_one(session, st.settings, study, user, body)
    session.commit()
    if job_id:
        st.jobs.submit(job_id)
    return answer


def _manifest_item(manifest: str, row: dict[str, Any]) -> IngestRequest:
    """One manifest row as a request, or an InputError naming the row and its first
    problem on one line."""
    try:
        return IngestRequest.model_validate({"source": row["source"],
                                             "metadata": row["metadata"]})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "row"
        raise InputError(f"manifest {manifest} {row['where']}",
                         f"{where}: {err.get('msg', 'is invalid')}") from exc


@router.post("/studies/{code}/images:batch", response_model=list[IngestAccepted],
             status_code=202, tags=["images"])
def ingest_batch(body: BatchRequest, study: VisibleStudy,
                 user: Annotated[Principal, Scope("images:write")], st: State,
                 session: DbSession) -> list[IngestAccepted]:
    """Ingest every source in a folder, in a CSV/JSON manifest, or listed inline.

    All entries are checked first; nothing is registered unless every entry is valid."""
    items: list[IngestRequest] = list(body.items or [])
    if body.folder:
        items += [IngestRequest(source=s) for s in list_folder(resolve_source(
            body.folder, st.settings, user.user))]
    if body.manifest:
        rows = read_manifest(resolve_source(body.manifest, st.settings, user.user),
                             body.manifest)
        items += [_manifest_item(body.manifest, row) for row in rows]
    if not items:
        raise InputError("batch", "names no sources", "give folder, manifest or items")
    answers, jobs = [], []
    for item in items:
        answer, job_id = ingest_one(session, st.settings, study, user, item)
        answers.append(answer)
        if job_id:
            jobs.append(job_id)
        session.flush()
    session.commit()
    for job_id in jobs:
        st.jobs.submit(job_id)
    return answers


@router.get("/studies/{code}/images", response_model=list[ImagePublic], tags=["images"])
def list_images(study: VisibleStudy, user: CurrentUser, session: DbSession,
                include_retired: bool = Query(
                    default=False, description="staff: list retired (and purged) images "
                    "too")) -> list[ImagePublic]:
    """The study's images; retired ones only for staff who ask (``include_retired``)."""
    rows = study_images(session, user, study, include_retired)
    labels = can_view_labels(session, user, study)
    states = _review_states(session, user, study)
    return [_image_public(i, study.code, image_metadata(i.metadata_, user, study, labels),
                          states.get(i.id)) for i in rows]


def _review_states(session: Session, user: Principal, study: Study) -> dict[str, str]:
    """The slides' peer-review states, for staff and sponsors with view_findings."""
    if not can_see_study(user, grants_of(session, study.id), utcnow(),
                         Capability.VIEW_FINDINGS):
        return {}
    return dict(peerreview.slide_states(session, study.id))


@router.get("/images/{image_id}", response_model=ImagePublic, tags=["images"])
def get_image(found: VisibleImage, user: CurrentUser, session: DbSession) -> ImagePublic:
    """The image; sponsors get de-identified metadata (see ``plexhub.api.deidentify``)."""
    image, study = found
    labels = can_view_labels(session, user, study)
    return _image_public(image, study.code,
                         image_metadata(image.metadata_, user, study, labels),
                         _review_states(session, user, study).get(image.id))


@router.get("/images/{image_id}/original", tags=["images"], response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_original(image_id: str, found: DownloadableImage, user: CurrentUser, st: State,
                      session: DbSession) -> FileResponse:
    """The source file as it was ingested (staff; sponsors need the ``download``
    capability). Its path comes from the catalog and must still lie in an ingest root."""
    image, study = found
    # in an ingest root, or in the own folder of whoever ingested it (ingest_user_root)
    creator = session.scalar(select(Job.created_by).where(Job.id == image.job_id)) \
        if image.job_id else None
    source = resolve_source(image.source_uri, st.settings, creator)
    if "://" in source or not Path(source).is_file():
        raise InputError(f"image {image_id}", "has no single original file to download",
                         "read its store at …/zarr/ instead")
    audit.record(session, user, "image.download", "image", image_id, study_code=study.code)
    session.commit()
    return FileResponse(source, media_type="application/octet-stream",
                        filename=Path(source).name)


@router.get("/jobs", response_model=list[JobPublic], tags=["jobs"])
def list_jobs(user: Annotated[Principal, Scope("read")], session: DbSession) -> list[Any]:
    """The unfinished jobs (queued, running) of the studies the caller may see, oldest first
    (at most :data:`JOBS_LISTED`): what JupyterLab's status bar shows."""
    now = utcnow()
    rows = session.execute(select(Job, Study).join(Study, Study.id == Job.study_id)
                           .where(Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
                           .order_by(Job.created_at, Job.id)).all()
    visible: dict[int, bool] = {}
    jobs = []
    for job, study in rows:
        if study.id not in visible:
            visible[study.id] = bool(can_see_study(user, grants_of(session, study.id), now))
        if visible[study.id]:
            jobs.append(job_view(job_public(session, job), user))
            if len(jobs) >= JOBS_LISTED:
                break
    return jobs


@router.get("/jobs/{job_id}", response_model=JobPublic, tags=["jobs"])
def get_job(job: VisibleJob, user: CurrentUser, session: DbSession) -> Any:
    return job_view(job_public(session, job), user)


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic, tags=["jobs"])
def cancel_job(job: VisibleJob, user: Annotated[Principal, Scope("jobs:write")], st: State,
               session: DbSession) -> Any:
    return job_public(session, st.jobs.cancel(job.id, user))


@router.post("/jobs/{job_id}/retry", response_model=JobPublic, tags=["jobs"])
def retry_job(job: VisibleJob, user: Annotated[Principal, Scope("jobs:write")], st: State,
              session: DbSession) -> Any:
    return job_public(session, st.jobs.retry(job.id, user))


__all__ = ["image_ids", "router"]
