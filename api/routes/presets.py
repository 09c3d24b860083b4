"""Render presets: save named versions, list, apply (bind + validate), auto-contrast, and
import/export as NGFF omero, OMERO webgateway strings, OMERO render YAML and napari layers."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from plexhub.api import preset_store
from plexhub.api.deps import (
    CurrentUser,
    DbSession,
    Scope,
    VisibleImage,
    VisiblePreset,
    require,
    visible_image,
    visible_study,
)
from plexhub.api.models import Preset, PresetVersion
from plexhub.api.schemas import (
    ApplyRequest,
    ImportRequest,
    PresetDocument,
    PresetFormat,
    PresetSaved,
    PresetSummary,
    SharedPresetCreate,
)
from plexhub.errors import InputError, NotFoundError
from plexhub.policies.access import Principal
from plexhub.presets import RenderPreset, bind, parse_preset

router = APIRouter(prefix="/api/v1", tags=["presets"])


def _split_body(body: dict[str, Any]) -> tuple[RenderPreset, str | None]:
    doc = dict(body)
    visibility = doc.pop("visibility", None)
    if visibility is not None and visibility not in preset_store.VISIBILITIES:
        raise InputError(f"visibility {str(visibility)[:40]!r}",
                         "is not private, study or public")
    preset = parse_preset(doc)
    if not preset.name.strip():
        raise InputError("preset", "needs a name", 'add "name": "..." to the document')
    return preset, visibility


def _summary(session: Session, p: Preset) -> PresetSummary:
    latest = preset_store.latest_version(session, p.id)
    return PresetSummary(id=p.id, name=p.name, scope=p.scope, target=p.target, owner=p.owner,
                         visibility=p.visibility, is_default=p.is_default,
                         latest_version=latest.version if latest else 0)


@router.post("/images/{image_id}/presets", response_model=PresetSaved, status_code=201)
def save_image_preset(found: VisibleImage, user: Annotated[Principal, Scope("presets:write")],
                      session: DbSession, body: dict[str, Any] = Body(...)) -> PresetSaved:
    """Save a preset for this image; the same name again makes the next version."""
    image, study = found
    preset, visibility = _split_body(body)
    bound = bind(preset, preset_store.image_channels(image))
    row, version = preset_store.save_version(
        session, user, name=preset.name, scope="image", target=image.id, study=study,
        document=preset, visibility=visibility)
    session.commit()
    return PresetSaved(id=row.id, version=version.version, content_hash=version.content_hash,
                       warnings=list(bound.warnings))


@router.post("/presets", response_model=PresetSaved, status_code=201)
def save_shared_preset(body: SharedPresetCreate,
                       user: Annotated[Principal, Scope("presets:write")],
                       session: DbSession) -> PresetSaved:
    """A panel preset (bound by marker, for any image) or a study-wide preset."""
    # the study is named in the body: checked here
    study = visible_study(session, user, body.target) if body.scope == "study" else None
    preset = parse_preset(body.document)
    if not preset.name.strip():
        raise InputError("preset", "needs a name")
    if body.scope == "panel" and preset.index_bound:
        raise InputError(f"panel preset {preset.name!r}", "must name channels by marker or "
                         "label", "panel presets apply to images with other channel orders")
    row, version = preset_store.save_version(
        session, user, name=preset.name, scope=body.scope, target=body.target, study=study,
        document=preset, visibility=body.visibility)
    session.commit()
    return PresetSaved(id=row.id, version=version.version, content_hash=version.content_hash)


@router.get("/images/{image_id}/presets", response_model=list[PresetSummary])
def list_image_presets(found: VisibleImage, user: CurrentUser,
                       session: DbSession) -> list[PresetSummary]:
    """Presets that apply to the image: its own, its study's and panel presets."""
    image, study = found
    rows = session.scalars(select(Preset).where(or_(
        (Preset.scope == "image") & (Preset.target == image.id),
        (Preset.scope == "study") & (Preset.target == study.code),
        Preset.scope == "panel")).order_by(Preset.scope, Preset.name)).all()
    return [_summary(session, p) for p in rows if preset_store.visible_to(p, user)
            and preset_store.applies_to(session, p, image, study, user)]


def _version(session: Session, preset: Preset, number: int | None) -> PresetVersion:
    if number is None:
        version = preset_store.latest_version(session, preset.id)
    else:
        version = session.scalar(select(PresetVersion).where(
            PresetVersion.preset_id == preset.id, PresetVersion.version == number))
    if version is None:
        raise NotFoundError(f"preset {preset.id}@{number}", "has no such version")
    return version


def _document(preset: Preset, version: PresetVersion,
              warnings: list[str] | None = None) -> PresetDocument:
    return PresetDocument(id=preset.id, name=preset.name, version=version.version,
                          content_hash=version.content_hash, created_by=version.created_by,
                          document=version.document, warnings=warnings or [])


@router.get("/presets/{preset_id}", response_model=PresetDocument)
def get_preset(preset: VisiblePreset, session: DbSession) -> PresetDocument:
    """The latest version."""
    return _document(preset, _version(session, preset, None))


@router.get("/presets/{preset_id}/versions", response_model=list[int])
def list_versions(preset: VisiblePreset, session: DbSession) -> list[int]:
    return list(session.scalars(select(PresetVersion.version).where(
        PresetVersion.preset_id == preset.id).order_by(PresetVersion.version)).all())


@router.get("/presets/{preset_id}/versions/{version}", response_model=PresetDocument)
def get_version(preset: VisiblePreset, version: int, session: DbSession) -> PresetDocument:
    return _document(preset, _version(session, preset, version))


@router.get("/presets/{preset_id}/versions/{version}/export", response_model=None,
            responses={200: {"content": {"text/plain": {}, "application/json": {}}}})
def export_version(preset: VisiblePreset, version: int, user: CurrentUser, session: DbSession,
                   format: PresetFormat = Query(...),
                   image: str | None = Query(default=None, max_length=64,
                                             description="bind to this image first")
                   ) -> Response:
    """The version in another tool's format (fields a format cannot express are dropped).

    Index-based formats (OMERO strings and YAML) need channel indices: image presets are
    bound to their image, panel and study presets to the image named by ``image``."""
    from plexhub.ome_pipeline import preset_formats as pf

    doc = parse_preset(_version(session, preset, version).document)
    target = image or (preset.target if preset.scope == "image" else None)
    if target is not None:  # named in the query: checked here
        bound_image, _ = visible_image(session, user, target)
        doc = bind(doc, preset_store.image_channels(bound_image)).as_preset()
    if format == "omero-query":
        return PlainTextResponse(pf.to_omero_query(doc))
    if format == "omero-yaml":
        return PlainTextResponse(pf.omero_render_yaml(doc), media_type="application/yaml")
    out: Any = pf.to_ngff_omero(doc) if format == "ngff-omero" else pf.to_napari(doc)
    return Response(json.dumps(out), media_type="application/json")


def _parse_import(body: ImportRequest) -> RenderPreset:
    from plexhub.ome_pipeline import preset_formats as pf

    content = body.content
    if body.format == "omero-query":
        if not isinstance(content, str | dict):
            raise InputError("content", "an OMERO query string or its parameters is expected")
        preset = pf.from_omero_query(content)
    elif body.format == "omero-yaml":
        if not isinstance(content, str | dict):
            raise InputError("content", "OMERO render YAML text is expected")
        preset = pf.from_omero_render(content)
    elif body.format == "ngff-omero":
        if not isinstance(content, dict):
            raise InputError("content", "an NGFF omero object is expected")
        preset = pf.from_ngff_omero(content)
    else:
        if not isinstance(content, list):
            raise InputError("content", "a list of napari layer settings is expected")
        preset = pf.from_napari(content)
    return preset.model_copy(update={"name": body.name})


@router.post("/images/{image_id}/presets:import", response_model=PresetDocument)
def import_preset(body: ImportRequest, found: VisibleImage, user: CurrentUser,
                  session: DbSession) -> PresetDocument:
    """Read a preset written by another tool, bind it to the image, optionally save it."""
    image, study = found
    preset = _parse_import(body)
    bound = bind(preset, preset_store.image_channels(image))
    if not body.save:
        return PresetDocument(id="", name=preset.name, version=0, content_hash="",
                              created_by=user.user,
                              document=preset.model_dump(mode="json", exclude_none=True),
                              warnings=list(bound.warnings))
    require(user, "presets:write")  # only when it saves: checked here
    row, version = preset_store.save_version(session, user, name=preset.name, scope="image",
                                             target=image.id, study=study, document=preset)
    session.commit()
    return _document(row, version, list(bound.warnings))


@router.post("/images/{image_id}/presets:apply", response_model=PresetDocument)
def apply_preset(body: ApplyRequest, found: VisibleImage, user: CurrentUser,
                 session: DbSession) -> PresetDocument:
    """Bind a stored or inline preset to this image: the per-channel result and warnings
    (unmatched names); an index-bound preset with another channel count is refused."""
    image, study = found
    if (body.preset is None) == (body.document is None):
        raise InputError("apply", "give either preset or document")
    version = None
    if body.document is not None:
        preset = parse_preset(body.document)
    else:
        version, preset = preset_store.resolve(session, user, image, study, body.preset)
    bound = bind(preset, preset_store.image_channels(image))
    doc = bound.as_preset().model_dump(mode="json", exclude_none=True)
    return PresetDocument(id=body.preset or "", name=preset.name,
                          version=version.version if version else 0,
                          content_hash=version.content_hash if version else "",
                          created_by=version.created_by if version else user.user,
                          document=doc, warnings=list(bound.warnings))


@router.get("/images/{image_id}/autocontrast", response_model=dict[str, Any])
def autocontrast(found: VisibleImage,
                 method: Literal["percentile", "minmax"] = "percentile",
                 lower: float = Query(default=0.1, ge=0, le=100),
                 upper: float = Query(default=99.9, ge=0, le=100),
                 active: int | None = Query(default=4, ge=0)) -> dict[str, Any]:
    """Windows from the stored histograms, with provenance; reads no pixels."""
    from plexhub.ome_pipeline.autocontrast import default_preset

    image = found.image
    doc = default_preset(preset_store.image_channels(image), preset_store.histograms(image),
                         image.dtype or "uint16", method=method, lower=lower, upper=upper,
                         max_active=active, name="auto")
    return doc.model_dump(mode="json", exclude_none=True)

