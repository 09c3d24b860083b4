"""OMERO webgateway-compatible ``render_image_region``: ``tile=level,col,row,w,h`` (level 0
is full resolution, as in OMERO.web) or ``region=x,y,w,h`` at full resolution, with the
rendering given by ``c=``, ``m=`` and ``maps=`` on top of the image's default preset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from plexhub.api import preset_store
from plexhub.api.deps import CurrentUser, DbSession, VisibleImage
from plexhub.api.routes.tiles import Engine
from plexhub.api.tiles import Region, Render, check_tz, etag, level_shape
from plexhub.errors import InputError, NotFoundError
from plexhub.limits import REGION_PIXELS as MAX_REGION
from plexhub.presets import bind

router = APIRouter(prefix="/webgateway", tags=["compatibility"])


def _ints(name: str, text: str, n: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n or any(v < 0 for v in values):
        raise InputError(f"{name}={text}", f"needs {n} non-negative integers")
    return values


@router.get("/render_image_region/{image_id}/{z}/{t}/", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def render_image_region(
        request: Request, found: VisibleImage, z: int, t: int, user: CurrentUser,
        session: DbSession, tiles: Engine,
        tile: Annotated[str | None, Query(max_length=100,
                                          description="level,col,row[,w,h]")] = None,
        region: Annotated[str | None, Query(max_length=100, description="x,y,w,h")] = None,
        c: Annotated[str | None, Query(max_length=20000)] = None,
        m: Annotated[str | None, Query(pattern="^[cg]$")] = None,
        maps: Annotated[str | None, Query(max_length=20000)] = None,
        q: Annotated[float, Query(gt=0, le=1)] = 0.9,
        format: Annotated[str, Query(pattern="^(jpeg|png)$")] = "jpeg") -> Response:
    from plexhub.ome_pipeline.preset_formats import from_omero_query

    image, study = found
    check_tz(image, t, z)
    if (tile is None) == (region is None):
        raise InputError("render_image_region", "needs exactly one of tile= or region=")
    if tile is not None:
        parts = tile.split(",")
        level, col, row = _ints("tile", ",".join(parts[:3]), 3)
        w, h = _ints("tile", ",".join(parts[3:5]), 2) if len(parts) >= 5 else (512, 512)
        x, y = col * w, row * h
    else:
        assert region is not None
        level = 0
        x, y, w, h = _ints("region", region, 4)
    shape = level_shape(image, level)
    height, width = int(shape[-2]), int(shape[-1])
    if w == 0 or h == 0 or w * h > MAX_REGION:
        raise InputError(f"{w}x{h}", "is not a region size plexhub renders",
                         f"use 1 to {MAX_REGION} pixels")
    if x >= width or y >= height:
        raise NotFoundError(f"region at {x},{y}", f"is outside the {width}x{height} level")
    box = Region(level, t, z, y, x, min(h, height - y), min(w, width - x))
    _, base = preset_store.resolve(session, user, image, study, None)
    base = bind(base, preset_store.image_channels(image)).as_preset()
    params = {k: v for k, v in (("c", c), ("m", m), ("maps", maps)) if v is not None}
    preset = from_omero_query(params, base=base) if params else base
    quality = round(q * 100)
    tag = etag(image, preset, "webgateway", box, format, quality)
    # the rendering follows the image's default preset: not pinned by the URL
    return tiles.respond(request.headers.get("if-none-match"), tag, False,
                         Render(image, preset, box, format, quality), caller=user)

