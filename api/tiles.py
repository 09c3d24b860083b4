"""The tile service: every rendered image the API serves (tiles, DeepZoom, webgateway
regions, thumbnails) goes through one path: a strong ETag, If-None-Match (``api.conditional``),
the byte-bounded cache, and on a miss one render (:meth:`TileEngine.respond`) under the caller's
render limit and the process's pixel budget (``api.renderlimits``): read only the chunks the
region needs, composite with the one formula (``ome_pipeline.render``), box-filter to the
requested size, encode.

A tile request's parameters are one type (:class:`TileQuery`) that the route and the fast lane
(``api.tilelane``) both validate with, so its defaults and limits are declared once."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, overload

import numpy as np
from cachetools import FIFOCache, LRUCache
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from plexhub.api.conditional import answer_304, cache_headers, not_modified
from plexhub.api.models import Image
from plexhub.api.preset_store import digest, image_channels
from plexhub.api.renderahead import RenderAhead
from plexhub.api.renderlimits import CallerLimit, PixelBudget
from plexhub.errors import InputError, NotFoundError, TooLargeError
from plexhub.limits import (
    CALLER_HEAVY_RENDERS,
    CALLER_TILE_RENDERS,
    HEAVY_RENDER_PIXELS,
    PRESET_REF_CHARS,
    RENDER_PIXELS_IN_FLIGHT,
    RENDER_STRIP_PIXELS,
    SPEC_CHARS,
    SPEC_JSON_BYTES,
)
from plexhub.limits import REGION_PIXELS as MAX_REGION
from plexhub.ome_pipeline.source import ByteLRU
from plexhub.policies.access import Principal
from plexhub.presets import BoundPreset, RenderPreset, bind, parse_preset

FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}
MEDIA = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXTENSIONS = "|".join(FORMATS)  # a tile URL's extension, as a regular expression
TILE_SIZES = (256, 512)


# ------------------------------------------------------------------------------- requests

PresetRef = Annotated[str | None, Field(max_length=PRESET_REF_CHARS,
                                        description="<id>@<version>")]


class PlaneQuery(BaseModel):
    """The plane of a rendered image (query parameters)."""

    model_config = ConfigDict(frozen=True)  # unknown parameters are ignored, as before

    z: int = Field(default=0, ge=0)
    t: int = Field(default=0, ge=0)


class TileRenderQuery(PlaneQuery):
    """A tile's plane, size and encoding: the query of a POSTed tile (the preset is the body)."""

    size: int = Field(default=512, description="256 or 512")
    quality: int = Field(default=85, ge=1, le=100)


class TileQuery(TileRenderQuery):
    """Everything a tile GET takes in its query. The route validates it (FastAPI) and so does
    the fast lane (``api.tilelane.query``): the same defaults and limits."""

    preset: PresetRef = None
    spec: str | None = Field(default=None, max_length=SPEC_CHARS, description="inline preset")


class DeepZoomQuery(PlaneQuery):
    """The query of a DeepZoom tile: its plane and the preset (the format is in its name)."""

    preset: PresetRef = None


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per tile
class TileRequest:
    """One tile: its address in the URL's path and its query, parsed once."""

    image_id: str
    level: int
    row: int
    col: int
    ext: str  # one of FORMATS
    query: TileRenderQuery


@dataclass(frozen=True)
class Region:
    """A rectangle of one level, clipped to the level (never padded)."""

    level: int
    t: int
    z: int
    y0: int
    x0: int
    h: int
    w: int


@dataclass(slots=True, eq=False)  # not frozen: as TileRequest
class Render:
    """What one rendered image is: ``region`` of ``image`` composited with ``preset`` and
    encoded as ``fmt``; ``out`` (width, height) box-filters the composite to that size first
    (thumbnails, DeepZoom's levels below the pyramid's smallest)."""

    image: Image
    preset: RenderPreset
    region: Region
    fmt: str  # a value of FORMATS
    quality: int
    out: tuple[int, int] | None = None

    @property
    def pixels(self) -> int:
        """What the render reads and composites: the measure of its cost and memory."""
        return self.region.h * self.region.w


def parse_spec(spec: str) -> RenderPreset:
    """The compact inline render spec: base64url of zlib-compressed preset JSON.

    Bounded before anything expensive: at most :data:`~plexhub.limits.SPEC_CHARS` characters,
    decompressed to at most :data:`~plexhub.limits.SPEC_JSON_BYTES` (a zlib bomb stops there),
    then :func:`~plexhub.presets.parse_preset` with its channel limit."""
    if len(spec) > SPEC_CHARS:
        raise TooLargeError("spec", f"has {len(spec)} characters, more than the limit of "
                            f"{SPEC_CHARS}", "POST the preset document to the tile URL instead")
    try:
        raw = base64.urlsafe_b64decode(spec + "=" * (-len(spec) % 4))
        inflate = zlib.decompressobj()
        text = inflate.decompress(raw, SPEC_JSON_BYTES + 1)
        complete = inflate.eof
    except (ValueError, zlib.error) as exc:
        raise InputError("spec", "is not base64url(zlib(JSON))",
                         "encode the preset with plexhub.api.tiles.encode_spec") from exc
    if len(text) > SPEC_JSON_BYTES:
        raise TooLargeError("spec", f"decompresses to more than {SPEC_JSON_BYTES} bytes",
                            "send the settings of fewer channels")
    if not complete:
        raise InputError("spec", "is a truncated zlib stream",
                         "encode the preset with plexhub.api.tiles.encode_spec")
    return parse_preset(text)


def encode_spec(preset: RenderPreset | dict[str, Any]) -> str:
    doc = preset.model_dump(mode="json", exclude_none=True) \
        if isinstance(preset, RenderPreset) else preset
    raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def level_shape(image: Image, level: int) -> tuple[int, ...]:
    levels = image.levels or []
    if not 0 <= level < len(levels):
        raise NotFoundError(f"level {level}",
                            f"does not exist; image {image.id} has levels 0-{len(levels) - 1}")
    return tuple(levels[level])


def axis_size(image: Image, axis: str, level: int = 0) -> int:
    axes = image.axes or ""
    return int(level_shape(image, level)[axes.index(axis)]) if axis in axes else 1


def tile_region(image: Image, level: int, row: int, col: int, size: int, t: int,
                z: int) -> Region:
    shape = level_shape(image, level)
    height, width = int(shape[-2]), int(shape[-1])
    if size not in TILE_SIZES:
        raise InputError(f"size {size}", "is not a tile size",
                         f"use {' or '.join(map(str, TILE_SIZES))}")
    check_tz(image, t, z)
    y0, x0 = row * size, col * size
    if row < 0 or col < 0 or y0 >= height or x0 >= width:
        rows, cols = -(-height // size), -(-width // size)
        raise NotFoundError(f"tile {row}/{col}", f"is outside level {level}, which has "
                            f"{rows} rows and {cols} columns of {size}-pixel tiles")
    return Region(level, t, z, y0, x0, min(size, height - y0), min(size, width - x0))


def check_tz(image: Image, t: int, z: int) -> None:
    nt, nz = axis_size(image, "t"), axis_size(image, "z")
    if not 0 <= t < nt:
        raise InputError(f"t={t}", f"is out of range; the image has {nt} time point(s)")
    if not 0 <= z < nz:
        raise InputError(f"z={z}", f"is out of range; the image has {nz} z plane(s)")


class TileEngine:
    """Open level arrays and rendered tiles, shared by all requests."""

    def __init__(self, cache_bytes: int) -> None:
        # import what rendering needs now, not inside the first tile request
        import zarr  # noqa: F401
        from PIL import Image

        import plexhub.ome_pipeline.render  # noqa: F401

        Image.preinit()  # the first save() would import Pillow's format plugins: ~100 ms

        self.cache = ByteLRU(cache_bytes)
        self._arrays: LRUCache[tuple[str, int], Any] = LRUCache(256)  # under self._lock
        self._lock = threading.Lock()
        # renders at once: one per core. More only add GIL contention and buffers (measured at
        # 32 concurrent requests: 14.7 instead of 8.5 CPU ms per 512² tile and 560 MB RSS).
        self._slots = threading.BoundedSemaphore(self.RENDERS)
        self._limiter: Any = None
        self.resolved = Resolved()
        self.ahead = RenderAhead()  # what a viewer page started rendering for its first tiles
        # memory: the pixels renders hold at once, and what one caller may have in flight
        self.budget = PixelBudget(RENDER_PIXELS_IN_FLIGHT)
        self.heavy = CallerLimit(CALLER_HEAVY_RENDERS, "large renders")
        self.tile_renders = CallerLimit(CALLER_TILE_RENDERS, "uncached tile renders")

    RENDERS = max(2, os.cpu_count() or 2)

    def limiter(self) -> Any:
        """The tile routes' FIFO thread limiter (anyio makes it inside the event loop)."""
        if self._limiter is None:
            import anyio

            self._limiter = anyio.CapacityLimiter(self.RENDERS)
        return self._limiter

    def array(self, image: Image, level: int) -> Any:
        import zarr

        root = image.store_root()
        key = (root.url, level)
        with self._lock:
            found = self._arrays.get(key)
        if found is not None:
            return found
        arr: Any
        if root.remote:  # an object store: ranged GETs, else zarr over fsspec
            from plexhub.ome_pipeline.chunkread import open_direct_remote

            fs, base = root.filesystem()
            arr = open_direct_remote(fs, f"{base}/{level}") or \
                zarr.open_array(root.zarr_store(), path=str(level), mode="r")
        else:
            from plexhub.ome_pipeline.chunkread import open_direct
            from plexhub.ome_pipeline.zarr_confined import ConfinedStore

            # stores plexhub wrote are read chunk by chunk directly; anything else through
            # zarr; both read only files that resolve inside the image's store
            path = root.path
            arr = open_direct(path / str(level), path) or \
                zarr.open_array(ConfinedStore(path), path=str(level), mode="r")
        with self._lock:
            self._arrays[key] = arr
        return arr

    def planes(self, image: Image, region: Region, channels: list[int]) -> dict[int, Any]:
        """Raw planes of ``channels`` over ``region`` (one basic read per channel)."""
        _check_size(region)
        arr = self.array(image, region.level)
        axes = image.axes or "cyx"
        ys = slice(region.y0, region.y0 + region.h)
        xs = slice(region.x0, region.x0 + region.w)
        out = {}
        for c in channels:
            where: dict[str, Any] = {"t": region.t, "c": c, "z": region.z, "y": ys, "x": xs}
            out[c] = np.asarray(arr[tuple(where[a] for a in axes)])
        return out

    def caller_slot(self, caller: Principal, pixels: int) -> AbstractContextManager[None]:
        """One of the caller's in-flight renders: heavy above
        :data:`~plexhub.limits.HEAVY_RENDER_PIXELS`, tile-sized otherwise (429 when full)."""
        limit = self.heavy if pixels > HEAVY_RENDER_PIXELS else self.tile_renders
        return limit.hold(caller)

    @contextmanager
    def rendering(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the process's pixel budget, then a render slot."""
        with self.budget.take(pixels), self._slots:
            yield

    def composite(self, image: Image, bound: BoundPreset, region: Region) -> Any:
        """The region as (h, w, 3) uint8 RGB. A region larger than
        :data:`~plexhub.limits.RENDER_STRIP_PIXELS` is read and composited a strip of rows
        at a time (the formula is per pixel: the result is the same), so that its raw planes
        and float buffers never exist at full size; the caller holds :meth:`rendering`."""
        from plexhub.ome_pipeline.render import render

        _check_size(region)
        active = [i for i, _ in bound.active()]
        rows = max(1, RENDER_STRIP_PIXELS // max(1, region.w))
        if not active:
            return np.zeros((region.h, region.w, 3), np.uint8)
        if region.h <= rows:
            return render(self.planes(image, region, active), bound)
        out = np.empty((region.h, region.w, 3), np.uint8)
        for y in range(0, region.h, rows):
            strip = replace(region, y0=region.y0 + y, h=min(rows, region.h - y))
            out[y:y + strip.h] = render(self.planes(image, strip, active), bound)
        return out

    def render(self, job: Render) -> bytes:
        """``job`` encoded: composited under :meth:`rendering`, box-filtered to ``job.out``."""
        from plexhub.ome_pipeline.render import encode

        region = job.region
        bound = bind(job.preset, image_channels(job.image))
        with self.rendering(job.pixels):
            rgb = self.composite(job.image, bound, region)
            if job.out is not None and job.out != (region.w, region.h):
                from PIL import Image as PILImage

                rgb = np.asarray(PILImage.fromarray(rgb).resize(job.out,
                                                                PILImage.Resampling.BOX))
            return encode(rgb, job.fmt, job.quality)  # type: ignore[arg-type]

    @overload
    def respond(self, if_none_match: str | None, tag: str, pinned: bool, job: Render, *,
                caller: Principal | None, render: Literal[True] = True) -> Response: ...

    @overload
    def respond(self, if_none_match: str | None, tag: str, pinned: bool, job: Render, *,
                caller: Principal | None, render: bool) -> Response | None: ...

    def respond(self, if_none_match: str | None, tag: str, pinned: bool, job: Render, *,
                caller: Principal | None, render: bool = True) -> Response | None:
        """The answer for rendered image ``tag``: a 304 when ``if_none_match`` matches it, the
        cached bytes, or (``render``) ``job`` rendered now and cached; None when it is not
        cached and ``render`` is False. A render holds one of ``caller``'s render slots
        (:meth:`caller_slot`; a 429 when they are taken); None: the caller holds one already
        (the tile route takes it before its thread). Every route that serves a rendered
        image answers through here: the same headers on the 200 and the 304."""
        headers = cache_headers(tag, pinned)
        if not_modified(if_none_match, tag):
            return answer_304(headers)
        data = self.cache.get(tag)
        if data is None:
            data = self.ahead.take(tag, wait=render)
            if data is not None:
                self.cache.put(tag, data, len(data))
        if data is None:
            if not render:
                return None
            if caller is None:
                data = self.render(job)
            else:
                with self.caller_slot(caller, job.pixels):
                    data = self.render(job)
            self.ahead.rendered(tag)
            self.cache.put(tag, data, len(data))
        return Response(data, media_type=MEDIA[job.fmt], headers=headers)

    def render_ahead(self, tag: str, job: Render) -> bool:
        """Start rendering ``job`` (ETag ``tag``) for the tile request a page will send in a
        moment (:mod:`plexhub.api.renderahead`); not when it is cached already."""
        if self.cache.get(tag) is not None:
            return False
        return self.ahead.start(tag, lambda: self.render(job))


def _check_size(region: Region) -> None:
    if region.h * region.w > MAX_REGION:
        raise InputError(f"region {region.w}x{region.h}", "is too large",
                         f"ask for at most {MAX_REGION} pixels")


def etag(image: Image, preset: RenderPreset, *parts: object) -> str:
    h = hashlib.sha256()
    for p in (image.id, image.checksum or image.fingerprint, digest(preset), *parts):
        h.update(str(p).encode())
        h.update(b"\x00")
    return f'"{h.hexdigest()[:40]}"'


def warm_up(session: Any) -> None:
    """Run a tile request's catalog queries and render path once, before the first request:
    SQLAlchemy compiles its statements and numpy / Pillow load their code paths here rather
    than in the first tile a user waits for."""
    from sqlalchemy import select

    from plexhub.api import preset_store
    from plexhub.api.deps import grants_of
    from plexhub.api.models import Preset, PresetVersion, Study
    from plexhub.model import Channel
    from plexhub.ome_pipeline.render import encode, render
    from plexhub.presets import bind

    session.get(Image, "-")
    session.get(Study, 0)
    grants_of(session, 0)
    session.get(Preset, "-")
    preset_store.latest_version(session, "-")
    session.scalar(select(PresetVersion).where(PresetVersion.preset_id == "-",
                                               PresetVersion.version == 1))
    preset = parse_preset({"channels": [{"index": 0, "color": "FFFFFF",
                                         "window": {"start": 0, "end": 1}}]})
    rgb = render({0: np.zeros((16, 16), np.uint16)}, bind(preset, [Channel(0, "c", "FFFFFF")]))
    encode(rgb, "jpeg")
    encode(rgb, "png")


# --------------------------------------------------------------------------- resolved requests

class Resolved:
    """What a tile request looked up in the catalog (the image, its study, the preset and
    whether the URL pins it), kept per caller, image and preset reference so that a viewer's
    stream of tiles does not repeat the same five queries for every tile.

    An entry lives at most ``TTL`` seconds, never past the expiry of one of the study's
    grants, and never across a database commit of this process (a grant revoked, a study or
    preset changed: every commit invalidates everything). Other API processes' changes are
    seen within ``TTL``. Only successful lookups are kept.
    """

    TTL = 1.0
    MAX = 4096

    def __init__(self) -> None:
        # (expires, generation, value), oldest dropped first when full (entries live a second:
        # recency buys nothing); the expiry is checked here rather than by a cachetools
        # TLRUCache, whose timer wrapper doubled the cost of a hit on this path (0.6 -> 1.3
        # us, bench in the commit message); cachetools is not thread-safe: the lock
        self._items: FIFOCache[Any, tuple[float, int, Any]] = FIFOCache(self.MAX)
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            try:
                hit = self._items[key]  # not .get(): that looks the key up twice
            except KeyError:
                return None
        if hit[0] < time.monotonic() or hit[1] != _generation[0]:
            return None
        return hit[2]

    def put(self, key: Any, value: Any, generation: int, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._items[key] = (time.monotonic() + min(ttl, self.TTL), generation, value)


_generation = [0]


def generation() -> int:
    return _generation[0]


def _bump(_session: Any) -> None:
    _generation[0] += 1


def _listen() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_commit", _bump):
        event.listen(Session, "after_commit", _bump)


_listen()
