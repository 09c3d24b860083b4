"""``analyze``: segmentation, quantification and phenotypes of one store, results inside it.

    from plexhub.ome_pipeline.analysis import analyze
    result = analyze("slide.ome.zarr", nuclear="DAPI",
                     phenotypes=["T: CD3+", "cytotoxic T: CD3+ CD8+"])
    print(result.summary())
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plexhub import __version__
from plexhub.errors import InputError
from plexhub.ome_pipeline.analysis import phenotypes as ph
from plexhub.ome_pipeline.analysis._lazy import module
from plexhub.ome_pipeline.analysis.quantify import Measurements, quantify_blocks
from plexhub.ome_pipeline.analysis.segmentation import (
    get_segmenter,
    renumber,
    segment_blocks,
)
from plexhub.ome_pipeline.analysis.store import (
    LABEL_CHUNK,
    ResultWriter,
    StoredImage,
    build_pyramid,
    open_stored_image,
)

PERCENTILES = (50.0, 90.0)


@dataclass
class AnalysisResult:
    """What one run found and where it put it."""

    store: Path
    cells: int
    channels: list[str]
    thresholds: dict[str, dict[str, Any]]
    phenotype_counts: dict[str, int]
    density_per_mm2: dict[str, float] | None
    seconds: float
    truncated: int = 0
    written: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.store}: {self.cells} cells, {len(self.channels)} channels measured "
                 f"in {self.seconds:.1f} s"]
        for name, n in self.phenotype_counts.items():
            dens = "" if not self.density_per_mm2 else \
                f" ({self.density_per_mm2[name]:.1f} per mm²)"
            lines.append(f"  {name}: {n}{dens}")
        if self.truncated:
            lines.append(f"  warning: {self.truncated} cells were wider than the block margin "
                         "and measured in part; raise the segmenter's margin")
        lines.append(f"  wrote: {', '.join(self.written)}")
        return "\n".join(lines)


def analyze(store: str | Path, *, nuclear: str, membrane: str | None = None,
            method: str = "watershed", segmenter_options: Mapping[str, Any] | None = None,
            phenotypes: Sequence[str] | Mapping[str, str] = (),
            threshold_method: str = "otsu", thresholds: Mapping[str, float] | None = None,
            scheduler: str | None = None, block: int = 1024,
            show_progress: bool | None = None) -> AnalysisResult:
    """Segment the nuclei (and cells) of ``store``'s image, measure every channel per cell,
    gate each marker and count the phenotypes; write ``labels/cells``, ``labels/nuclei`` and
    ``tables/cells`` into the store, replacing an earlier run's."""
    start = time.perf_counter()
    image = open_stored_image(store)
    nuc_c = image.channel_index(nuclear, "--nuclear")
    mem_c = None if membrane is None else image.channel_index(membrane, "--membrane")
    rules = ph.parse_rules(phenotypes)
    names = unique_names(image.channels)
    # check the rules and the overrides against the channels before the long part
    ph.assign(np.zeros((0, len(names)), bool), names, rules)
    if threshold_method not in ph.METHODS:
        raise InputError(f"--threshold-method {threshold_method}", "is not known",
                         f"choose one of: {', '.join(ph.METHODS)}")
    unknown = sorted(set(thresholds or {}) - set(names))
    if unknown:
        raise InputError(f"--threshold {unknown[0]}", "names no channel",
                         f"the channels are: {', '.join(names)}")
    segmenter = get_segmenter(method, **dict(segmenter_options or {}))
    block = max(LABEL_CHUNK, -(-block // LABEL_CHUNK) * LABEL_CHUNK)
    say = _reporter(show_progress)

    with _scheduler(scheduler), ResultWriter(image) as out:
        da = module("dask.array")
        compute, delayed = module("dask.base").compute, module("dask.delayed").delayed

        level0 = image.level0()
        chunks = _chunks_of(image, block)
        nuc = da.from_array(_Plane(image, level0, nuc_c), chunks=chunks, asarray=True)
        mem = None if mem_c is None else da.from_array(_Plane(image, level0, mem_c),
                                                       chunks=chunks, asarray=True)
        say("thresholding the nuclear channel")
        segmenter.prepare(nuc, mem)
        say("segmenting")
        seg = segment_blocks(segmenter, nuc, mem, block=block)
        raw = out.scratch("raw", seg.shape, (1, LABEL_CHUNK, LABEL_CHUNK), np.int64)
        ids = [delayed(_ids)(b) for b in seg.to_delayed().ravel()]
        with _progress(show_progress):
            stored, *found = compute(da.store(seg, raw, lock=False, compute=False), *ids)
        del stored
        uniq = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        say(f"{len(uniq)} nuclei; writing the label images")
        split = not bool(_same_labels(raw))
        targets = [("cells", 1)] + ([("nuclei", 0)] if split else [])
        label_arrays = {}
        for name, plane in targets:
            levels = out.label_levels(name)
            src = da.from_zarr(raw)[plane]
            lab = src.map_blocks(renumber, uniq, dtype=np.uint32)
            lab = lab.reshape(levels[0].shape).rechunk(levels[0].chunks)
            with _progress(show_progress):
                da.store(lab, levels[0], lock=False)
                build_pyramid(levels)
            label_arrays[name] = levels[0]
        say(f"measuring {len(image.channels)} channels")
        cells2d = _Flat(label_arrays["cells"])
        nuclei2d = _Flat(label_arrays["nuclei"]) if split else None
        with _progress(show_progress):
            m = quantify_blocks(cells2d, nuclei2d,
                                lambda c, ys, xs: image.plane(level0, c, ys, xs),
                                len(image.channels), block=block,
                                margin=segmenter.margin, percentiles=PERCENTILES)
        say("gating and phenotyping")
        cut = ph.thresholds(m.mean, names, method=threshold_method, overrides=thresholds)
        positive = ph.positivity(m.mean, names, cut)
        kinds = ph.assign(positive, names, rules) if rules else \
            np.full(m.n, ph.OTHER, dtype=object)
        kind_names = [r.name for r in rules] + [ph.OTHER]
        px = image.pixel_size_um
        area_mm2 = image.height * image.width * px * px / 1e6 if px else 0.0
        where = m.centroid[:, ::-1] * (px or 1.0)
        stats = ph.summary(kinds, where, area_mm2, kind_names)
        params = {"method": method, "nuclear": image.channels[nuc_c],
                  "membrane": None if mem_c is None else image.channels[mem_c],
                  "segmenter": _plain(vars(segmenter)) if hasattr(segmenter, "__dict__")
                  else {}, "block": block, "threshold_method": threshold_method,
                  "percentiles": list(PERCENTILES), "plexhub": __version__}
        adata = build_table(m, names, cut, positive, kinds, kind_names, rules, stats,
                            params, px)
        out.write_table(adata)
        out.commit()
    written = [f"labels/{n}" for n, _ in targets] + ["tables/cells"]
    say("done")
    return AnalysisResult(store=image.root, cells=m.n, channels=names, thresholds=cut,
                          phenotype_counts=stats["counts"],
                          density_per_mm2=stats["density_per_mm2"] if px else None,
                          seconds=time.perf_counter() - start, truncated=m.truncated,
                          written=written)


def unique_names(names: Sequence[str]) -> list[str]:
    """Channel names made unique (``CD3``, ``CD3-1``...) for AnnData's ``var_names``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def build_table(m: Measurements, names: list[str], cut: dict[str, dict[str, Any]],
                positive: Any, kinds: Any, kind_names: list[str],
                rules: Sequence[ph.PhenotypeRule], stats: dict[str, Any],
                params: dict[str, Any], pixel_size_um: float | None) -> Any:
    """The AnnData table: cells x channels (X = mean intensity)."""
    import anndata
    import pandas as pd

    obs = pd.DataFrame({
        "cell_id": m.label.astype(np.int64),
        "region": pd.Categorical(["cells"] * m.n, categories=["cells"]),
        "area": m.area,
        "centroid_y": m.centroid[:, 0],
        "centroid_x": m.centroid[:, 1],
        "eccentricity": m.eccentricity,
        "phenotype": pd.Categorical(list(kinds), categories=kind_names),
    }, index=pd.Index([str(v) for v in m.label], name="cell"))
    if pixel_size_um:
        obs["area_um2"] = m.area * pixel_size_um**2
    if m.nucleus_area is not None:
        obs["nucleus_area"] = m.nucleus_area
    var = pd.DataFrame({"threshold": [cut[n]["value"] for n in names],
                        "threshold_method": [cut[n]["method"] for n in names]},
                       index=pd.Index(names, name="channel"))
    layers: dict[str, Any] = {f"p{q:g}" if q != 50 else "median": v.astype(np.float32)
                              for q, v in m.percentiles.items()}
    if m.nucleus_mean is not None and m.cytoplasm_mean is not None:
        layers["nucleus_mean"] = m.nucleus_mean
        layers["cytoplasm_mean"] = m.cytoplasm_mean
    layers["positive"] = positive.astype(np.uint8)
    uns = {
        "spatialdata_attrs": {"region": "cells", "region_key": "region",
                              "instance_key": "cell_id"},
        "plexhub": _plain({"params": params, "thresholds": cut,
                           "phenotype_rules": [str(r) for r in rules],
                           "summary": stats, "truncated_cells": m.truncated,
                           "distance_unit": "micrometer" if pixel_size_um else "pixel"}),
    }
    return anndata.AnnData(X=m.mean.astype(np.float32), obs=obs, var=var, layers=layers,
                           obsm={"spatial": m.centroid[:, ::-1].copy()}, uns=uns)


def _plain(value: Any) -> Any:
    """JSON-like values anndata can store (None and NaN become strings / are dropped)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return "nan"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _ids(block: Any) -> Any:
    ids = np.unique(block[0])
    return ids[ids > 0]


def _same_labels(raw: Any) -> bool:
    arr = module("dask.array").from_zarr(raw)
    return bool((arr[0] == arr[1]).all().compute())


def _chunks_of(image: StoredImage, block: int) -> tuple[int, int]:
    return min(block, image.height), min(block, image.width)


class _Plane:
    """One channel of level 0 as a 2-D array-like (for ``dask.array.from_array``)."""

    def __init__(self, image: StoredImage, arr: Any, c: int) -> None:
        self.image, self.arr, self.c = image, arr, c
        self.shape = (image.height, image.width)
        self.dtype = arr.dtype
        self.ndim = 2

    def __getitem__(self, key: tuple[slice, slice]) -> Any:
        return np.asarray(self.image.plane(self.arr, self.c, key[0], key[1]))


class _Flat:
    """A label array with leading size-1 axes (t, z) seen as 2-D."""

    def __init__(self, arr: Any) -> None:
        self.arr = arr
        self.shape = tuple(arr.shape[-2:])
        self.lead = (0,) * (len(arr.shape) - 2)

    def __getitem__(self, key: tuple[slice, slice]) -> Any:
        return self.arr[(*self.lead, *key)]


@contextlib.contextmanager
def _scheduler(spec: str | None) -> Iterator[None]:
    import dask

    if spec and "://" in spec:
        Client = module("distributed").Client

        try:
            client = Client(spec, timeout=10)
        except OSError as exc:
            raise InputError(f"--scheduler {spec}", f"cannot be reached ({exc})",
                             "start one with `dask scheduler`, or leave --scheduler out") \
                from exc
        with client:
            yield
        return
    if spec and spec not in ("threads", "processes", "synchronous", "sync"):
        raise InputError(f"--scheduler {spec}", "is not a scheduler",
                         "use threads, processes, synchronous or tcp://HOST:PORT")
    with dask.config.set(scheduler=spec or "threads"):
        yield


def _reporter(show: bool | None) -> Any:
    if show is None:
        show = sys.stderr.isatty()

    t0 = time.perf_counter()

    def say(text: str) -> None:
        if show:
            print(f"analyze: [{time.perf_counter() - t0:6.1f} s] {text}", file=sys.stderr,
                  flush=True)
    return say


@contextlib.contextmanager
def _progress(show: bool | None) -> Iterator[None]:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield
        return
    ProgressBar = module("dask.diagnostics").ProgressBar

    with ProgressBar(out=sys.stderr):
        yield
