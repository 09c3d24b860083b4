"""The viewer's own routes (issue 19): a reader's saved views and the values under the cursor.

- ``POST /images/{id}/views`` saves the caller's current view of the image (the preset
  version it started from, the channel settings ``c=`` and the viewport) under a name; the
  same name again replaces it. ``GET /images/{id}/views`` lists the caller's views of the
  image, nobody else's. A view never changes a preset: it is the reader's own; it reopens at
  ``/portal/views/{view_id}`` (its owner only).
- ``GET /images/{id}/values?x=&y=`` (staff): each channel's raw value at the level-0 pixel
  (x, y) and the mean over a small window around it (``size``, at most
  :data:`~plexhub.limits.VALUES_WINDOW` pixels on a side).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlalchemy import func, select

from plexhub.api import audit, preset_store
from plexhub.api.db import utcnow
from plexhub.api.deps import DbSession, Scope, StaffImage, VisibleImage
from plexhub.api.models import SavedView
from plexhub.api.schemas import Strict
from plexhub.api.tiles import Region, TileEngine, check_tz, level_shape
from plexhub.errors import InputError
from plexhub.limits import SAVED_VIEWS, VALUES_WINDOW
from plexhub.policies.access import Principal

router = APIRouter(prefix="/api/v1", tags=["viewer"])


class SavedViewCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    preset: str = Field(default="", max_length=80, description="<preset id>@<version>")
    c: str = Field(default="", max_length=4000, description="the viewer's channels (c=)")
    x: float | None = Field(default=None, ge=0)
    y: float | None = Field(default=None, ge=0)
    zoom: float | None = Field(default=None, gt=0, le=1000)


def view_out(request: Request, row: SavedView) -> dict[str, Any]:
    root = str(request.scope.get("root_path") or "").rstrip("/")
    return {"id": row.id, "name": row.name, "image_id": row.image_id, "view": row.view,
            "url": f"{root}/portal/views/{row.id}", "updated_at": row.updated_at.isoformat()}


def views_of(session: DbSession, user: Principal, image_id: str) -> list[SavedView]:
    return list(session.scalars(select(SavedView).where(
        SavedView.owner == user.user, SavedView.image_id == image_id)
        .order_by(SavedView.name)).all())


@router.get("/images/{image_id}/views")
def list_views(request: Request, found: VisibleImage,
               user: Annotated[Principal, Scope("read")],
               session: DbSession) -> list[dict[str, Any]]:
    """The caller's own saved views of this image (no one else's)."""
    return [view_out(request, v) for v in views_of(session, user, found.image.id)]


@router.post("/images/{image_id}/views", status_code=201)
def save_view(request: Request, found: VisibleImage,
              user: Annotated[Principal, Scope("read")], session: DbSession,
              body: SavedViewCreate) -> dict[str, Any]:
    """Save the caller's view of this image under ``name`` (the same name replaces it)."""
    image, study = found
    name = body.name.strip()
    if not name:
        raise InputError("name", "is blank", "give the view a name")
    if body.preset:  # a preset this caller may use on this image, else 404
        preset_store.resolve(session, user, image, study, body.preset)
    view: dict[str, Any] = {"preset": body.preset, "c": body.c}
    for key in ("x", "y", "zoom"):
        value = getattr(body, key)
        if value is not None:
            view[key] = round(float(value), 3)
    row = session.scalar(select(SavedView).where(
        SavedView.owner == user.user, SavedView.image_id == image.id, SavedView.name == name))
    before = None if row is None else dict(row.view)
    if row is None:
        count = session.scalar(select(func.count()).select_from(SavedView).where(
            SavedView.owner == user.user, SavedView.image_id == image.id)) or 0
        if count >= SAVED_VIEWS:
            raise InputError("saved views", f"are at the limit of {SAVED_VIEWS} for this image",
                             "replace one (save under its name)")
        row = SavedView(id=uuid.uuid4().hex, owner=user.user, image_id=image.id,
                        study_id=study.id, name=name, view=view, created_at=utcnow(),
                        updated_at=utcnow())
        session.add(row)
    else:
        row.view, row.updated_at = view, utcnow()
    # audited like every write on the study; a reader's own view, so a locked study takes it
    audit.record(session, user, "view.save", "view", row.id, study_code=study.code,
                 before=before, after={"image": image.id, "name": name, **view})
    session.commit()
    return view_out(request, row)


@router.get("/images/{image_id}/values")
def cursor_values(request: Request, found: StaffImage,
                  x: int = Query(ge=0, description="level-0 column"),
                  y: int = Query(ge=0, description="level-0 row"),
                  size: int = Query(default=1, ge=1, le=VALUES_WINDOW,
                                    description="side of the window averaged, in pixels"),
                  t: int = 0, z: int = 0) -> dict[str, Any]:
    """Raw channel values at level-0 pixel (x, y), and their mean over a ``size`` window
    centred on it (clipped to the image)."""
    image = found.image
    shape = level_shape(image, 0)
    h, w = int(shape[-2]), int(shape[-1])
    if x >= w or y >= h:
        raise InputError(f"pixel ({x}, {y})", f"is outside the image ({w} x {h} pixels)")
    check_tz(image, t, z)
    half = size // 2
    x0, y0 = max(0, x - half), max(0, y - half)
    x1, y1 = min(w, x - half + size), min(h, y - half + size)
    region = Region(0, t, z, y0, x0, y1 - y0, x1 - x0)
    engine: TileEngine = request.app.state.tiles
    channels = [int(c["index"]) for c in image.channels or []]
    planes = engine.planes(image, region, channels)
    out = []
    for meta in image.channels or []:
        plane = planes[int(meta["index"])]
        value = plane[y - y0, x - x0]
        out.append({"index": meta["index"], "label": meta.get("label") or "",
                    "marker": meta.get("marker") or "",
                    "value": value.item() if hasattr(value, "item") else value,
                    "mean": round(float(np.mean(plane)), 3)})
    return {"x": x, "y": y, "level": 0, "size": size,
            "window": {"x": x0, "y": y0, "width": region.w, "height": region.h},
            "channels": out}
