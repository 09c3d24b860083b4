"""Image thumbnails for the portal: a small PNG rendered with the image's default preset
from its own pyramid, never from the slide label or macro image.

The level read is the smallest one of the pyramid whose longest side still reaches ``max``
(the smallest level when none is that small), so a thumbnail reads a few chunks at most.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from plexhub.api import preset_store
from plexhub.api.deps import CurrentUser, DbSession, VisibleImage
from plexhub.api.models import Image
from plexhub.api.routes.tiles import Engine
from plexhub.api.tiles import Region, Render, axis_size, etag
from plexhub.errors import NotFoundError
from plexhub.limits import REGION_PIXELS as MAX_REGION

router = APIRouter(prefix="/api/v1", tags=["tiles"])


def thumbnail_level(image: Image, size: int) -> int:
    """The smallest pyramid level whose longest side is at least ``size`` pixels."""
    levels = image.levels or []
    if not levels:
        raise NotFoundError(f"image {image.id}", "has no converted store yet")
    best = len(levels) - 1
    for index in range(len(levels) - 1, -1, -1):
        h, w = int(levels[index][-2]), int(levels[index][-1])
        if h * w > MAX_REGION:
            break
        best = index
        if max(h, w) >= size:
            break
    return best


@router.get("/images/{image_id}/thumbnail.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "not modified"}})
def thumbnail(request: Request, found: VisibleImage, user: CurrentUser, session: DbSession,
              tiles: Engine,
              max: Annotated[int, Query(ge=16, le=1024,
                                        description="longest side in pixels")] = 256
              ) -> Response:
    """The whole image, at most ``max`` pixels on its longest side, default preset."""
    image, study = found
    _, preset = preset_store.resolve(session, user, image, study, None)
    level = thumbnail_level(image, max)
    h, w = (int(v) for v in image.levels[level][-2:])
    z = axis_size(image, "z", level) // 2
    tag = etag(image, preset, "thumbnail", level, z, max)
    scale = min(1.0, max / float(h if h > w else w))
    out = (round(w * scale) or 1, round(h * scale) or 1) if scale < 1.0 else None
    # PNG: the quality is not used; the default preset: not pinned by the URL
    return tiles.respond(request.headers.get("if-none-match"), tag, False,
                         Render(image, preset, Region(level, 0, z, 0, 0, h, w), "png", 90, out),
                         caller=user)

