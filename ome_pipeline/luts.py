"""Lookup tables: 256 x 3 uint8 tables for the names in ``plexhub.presets.LUT_NAMES``.

Every renderer uses these tables (the napari export sends them as explicit colours), so all
of them agree whatever a viewer's own LUT of the same name looks like.

- ``gray``: entry i is (i, i, i).
- ``fire``: ImageJ's *Fire* (OMERO's ``fire.lut``): 32 control points spread over 256
  entries with ImageJ's ``LutLoader.interpolate`` rule (linear, truncated to integers).
- ``viridis``: piecewise-linear through the 11 evenly spaced stops of matplotlib's viridis
  (#440154 ... #FDE725); close to, but not identical with, the 256-entry original.
- ``hot``: matplotlib's *hot* breakpoints: red rises first, then green, then blue.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from plexhub.colors import hex_to_rgb

Lut = npt.NDArray[np.uint8]

_FIRE = (
    (0, 0, 1, 25, 49, 73, 98, 122, 146, 162, 173, 184, 195, 207, 217, 229, 240, 252,
     255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 35, 57, 79, 101, 117, 133, 147, 161, 175,
     190, 205, 219, 234, 248, 255, 255, 255, 255),
    (0, 61, 96, 130, 165, 192, 220, 227, 210, 181, 151, 122, 93, 64, 35, 5, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 35, 98, 160, 223, 255),
)

_VIRIDIS_STOPS = ("440154", "482576", "414487", "35608D", "2A788E", "21908C", "22A884",
                  "43BF71", "7AD151", "BBDF27", "FDE725")

# (position, value) breakpoints per component, positions in [0, 1]
_HOT = (((0.0, 0.0416), (0.365079, 1.0), (1.0, 1.0)),
        ((0.0, 0.0), (0.365079, 0.0), (0.746032, 1.0), (1.0, 1.0)),
        ((0.0, 0.0), (0.746032, 0.0), (1.0, 1.0)))


def _imagej_interpolate(points: tuple[int, ...]) -> npt.NDArray[np.float64]:
    n = len(points)
    src = np.asarray(points, np.float64)
    pos = np.arange(256) * (n / 256.0)
    i1 = pos.astype(np.int64)
    i2 = np.minimum(i1 + 1, n - 1)
    frac = pos - i1
    return np.floor((1.0 - frac) * src[i1] + frac * src[i2])


def _stops(hexes: tuple[str, ...]) -> npt.NDArray[np.float64]:
    stops = np.array([hex_to_rgb(h) for h in hexes], np.float64)
    x = np.linspace(0.0, 1.0, len(hexes))
    t = np.arange(256) / 255.0
    return np.stack([np.interp(t, x, stops[:, k]) for k in range(3)], axis=1)


def _breakpoints(spec: tuple[tuple[tuple[float, float], ...], ...]) -> npt.NDArray[np.float64]:
    t = np.arange(256) / 255.0
    comps = [np.interp(t, [p for p, _ in s], [v for _, v in s]) * 255.0 for s in spec]
    return np.stack(comps, axis=1)


def _build(name: str) -> npt.NDArray[np.float64]:
    if name == "gray":
        ramp = np.arange(256, dtype=np.float64)
        return np.stack([ramp, ramp, ramp], axis=1)
    if name == "fire":
        return np.stack([_imagej_interpolate(c) for c in _FIRE], axis=1)
    if name == "viridis":
        return _stops(_VIRIDIS_STOPS)
    if name == "hot":
        return _breakpoints(_HOT)
    raise KeyError(name)


@cache
def lut(name: str) -> Lut:
    """The 256 x 3 uint8 table for ``name`` (a canonical name from ``LUT_NAMES``)."""
    table = np.floor(_build(name) + 0.5).clip(0, 255).astype(np.uint8)
    table.setflags(write=False)
    return table


NAMES = ("gray", "fire", "viridis", "hot")
