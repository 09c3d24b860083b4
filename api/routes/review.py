"""Annotations and findings on slides (issue 19).

Annotations are GeoJSON Features in level-0 pixel coordinates (point, rectangle as a
Polygon with ``properties.shape = "rectangle"``, polygon, freehand as a Polygon with
``properties.shape = "freehand"``) with a class and a note.
``POST /images/{id}/annotations`` takes a FeatureCollection: a Feature with an ``id`` that
names an annotation of this image adds its next version (``properties.deleted: true``
deletes it), one without adds a new annotation; it answers the Feature ids. QuPath's
GeoJSON is read too (``properties.classification.name`` is the class, ``name`` the note,
a one-point MultiPoint a point, a UUID id in QuPath's dashed spelling the annotation it
names) and written with ``?format=qupath`` (ids as dashed UUIDs), so an annotation exported
to QuPath, edited there and imported back is that annotation's next version.
Findings follow the controlled vocabulary of ``policies/vocabulary``.
Every write is one versioned row and one audit event (``api.audit.record``: a GLP study
needs a reason, a locked one refuses).

Sponsors see findings and annotations (geometry, class and note; the QuPath export too) only
with the ``view_findings`` capability, and then only once the study's peer review signed off
(``plexhub.policies.review.review_visibility``, ``api.peerreview.sees_review``); without,
the lists are empty. A published guided view still shows the annotation of a waypoint (the
portal's guide page): staff chose to show it. On a study whose pathologists are
assigned only the primary pathologist records findings; signed-off findings are locked.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview
from plexhub.api.db import newest_versions, utcnow
from plexhub.api.deps import (
    DbSession,
    Scope,
    State,
    VisibleImage,
    VisibleStudy,
)
from plexhub.api.models import Annotation, Finding, Image, Study
from plexhub.api.schemas import Strict
from plexhub.errors import InputError, NotFoundError, PermissionDeniedError
from plexhub.policies.access import Principal, is_staff
from plexhub.policies.review import Assignment, finding_decision
from plexhub.policies.vocabulary import Vocabulary, load_vocabulary

router = APIRouter(prefix="/api/v1", tags=["review"])
MAX_FEATURES = 1000
MAX_VERTICES = 10_000
_VOCAB: dict[str, Vocabulary] = {}


def vocabulary(st: State) -> Vocabulary:
    key = str(st.settings.profiles_dir or "")
    if key not in _VOCAB:
        _VOCAB[key] = load_vocabulary(st.settings.profiles_dir)
    return _VOCAB[key]


# ----------------------------------------------------------------------------- annotations

def _points(geometry: dict[str, Any]) -> list[list[float]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point" and isinstance(coords, list):
        return [coords]
    if kind == "MultiPoint" and isinstance(coords, list) and len(coords) == 1:
        return list(coords)  # QuPath writes a point annotation as a one-point MultiPoint
    if kind == "Polygon" and isinstance(coords, list) and len(coords) == 1 \
            and isinstance(coords[0], list):
        return list(coords[0])
    raise InputError(f"geometry {str(kind)[:20]!r}", "is not a Point or a one-ring Polygon")


def _check_geometry(geometry: dict[str, Any], image: Image) -> str:
    pts = _points(geometry)
    if len(pts) > MAX_VERTICES:
        raise InputError("polygon", f"has more than {MAX_VERTICES} vertices")
    levels = image.levels or [[1, 1]]
    h, w = int(levels[0][-2]), int(levels[0][-1])
    for p in pts:
        if not (isinstance(p, list) and len(p) == 2
                and all(isinstance(v, int | float) for v in p)):
            raise InputError("coordinates", "are not [x, y] pairs of numbers")
        if not (0 <= p[0] <= w and 0 <= p[1] <= h):
            raise InputError(f"point {p}", f"is outside the image (0-{w}, 0-{h} level-0 "
                             "pixels)")
    if geometry["type"] == "MultiPoint":
        geometry.update(type="Point", coordinates=pts[0])
    if geometry["type"] == "Point":
        return "point"
    if len(pts) < 4 or pts[0] != pts[-1]:
        raise InputError("polygon", "needs at least 3 vertices and a closed ring")
    return "polygon"


def _feature_in(raw: dict[str, Any], image: Image) -> tuple[str | None, dict[str, Any], str,
                                                              str, str, bool]:
    if raw.get("type") != "Feature" or not isinstance(raw.get("geometry"), dict):
        raise InputError("feature", 'is not a GeoJSON Feature ({"type": "Feature", ...})')
    props = raw.get("properties") or {}
    if not isinstance(props, dict):
        raise InputError("properties", "is not an object")
    geometry = {"type": raw["geometry"].get("type"),
                "coordinates": raw["geometry"].get("coordinates")}
    kind = _check_geometry(geometry, image)
    if kind == "polygon" and props.get("shape") in ("rectangle", "freehand"):
        kind = str(props["shape"])  # a freehand outline: a Polygon drawn by hand
    label = props.get("class")
    if label is None and isinstance(props.get("classification"), dict):  # QuPath
        label = props["classification"].get("name")
    note = props.get("note", props.get("name", ""))
    fid = raw.get("id")
    return (_annotation_id(fid) if fid else None, geometry, str(label or "")[:200],
            str(note or "")[:5000], kind, bool(props.get("deleted")))


def _annotation_id(fid: object) -> str:
    """A Feature's id as stored: ours are 32 hex digits; QuPath writes UUIDs with dashes
    (and our export gives them so), so a UUID in any spelling is its 32 hex digits."""
    text = str(fid)[:64]
    try:
        return uuid.UUID(text).hex
    except ValueError:
        return text[:32]


def _qupath_id(annotation_id: str) -> str:
    """An annotation's id as QuPath reads it: a UUID with dashes."""
    try:
        return str(uuid.UUID(annotation_id))
    except ValueError:
        return annotation_id


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]] = Field(max_length=MAX_FEATURES)
    reason: str = Field(default="", max_length=2000)


def _current(session: Session, model: Any, key: Any, image_id: str) -> list[Any]:
    return newest_versions(session, model, key, model.image_id == image_id)


def feature_out(a: Annotation, qupath: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"class": a.label, "note": a.note, "shape": a.kind,
                             "version": a.version, "author": a.author,
                             "updated_at": a.created_at.isoformat()}
    if qupath:
        props = {"objectType": "annotation", "name": a.note,
                 "classification": {"name": a.label} if a.label else None,
                 "isLocked": False}
        props = {k: v for k, v in props.items() if v is not None}
        return {"type": "Feature", "id": _qupath_id(a.annotation_id), "geometry": a.geometry,
                "properties": props}
    return {"type": "Feature", "id": a.annotation_id, "geometry": a.geometry,
            "properties": props}


@router.get("/images/{image_id}/annotations")
def list_annotations(found: VisibleImage, user: Annotated[Principal, Scope("read")],
                     session: DbSession,
                     format: Literal["plexhub", "qupath"] = "plexhub") -> dict[str, Any]:
    """The image's annotations (their newest versions) as a GeoJSON FeatureCollection in
    level-0 pixels; ``format=qupath`` in the shape QuPath imports. A sponsor gets an empty
    collection unless it may see the review (``peerreview.sees_review``)."""
    if not peerreview.sees_review(session, user, found.study):
        return {"type": "FeatureCollection", "features": []}
    rows = [a for a in _current(session, Annotation, Annotation.annotation_id, found.image.id)
            if not a.deleted]
    return {"type": "FeatureCollection",
            "features": [feature_out(a, format == "qupath") for a in rows]}


@router.post("/images/{image_id}/annotations", status_code=201)
def save_annotations(found: VisibleImage,
                     user: Annotated[Principal, Scope("images:write")],
                     session: DbSession, body: FeatureCollection) -> dict[str, list[str]]:
    """Add or edit annotations (see the module docstring); answers the Feature ids."""
    image, study = found
    ids = []
    for raw in body.features:
        fid, geometry, label, note, kind, deleted = _feature_in(raw, image)
        before = None
        if fid is not None:
            prev = session.scalar(select(Annotation).where(
                Annotation.annotation_id == fid, Annotation.image_id == image.id)
                .order_by(Annotation.version.desc()).limit(1))
            if prev is None:  # a QuPath id (a UUID) we never saw: a new annotation
                fid = None
            else:
                before = feature_out(prev)
                version = prev.version + 1
        if fid is None:
            fid, version = uuid.uuid4().hex, 1
        row = Annotation(annotation_id=fid, version=version, image_id=image.id,
                         study_id=study.id, kind=kind, geometry=geometry, label=label,
                         note=note, deleted=deleted, author=user.user, created_at=utcnow())
        session.add(row)
        action = "annotation.delete" if deleted else \
            ("annotation.edit" if before else "annotation.create")
        audit.record(session, user, action, "annotation", f"{fid}@{version}",
                     study_code=study.code, before=before, after=feature_out(row),
                     reason=body.reason)
        ids.append(fid)
    session.commit()
    return {"ids": ids}


# ----------------------------------------------------------------------------- findings

class FindingCreate(Strict):
    id: str | None = Field(default=None, max_length=32, description="edit this finding")
    tissue: str = Field(min_length=1, max_length=200)
    term: str = Field(min_length=1, max_length=200)
    severity: int = Field(ge=0, le=5)
    distribution: str = Field(default="", max_length=40)
    text: str = Field(default="", max_length=5000)
    annotations: list[str] = Field(default_factory=list, max_length=200)
    reason: str = Field(default="", max_length=2000)


def finding_out(f: Finding, signed: bool = False) -> dict[str, Any]:
    """``signed``: the study's peer review has signed its findings off."""
    return {"id": f.finding_id, "version": f.version, "image_id": f.image_id,
            "tissue": f.tissue, "term": f.term, "severity": f.severity,
            "distribution": f.distribution, "text": f.text, "annotations": f.annotations,
            "state": "signed" if signed else f.state, "author": f.author,
            "updated_at": f.created_at.isoformat()}


@router.get("/images/{image_id}/findings")
def list_findings(found: VisibleImage, user: Annotated[Principal, Scope("read")],
                  session: DbSession) -> list[dict[str, Any]]:
    """The slide's findings (newest versions) with, for staff, the peer reviewer's verdict
    (``review``); a sponsor with view_findings sees them once signed off, others none."""
    if not peerreview.sees_review(session, user, found.study):
        return []
    locked = peerreview.is_locked(session, found.study.id)
    rows = _current(session, Finding, Finding.finding_id, found.image.id)
    verdicts = peerreview.latest_verdicts(session, found.study.id) if is_staff(user) else {}
    out = []
    for f in rows:
        doc = finding_out(f, signed=locked)
        if is_staff(user):
            doc["review"] = peerreview.verdict_out(verdicts.get(f.finding_id), f)
        out.append(doc)
    return out


@router.post("/images/{image_id}/findings", status_code=201)
def save_finding(found: VisibleImage, user: Annotated[Principal, Scope("images:write")],
                 session: DbSession, st: State, body: FindingCreate) -> dict[str, Any]:
    """Record a finding (or, with ``id``, its next version); terms from the vocabulary."""
    image, study = found
    peerreview.refuse_if_locked(session, study)
    review = peerreview.review_of(session, study.id)
    allowed = finding_decision(user, None if review is None else Assignment(
        review.primary_pathologist, review.peer_reviewer), False)
    if not allowed:
        raise PermissionDeniedError(user.user, f"may not do this ({allowed.reason})")
    vocabulary(st).check(body.tissue, body.term, body.severity, body.distribution)
    known = {a.annotation_id for a in _current(session, Annotation, Annotation.annotation_id,
                                               image.id) if not a.deleted}
    unknown = [a for a in body.annotations if a not in known]
    if unknown:
        raise InputError(f"annotations {unknown[:3]}", "are not annotations of this image")
    before, version, fid = None, 1, uuid.uuid4().hex
    if body.id is not None:
        prev = session.scalar(select(Finding).where(
            Finding.finding_id == body.id, Finding.image_id == image.id)
            .order_by(Finding.version.desc()).limit(1))
        if prev is None:
            raise NotFoundError(f"finding {body.id}", "not found on this image")
        if prev.state == "signed":
            raise InputError(f"finding {body.id}", "is signed off and locked")
        before, version, fid = finding_out(prev), prev.version + 1, prev.finding_id
    row = Finding(finding_id=fid, version=version, image_id=image.id, study_id=study.id,
                  tissue=body.tissue, term=body.term, severity=body.severity,
                  distribution=body.distribution, text=body.text,
                  annotations=list(body.annotations), state="draft", author=user.user,
                  created_at=utcnow())
    session.add(row)
    audit.record(session, user, "finding.edit" if before else "finding.create", "finding",
                 f"{fid}@{version}", study_code=study.code, before=before,
                 after=finding_out(row), reason=body.reason)
    session.commit()
    return finding_out(row)


@router.get("/findings/vocabulary")
def get_vocabulary(user: Annotated[Principal, Scope("read")], st: State) -> dict[str, Any]:
    """The findings vocabulary: organs and their terms, severity grades, distributions."""
    return vocabulary(st).as_json()


FORMULA = ("=", "+", "-", "@")  # a cell starting so runs as a formula in a spreadsheet
SEND_COLUMNS = peerreview.SEND_COLUMNS


def _study_rows(session: Session, user: Principal, study: Study) -> list[dict[str, Any]]:
    """Staff: every finding; a sponsor with view_findings: the signed-off ones; others
    none."""
    if not peerreview.sees_review(session, user, study):
        return []
    return peerreview.export_rows(session, study, signed_only=not is_staff(user))


def _exported(session: Session, user: Principal, study: Study,
              format: Literal["json", "csv"]) -> list[dict[str, Any]]:
    """The rows of a findings export, the export audited (``finding.export``, with its
    format and row count) and committed before they leave."""
    rows = _study_rows(session, user, study)
    audit.record(session, user, "finding.export", "study", study.code, study_code=study.code,
                 after={"format": format, "rows": len(rows)})
    session.commit()
    return rows


@router.get("/studies/{code}/findings.json")
def study_findings_json(study: VisibleStudy, user: Annotated[Principal, Scope("read")],
                        session: DbSession) -> list[dict[str, Any]]:
    """The study's findings, one row per finding in a SEND MI-domain-like layout (audited
    as ``finding.export``)."""
    return _exported(session, user, study, "json")


@router.get("/studies/{code}/findings.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def study_findings_csv(study: VisibleStudy, user: Annotated[Principal, Scope("read")],
                       session: DbSession) -> Response:
    """The same rows as CSV (columns: STUDYID, USUBJID, MISPEC, MISTRESC, MISEV, MIDISTR,
    MIORRES, MIIMAGE, MIEVAL (pathologist), MIPEER (peer reviewer), MIRVSTAT (the slide's
    review state), MISTAT, MISIGN (the sign-offs)), for a LIMS to import."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, SEND_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in _exported(session, user, study, "csv"):
        # such a cell is written as text
        writer.writerow({k: "'" + v if isinstance(v, str) and v[:1] in FORMULA else v
                         for k, v in row.items()})
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{study.code}-findings.csv"'})
