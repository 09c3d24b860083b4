"""Kernel-side pixels for the viewers: tiles, exported figures (PNG with a scale bar) and raw
regions as OME-TIFF.

Tiles come from the API's renderer when the image is an API image (the kernel fetches them
with the user's token and forwards them over the widget's comm, so the browser needs no
access to the API and a remote hub works through the single-user server), and from the same
compositing code in the kernel otherwise (``plexhub.ome_pipeline.render``), so both agree.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plexhub.errors import InputError
from plexhub.ome_pipeline.render import RGB8, ImageFormat, encode, render
from plexhub.presets import RenderPreset, bind
from plexhub.widgets.source import ImageSource

TILE = 256
TILE_FORMAT: ImageFormat = "jpeg"  # the API's tile format and quality: ~7x fewer bytes than PNG
TILE_QUALITY = 85
Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in level-0 pixels


def pick_level(source: ImageSource, zoom: float) -> int:
    """The coarsest level that still has at least one pixel per screen pixel at ``zoom``
    (screen pixels per level-0 pixel)."""
    best = 0
    for level in range(len(source.arrays)):
        if max(source.downsample(level)) <= 1.0 / max(zoom, 1e-9) + 1e-9:
            best = level
    return best


def render_region(source: ImageSource, preset: RenderPreset, level: int, ys: slice,
                  xs: slice, t: int = 0, z: int = 0) -> RGB8:
    """A region of ``level`` composited with ``preset`` (only active channels are read)."""
    bound = bind(preset, source.channels)
    active = [i for i, _ in bound.active()]
    planes = source.read(level, active, ys, xs, t, z)
    if not active:
        return np.zeros((*planes.shape[1:], 3), np.uint8)
    return render(dict(zip(active, planes, strict=True)), bound)


def tile_bytes(source: ImageSource, preset: RenderPreset, level: int, row: int, col: int,
               t: int = 0, z: int = 0, fmt: ImageFormat = TILE_FORMAT) -> bytes:
    """Tile (row, col) of ``level``, ``TILE`` pixels, cropped at the edges, encoded as
    ``fmt`` (JPEG at the API's quality by default)."""
    h, w = source.level_shapes[level]
    if not (0 <= row * TILE < h and 0 <= col * TILE < w):
        raise InputError(f"tile {level}/{row}/{col}", "is outside the image")
    if source.client is not None and source.image_id is not None:
        return source.client.tile(source.image_id, level, row, col,
                                  preset.model_dump(mode="json", exclude_none=True),
                                  size=TILE, fmt=fmt, t=t, z=z)
    rgb = render_region(source, preset, level, slice(row * TILE, (row + 1) * TILE),
                        slice(col * TILE, (col + 1) * TILE), t, z)
    return encode(rgb, fmt, TILE_QUALITY)


def tile_png(source: ImageSource, preset: RenderPreset, level: int, row: int, col: int,
             t: int = 0, z: int = 0) -> bytes:
    """Tile (row, col) of ``level`` as lossless PNG (pixel-exact comparisons)."""
    return tile_bytes(source, preset, level, row, col, t, z, "png")


def level_region(source: ImageSource, region: Region, level: int) -> tuple[slice, slice]:
    """(ys, xs) of ``level`` that cover a level-0 ``region`` (clipped to the image)."""
    x0, y0, x1, y1 = region
    h0, w0 = source.level_shapes[0]
    x0, x1 = max(0, int(x0)), min(w0, (math.ceil(x1)))
    y0, y1 = max(0, int(y0)), min(h0, (math.ceil(y1)))
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"region {region}", "is empty or outside the image",
                         f"the image is {w0} x {h0} pixels (x0, y0, x1, y1)")
    fy, fx = source.downsample(level)
    return (slice(int(y0 / fy), max(int(y0 / fy) + 1, (math.ceil(y1 / fy)))),
            slice(int(x0 / fx), max(int(x0 / fx) + 1, (math.ceil(x1 / fx)))))


# -- scale bar ------------------------------------------------------------------------------

def scale_bar(um_per_px: float, target_px: float = 120.0) -> tuple[float, float, str]:
    """A 1-2-5 length near ``target_px`` screen pixels: (micrometres, pixels, label)."""
    if not um_per_px > 0:
        raise InputError(f"pixel size {um_per_px}", "must be above 0")
    raw = um_per_px * target_px
    exp = math.floor(math.log10(raw))
    um = max((m * 10.0**exp for m in (1, 2, 5, 10) if m * 10.0**exp <= raw),
             default=10.0**exp)
    if um >= 1000:
        label = f"{um / 1000:g} mm"
    elif um >= 1:
        label = f"{um:g} µm"
    else:
        label = f"{um * 1000:g} nm"
    return um, um / um_per_px, label


def _draw_scale_bar(rgb: RGB8, um_per_px: float) -> RGB8:
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    _, px, label = scale_bar(um_per_px, max(20.0, w / 5))
    draw = ImageDraw.Draw(img)
    margin, thick = max(4, w // 50), max(2, h // 100)
    x1, y1 = w - margin, h - margin
    draw.rectangle((x1 - px, y1 - thick, x1, y1), fill=(255, 255, 255))
    box = draw.textbbox((0, 0), label)
    draw.text((x1 - px / 2 - (box[2] - box[0]) / 2, y1 - thick - 4 - (box[3] - box[1])),
              label, fill=(255, 255, 255))
    return np.asarray(img)


def export_png(source: ImageSource, preset: RenderPreset, region: Region, level: int,
               t: int = 0, z: int = 0, with_scale_bar: bool = True) -> bytes:
    """The region rendered at ``level`` as a PNG figure, with a scale bar when the pixel
    size is known."""
    ys, xs = level_region(source, region, level)
    rgb = render_region(source, preset, level, ys, xs, t, z)
    um = source.pixel_size_um()
    if with_scale_bar and um is not None:
        rgb = _draw_scale_bar(rgb, um * source.downsample(level)[1])
    return encode(np.ascontiguousarray(rgb), "png")


def export_ome_tiff(source: ImageSource, region: Region, level: int = 0,
                    channels: Sequence[int] | None = None, t: int = 0, z: int = 0) -> bytes:
    """Raw pixels of a region as an OME-TIFF (C, Y, X) with channel names and pixel sizes."""
    import tifffile

    ys, xs = level_region(source, region, level)
    chans = list(range(len(source.channels))) if channels is None else list(channels)
    data: npt.NDArray[Any] = source.read(level, chans, ys, xs, t, z)
    meta: dict[str, Any] = {"axes": "CYX",
                            "Channel": {"Name": [source.channels[c].label for c in chans]}}
    um = source.pixel_size_um()
    if um is not None:
        fy, fx = source.downsample(level)
        meta |= {"PhysicalSizeX": um * fx, "PhysicalSizeXUnit": "µm",
                 "PhysicalSizeY": um * fy, "PhysicalSizeYUnit": "µm"}
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, ome=True, metadata=meta, photometric="minisblack")
    return buf.getvalue()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.partial")
    tmp.write_bytes(data)
    tmp.replace(p)
    return p
