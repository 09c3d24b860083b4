"""Cells per phenotype inside regions (annotations drawn on the slide).

A region is a GeoJSON Polygon (a rectangle is a Polygon too) in level-0 pixel coordinates:
x to the right, y down, pixel ``(row, col)`` covering ``[col, col + 1) x [row, row + 1)``.
A cell is inside when the centre of its centroid pixel, ``(col + 0.5, row + 0.5)``, is
(even-odd rule; holes are not drawn by the review tools, only the outer ring counts). Points
and other geometries enclose nothing and are left out.

:func:`count_in_regions` is pure: arrays and rings in, counts out. Its cost is about the
cells in the region's bounding box times the edges that cross one row, not cells x edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Ring = list[tuple[float, float]]  # (x, y) vertices, closed or not


@dataclass(frozen=True)
class Region:
    """One area to count in: an annotation's id, class and outer ring."""

    id: str
    ring: Ring
    label: str = ""
    shape: str = "polygon"  # polygon | rectangle


@dataclass(frozen=True)
class RegionCount:
    region: Region
    area_px: float
    cells: int
    counts: dict[str, int]

    def density_per_mm2(self, pixel_size_um: float | None) -> dict[str, float] | None:
        """Cells per mm² of the region (None without a pixel size or on an empty area)."""
        area = self.area_mm2(pixel_size_um)
        if not area:
            return None
        return {k: round(v / area, 3) for k, v in self.counts.items()}

    def area_mm2(self, pixel_size_um: float | None) -> float | None:
        if not pixel_size_um:
            return None
        return self.area_px * pixel_size_um**2 / 1e6


def region_of(feature: Mapping[str, Any]) -> Region | None:
    """The region of a GeoJSON Feature (``properties.class``, ``properties.shape``), or
    None for a geometry that encloses no area (a point, a broken ring)."""
    geometry = feature.get("geometry") or {}
    coords = geometry.get("coordinates")
    if geometry.get("type") != "Polygon" or not isinstance(coords, list) or not coords:
        return None
    try:
        ring = [(float(p[0]), float(p[1])) for p in coords[0]]
    except (TypeError, ValueError, IndexError):
        return None
    if len(_open(ring)) < 3:
        return None
    props = feature.get("properties") or {}
    return Region(id=str(feature.get("id") or ""), ring=ring,
                  label=str(props.get("class") or ""),
                  shape=str(props.get("shape") or "polygon"))


def _open(ring: Ring) -> Ring:
    return ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else list(ring)


def polygon_area(ring: Ring) -> float:
    """The enclosed area (shoelace formula), in squared coordinate units."""
    pts = np.asarray(_open(ring), dtype=np.float64)
    if len(pts) < 3:
        return 0.0
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def contains(ring: Ring, x: npt.NDArray[np.float64],
             y: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether each point ``(x[i], y[i])`` lies inside ``ring`` (even-odd rule)."""
    pts = np.asarray(_open(ring), dtype=np.float64)
    out = np.zeros(len(x), dtype=bool)
    if len(pts) < 3 or len(x) == 0:
        return out
    lo_x, lo_y = pts.min(axis=0)
    hi_x, hi_y = pts.max(axis=0)
    box = np.nonzero((x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y))[0]
    if len(box) == 0:
        return out
    order = box[np.argsort(y[box], kind="stable")]
    ys, xs = y[order], x[order]
    inside = np.zeros(len(order), dtype=bool)
    nxt = np.roll(pts, -1, axis=0)
    for (x1, y1), (x2, y2) in zip(pts, nxt, strict=True):
        if y1 == y2:
            continue  # a horizontal edge crosses no row
        # the edge counts for points with min(y1, y2) <= y < max(y1, y2)
        a = int(np.searchsorted(ys, min(y1, y2), side="left"))
        b = int(np.searchsorted(ys, max(y1, y2), side="left"))
        if a == b:
            continue
        cross = x1 + (ys[a:b] - y1) * (x2 - x1) / (y2 - y1)
        inside[a:b] ^= xs[a:b] < cross
    out[order] = inside
    return out


def count_in_regions(y: npt.NDArray[Any], x: npt.NDArray[Any], phenotype: npt.NDArray[Any],
                     regions: Sequence[Region], names: Sequence[str] = ()
                     ) -> list[RegionCount]:
    """Cells per phenotype inside each region. ``y``, ``x``: the cells' centroids in
    level-0 pixel indices (row, column); ``phenotype``: each cell's phenotype; ``names``:
    phenotypes to report even at 0 (others found inside are added after them)."""
    cy = np.asarray(y, dtype=np.float64) + 0.5
    cx = np.asarray(x, dtype=np.float64) + 0.5
    kinds = np.asarray(phenotype).astype(str)
    out = []
    for region in regions:
        hit = contains(region.ring, cx, cy)
        found, n = np.unique(kinds[hit], return_counts=True)
        counts = {str(k): 0 for k in names}
        for k, c in zip(found, n, strict=True):
            counts[str(k)] = int(c)
        out.append(RegionCount(region=region, area_px=polygon_area(region.ring),
                               cells=int(hit.sum()), counts=counts))
    return out
