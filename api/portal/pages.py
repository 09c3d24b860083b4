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

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview
from plexhub.api import notebooks as nbs
from plexhub.api.db import newest_versions, utcnow
from plexhub.api.deidentify import can_view_labels, image_metadata
from plexhub.api.deps import (
    CurrentUser,
    DbSession,
    OwnView,
    Scope,
    VisibleGuide,
    VisibleImage,
    VisibleNotebook,
    authorizes,
    grants_of,
    visible_image,
)
from plexhub.api.models import Annotation, Finding, Image, Study
from plexhub.api.portal import viewer
from plexhub.api.portal.web import PortalRoute, base, not_found, page
from plexhub.api.routes.guides import study_guides
from plexhub.api.routes.notebooks import study_notebooks, versions_of
from plexhub.api.routes.viewing import views_of
from plexhub.errors import NotFoundError
from plexhub.policies.access import Capability, Principal, can_see_study, has_scope, is_staff
from plexhub.policies.profiles import profile_of, reason_decision

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
    """The study's images the portal lists: retired ones are not (api/retention.py)."""
    return list(session.scalars(select(Image).where(Image.study_id == study.id,
                                                    Image.retired_at.is_(None))
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
    """Each slide and its metadata as the caller may see it; for staff with its review
    state (``review_state``, see :func:`viewer.review_states`)."""
    labels = can_view_labels(session, user, study)
    rows = [(im, image_metadata(im.metadata_, user, study, labels))
            for im in study_images(session, study)]
    if is_staff(user):
        states = viewer.review_states(session, study)
        for im, meta in rows:
            meta["review_state"] = states.get(im.id, viewer.NOT_REVIEWED)
    return rows


def needs_reason(session: Session, study: Study, action: str) -> bool:
    """Whether the study's compliance profile asks for a reason for ``action``."""
    profile = profile_of(audit.profiles(session), study.profile)
    return not reason_decision(profile, action, "")


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
    guides = study_guides(session, study, user) if images_ok else []
    return page(request, "study.html", {"guides": guides,
        "study": study, "images": filtered(rows, chosen), "all_count": len(rows),
        "filters": [(key, label, options[key], chosen.get(key, ""))
                    for key, label in viewer.FILTERS if options[key]],
        "query": urlencode(chosen), "notebooks": notebooks, "images_ok": images_ok}, user)


def signed_review(session: Session, user: Principal, image: Image,
                  study: Study) -> dict[str, list[dict[str, Any]]] | None:
    """A sponsor's read-only view of the slide's review: its findings and annotations
    (class, note, shape), once it may see them (``peerreview.sees_review``: view_findings
    and a signed-off review); None otherwise, and for staff (they have the review tools)."""
    if is_staff(user) or not peerreview.sees_review(session, user, study):
        return None
    from plexhub.policies.vocabulary import load_vocabulary

    grades = load_vocabulary().severity
    findings = newest_versions(session, Finding, Finding.finding_id,
                               Finding.image_id == image.id)
    annotations = newest_versions(session, Annotation, Annotation.annotation_id,
                                  Annotation.image_id == image.id)
    return {"findings": [{"tissue": f.tissue, "term": f.term,
                          "severity": f"{f.severity} ({grades.get(f.severity, '')})"
                          if f.severity else "", "distribution": f.distribution,
                          "text": f.text} for f in findings],
            "annotations": [{"class": a.label, "note": a.note, "shape": a.kind}
                            for a in annotations if not a.deleted]}


@router.get("/images/{image_id}")
def image_page(request: Request, found: VisibleImage, user: CurrentUser,
               session: DbSession) -> Response:
    image, study = found
    if image.retired_at is not None:  # staff open a retired image through the API only
        raise NotFoundError(f"image {image.id}", "not found")
    ready = image.status == "ready"
    model = viewer.viewer_model(session, user, image, study,
                                request.query_params.get("preset") or None) if ready else None
    chosen = slide_filter(request)
    rows = visible_rows(session, user, study)
    metadata = next(m for im, m in rows if im.id == image.id)
    ids = [im.id for im, _ in filtered(rows, chosen)] or [image.id]
    if image.id not in ids:  # opened from outside the filter: the whole study
        chosen, ids = {}, [im.id for im, _ in rows]
    at = ids.index(image.id)
    nxt = session.get(Image, ids[at + 1]) if at + 1 < len(ids) else None
    unreviewed = None
    if is_staff(user):  # the next slide not reviewed yet, after this one (wrapping)
        states = {im.id: m.get("review_state") for im, m in rows}
        later = ids[at + 1:] + ids[:at]
        unreviewed = next((i for i in later if states.get(i) == viewer.NOT_REVIEWED), None)
    following = None
    if nxt is not None and nxt.status == "ready":
        following = {"id": nxt.id, "preset": viewer.default_ref(session, nxt),
                     **asdict(viewer.geometry(nxt))}
    q = f"?{urlencode(chosen)}" if chosen else ""
    response = page(request, "image.html", {
        "image": image, "study": study, "metadata": metadata, "staff": is_staff(user),
        "facts": viewer.facts(metadata), "model": model,
        "signed_review": signed_review(session, user, image, study),
        "next_json": json.dumps(following).replace("<", "\\u003c"),
        "query": urlencode(chosen), "q": q,
        "prev_url": f"{base(request)}/portal/images/{ids[at - 1]}{q}" if at > 0 else "",
        "next_url": f"{base(request)}/portal/images/{nxt.id}{q}" if nxt is not None else "",
        "view": "",
        "prev_id": ids[at - 1] if at > 0 else None,
        "next_id": nxt.id if nxt is not None else None,
        "position": at + 1, "count": len(ids), "unreviewed_id": unreviewed,
        "views": views_of(session, user, image.id) if ready else [],
        "save_preset": bool(has_scope(user, "presets:write")),
        "preset_reason": needs_reason(session, study, "preset.save"),
        "others": [(im.id, " · ".join([im.name or im.id, *(str(m[k]) for k in (
                       "animal_id", "dose_group") if m.get(k) not in (None, ""))]))
                   for im, m in rows if im.id != image.id and im.status == "ready"]}, user)
    return response


@router.get("/views/{view_id}")
def saved_view(request: Request, found: OwnView) -> Response:
    """Reopen one of the caller's saved views: the image page with its settings."""
    view = found.view.view
    query = {k: str(view[k]) for k in ("preset", "c", "x", "y", "zoom") if view.get(k)}
    url = f"{base(request)}/portal/images/{found.image.id}"
    return RedirectResponse(f"{url}?{urlencode(query)}" if query else url, status_code=302,
                            headers={"Cache-Control": "no-store"})


def side(session: Session, image: Image) -> dict[str, Any] | None:
    """One side of the comparison: what compare.js needs to open the image."""
    if image.status != "ready":
        return None
    return {"id": image.id, "name": image.name or image.id,
            "preset": viewer.default_ref(session, image), **asdict(viewer.geometry(image))}


@router.get("/images/{image_id}/compare")
def compare_page(request: Request, found: VisibleImage, user: CurrentUser,
                 session: DbSession,
                 other: Annotated[str, Query(alias="with", max_length=32)]) -> Response:
    """Two slides side by side, their pan and zoom kept in step (e.g. vehicle vs high dose);
    the second one (``with``, named in the query) is checked here."""
    left, study = found
    right, _ = visible_image(session, user, other)
    sides = [side(session, left), side(session, right)]
    if None in sides:
        raise NotFoundError("comparison", "needs two converted images")
    rows = {im.id: m for im, m in visible_rows(session, user, study)} \
        if left.study_id == right.study_id else {}
    return page(request, "compare.html", {
        "study": study, "left": left, "right": right,
        "facts": [viewer.facts(rows.get(left.id, {})), viewer.facts(rows.get(right.id, {}))],
        "sides_json": json.dumps(sides).replace("<", "\\u003c")}, user)


@router.get("/guides/{guide_id}")
def guide_page(request: Request, found: VisibleGuide, user: CurrentUser,
               session: DbSession, step: int = Query(default=1, ge=1)) -> Response:
    """A guided view, one waypoint at a time (next / previous, or n / p)."""
    guide, study = found
    points = guide.waypoints
    at = min(step, len(points)) - 1
    point = points[at]
    image = session.get(Image, point["image_id"])
    if image is None or image.status != "ready" or image.retired_at is not None:
        raise NotFoundError(f"guide {guide.id}", "has an image that is not available")
    model = viewer.viewer_model(session, user, image, study, point.get("preset") or None)
    view = urlencode({k: f"{point[k]:g}" if isinstance(point[k], float) else str(point[k])
                      for k in ("c", "x", "y", "zoom") if point.get(k)})
    shape = None
    if point.get("annotation_id"):
        row = session.scalar(select(Annotation).where(
            Annotation.annotation_id == point["annotation_id"],
            Annotation.image_id == image.id).order_by(Annotation.version.desc()).limit(1))
        if row is not None and not row.deleted:
            shape = {"geometry": row.geometry, "class": row.label, "note": row.note}
    here = f"{base(request)}/portal/guides/{guide.id}"
    metadata = next((m for im, m in visible_rows(session, user, study) if im.id == image.id),
                    {})
    return page(request, "guide.html", {
        "guide": guide, "study": study, "image": image, "model": model, "point": point,
        "step": at + 1, "steps": len(points), "view": view, "facts": viewer.facts(metadata),
        "prev_url": f"{here}?step={at}" if at > 0 else "",
        "next_url": f"{here}?step={at + 2}" if at + 1 < len(points) else "",
        "shape_json": json.dumps(shape).replace("<", "\\u003c"),
        "next_json": "null"}, user)


@router.get("/notebooks/{notebook_id}")
def notebook_page(request: Request, found: VisibleNotebook, user: CurrentUser,
                  session: DbSession) -> Response:
    row, study = found
    fragment = nbs.CACHE.fragment(row.content_hash, row.ipynb)
    return page(request, "notebook.html", {
        "notebook": row, "study": study, "fragment": fragment,
        "versions": versions_of(session, study.id, row.name)}, user)


__all__ = ["not_found", "router"]
