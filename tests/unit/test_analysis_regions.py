"""Cells per phenotype inside annotations (``analysis.regions``), against a brute-force
count: every cell tested against every region one at a time, by the winding number (an
algorithm other than the one under test)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plexhub.ome_pipeline.analysis.regions import (
    Region,
    contains,
    count_in_regions,
    polygon_area,
    region_of,
)


def winding(ring: list[tuple[float, float]], px: float, py: float) -> bool:
    """Brute force: the winding number of a closed ring around one point."""
    pts = ring[:-1] if ring[0] == ring[-1] else ring
    total = 0.0
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
        a = math.atan2(y1 - py, x1 - px)
        b = math.atan2(y2 - py, x2 - px)
        d = b - a
        while d > math.pi:
            d -= 2 * math.pi
        while d < -math.pi:
            d += 2 * math.pi
        total += d
    return abs(total) > math.pi


def star(rng: np.random.Generator, cx: float, cy: float, n: int) -> list[tuple[float, float]]:
    """A random simple (star-shaped) polygon, closed."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(20, 120, n)
    ring = [(float(cx + r * math.cos(a)), float(cy + r * math.sin(a)))
            for a, r in zip(angles, radii, strict=True)]
    return [*ring, ring[0]]


def brute(y: np.ndarray, x: np.ndarray, kinds: np.ndarray,
          region: Region) -> dict[str, int]:
    counts: dict[str, int] = {}
    for yy, xx, k in zip(y, x, kinds, strict=True):
        if winding(region.ring, xx + 0.5, yy + 0.5):
            counts[str(k)] = counts.get(str(k), 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(6))
def test_counts_match_a_brute_force_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1500
    y = rng.uniform(0, 400, n).round()  # centroid pixel indices, as regionprops gives
    x = rng.uniform(0, 500, n).round(1)
    kinds = rng.choice(np.array(["T", "B", "other"], dtype=object), n)
    regions = [Region(f"s{i}", star(rng, rng.uniform(100, 400), rng.uniform(100, 300),
                                    int(rng.integers(3, 40)))) for i in range(4)]
    regions.append(Region("r", [(50.0, 60.0), (250.0, 60.0), (250.0, 190.0), (50.0, 190.0),
                                (50.0, 60.0)], label="tumour", shape="rectangle"))
    got = count_in_regions(y, x, kinds, regions, names=["T", "B", "other", "NK"])
    for region, count in zip(regions, got, strict=True):
        want = brute(y, x, kinds, region)
        assert {k: v for k, v in count.counts.items() if v} == want
        assert count.counts["NK"] == 0
        assert count.cells == sum(want.values())
        assert count.region is region


def test_rectangle_edges_and_area() -> None:
    # pixel (row, col) is inside when its centre (col + 0.5, row + 0.5) is
    rect = [(10.0, 20.0), (30.0, 20.0), (30.0, 25.0), (10.0, 25.0), (10.0, 20.0)]
    rows, cols = np.mgrid[0:40, 0:40]
    y, x = rows.ravel().astype(float), cols.ravel().astype(float)
    (count,) = count_in_regions(y, x, np.full(len(y), "c", dtype=object),
                                [Region("a", rect)])
    assert count.cells == 20 * 5 == count.area_px == polygon_area(rect)
    assert count.area_mm2(0.5) == pytest.approx(100 * 0.25 / 1e6)
    assert count.density_per_mm2(0.5) == {"c": round(100 / (100 * 0.25 / 1e6), 3)}
    assert count.density_per_mm2(None) is None
    assert not contains(rect, np.array([], dtype=float), np.array([], dtype=float)).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=1, max_size=60),
       st.integers(0, 2**31))
def test_any_points_against_a_random_star(points: list[tuple[float, float]],
                                          seed: int) -> None:
    ring = star(np.random.default_rng(seed), 50, 50, 7)
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    got = contains(ring, x, y)
    for i, (px, py) in enumerate(points):
        # the two rules may differ only on the boundary itself
        near = min(_distance_to_edge(ring, px, py), 1.0)
        if near > 1e-6:
            assert got[i] == winding(ring, px, py)


def _distance_to_edge(ring: list[tuple[float, float]], px: float, py: float) -> float:
    best = math.inf
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy or 1)))
        best = min(best, math.hypot(px - x1 - t * dx, py - y1 - t * dy))
    return best


def test_region_of_features() -> None:
    poly = {"type": "Feature", "id": "a1",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 3], [0, 0]]]},
            "properties": {"class": "tumour", "shape": "polygon"}}
    region = region_of(poly)
    assert region is not None
    assert (region.id, region.label, region.shape) == ("a1", "tumour", "polygon")
    assert polygon_area(region.ring) == 6.0
    assert region_of({"type": "Feature", "geometry": {"type": "Point",
                                                       "coordinates": [1, 2]}}) is None
    assert region_of({"type": "Feature", "geometry": {"type": "Polygon",
                                                       "coordinates": [[[0, 0], [1, 1]]]}}) \
        is None
    assert region_of({"type": "Feature", "geometry": {"type": "Polygon",
                                                       "coordinates": [["x"]]}}) is None
