"""Reading back what ``plexhub analyze`` stored, without loading the whole cell table.

:func:`read_summary` gives an image's phenotype counts and densities from the table's
``uns/plexhub/summary`` (a few KiB, whatever the cell count); :func:`read_cells` gives only
the ``obs`` columns a region count needs (centroids and phenotypes). Both take the path of
``tables/cells``; the caller checks where it lies and how large it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plexhub.errors import InputError

TABLE = ("tables", "cells")
OTHER = "other"


@dataclass(frozen=True)
class PhenotypeSummary:
    """One analysed image: cells per phenotype and per mm² of the image (None without a
    pixel size), in the order of the run's rules (``other`` last)."""

    cells: int
    counts: dict[str, int]
    density_per_mm2: dict[str, float | None]
    area_mm2: float | None
    rules: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellPoints:
    """Each cell's centroid in level-0 pixel indices (row ``y``, column ``x``) and its
    phenotype."""

    y: npt.NDArray[np.float64]
    x: npt.NDArray[np.float64]
    phenotype: npt.NDArray[Any]
    names: list[str]  # the phenotypes the run knew, in its order


def table_path(image_root: Path) -> Path:
    return image_root.joinpath(*TABLE)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (links are not followed)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_summary(image_root: Path) -> PhenotypeSummary:
    """The phenotype summary of the image at ``image_root`` (its ``tables/cells``)."""
    import zarr
    from anndata.io import read_elem

    where = table_path(image_root)
    try:
        saved = read_elem(zarr.open_group(str(where / "uns" / "plexhub"), mode="r"))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise InputError(f"{where}", "has no plexhub summary (uns/plexhub)",
                         "rerun plexhub analyze on the image's store") from exc
    stats = saved.get("summary") if isinstance(saved, dict) else None
    if not isinstance(stats, dict) or not isinstance(stats.get("counts"), dict):
        raise InputError(f"{where}", "has no phenotype counts in uns/plexhub/summary",
                         "rerun plexhub analyze on the image's store")
    stored = {str(k): int(v) for k, v in stats["counts"].items()}
    rules = [str(r) for r in saved.get("phenotype_rules", [])]
    # the run's order: its rules, then anything else, ``other`` last (zarr lists keys sorted)
    order = [r.partition(":")[0].strip() for r in rules]
    order = [n for n in order if n in stored and n != OTHER] + \
        [n for n in stored if n not in order and n != OTHER] + \
        [n for n in stored if n == OTHER]
    counts = {n: stored[n] for n in order}
    area = _area_mm2(image_root)
    density: dict[str, float | None] = {
        k: (round(v / area, 3) if area else None) for k, v in counts.items()}
    return PhenotypeSummary(cells=sum(counts.values()), counts=counts,
                            density_per_mm2=density, area_mm2=area, rules=rules)


def _area_mm2(image_root: Path) -> float | None:
    from plexhub.ome_pipeline.analysis.store import open_stored_image

    image = open_stored_image(image_root)
    px = image.pixel_size_um
    if not px:
        return None
    area = image.height * image.width * px * px / 1e6
    return area if math.isfinite(area) and area > 0 else None


def read_cells(image_root: Path) -> CellPoints:
    """Centroids and phenotypes of the image's cells (``obs`` only: neither ``X`` nor the
    layers are read)."""
    import zarr
    from anndata.io import read_elem

    where = table_path(image_root)
    obs = read_elem(zarr.open_group(str(where / "obs"), mode="r"))
    missing = {"centroid_y", "centroid_x", "phenotype"} - set(obs.columns)
    if missing:
        raise InputError(f"{where}", f"has no {', '.join(sorted(missing))} in obs",
                         "rerun plexhub analyze with --phenotype rules")
    kind = obs["phenotype"]
    names = [str(c) for c in kind.cat.categories] if hasattr(kind, "cat") \
        else sorted({str(v) for v in kind})
    return CellPoints(y=obs["centroid_y"].to_numpy(np.float64),
                      x=obs["centroid_x"].to_numpy(np.float64),
                      phenotype=kind.astype(str).to_numpy(object), names=names)
