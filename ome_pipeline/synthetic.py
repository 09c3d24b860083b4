"""A deterministic synthetic multiplex-immunofluorescence generator, for tests and benchmarks.

Every pixel is a pure function of (seed, channel, y, x): cells sit on a jittered grid inside a
smooth tissue mask, markers are nuclear, cytoplasmic or membranous blobs on a random subset of
cells, plus autofluorescence, camera offset and shot/read noise (hashed per pixel, so any
region renders the same whatever the tiling). Compression ratios are therefore realistic,
and images of any size stream tile by tile without ever being held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.metadata import hex_to_ome_color
from plexhub.ome_pipeline.source import Array, ChannelMeta, PixelSource, SourceImage

MARKERS = (  # name, colour, compartment, fraction of cells positive, brightness
    ("DAPI", "0000FF", "nuc", 1.00, 6000.0),
    ("CD3", "FF0000", "mem", 0.25, 2500.0),
    ("CD8", "00FF00", "mem", 0.12, 2500.0),
    ("CD20", "FFFF00", "mem", 0.10, 2500.0),
    ("CD68", "FF00FF", "cyto", 0.08, 2500.0),
    ("PanCK", "00FFFF", "cyto", 0.40, 2500.0),
    ("Ki67", "FF8000", "nuc", 0.15, 2500.0),
    ("FOXP3", "FFFFFF", "nuc", 0.04, 2500.0),
)
GRID = 12  # px between cell sites
LATTICE = 256  # px between tissue-field control points
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser (vectorised)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, salt: int, a: Array, b: Array) -> npt.NDArray[np.float64]:
    """Uniform [0, 1) numbers that depend only on (seed, salt, a, b)."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed * 1_000_003 + salt) + _M1 * a.astype(np.uint64)
                 + _M2 * b.astype(np.uint64))
        h = _mix(h)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: size, channels, dtype, seed, tile size and pixel size (µm)."""

    size_y: int = 2048
    size_x: int = 2048
    channels: int = 8
    dtype: str = "uint16"
    seed: int = 0
    tile: int = 512
    pixel_size: float = 0.5

    def marker(self, c: int) -> tuple[str, str, str, float, float]:
        name, color, comp, frac, amp = MARKERS[c % len(MARKERS)]
        if c >= len(MARKERS):
            name = f"{name}_{c}"
        return name, color, comp, frac, amp

    @property
    def names(self) -> list[str]:
        return [self.marker(c)[0] for c in range(self.channels)]

    @property
    def colors(self) -> list[str]:
        return [self.marker(c)[1] for c in range(self.channels)]


def _tissue(spec: SyntheticSpec, ys: Array, xs: Array) -> npt.NDArray[np.float64]:
    """Smooth tissue density in [0, 1] at pixel coordinates (broadcast ys[:, None], xs)."""
    fy, fx = ys / LATTICE, xs / LATTICE
    iy, ix = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    ty, tx = fy - iy, fx - ix
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)  # smoothstep

    def v(dy: int, dx: int) -> npt.NDArray[np.float64]:
        return _uniform(spec.seed, 7, iy + dy + 1000, ix + dx + 1000)

    top = v(0, 0) * (1 - tx) + v(0, 1) * tx
    bottom = v(1, 0) * (1 - tx) + v(1, 1) * tx
    field = top * (1 - ty) + bottom * ty
    return np.clip((field - 0.3) * 3.0, 0.0, 1.0)


def _cells(spec: SyntheticSpec, y0: int, x0: int, h: int, w: int, margin: int
           ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cell centres (y, x) and ids in the window expanded by ``margin``."""
    gy = np.arange((y0 - margin) // GRID, (y0 + h + margin) // GRID + 1)
    gx = np.arange((x0 - margin) // GRID, (x0 + w + margin) // GRID + 1)
    mesh_y, mesh_x = np.meshgrid(gy, gx, indexing="ij")
    GY, GX = mesh_y.ravel(), mesh_x.ravel()
    cy = (GY * GRID + _uniform(spec.seed, 1, GY, GX) * GRID).astype(np.int64)
    cx = (GX * GRID + _uniform(spec.seed, 2, GY, GX) * GRID).astype(np.int64)
    inside = (cy >= 0) & (cy < spec.size_y) & (cx >= 0) & (cx < spec.size_x)
    keep = inside & (_uniform(spec.seed, 3, GY, GX) < 0.85 * _tissue(spec, cy, cx))
    ids = (GY * (spec.size_x // GRID + 2) + GX + 1)[keep]
    return cy[keep], cx[keep], ids


def render_tile(spec: SyntheticSpec, c: int, y0: int, x0: int, h: int, w: int) -> Array:
    """Channel ``c`` over rows y0..y0+h and columns x0..x0+w, in ``spec.dtype``."""
    from scipy import ndimage

    _, _, comp, frac, amp = spec.marker(c)
    s_nuc, s_cell = 3.0 / spec.pixel_size / 2.355, 4.5 / spec.pixel_size / 2.355
    margin = int(4 * s_cell) + 2
    cy, cx, ids = _cells(spec, y0, x0, h, w, margin)
    positive = _uniform(spec.seed, 100 + c, ids, ids) < frac
    brightness = amp * np.exp(0.5 * (_uniform(spec.seed, 200 + c, ids, ids) - 0.5) * 2.0)
    H, W = h + 2 * margin, w + 2 * margin
    impulses = np.zeros((H, W), np.float32)
    py, px = cy[positive] - y0 + margin, cx[positive] - x0 + margin
    ok = (py >= 0) & (py < H) & (px >= 0) & (px < W)
    np.add.at(impulses, (py[ok], px[ok]), brightness[positive][ok].astype(np.float32))
    if comp == "nuc":
        img = ndimage.gaussian_filter(impulses, s_nuc) * (2 * np.pi * s_nuc**2)
    elif comp == "cyto":
        img = ndimage.gaussian_filter(impulses, s_cell) * (2 * np.pi * s_cell**2)
    else:
        outer = ndimage.gaussian_filter(impulses, s_cell) * (2 * np.pi * s_cell**2)
        inner = ndimage.gaussian_filter(impulses, s_nuc) * (2 * np.pi * s_nuc**2)
        img = np.clip(outer - 0.9 * inner, 0, None) * 2.5
    img = img[margin:margin + h, margin:margin + w].astype(np.float64)
    yy = np.arange(y0, y0 + h)[:, None]
    xx = np.arange(x0, x0 + w)[None, :]
    img += _tissue(spec, yy, xx) * (150.0 + 100.0 * (c % 8))
    u1 = np.maximum(_uniform(spec.seed, 300 + c, yy * 65_537 + xx, yy + 0 * xx), 1e-12)
    u2 = _uniform(spec.seed, 400 + c, yy + 0 * xx, yy * 65_537 + xx)
    noise = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    img += noise * np.sqrt(img + 64.0) + 100.0
    return _to_dtype(img, np.dtype(spec.dtype))


def _to_dtype(img: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> Array:
    if dtype.kind == "f":
        return (img / 65535.0).astype(dtype)
    info = np.iinfo(dtype)
    scale = (info.max + 1) / 65536.0 if info.max < 65535 else 1.0
    return np.clip(np.rint(img * scale), max(info.min, 0), info.max).astype(dtype)


def render_labels(spec: SyntheticSpec, y0: int, x0: int, h: int, w: int) -> Array:
    """A uint32 nucleus mask matching the image: each cell a disk of its own id."""
    r = max(2, int(2.5 / spec.pixel_size))
    cy, cx, ids = _cells(spec, y0, x0, h, w, r + 1)
    out = np.zeros((h, w), np.uint32)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = dy * dy + dx * dx <= r * r
    for y, x, i in zip(cy - y0, cx - x0, ids, strict=True):
        ya, yb, xa, xb = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        if ya >= yb or xa >= xb:
            continue
        d = disk[ya - (y - r):yb - (y - r), xa - (x - r):xb - (x - r)]
        out[ya:yb, xa:xb][d] = i
    return out


class SyntheticPixels(PixelSource):
    """Streams a synthetic image region by region (nothing is held in memory)."""

    def __init__(self, spec: SyntheticSpec, labels: bool = False) -> None:
        self.spec = spec
        self.labels = labels

    def read(self, t: int, z: int, channels: Any, ys: slice, xs: slice) -> Array:
        h, w = ys.stop - ys.start, xs.stop - xs.start
        if self.labels:
            return render_labels(self.spec, ys.start, xs.start, h, w)[None]
        return np.stack([render_tile(self.spec, c, ys.start, xs.start, h, w) for c in channels])


def synthetic_image(spec: SyntheticSpec, labels: bool = False) -> SourceImage:
    """A SourceImage backed by the generator (or its matching nucleus mask)."""
    sizes = {"x": PhysicalSize(spec.pixel_size), "y": PhysicalSize(spec.pixel_size)}
    if labels:
        return SourceImage(name="synthetic nuclei", shape=(1, 1, 1, spec.size_y, spec.size_x),
                           dtype=np.dtype(np.uint32), pixels=SyntheticPixels(spec, True),
                           physical_sizes=sizes, is_label=True)
    return SourceImage(
        name="synthetic mIF", shape=(1, spec.channels, 1, spec.size_y, spec.size_x),
        dtype=np.dtype(spec.dtype), pixels=SyntheticPixels(spec), physical_sizes=sizes,
        channels=[ChannelMeta(n, col) for n, col in zip(spec.names, spec.colors, strict=True)])


def write_ome_tiff(path: str | Path, spec: SyntheticSpec, *, compression: str | None = "zlib",
                   pyramid_levels: int = 0, workers: int = 2) -> Path:
    """Write the synthetic image as a tiled OME-TIFF, streaming tile by tile."""
    import tifffile

    path = Path(path)
    t = spec.tile

    def tiles(level: int) -> Iterator[Array]:
        f = 2**level
        for c in range(spec.channels):
            for y in range(0, -(-spec.size_y // f), t):
                for x in range(0, -(-spec.size_x // f), t):
                    if level == 0:
                        h = min(t, spec.size_y - y)
                        w = min(t, spec.size_x - x)
                        yield render_tile(spec, c, y, x, h, w)
                    else:
                        yield _downsampled_tile(spec, c, level, y, x)

    metadata = {
        "axes": "CYX", "Name": "synthetic mIF",
        "PhysicalSizeX": spec.pixel_size, "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": spec.pixel_size, "PhysicalSizeYUnit": "µm",
        "Channel": {"Name": spec.names, "Color": [hex_to_ome_color(c) for c in spec.colors]},
    }
    res = 1e4 / spec.pixel_size
    opts: dict[str, Any] = {"tile": (t, t), "compression": compression,
                            "photometric": "minisblack", "maxworkers": workers}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(tiles(0), shape=(spec.channels, spec.size_y, spec.size_x), dtype=spec.dtype,
                  subifds=pyramid_levels or None, metadata=metadata, resolution=(res, res),
                  resolutionunit="CENTIMETER", **opts)
        for level in range(1, pyramid_levels + 1):
            f = 2**level
            tif.write(tiles(level), shape=(spec.channels, -(-spec.size_y // f),
                                           -(-spec.size_x // f)),
                      dtype=spec.dtype, subfiletype=1, resolution=(res / f, res / f),
                      resolutionunit="CENTIMETER", **opts)
    return path


def _downsampled_tile(spec: SyntheticSpec, c: int, level: int, y: int, x: int) -> Array:
    from plexhub.ome_pipeline.pyramid import downsample_mean

    f = 2**level
    y0, x0 = y * f, x * f
    h = min(spec.tile * f, spec.size_y - y0)
    w = min(spec.tile * f, spec.size_x - x0)
    data = render_tile(spec, c, y0, x0, h, w)
    for _ in range(level):
        data = downsample_mean(data)
    return data
