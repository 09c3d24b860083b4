"""Per-cell measurements: area, centroid, eccentricity and, for every channel, the mean,
median and percentiles, split into nucleus and cytoplasm when the cells are larger than
their nuclei.

Work is per block: a block reads its labels and then one channel at a time with a margin of
context, measures the cells it *owns* (those whose first pixel, in row-major order, lies in
its core) from ``np.bincount`` sums and one sort per channel for the order statistics, and
returns their rows. Memory is one block's labels and one channel plus the table itself,
whatever the number of channels or cells. A cell wider than the margin would be cut: such
cells are counted in ``Measurements.truncated``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
ReadRegion = Callable[[int, slice, slice], Array]  # channel, ys, xs -> 2-D plane


@dataclass
class Measurements:
    """One row per cell, ordered by label."""

    label: Array  # uint32 (n,)
    area: Array  # pixels, int64 (n,)
    centroid: Array  # (n, 2) float64, (y, x) in level-0 pixels
    eccentricity: Array  # (n,)
    mean: Array  # (n, channels) float32
    percentiles: dict[float, Array] = field(default_factory=dict)  # q -> (n, channels)
    nucleus_mean: Array | None = None
    cytoplasm_mean: Array | None = None
    nucleus_area: Array | None = None
    truncated: int = 0

    @property
    def n(self) -> int:
        return len(self.label)


def _concat(parts: list[Measurements], nch: int, qs: Sequence[float], split: bool
            ) -> Measurements:
    if not parts:
        empty = np.zeros((0, nch), np.float32)
        return Measurements(np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros((0, 2)),
                            np.zeros(0), empty, dict.fromkeys(qs, empty),
                            empty if split else None, empty if split else None,
                            np.zeros(0, np.int64) if split else None)
    label = np.concatenate([p.label for p in parts])
    order = np.argsort(label, kind="stable")

    def cat(get: Callable[[Measurements], Array | None]) -> Any:
        arrays = [get(p) for p in parts]
        present = [a for a in arrays if a is not None]
        if len(present) != len(arrays):
            return None
        return np.concatenate(present)[order]

    def pct(q: float) -> Callable[[Measurements], Array | None]:
        return lambda p: p.percentiles[q]

    return Measurements(
        label=label[order], area=cat(lambda p: p.area), centroid=cat(lambda p: p.centroid),
        eccentricity=cat(lambda p: p.eccentricity), mean=cat(lambda p: p.mean),
        percentiles={q: cat(pct(q)) for q in qs},
        nucleus_mean=cat(lambda p: p.nucleus_mean),
        cytoplasm_mean=cat(lambda p: p.cytoplasm_mean),
        nucleus_area=cat(lambda p: p.nucleus_area),
        truncated=sum(p.truncated for p in parts))


def measure_region(cells: Array, nuclei: Array | None, read: Callable[[int], Array],
                   nch: int, *, origin: tuple[int, int], core: tuple[slice, slice],
                   image_shape: tuple[int, int], percentiles: Sequence[float] = (50.0,)
                   ) -> Measurements:
    """Measure the cells of region ``cells`` (labels, level-0 pixels whose top-left is
    ``origin``) that the region's ``core`` owns; ``read(c)`` returns channel c over the same
    region."""
    h, w = cells.shape
    flat = cells.ravel()
    uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    fy, fx = first // w, first % w
    owned = (uniq != 0) & (fy >= core[0].start) & (fy < core[0].stop) & \
        (fx >= core[1].start) & (fx < core[1].stop)
    if not owned.any():
        return _concat([], nch, percentiles, nuclei is not None)
    slot = np.cumsum(owned) - 1  # unique index -> row
    pix = np.flatnonzero(owned[inverse])
    row = slot[inverse[pix]]
    n = int(owned.sum())
    area = np.bincount(row, minlength=n)
    ys = (pix // w).astype(np.float64)
    xs = (pix % w).astype(np.float64)
    sy, sx = np.bincount(row, ys, n), np.bincount(row, xs, n)
    cy, cx = sy / area, sx / area
    dy, dx = ys - cy[row], xs - cx[row]
    myy = np.bincount(row, dy * dy, n) / area
    mxx = np.bincount(row, dx * dx, n) / area
    mxy = np.bincount(row, dy * dx, n) / area
    # eigenvalues of the inertia tensor, as skimage.measure.regionprops computes them
    common = np.sqrt(4 * mxy**2 + (myy - mxx) ** 2)
    l1 = (myy + mxx + common) / 2
    l2 = (myy + mxx - common) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = np.where(l1 > 0, np.sqrt(np.clip(1 - l2 / l1, 0, 1)), 0.0)
    # cells that touch the region's edge where the image goes on were cut by the region
    ty, tx = pix // w, pix % w
    edge = np.zeros(n, bool)
    y0, x0 = origin
    cut = ((ty == 0) & (y0 > 0)) | ((ty == h - 1) & (y0 + h < image_shape[0])) | \
        ((tx == 0) & (x0 > 0)) | ((tx == w - 1) & (x0 + w < image_shape[1]))
    edge[row[cut]] = True

    mean = np.empty((n, nch), np.float32)
    pct = {q: np.empty((n, nch), np.float32) for q in percentiles}
    split = nuclei is not None
    nmean = np.empty((n, nch), np.float32) if split else None
    cmean = np.empty((n, nch), np.float32) if split else None
    in_nuc = nuclei.ravel()[pix] != 0 if nuclei is not None else None
    narea = np.bincount(row[in_nuc], minlength=n) if in_nuc is not None else None
    order_rows = np.argsort(row, kind="stable")  # pixels grouped by cell
    starts = np.concatenate([[0], np.cumsum(area)[:-1]])
    for c in range(nch):
        values = read(c).ravel()[pix]
        mean[:, c] = np.bincount(row, values, n) / area
        if nmean is not None and cmean is not None and in_nuc is not None \
                and narea is not None:
            nsum = np.bincount(row[in_nuc], values[in_nuc], n)
            with np.errstate(invalid="ignore", divide="ignore"):
                nmean[:, c] = nsum / narea
                cmean[:, c] = (mean[:, c] * area - nsum) / (area - narea)
        if pct:
            grouped = _sorted_within(values[order_rows], row[order_rows])
            for q, out in pct.items():
                pos = starts + q / 100.0 * (area - 1)
                lo = np.floor(pos).astype(np.int64)
                hi = np.minimum(lo + 1, starts + area - 1)
                frac = pos - lo
                out[:, c] = grouped[lo] * (1 - frac) + grouped[hi] * frac
    return Measurements(
        label=uniq[owned].astype(np.uint32), area=area.astype(np.int64),
        centroid=np.stack([cy + y0, cx + x0], axis=1), eccentricity=ecc, mean=mean,
        percentiles=pct, nucleus_mean=nmean, cytoplasm_mean=cmean,
        nucleus_area=narea.astype(np.int64) if narea is not None else None,
        truncated=int(edge.sum()))


def _sorted_within(values: Array, groups: Array) -> Array:
    """``values`` (already grouped by ``groups``, ascending) sorted inside each group."""
    if values.dtype.kind in "ub" and values.dtype.itemsize <= 2:
        bits = 8 * values.dtype.itemsize
        key = (groups.astype(np.int64) << bits) | values.astype(np.int64)
        key.sort()
        return (key & ((1 << bits) - 1)).astype(np.float64)
    order = np.lexsort((values, groups))
    return values[order].astype(np.float64)


def quantify_array(cells: Array, image: Array, nuclei: Array | None = None, *,
                   percentiles: Sequence[float] = (50.0,)) -> Measurements:
    """In-memory measurements of ``image`` (channels, y, x) over ``cells``."""
    h, w = cells.shape
    return measure_region(cells, nuclei, lambda c: image[c], image.shape[0], origin=(0, 0),
                          core=(slice(0, h), slice(0, w)), image_shape=(h, w),
                          percentiles=percentiles)


def quantify_blocks(cells: Any, nuclei: Any | None, read: ReadRegion, nch: int, *,
                    block: int = 2048, margin: int = 48,
                    percentiles: Sequence[float] = (50.0,)) -> Measurements:
    """Block-wise measurements; ``cells`` and ``nuclei`` are 2-D arrays that slice lazily
    (zarr, dask), ``read(c, ys, xs)`` returns a region of channel c. Runs one dask task per
    block on the current scheduler."""
    from plexhub.ome_pipeline.analysis._lazy import module

    compute, delayed = module("dask.base").compute, module("dask.delayed").delayed

    h, w = cells.shape

    def one(by: int, bx: int) -> Measurements:
        ys0, xs0 = by * block, bx * block
        ys1, xs1 = min(ys0 + block, h), min(xs0 + block, w)
        ey0, ex0 = max(ys0 - margin, 0), max(xs0 - margin, 0)
        ey1, ex1 = min(ys1 + margin, h), min(xs1 + margin, w)
        ys, xs = slice(ey0, ey1), slice(ex0, ex1)
        lab = np.asarray(cells[ys, xs])
        nuc = None if nuclei is None else np.asarray(nuclei[ys, xs])
        return measure_region(lab, nuc, lambda c: np.asarray(read(c, ys, xs)), nch,
                              origin=(ey0, ex0),
                              core=(slice(ys0 - ey0, ys1 - ey0), slice(xs0 - ex0, xs1 - ex0)),
                              image_shape=(h, w), percentiles=percentiles)

    tasks = [delayed(one)(by, bx) for by in range(-(-h // block))
             for bx in range(-(-w // block))]
    parts = [p for p in compute(*tasks) if p.n]
    return _concat(parts, nch, percentiles, nuclei is not None)
