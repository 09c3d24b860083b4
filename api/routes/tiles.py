"""Rendered tiles (by preset version or inline spec) and a DeepZoom description so that
OpenSeadragon-class viewers work against the API."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from plexhub.api import preset_store
from plexhub.api.db import utcnow
from plexhub.api.deps import (
    CurrentUser,
    DbSession,
    app_state,
    grants_of,
    visible_image,
)
from plexhub.api.models import Image, Study
from plexhub.api.tiles import (
    FORMATS,
    MEDIA,
    Region,
    TileEngine,
    axis_size,
    check_tz,
    etag,
    generation,
    level_shape,
    parse_spec,
    tile_region,
)
from plexhub.errors import InputError, NotFoundError
from plexhub.limits import SPEC_CHARS
from plexhub.policies.access import Principal
from plexhub.presets import RenderPreset, bind, parse_preset

router = APIRouter(prefix="/api/v1", tags=["tiles"])
IMMUTABLE = "private, max-age=31536000, immutable"
SHORT = "private, max-age=30"
TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {m: {} for m in MEDIA.values()}},
    304: {"description": "not modified"},
}


async def engine(request: Request) -> TileEngine:
    return request.app.state.tiles  # type: ignore[no-any-return]


Engine = Annotated[TileEngine, Depends(engine)]
Fmt = Annotated[str, Path(pattern=r"^(jpg|jpeg|png|webp)$")]


def _preset(session: Session, user: Principal, image: Image, study: Study, ref: str | None,
            spec: str | None, body: dict[str, Any] | None
            ) -> tuple[RenderPreset, bool]:
    """The preset a request names, and whether the URL pins it (cacheable forever)."""
    given = [x for x in (ref, spec, body) if x is not None]
    if len(given) > 1:
        raise InputError("render settings", "give one of preset=, spec= or a body")
    if body is not None:
        return parse_preset(body), True
    if spec is not None:
        return parse_spec(spec), True
    _, preset = preset_store.resolve(session, user, image, study, ref)
    pinned = ref is not None and "@" in ref
    return preset, pinned


def _seconds_to_next_expiry(session: Session, study: Study) -> float:
    """Until the study's next grant expiry (a cached permission must not outlive it)."""
    now = utcnow()
    ahead = [(g.expires_at - now).total_seconds() for g in grants_of(session, study.id)
             if g.expires_at is not None and g.revoked_at is None and g.expires_at > now]
    return min(ahead, default=float("inf"))


def _headers(image: Image, doc: RenderPreset, pinned: bool, region: Region, fmt: str,
             quality: int, size: int, row: int, col: int) -> tuple[str, dict[str, str]]:
    tag = etag(image, doc, region.level, region.t, region.z, row, col, size, fmt, quality)
    return tag, {"ETag": tag, "Cache-Control": IMMUTABLE if pinned else SHORT,
                 "Vary": "Authorization, Cookie"}  # the portal sends a cookie


Lookup = tuple[Image, Study, RenderPreset, bool]  # image, study, preset, pinned by the URL


def answer(inm: str | None, tiles: TileEngine, found: Lookup, level: int, row: int,
           col: int, fmt: str, z: int, t: int, size: int, quality: int, *,
           render: bool) -> Response | None:
    """A 304 (``inm``: the request's If-None-Match), the cached tile, or (``render``) a
    freshly rendered one; None when the tile is not cached and ``render`` is False. The
    route and the fast lane (``api.tilelane``) both answer through this."""
    image, _study, doc, pinned = found
    region = tile_region(image, level, row, col, size, t, z)
    fmt = FORMATS[fmt]
    tag, headers = _headers(image, doc, pinned, region, fmt, quality, size, row, col)
    if inm in (tag, f"W/{tag}", "*"):
        return Response(status_code=304, headers=headers)
    data = tiles.cache.get(tag)
    if data is None:
        if not render:
            return None
        bound = bind(doc, preset_store.image_channels(image))
        data = tiles.render(image, bound, region, fmt, quality)
        tiles.cache.put(tag, data, len(data))
    return Response(data, media_type=MEDIA[fmt], headers=headers)


def _lookup(session: Session, user: Principal, tiles: TileEngine, key: Any, image_id: str,
            preset: str | None, spec: str | None, body: dict[str, Any] | None) -> Lookup:
    gen = generation()
    image, study = visible_image(session, user, image_id)
    doc, pinned = _preset(session, user, image, study, preset, spec, body)
    if key is not None:
        tiles.resolved.put(key, (image, study, doc, pinned), gen,
                           _seconds_to_next_expiry(session, study))
    return image, study, doc, pinned


def _tile(request: Request, image_id: str, level: int, row: int, col: int, fmt: str,
          user: Principal, session: Session | None, tiles: TileEngine, *, preset: str | None,
          spec: str | None, body: dict[str, Any] | None, z: int, t: int, size: int,
          quality: int) -> Response:
    """``session`` None: open one only when the catalog answers are not cached."""
    key = (user, image_id, preset) if spec is None and body is None else None
    found = tiles.resolved.get(key) if key is not None else None
    if found is None and session is not None:
        found = _lookup(session, user, tiles, key, image_id, preset, spec, body)
    elif found is None:
        with app_state(request).db.session() as own:
            found = _lookup(own, user, tiles, key, image_id, preset, spec, body)
    done = answer(request.headers.get("if-none-match"), tiles, found, level, row, col, fmt, z,
                  t, size, quality, render=True)
    assert done is not None
    return done


async def _serve(request: Request, image_id: str, level: int, row: int, col: int, fmt: str,
                 user: Principal, tiles: TileEngine, *, preset: str | None,
                 spec: str | None, body: dict[str, Any] | None, z: int, t: int, size: int,
                 quality: int) -> Response:
    """Cached answers on the event loop; lookups and renders in a thread, first come first
    served through the engine's limiter (one render per core: a request that waits, waits
    in line on the event loop instead of as one more thread contending for the GIL)."""
    key = (user, image_id, preset) if spec is None and body is None else None
    found = tiles.resolved.get(key) if key is not None else None
    if found is not None:  # a 304 or a cached tile: no thread, no query
        fast = answer(request.headers.get("if-none-match"), tiles, found, level, row, col,
                      fmt, z, t, size, quality, render=False)
        if fast is not None:
            return fast
    work = partial(_tile, request, image_id, level, row, col, fmt, user, None, tiles,
                   preset=preset, spec=spec, body=body, z=z, t=t, size=size, quality=quality)
    with tiles.tile_renders.hold(user):  # queued or rendering: bounded per caller
        return await anyio.to_thread.run_sync(work, limiter=tiles.limiter())


@router.get("/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}", responses=TILE_RESPONSES,
            response_class=Response)
async def get_tile(request: Request, image_id: str, level: int, row: int, col: int, fmt: Fmt,
                   user: CurrentUser, tiles: Engine,
                   preset: Annotated[str | None, Query(max_length=80,
                                                       description="<id>@<version>")] = None,
                   spec: Annotated[str | None, Query(max_length=SPEC_CHARS,
                                                     description="inline preset")] = None,
                   z: Annotated[int, Query(ge=0)] = 0, t: Annotated[int, Query(ge=0)] = 0,
                   size: Annotated[int, Query()] = 512,
                   quality: Annotated[int, Query(ge=1, le=100)] = 85) -> Response:
    """Tile (row, col) of ``level`` covers y from row*size and x from col*size; edge tiles
    are cropped to the image. Without preset= the image's default preset renders it."""
    return await _serve(request, image_id, level, row, col, fmt, user, tiles,
                        preset=preset, spec=spec, body=None, z=z, t=t, size=size,
                        quality=quality)


@router.post("/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}", responses=TILE_RESPONSES,
             response_class=Response)
async def post_tile(request: Request, image_id: str, level: int, row: int, col: int, fmt: Fmt,
                    user: CurrentUser, tiles: Engine,
                    body: Annotated[dict[str, Any], Body(description="a preset document")],
                    z: Annotated[int, Query(ge=0)] = 0, t: Annotated[int, Query(ge=0)] = 0,
                    size: Annotated[int, Query()] = 512,
                    quality: Annotated[int, Query(ge=1, le=100)] = 85) -> Response:
    """The same tile rendered with an inline preset (for 60 channels and more)."""
    return await _serve(request, image_id, level, row, col, fmt, user, tiles,
                        preset=None, spec=None, body=body, z=z, t=t, size=size,
                        quality=quality)


# ----------------------------------------------------------------------------- DeepZoom

DZI_TILE = 512


def _dzi_max_level(image: Image) -> int:
    """DeepZoom's top level: ceil(log2(longest side))."""
    shape = level_shape(image, 0)
    return (max(int(shape[-2]), int(shape[-1]), 1) - 1).bit_length()


@router.get("/images/{image_id}/image.dzi", response_class=Response,
            responses={200: {"content": {"application/xml": {}}}})
def dzi(image_id: str, user: CurrentUser, session: DbSession,
        format: Annotated[str, Query(pattern=r"^(jpeg|png)$")] = "jpeg") -> Response:
    """DeepZoom description; tiles are under ``image_files/{level}/{col}_{row}.{format}``."""
    image, _ = visible_image(session, user, image_id)
    shape = level_shape(image, 0)
    xml = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
           f'TileSize="{DZI_TILE}" Overlap="0" Format="{format}">'
           f'<Size Width="{int(shape[-1])}" Height="{int(shape[-2])}"/></Image>')
    return Response(xml, media_type="application/xml")


@router.get("/images/{image_id}/image_files/{dz_level}/{name}", response_class=Response,
            responses=TILE_RESPONSES)
def dzi_tile(request: Request, image_id: str, dz_level: int, name: str, user: CurrentUser,
             session: DbSession, tiles: Engine,
             preset: Annotated[str | None, Query(max_length=80)] = None,
             z: Annotated[int, Query(ge=0)] = 0,
             t: Annotated[int, Query(ge=0)] = 0) -> Response:
    """A DeepZoom tile: DZI level L is our level (max - L); levels below our smallest
    are scaled from it."""
    import re

    m = re.fullmatch(r"(\d+)_(\d+)\.(jpeg|jpg|png)", name)
    if m is None:
        raise InputError(f"tile name {name!r}", "is not <col>_<row>.<jpeg|png>")
    col, row, fmt = int(m[1]), int(m[2]), FORMATS[m[3]]
    image, study = visible_image(session, user, image_id)
    top = _dzi_max_level(image)
    if not 0 <= dz_level <= top:
        raise NotFoundError(f"DeepZoom level {dz_level}", f"does not exist (0-{top})")
    ours = top - dz_level
    nlevels = len(image.levels or [])
    if ours < nlevels:
        with tiles.tile_renders.hold(user):
            return _tile(request, image_id, ours, row, col, m[3], user, session, tiles,
                         preset=preset, spec=None, body=None, z=z, t=t, size=DZI_TILE,
                         quality=85)
    # below our smallest level: scale the smallest one down
    check_tz(image, t, z)
    doc, _ = _preset(session, user, image, study, preset, None, None)
    factor = 2 ** (ours - (nlevels - 1))
    shape = level_shape(image, nlevels - 1)
    if row != 0 or col != 0:
        raise NotFoundError(f"tile {col}_{row}", f"is outside DeepZoom level {dz_level}")
    region = Region(nlevels - 1, t, z, 0, 0, int(shape[-2]), int(shape[-1]))
    bound = bind(doc, preset_store.image_channels(image))
    import numpy as np
    from PIL import Image as PILImage

    from plexhub.ome_pipeline.render import encode

    with tiles.caller_slot(user, region.h * region.w), tiles.rendering(region.h * region.w):
        rgb = tiles.composite(image, bound, region)
        h, w = max(1, -(-region.h // factor)), max(1, -(-region.w // factor))
        small = np.asarray(PILImage.fromarray(rgb).resize((w, h), PILImage.Resampling.BOX))
        data = encode(small, fmt)  # type: ignore[arg-type]
    return Response(data, media_type=MEDIA[fmt], headers={"Cache-Control": SHORT})


__all__ = ["axis_size", "router"]
