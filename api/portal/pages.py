"""The sponsor portal's pages: my studies, a study (images with thumbnails, de-identified
LIMS metadata, published notebooks), the image viewer (OpenSeadragon on the DeepZoom
endpoint) and a published notebook (sanitized HTML, version switcher).

Every page needs a session; a study the caller may not see is the same 404 page as one
that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlencode

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
from plexhub.api.portal import viewer
from plexhub.api.portal.web import PortalRoute, not_found, page
from plexhub.api.routes.notebooks import study_notebooks, versions_of
from plexhub.errors import NotFoundError
from plexhub.policies.access import Capability, Principal, can_see_study, is_staff

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


def slide_filter(request: Request) -> dict[str, str]:
    """The slide list's filter from the query (animal_id, dose_group, tissue), non-empty."""
    return {key: value[:200] for key, _ in viewer.FILTERS
            if (value := request.query_params.get(key, "").strip())}


def filtered(rows: list[tuple[Image, dict[str, Any]]], chosen: dict[str, str]
             ) -> list[tuple[Image, dict[str, Any]]]:
    """The slides whose (visible) metadata matches every chosen value."""
    return [(im, meta) for im, meta in rows
            if all(str(meta.get(k, "")) == v for k, v in chosen.items())]


def visible_rows(session: Session, user: Principal, study: Study
                 ) -> list[tuple[Image, dict[str, Any]]]:
    labels = can_view_labels(session, user, study)
    return [(im, image_metadata(im.metadata_, user, study, labels))
            for im in study_images(session, study)]


@router.get("/studies/{code}")
def study_page(request: Request,
               found: Annotated[PortalStudy, Depends(portal_study_in_path)],
               user: CurrentUser, session: DbSession) -> Response:
    study, images_ok, notebooks_ok = found
    rows = visible_rows(session, user, study) if images_ok else []
    chosen = slide_filter(request)
    options = {key: sorted({str(m[key]) for _, m in rows if m.get(key) not in (None, "")})
               for key, _ in viewer.FILTERS}
    notebooks = study_notebooks(session, study) if notebooks_ok else []
    return page(request, "study.html", {
        "study": study, "images": filtered(rows, chosen), "all_count": len(rows),
        "filters": [(key, label, options[key], chosen.get(key, ""))
                    for key, label in viewer.FILTERS if options[key]],
        "query": urlencode(chosen), "notebooks": notebooks, "images_ok": images_ok}, user)


@router.get("/images/{image_id}")
def image_page(request: Request, found: VisibleImage, user: CurrentUser,
               session: DbSession) -> Response:
    image, study = found
    chosen = slide_filter(request)
    rows = visible_rows(session, user, study)
    metadata = next(m for im, m in rows if im.id == image.id)
    ids = [im.id for im, _ in filtered(rows, chosen)] or [image.id]
    if image.id not in ids:  # opened from outside the filter: the whole study
        chosen, ids = {}, [im.id for im, _ in rows]
    at = ids.index(image.id)
    nxt = session.get(Image, ids[at + 1]) if at + 1 < len(ids) else None
    ready = image.status == "ready"
    model = viewer.viewer_model(session, user, image, study,
                                request.query_params.get("preset") or None) if ready else None
    following = None
    if nxt is not None and nxt.status == "ready":
        following = {"id": nxt.id, "preset": viewer.default_ref(session, nxt),
                     **asdict(viewer.geometry(nxt))}
    return page(request, "image.html", {
        "image": image, "study": study, "metadata": metadata, "staff": is_staff(user),
        "facts": viewer.facts(metadata), "model": model,
        "next_json": json.dumps(following).replace("<", "\\u003c"),
        "query": urlencode(chosen), "q": f"?{urlencode(chosen)}" if chosen else "",
        "prev_id": ids[at - 1] if at > 0 else None,
        "next_id": nxt.id if nxt is not None else None,
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
