"""The sponsor portal's pages: my studies, a study (images with thumbnails, de-identified
LIMS metadata, published notebooks), the image viewer (OpenSeadragon on the DeepZoom
endpoint) and a published notebook (sanitized HTML, version switcher).

Every page needs a session; a study the caller may not see is the same 404 page as one
that does not exist.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import notebooks as nbs
from plexhub.api.db import utcnow
from plexhub.api.deidentify import can_view_labels, image_metadata
from plexhub.api.deps import (
    CurrentUser,
    DbSession,
    Scope,
    VisibleImage,
    VisibleNotebook,
    authorizes,
    grants_of,
)
from plexhub.api.models import Image, Study
from plexhub.api.portal.web import PortalRoute, not_found, page
from plexhub.api.routes.notebooks import study_notebooks, versions_of
from plexhub.errors import NotFoundError
from plexhub.policies.access import Capability, Principal, can_see_study

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


def study_access(session: Session, user: Principal, study: Study) -> tuple[bool, bool]:
    """(may see its images, may see its published notebooks)."""
    grants, now = grants_of(session, study.id), utcnow()
    return (bool(can_see_study(user, grants, now, Capability.VIEW)),
            bool(can_see_study(user, grants, now, Capability.VIEW_NOTEBOOKS)))


def portal_study(session: Session, user: Principal, code: str) -> tuple[Study, bool, bool]:
    study = session.scalar(select(Study).where(Study.code == code))
    if study is None:
        raise NotFoundError(f"study {code}", "not found")
    images, notebooks = study_access(session, user, study)
    if not (images or notebooks):
        raise NotFoundError(f"study {code}", "not found")
    return study, images, notebooks


class PortalStudy(NamedTuple):
    """A study page's study and what of it the caller may see."""

    study: Study
    images: bool
    notebooks: bool


@authorizes("resource", "study {code}, its images or notebooks visible to the caller")
def portal_study_in_path(code: str, user: CurrentUser, session: DbSession) -> PortalStudy:
    return PortalStudy(*portal_study(session, user, code))


def study_images(session: Session, study: Study) -> list[Image]:
    return list(session.scalars(select(Image).where(Image.study_id == study.id)
                                .order_by(Image.created_at, Image.series_index)).all())


@router.get("/")
def my_studies(request: Request, user: Annotated[Principal, Scope("read")],
               session: DbSession) -> Response:
    studies = [s for s in session.scalars(select(Study).order_by(Study.code))
               if any(study_access(session, user, s))]
    return page(request, "studies.html", {"studies": studies}, user)


@router.get("/studies/{code}")
def study_page(request: Request,
               found: Annotated[PortalStudy, Depends(portal_study_in_path)],
               user: CurrentUser, session: DbSession) -> Response:
    study, images_ok, notebooks_ok = found
    images = study_images(session, study) if images_ok else []
    labels = can_view_labels(session, user, study)
    rows = [(im, image_metadata(im.metadata_, user, study, labels)) for im in images]
    notebooks = study_notebooks(session, study) if notebooks_ok else []
    return page(request, "study.html", {"study": study, "images": rows,
                                        "notebooks": notebooks, "images_ok": images_ok}, user)


@router.get("/images/{image_id}")
def image_page(request: Request, found: VisibleImage, user: CurrentUser,
               session: DbSession) -> Response:
    image, study = found
    ids = [im.id for im in study_images(session, study)]
    at = ids.index(image.id)
    labels = can_view_labels(session, user, study)
    return page(request, "image.html", {
        "image": image, "study": study,
        "metadata": image_metadata(image.metadata_, user, study, labels),
        "prev_id": ids[at - 1] if at > 0 else None,
        "next_id": ids[at + 1] if at + 1 < len(ids) else None,
        "position": at + 1, "count": len(ids)}, user)


@router.get("/notebooks/{notebook_id}")
def notebook_page(request: Request, found: VisibleNotebook, user: CurrentUser,
                  session: DbSession) -> Response:
    row, study = found
    fragment = nbs.CACHE.fragment(row.content_hash, row.ipynb)
    return page(request, "notebook.html", {
        "notebook": row, "study": study, "fragment": fragment,
        "versions": versions_of(session, study.id, row.name)}, user)


__all__ = ["not_found", "router"]
