"""Per-cell measurements: area, centroid, eccentricity and, for every channel, the mean,
median and percentiles, split into nucleus and cytoplasm when the cells are larger than
their nuclei.

Work is per block: a block reads its labels and then one channel at a time with a margin of
context, measures the cells it *owns* (those whose centroid lies in its core) and returns their
rows. The order statistics are exactly ``numpy.percentile``'s (linear interpolation; the median
is the 50th percentile). With the compiled kernels (``plexhub.ome_pipeline.kernels``) a block's
owned pixels are grouped by cell once (a counting sort), then per 8- or 16-bit channel one pass
sums each cell and selects its ranks (quickselect), no sort; otherwise ``np.bincount`` sums and
one sort per channel. Memory is one block's labels and one channel plus the table itself,
whatever the number of channels or cells. A cell wider than the margin would be cut: such
cells are counted in ``Measurements.truncated``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from plexhub.ome_pipeline import kernels

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
    ``origin``) whose centroid lies in the region's ``core``; ``read(c)`` returns channel c
    over the same region. Sums are over the label values themselves (no sort); a cell seen
    whole by two overlapping regions has the same centroid in both, so exactly one of them
    measures it."""
    h, w = cells.shape
    # bincount converts other index types to intp and weights to float64 on every call
    flat = np.ascontiguousarray(cells).ravel().astype(np.intp)
    size = int(flat.max()) + 1 if flat.size else 1
    mom = kernels.moments(flat.reshape(h, w), size) if kernels.NATIVE else None
    sy: Array
    sx: Array
    syy: Array
    sxx: Array
    sxy: Array
    if mom is not None:  # one pass, exact integer sums (the same float64 as below)
        area = mom[:, 0]
        sy, sx, syy, sxx, sxy = (mom[:, k].astype(np.float64) for k in range(1, 6))
        del mom
    else:
        area = np.bincount(flat, minlength=size)
        rows = np.arange(h, dtype=np.float64)
        cols = np.arange(w, dtype=np.float64)
        # sums of y, x, y², x², xy per label: these five weighted bincounts stream through
        # the region once each
        ys = np.repeat(rows, w)
        xs = np.tile(cols, h)
        sy = np.bincount(flat, ys, size)
        sx = np.bincount(flat, xs, size)
        syy = np.bincount(flat, ys * ys, size)
        sxx = np.bincount(flat, xs * xs, size)
        sxy = np.bincount(flat, ys * xs, size)
        del ys, xs
    present = area > 0
    present[0] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        cy, cx = sy / area, sx / area
    owned = present & (np.floor(cy) >= core[0].start) & (np.floor(cy) < core[0].stop) & \
        (np.floor(cx) >= core[1].start) & (np.floor(cx) < core[1].stop)
    ids = np.flatnonzero(owned)
    n = len(ids)
    if n == 0:
        return _concat([], nch, percentiles, nuclei is not None)
    a = area[ids].astype(np.float64)
    cyo, cxo = cy[ids], cx[ids]
    myy = np.maximum(syy[ids] / a - cyo * cyo, 0)
    mxx = np.maximum(sxx[ids] / a - cxo * cxo, 0)
    mxy = sxy[ids] / a - cyo * cxo
    # eigenvalues of the inertia tensor, as skimage.measure.regionprops computes them
    common = np.sqrt(4 * mxy**2 + (myy - mxx) ** 2)
    l1 = (myy + mxx + common) / 2
    l2 = (myy + mxx - common) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = np.where(l1 > 0, np.sqrt(np.clip(1 - l2 / l1, 0, 1)), 0.0)
    # cells that touch the region's edge where the image goes on were cut by the region
    y0, x0 = origin
    edges = []
    if y0 > 0:
        edges.append(cells[0])
    if y0 + h < image_shape[0]:
        edges.append(cells[-1])
    if x0 > 0:
        edges.append(cells[:, 0])
    if x0 + w < image_shape[1]:
        edges.append(cells[:, -1])
    cut = np.zeros(size, bool)
    for e in edges:
        cut[e] = True
    truncated = int(cut[ids].sum())

    mean = np.empty((n, nch), np.float32)
    pct = {q: np.empty((n, nch), np.float32) for q in percentiles}
    split = nuclei is not None
    total: Array
    nmean = np.empty((n, nch), np.float32) if split else None
    cmean = np.empty((n, nch), np.float32) if split else None
    in_nuc = (np.ascontiguousarray(nuclei).ravel() != 0).astype(np.float64) \
        if nuclei is not None else None
    narea = np.bincount(flat, in_nuc, size)[ids] if in_nuc is not None else None
    # the owned cells' pixels grouped by cell once per region (a counting sort), then per
    # channel one pass that sums each cell and picks its order statistics by selection (no
    # sort): plexhub.ome_pipeline.kernels, when built, for 8- and 16-bit channels
    count = area[ids]
    bounds = np.zeros(n + 1, np.int64)
    np.cumsum(count, out=bounds[1:])
    ranks, gammas = _quantile_ranks(count, percentiles)
    perm: Array | None = None
    if kernels.NATIVE:
        slot_of = np.full(size, -1, np.int64)
        slot_of[ids] = np.arange(n)
        perm = kernels.group_slots(flat, slot_of, bounds)
    order = np.argsort(ranks, axis=1, kind="stable")
    sorted_ranks = np.take_along_axis(ranks, order, axis=1)
    for c in range(nch):
        raw = np.ascontiguousarray(read(c)).ravel()
        picked = None
        if perm is not None and raw.dtype.kind in "ub" and raw.dtype.itemsize <= 2:
            got = kernels.select_u16(raw.astype(np.uint16, copy=False), perm, bounds,
                                     sorted_ranks)
            if got is not None:
                sums, chosen = got
                total = sums.astype(np.float64)
                picked = np.empty_like(chosen)
                np.put_along_axis(picked, order, chosen, axis=1)
                picked = picked.astype(raw.dtype, copy=False)
        values = None
        if picked is None or split:
            values = raw.astype(np.float64)
        if picked is None:
            assert values is not None
            total = np.bincount(flat, values, size)[ids]
            if pct:
                grouped = _sorted_within(raw, flat)
                starts = (np.cumsum(area) - area)[ids]
                picked = grouped[starts[:, None] + ranks]
        mean[:, c] = total / a
        if nmean is not None and cmean is not None and in_nuc is not None \
                and narea is not None and values is not None:
            nsum = np.bincount(flat, values * in_nuc, size)[ids]
            with np.errstate(invalid="ignore", divide="ignore"):
                nmean[:, c] = nsum / narea
                cmean[:, c] = (total - nsum) / (a - narea)
        if pct and picked is not None:
            for j, q in enumerate(percentiles):
                pct[q][:, c] = _lerp(picked[:, 2 * j], picked[:, 2 * j + 1], gammas[j])
    return Measurements(
        label=ids.astype(np.uint32), area=area[ids].astype(np.int64),
        centroid=np.stack([cyo + y0, cxo + x0], axis=1), eccentricity=ecc, mean=mean,
        percentiles=pct, nucleus_mean=nmean, cytoplasm_mean=cmean,
        nucleus_area=narea.astype(np.int64) if narea is not None else None,
        truncated=truncated)


def _quantile_ranks(count: Array, percentiles: Sequence[float]
                    ) -> tuple[npt.NDArray[np.int64], list[Array]]:
    """For each percentile q, the ranks of the two values around it in each cell of ``count``
    pixels and the weight between them, as ``numpy.percentile``'s default (linear) method
    computes them: columns 2j and 2j + 1 of the ranks belong to percentile j."""
    last = count.astype(np.int64) - 1
    ranks = np.empty((len(count), 2 * len(percentiles)), np.int64)
    gammas = []
    for j, q in enumerate(percentiles):
        virtual = last.astype(np.float64) * np.true_divide(q, 100)
        prev = np.floor(virtual)
        gammas.append(virtual - prev)
        prev_i = prev.astype(np.int64)
        above = virtual >= last
        ranks[:, 2 * j] = np.where(above, last, prev_i)
        ranks[:, 2 * j + 1] = np.where(above, last, prev_i + 1)
    return ranks, gammas


def _lerp(a: Array, b: Array, t: Array) -> Array:
    """``numpy.percentile``'s interpolation between the order statistics ``a <= b`` (the
    same operations in the same types, so the same float64)."""
    diff = b - a
    out: Array = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5, casting="unsafe")
    return out


def _sorted_within(values: Array, groups: Array) -> Array:
    """``values`` sorted by ``groups`` (labels), then by value inside each group: one sort
    of a combined integer key for 8- and 16-bit channels (numpy's path where the compiled
    kernels do not apply)."""
    if values.dtype.kind in "ub" and values.dtype.itemsize <= 2:
        bits = 8 * values.dtype.itemsize
        key = (groups.astype(np.int64) << bits) | values.astype(np.int64)
        key.sort()
        return (key & ((1 << bits) - 1)).astype(values.dtype)
    order = np.lexsort((values, groups))
    return values[order]


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
