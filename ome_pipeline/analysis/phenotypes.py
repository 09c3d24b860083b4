"""Marker positivity and phenotypes from per-cell means.

Thresholds come from the data, one per marker: Otsu's threshold or the crossing point of a
two-component Gaussian mixture, both on ``log1p`` of the per-cell means; any marker can be
given a fixed threshold instead. Phenotype rules are data (``"cytotoxic T: CD3+ CD8+"``); a
cell takes the most specific rule it satisfies (most markers; the first listed on a tie), else
``"other"``. Counts, densities (cells per mm² of the image) and nearest-neighbour distances
between phenotypes summarise an image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from plexhub.errors import InputError

Array = npt.NDArray[Any]
OTHER = "other"
#: colours of the phenotypes in the order of the rules (RRGGBB); ``other`` is OTHER_COLOR.
#: The viewers and the report figures use the same ones.
PHENOTYPE_PALETTE = ("E6194B", "3CB44B", "FFE119", "4363D8", "F58231", "911EB4", "46F0F0",
                     "F032E6", "BCF60C", "FABEBE", "008080", "E6BEFF")
OTHER_COLOR = "808080"
_TERM = re.compile(r"^(?P<marker>.+?)(?P<sign>[+-])$")


@dataclass(frozen=True)
class PhenotypeRule:
    """A named conjunction of markers that must be positive or negative."""

    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()

    def __str__(self) -> str:
        terms = [f"{m}+" for m in self.positive] + [f"{m}-" for m in self.negative]
        return f"{self.name}: {' '.join(terms)}"


def phenotype_colors(names: Sequence[str]) -> dict[str, str]:
    """RRGGBB per phenotype name (``other`` grey, the others from the palette in order)."""
    out: dict[str, str] = {}
    for n in names:
        if n == OTHER:
            out[n] = OTHER_COLOR
        else:
            k = sum(1 for m in out if m != OTHER)
            out[n] = PHENOTYPE_PALETTE[k % len(PHENOTYPE_PALETTE)]
    return out


def parse_rule(text: str) -> PhenotypeRule:
    """``"cytotoxic T: CD3+ CD8+ FOXP3-"`` -> a rule."""
    name, sep, body = text.partition(":")
    if not sep or not name.strip() or not body.split():
        raise InputError(f"phenotype {text!r}", "expected 'NAME: MARKER+ MARKER- ...'",
                         "e.g. 'cytotoxic T: CD3+ CD8+'")
    pos: list[str] = []
    neg: list[str] = []
    for term in body.split():
        m = _TERM.match(term)
        if not m:
            raise InputError(f"phenotype {text!r}", f"term {term!r} does not end in + or -",
                             "write each marker as CD3+ or CD3-")
        (pos if m["sign"] == "+" else neg).append(m["marker"])
    return PhenotypeRule(name.strip(), tuple(pos), tuple(neg))


def parse_rules(rules: Iterable[str | PhenotypeRule] | Mapping[str, str]) -> list[PhenotypeRule]:
    """Rules from strings, rule objects, or a mapping ``{name: "CD3+ CD8+"}``."""
    if isinstance(rules, Mapping):
        return [parse_rule(f"{k}: {v}") for k, v in rules.items()]
    return [r if isinstance(r, PhenotypeRule) else parse_rule(r) for r in rules]


def otsu_threshold(values: Array) -> float:
    from plexhub.ome_pipeline.analysis._lazy import module

    threshold_otsu = module("skimage.filters").threshold_otsu
    v = np.log1p(np.clip(values[np.isfinite(values)], 0, None))
    if len(v) < 2 or v.min() == v.max():
        return float(np.expm1(v.max())) if len(v) else 0.0
    return float(np.expm1(threshold_otsu(v, nbins=256)))


def mixture_threshold(values: Array, iterations: int = 200) -> float:
    """Where the upper of two 1-D Gaussians (fitted by EM on log1p values) takes over."""
    v = np.log1p(np.clip(values[np.isfinite(values)], 0, None)).astype(np.float64)
    if len(v) < 4 or v.min() == v.max():
        return otsu_threshold(values)
    lo, hi = np.percentile(v, [25, 75])
    mu = np.array([lo, hi])
    sd = np.full(2, max(v.std() / 2, 1e-6))
    w = np.array([0.5, 0.5])
    for _ in range(iterations):
        dens = w / sd * np.exp(-0.5 * ((v[:, None] - mu) / sd) ** 2)
        resp = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
        nk = resp.sum(axis=0) + 1e-12
        new_mu = (resp * v[:, None]).sum(axis=0) / nk
        sd = np.sqrt((resp * (v[:, None] - new_mu) ** 2).sum(axis=0) / nk) + 1e-6
        w = nk / len(v)
        if np.allclose(new_mu, mu, atol=1e-7):
            mu = new_mu
            break
        mu = new_mu
    a, b = np.argsort(mu)
    grid = np.linspace(mu[a], mu[b], 512)
    da_ = w[a] / sd[a] * np.exp(-0.5 * ((grid - mu[a]) / sd[a]) ** 2)
    db_ = w[b] / sd[b] * np.exp(-0.5 * ((grid - mu[b]) / sd[b]) ** 2)
    over = np.nonzero(db_ >= da_)[0]
    cut = grid[over[0]] if len(over) else (mu[a] + mu[b]) / 2
    return float(np.expm1(cut))


METHODS = {"otsu": otsu_threshold, "gmm": mixture_threshold}


def thresholds(means: Array, markers: Sequence[str], *, method: str = "otsu",
               overrides: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Per marker ``{"value": threshold, "method": "otsu" | "gmm" | "given"}``."""
    if method not in METHODS:
        raise InputError(f"threshold method {method!r}", "is not known",
                         f"choose one of: {', '.join(METHODS)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(markers))
    if unknown:
        raise InputError(f"threshold for {', '.join(unknown)}", "names no channel",
                         f"the channels are: {', '.join(markers)}")
    out: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(markers):
        if m in overrides:
            out[m] = {"value": float(overrides[m]), "method": "given"}
        else:
            out[m] = {"value": METHODS[method](means[:, i]), "method": method}
    return out


def positivity(means: Array, markers: Sequence[str], cut: Mapping[str, Mapping[str, Any]]
               ) -> Array:
    """(cells, markers) booleans: mean above the marker's threshold."""
    limits = np.array([float(cut[m]["value"]) for m in markers])
    positive: Array = means > limits[None, :]
    return positive


def assign(positive: Array, markers: Sequence[str], rules: Sequence[PhenotypeRule]) -> Array:
    """The phenotype name of each cell (object array)."""
    index = {m: i for i, m in enumerate(markers)}
    for r in rules:
        missing = [m for m in (*r.positive, *r.negative) if m not in index]
        if missing:
            raise InputError(f"phenotype {r}", f"uses {', '.join(missing)}, not a channel",
                             f"the channels are: {', '.join(markers)}")
    out = np.full(positive.shape[0], OTHER, dtype=object)
    best = np.full(positive.shape[0], -1)
    for r in rules:
        ok = np.ones(positive.shape[0], bool)
        for m in r.positive:
            ok &= positive[:, index[m]]
        for m in r.negative:
            ok &= ~positive[:, index[m]]
        specificity = len(r.positive) + len(r.negative)
        take = ok & (specificity > best)
        out[take] = r.name
        best[take] = specificity
    return out


def summary(phenotype: Array, centroid_um: Array, area_mm2: float,
            names: Sequence[str], neighbours: int = 10) -> dict[str, Any]:
    """Counts, densities (per mm²), nearest-neighbour distances (µm) between phenotypes
    (``nn[a][b]``: the median over cells of ``a`` of the distance to the nearest other cell
    of ``b``) and neighbourhood composition (``composition[a][b]``: the mean fraction of
    ``b`` among the ``neighbours`` nearest cells of a cell of ``a``)."""
    from scipy.spatial import cKDTree

    counts = {n: int((phenotype == n).sum()) for n in names}
    density = {n: (c / area_mm2 if area_mm2 > 0 else float("nan")) for n, c in counts.items()}
    trees = {n: cKDTree(centroid_um[phenotype == n]) for n in names if counts[n]}
    nn: dict[str, dict[str, float]] = {}
    for a in names:
        nn[a] = {}
        pts = centroid_um[phenotype == a]
        for b, tree in trees.items():
            k = 2 if a == b else 1
            if len(pts) == 0 or tree.n < k:
                continue
            d, _ = tree.query(pts, k=k)
            d = d[:, -1] if k == 2 else d
            nn[a][b] = float(np.median(d))
    composition: dict[str, dict[str, float]] = {}
    k = min(neighbours, len(phenotype) - 1)
    if k > 0:
        _, idx = cKDTree(centroid_um).query(centroid_um, k=k + 1)
        codes = {n: i for i, n in enumerate(names)}
        code = np.array([codes.get(str(p), -1) for p in phenotype])
        around = code[idx[:, 1:]]  # the cell itself is its own nearest
        for a in names:
            rows = around[code == codes[a]]
            if len(rows):
                composition[a] = {b: float((rows == codes[b]).mean()) for b in names}
    return {"counts": counts, "density_per_mm2": density, "nearest_neighbour_median_um": nn,
            f"neighbourhood_{neighbours}_nearest": composition}
