"""Nuclear (and cell) segmentation, in memory or block-wise with overlap on Dask.

A *segmenter* labels one region: ``segment(nuclear, membrane) -> (nuclei, cells)``, local
integer labels where a cell carries the id of its nucleus. The classical one ships here
(:class:`WatershedSegmenter`); learned models (Cellpose, StarDist, InstanSeg...) plug in through
the ``plexhub.segmenters`` entry-point group with the same interface, for users who have their
weights (plexhub downloads none).

The block-wise driver gives every object one global id whatever block computed it: the
row-major linear index (+1) of the object's first pixel. Each block is segmented with a margin
of context on every inner side (``dask.array.overlap``, no padding at the image edges), and
only its core is kept; an object that crosses a block edge is seen whole by both blocks, gets
the same first pixel and so the same id. A final pass renumbers the ids 1..N in row-major
order of first pixels, which is the order an in-memory run gives: on an image that fits in
one block the two are identical, pixel for pixel.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from plexhub.errors import InputError
from plexhub.ome_pipeline.analysis._lazy import module

Array = npt.NDArray[Any]
ENTRY_POINT_GROUP = "plexhub.segmenters"
BUILTIN_SEGMENTERS = {"watershed": "plexhub.ome_pipeline.analysis.segmentation:WatershedSegmenter"}


@runtime_checkable
class Segmenter(Protocol):
    """What the block-wise driver needs of a segmentation method."""

    name: str
    margin: int  # pixels of context a block needs on each side (> the largest cell)

    def prepare(self, nuclear: Any, membrane: Any | None) -> None:
        """See the whole image once (lazily: dask arrays) to fix global parameters, e.g. a
        threshold, so that every block uses the same ones."""

    def segment(self, nuclear: Array, membrane: Array | None) -> tuple[Array, Array]:
        """(nuclei, cells) labels of one region; a cell has the id of its nucleus."""


@dataclass
class WatershedSegmenter:
    """Gaussian smoothing, a threshold, distance-transform watershed from its local maxima,
    small objects dropped. The threshold is local by default: a pixel is foreground where
    the smoothed signal is above its own Gaussian-blurred surroundings (``background``, px)
    and above a global floor (Otsu's threshold of log intensities unless ``threshold`` is
    given); ``background=0`` keeps only a global threshold (plain Otsu unless given),
    which suits sparse nuclei on a flat background. Cells are the
    nuclei grown by ``expand`` pixels, or, with a membrane channel, a watershed of the
    smoothed membrane signal from the nuclei, bounded to that same distance."""

    name: str = "watershed"
    sigma: float = 1.0
    min_distance: int = 3
    min_size: int = 10
    expand: int = 0
    threshold: float | None = None
    background: float = 4.0
    margin: int = 48

    def prepare(self, nuclear: Any, membrane: Any | None) -> None:
        if self.threshold is None:
            self.threshold = otsu_of(nuclear, log=self.background > 0)
        if membrane is not None and self.expand <= 0:
            self.expand = 6

    def segment(self, nuclear: Array, membrane: Array | None) -> tuple[Array, Array]:
        from scipy import ndimage

        skseg = module("skimage.segmentation")
        watershed, expand_labels = skseg.watershed, skseg.expand_labels

        if self.threshold is None:
            raise RuntimeError("WatershedSegmenter.prepare() must run before segment()")
        smooth = ndimage.gaussian_filter(nuclear.astype(np.float32), self.sigma)
        mask = smooth > self.threshold
        if self.background > 0:
            mask &= smooth > ndimage.gaussian_filter(smooth, self.background)
        dist = ndimage.distance_transform_edt(mask).astype(np.float32)
        # seeds: local maxima of the (lightly smoothed) distance map, near ones merged; all
        # footprint operations, so a block with enough margin finds the same seeds as the
        # whole image (skimage's peak_local_max breaks ties in an order that depends on the
        # region it is given)
        ridge = ndimage.gaussian_filter(dist, 1.0)
        size = 2 * self.min_distance + 1
        peaks = (ridge == ndimage.maximum_filter(ridge, size=size)) & mask & (dist >= 1)
        if self.min_distance > 1:
            peaks = ndimage.binary_dilation(peaks, _disk(self.min_distance // 2)) & mask
        markers, _ = ndimage.label(peaks, np.ones((3, 3), bool))
        nuclei = watershed(-ridge, markers, mask=mask).astype(np.int32)
        if self.min_size > 1 and nuclei.any():
            sizes = np.bincount(nuclei.ravel())
            small = sizes < self.min_size
            small[0] = False
            nuclei[small[nuclei]] = 0
        if self.expand <= 0:
            return nuclei, nuclei
        grown = expand_labels(nuclei, self.expand)
        if membrane is None:
            return nuclei, grown
        edges = ndimage.gaussian_filter(membrane.astype(np.float32), self.sigma)
        cells = watershed(edges, nuclei, mask=grown > 0).astype(np.int32)
        return nuclei, cells


def _disk(r: int) -> Array:
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk: Array = yy * yy + xx * xx <= r * r
    return disk


def otsu_of(channel: Any, *, log: bool = False) -> float:
    """Otsu's threshold of a channel (numpy or dask) from its histogram: exact bins for 8-
    and 16-bit integers, 4096 bins between min and max otherwise; the same number whether
    the array is in memory or in blocks. ``log``: Otsu on log(1 + intensity) (the bins'
    centres), returned in intensity units."""
    da = module("dask.array")
    threshold_otsu = module("skimage.filters").threshold_otsu

    arr = channel if isinstance(channel, da.Array) else da.from_array(np.asarray(channel))
    if arr.dtype.kind in "ub" and arr.dtype.itemsize <= 2:
        n = 1 << (8 * arr.dtype.itemsize)
        counts = _bincount(arr, n)
        centers = np.arange(n, dtype=np.float64)
    else:
        lo, hi = (float(v) for v in da.compute(arr.min(), arr.max()))
        if hi <= lo:
            return lo
        counts, edges = da.histogram(arr, bins=4096, range=(lo, hi))
        counts = counts.compute()
        centers = (edges[:-1] + edges[1:]) / 2
    nz = np.nonzero(counts)[0]
    if len(nz) < 2:
        return float(centers[nz[0]]) if len(nz) else 0.0
    counts, centers = counts[nz[0]:nz[-1] + 1], centers[nz[0]:nz[-1] + 1]
    if log:
        shift = min(float(centers[0]), 0.0)
        cut = threshold_otsu(hist=(counts, np.log1p(centers - shift)))
        return float(np.expm1(cut) + shift)
    return float(threshold_otsu(hist=(counts, centers)))


def _bincount(arr: Any, n: int) -> Array:
    compute, delayed = module("dask.base").compute, module("dask.delayed").delayed

    parts = [delayed(np.bincount)(block.ravel(), minlength=n)
             for block in arr.to_delayed().ravel()]
    total: Array = np.sum(compute(*parts), axis=0)
    return total


def available_segmenters() -> dict[str, str]:
    """Method name -> import target: third-party entry points, then the built-ins."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN_SEGMENTERS}


def get_segmenter(method: str, **options: Any) -> Segmenter:
    """An instance of the segmenter named ``method`` built with ``options``."""
    known = available_segmenters()
    if method not in known:
        raise InputError(f"--method {method}", "no segmenter of that name",
                         f"choose one of: {', '.join(sorted(known))}")
    module, _, attr = known[method].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    seg = factory(**options)
    if not isinstance(seg, Segmenter):
        raise InputError(f"--method {method}", f"{known[method]} is not a plexhub segmenter",
                         "it needs name, margin, prepare() and segment()")
    return seg


# -- global ids ------------------------------------------------------------------------------

def global_ids(labels: Array, y0: int, x0: int, width: int, *others: Array) -> list[Array]:
    """Replace each local id of ``labels`` (and the same ids in ``others``) by the global
    row-major index + 1 of the object's first pixel; (y0, x0) is the region's origin in an
    image ``width`` pixels wide. int64 results, 0 stays 0."""
    w = labels.shape[1]
    uniq, first = np.unique(labels.ravel(), return_index=True)
    gy, gx = first // w + y0, first % w + x0
    gid = gy.astype(np.int64) * width + gx + 1
    gid[uniq == 0] = 0
    out = []
    for arr in (labels, *others):
        pos = np.searchsorted(uniq, arr)
        pos = np.minimum(pos, len(uniq) - 1)
        hit = uniq[pos] == arr
        out.append(np.where(hit, gid[pos], 0).astype(np.int64))
    return out


def segment_array(segmenter: Segmenter, nuclear: Array, membrane: Array | None = None,
                  *, prepared: bool = False) -> tuple[Array, Array]:
    """In-memory segmentation of a whole image: (nuclei, cells) as uint32, ids 1..N in
    row-major order of each nucleus's first pixel."""
    if not prepared:
        segmenter.prepare(nuclear, membrane)
    nuc, cells = segmenter.segment(np.asarray(nuclear), None if membrane is None
                                   else np.asarray(membrane))
    gn, gc = global_ids(nuc, 0, 0, nuclear.shape[1], cells)
    uniq = np.unique(gn)
    uniq = uniq[uniq > 0]
    return renumber(gn, uniq), renumber(gc, uniq)


def renumber(ids: Array, sorted_ids: Array) -> Array:
    """Global ids -> 1..N by their rank in ``sorted_ids`` (0 stays 0), uint32."""
    if len(sorted_ids) == 0:
        return np.zeros(ids.shape, np.uint32)
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    hit = (sorted_ids[pos] == ids) & (ids > 0)
    return np.where(hit, pos + 1, 0).astype(np.uint32)


def block_chunks(size: int, block: int, margin: int) -> tuple[int, ...]:
    """Chunk sizes along one axis: ``block`` each, a last one shorter than the margin merged
    into its neighbour (dask's overlap needs every chunk at least as deep as the margin)."""
    sizes = [block] * (size // block)
    if size % block:
        sizes.append(size % block)
    if len(sizes) > 1 and sizes[-1] < margin:
        tail = sizes.pop()
        sizes[-1] += tail
    return tuple(sizes)


def segment_blocks(segmenter: Segmenter, nuclear: Any, membrane: Any | None = None, *,
                   block: int = 2048) -> Any:
    """Lazy block-wise segmentation: a dask array (2, y, x) int64 of *global* ids
    (nuclei, cells), see :func:`global_ids`; ``segmenter.prepare`` must have run."""
    da = module("dask.array")

    h, w = nuclear.shape
    m = segmenter.margin
    chunks = (block_chunks(h, block, m), block_chunks(w, block, m))
    planes = [nuclear] if membrane is None else [nuclear, membrane]
    stack = da.stack([da.asarray(p) for p in planes]).rechunk(((len(planes),), *chunks))
    ext = da.overlap.overlap(stack, depth={0: 0, 1: m, 2: m},
                             boundary={0: "none", 1: "none", 2: "none"})
    starts_y = np.concatenate([[0], np.cumsum(chunks[0])[:-1]])
    starts_x = np.concatenate([[0], np.cumsum(chunks[1])[:-1]])

    def run(region: Array, block_id: tuple[int, int, int] | None = None) -> Array:
        assert block_id is not None
        _, by, bx = block_id
        top, left = (m if by > 0 else 0), (m if bx > 0 else 0)
        y0, x0 = int(starts_y[by]) - top, int(starts_x[bx]) - left
        nuc, cells = segmenter.segment(region[0], region[1] if len(region) > 1 else None)
        gn, gc = global_ids(nuc, y0, x0, w, cells)
        ch, cw = chunks[0][by], chunks[1][bx]
        return np.stack([gn[top:top + ch, left:left + cw], gc[top:top + ch, left:left + cw]])

    return ext.map_blocks(run, chunks=((2,), *chunks), dtype=np.int64)
