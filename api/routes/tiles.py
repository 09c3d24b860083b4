"""Rendered tiles (by preset version or inline spec) and a DeepZoom description so that
OpenSeadragon-class viewers work against the API. Both answer through the tile service
(``api.tiles``: ETag, 304, cache, render under the caller's limit)."""

from __future__ import annotations

import re
import time
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from plexhub.api import preset_store
from plexhub.api.deps import (
    CurrentUser,
    TileAccess,
    TileImage,
    VisibleImage,
    app_state,
)
from plexhub.api.models import Image, Study
from plexhub.api.tiles import (
    EXTENSIONS,
    FORMATS,
    MEDIA,
    DeepZoomQuery,
    Region,
    Render,
    TileEngine,
    TileQuery,
    TileRenderQuery,
    TileRequest,
    axis_size,
    check_tz,
    etag,
    level_shape,
    parse_spec,
    tile_region,
)
from plexhub.errors import InputError, NotFoundError
from plexhub.policies.access import Principal
from plexhub.presets import RenderPreset, parse_preset

router = APIRouter(prefix="/api/v1", tags=["tiles"])
TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {m: {} for m in MEDIA.values()}},
    304: {"description": "not modified"},
}


async def engine(request: Request) -> TileEngine:
    return request.app.state.tiles  # type: ignore[no-any-return]


Engine = Annotated[TileEngine, Depends(engine)]
Fmt = Annotated[str, Path(pattern=rf"^({EXTENSIONS})$")]


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


Lookup = tuple[Image, Study, RenderPreset, bool]  # image, study, preset, pinned by the URL


def answer(inm: str | None, tiles: TileEngine, found: Lookup, req: TileRequest, *,
           caller: Principal | None, render: bool) -> Response | None:
    """A 304 (``inm``: the request's If-None-Match), the cached tile, or (``render``) a
    freshly rendered one; None when the tile is not cached and ``render`` is False. The
    route, the fast lane (``api.tilelane``) and DeepZoom's tiles answer through this;
    ``caller`` as in :meth:`TileEngine.respond`."""
    image, _study, doc, pinned = found
    tag, job = tile_job(image, doc, req)
    return tiles.respond(inm, tag, pinned, job, caller=caller, render=render)


def tile_job(image: Image, doc: RenderPreset, req: TileRequest) -> tuple[str, Render]:
    """The ETag and the render of tile ``req`` of ``image`` with ``doc``."""
    q = req.query
    region = tile_region(image, req.level, req.row, req.col, q.size, q.t, q.z)
    fmt = FORMATS[req.ext]
    tag = etag(image, doc, region.level, region.t, region.z, req.row, req.col, q.size, fmt,
               q.quality)
    return tag, Render(image, doc, region, fmt, q.quality)


def _lookup(session: Session, user: Principal, tiles: TileEngine, key: Any,
            access: TileAccess, preset: str | None, spec: str | None,
            body: dict[str, Any] | None) -> Lookup:
    """The preset of a request whose image the route's dependency found visible, kept (under
    ``key``) no longer than that answer: its generation and its grant's expiry."""
    image, study = access.image, access.study
    doc, pinned = _preset(session, user, image, study, preset, spec, body)
    if key is not None:
        tiles.resolved.put(key, (image, study, doc, pinned), access.generation,
                           access.expires - time.monotonic())
    return image, study, doc, pinned


def _tile(request: Request, req: TileRequest, user: Principal, access: TileAccess,
          tiles: TileEngine, *, preset: str | None, spec: str | None,
          body: dict[str, Any] | None) -> Response:
    """The route's lookup (a catalog session only when its answers are not cached) and
    answer; the caller's render slot is held already (:func:`_serve`)."""
    key = (user, req.image_id, preset) if spec is None and body is None else None
    found = tiles.resolved.get(key) if key is not None else None
    if found is None:
        with app_state(request).db.session() as own:
            found = _lookup(own, user, tiles, key, access, preset, spec, body)
    done = answer(request.headers.get("if-none-match"), tiles, found, req, caller=None,
                  render=True)
    assert done is not None
    return done


async def _serve(request: Request, req: TileRequest, user: Principal, access: TileAccess,
                 tiles: TileEngine, *, preset: str | None, spec: str | None,
                 body: dict[str, Any] | None) -> Response:
    """Cached answers on the event loop; lookups and renders in a thread, first come first
    served through the engine's limiter (one render per core: a request that waits, waits
    in line on the event loop instead of as one more thread contending for the GIL)."""
    key = (user, req.image_id, preset) if spec is None and body is None else None
    found = tiles.resolved.get(key) if key is not None else None
    if found is not None:  # a 304 or a cached tile: no thread, no query
        fast = answer(request.headers.get("if-none-match"), tiles, found, req, caller=None,
                      render=False)
        if fast is not None:
            return fast
    work = partial(_tile, request, req, user, access, tiles, preset=preset, spec=spec,
                   body=body)
    with tiles.tile_renders.hold(user):  # queued or rendering: bounded per caller
        return await anyio.to_thread.run_sync(work, limiter=tiles.limiter())


@router.get("/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}", responses=TILE_RESPONSES,
            response_class=Response)
async def get_tile(request: Request, image_id: str, found: TileImage, user: CurrentUser,
                   level: int, row: int, col: int, fmt: Fmt, tiles: Engine,
                   query: Annotated[TileQuery, Query()]) -> Response:
    """Tile (row, col) of ``level`` covers y from row*size and x from col*size; edge tiles
    are cropped to the image. Without preset= the image's default preset renders it."""
    return await _serve(request, TileRequest(image_id, level, row, col, fmt, query), user,
                        found, tiles, preset=query.preset, spec=query.spec, body=None)


@router.post("/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}", responses=TILE_RESPONSES,
             response_class=Response)
async def post_tile(request: Request, image_id: str, found: TileImage, user: CurrentUser,
                    level: int, row: int, col: int, fmt: Fmt, tiles: Engine,
                    body: Annotated[dict[str, Any], Body(description="a preset document")],
                    query: Annotated[TileRenderQuery, Query()]) -> Response:
    """The same tile rendered with an inline preset (for 60 channels and more)."""
    return await _serve(request, TileRequest(image_id, level, row, col, fmt, query), user,
                        found, tiles, preset=None, spec=None, body=body)


# ----------------------------------------------------------------------------- DeepZoom

DZI_TILE = 512


def _dzi_max_level(image: Image) -> int:
    """DeepZoom's top level: ceil(log2(longest side))."""
    shape = level_shape(image, 0)
    return (max(int(shape[-2]), int(shape[-1]), 1) - 1).bit_length()


@router.get("/images/{image_id}/image.dzi", response_class=Response,
            responses={200: {"content": {"application/xml": {}}}})
def dzi(found: VisibleImage,
        format: Annotated[str, Query(pattern=r"^(jpeg|png)$")] = "jpeg") -> Response:
    """DeepZoom description; tiles are under ``image_files/{level}/{col}_{row}.{format}``."""
    found.image.check_readable()  # an archived image: 409 saying how to restore it
    shape = level_shape(found.image, 0)
    xml = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
           f'TileSize="{DZI_TILE}" Overlap="0" Format="{format}">'
           f'<Size Width="{int(shape[-1])}" Height="{int(shape[-2])}"/></Image>')
    return Response(xml, media_type="application/xml")


DZI_NAME = re.compile(r"(\d+)_(\d+)\.(jpeg|jpg|png)")
DZI_SCALED_QUALITY = 90  # the levels below the pyramid: encode()'s default, as before


@router.get("/images/{image_id}/image_files/{dz_level}/{name}", response_class=Response,
            responses=TILE_RESPONSES)
def dzi_tile(request: Request, image_id: str, access: TileImage, user: CurrentUser,
             dz_level: int, name: str, tiles: Engine,
             query: Annotated[DeepZoomQuery, Query()]) -> Response:
    """A DeepZoom tile: DZI level L is our level (max - L), the same tile as the tile route's
    (quality 85); levels below our smallest are its whole image box-filtered down."""
    m = DZI_NAME.fullmatch(name)
    if m is None:
        raise InputError(f"tile name {name!r}", "is not <col>_<row>.<jpeg|png>")
    col, row, fmt = int(m[1]), int(m[2]), FORMATS[m[3]]
    key = (user, image_id, query.preset)  # the tile route's lookup, and its cache
    found = tiles.resolved.get(key)
    if found is None:
        with app_state(request).db.session() as own:
            found = _lookup(own, user, tiles, key, access, query.preset, None, None)
    image, _study, doc, pinned = found
    top = _dzi_max_level(image)
    if not 0 <= dz_level <= top:
        raise NotFoundError(f"DeepZoom level {dz_level}", f"does not exist (0-{top})")
    ours = top - dz_level
    nlevels = len(image.levels or [])
    inm = request.headers.get("if-none-match")
    if ours < nlevels:
        req = TileRequest(image_id, ours, row, col, m[3],
                          TileRenderQuery(z=query.z, t=query.t, size=DZI_TILE))
        done = answer(inm, tiles, found, req, caller=user, render=True)
        assert done is not None
        return done
    # below our smallest level: the smallest one, scaled down
    check_tz(image, query.t, query.z)
    if row != 0 or col != 0:
        raise NotFoundError(f"tile {col}_{row}", f"is outside DeepZoom level {dz_level}")
    factor = 2 ** (ours - (nlevels - 1))
    shape = level_shape(image, nlevels - 1)
    region = Region(nlevels - 1, query.t, query.z, 0, 0, int(shape[-2]), int(shape[-1]))
    out = (max(1, -(-region.w // factor)), max(1, -(-region.h // factor)))
    tag = etag(image, doc, "deepzoom", dz_level, region.t, region.z, fmt)
    return tiles.respond(inm, tag, pinned, Render(image, doc, region, fmt, DZI_SCALED_QUALITY,
                                                  out), caller=user)


__all__ = ["axis_size", "router"]
