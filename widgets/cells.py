"""The analysis results of an image, for the viewers: the cell label image (``labels/cells``)
and the cell table (``tables/cells``), coloured by phenotype.

Both viewers (the notebook viewer and the napari plugin) use :func:`open_cells`: for a local
store it reads the store itself, for an API image the labels through the raw zarr route and
the table through ``GET /images/{id}/cells`` (both permission-checked by the API). A cell's
row is ``obs`` (cell id, phenotype, area, centroid, ...) and the mean of every channel.

Colours: one per phenotype in the order of the run's rules (the table's categories), from
:data:`PHENOTYPE_PALETTE` (``analysis.phenotypes``, which the report figures use too);
``other`` is grey.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from plexhub.client import ApiClient
    from plexhub.widgets.source import ImageSource

from plexhub.colors import hex_to_rgb
from plexhub.ome_pipeline.analysis.phenotypes import OTHER_COLOR, phenotype_colors


@dataclass
class CellOverlay:
    """An image's cells: the label pyramid (level 0 first, 2-D ``(y, x)`` views) and one
    table row per cell."""

    levels: list[Any]  # zarr arrays; index them with :meth:`plane`
    table: Any  # pandas DataFrame, one row per cell, ``cell_id`` first
    phenotypes: list[str]
    colors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.colors:
            self.colors = phenotype_colors(self.phenotypes)
        ids = self.table["cell_id"].to_numpy(np.int64)
        self._row = {int(v): i for i, v in enumerate(ids)}

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        return [(int(a.shape[-2]), int(a.shape[-1])) for a in self.levels]

    def plane(self, level: int, ys: slice, xs: slice) -> np.ndarray[Any, Any]:
        """Labels of ``level`` in a window (leading size-1 axes dropped)."""
        arr = self.levels[level]
        lead = (0,) * (arr.ndim - 2)
        return np.asarray(arr[(*lead, ys, xs)])

    def row(self, cell_id: int) -> dict[str, Any] | None:
        """The table row of cell ``cell_id`` as plain values, or None (background, unknown)."""
        i = self._row.get(int(cell_id))
        if i is None:
            return None
        rec = self.table.iloc[i].to_dict()
        return {str(k): _plain(v) for k, v in rec.items()}

    def color_of_labels(self) -> dict[int, str]:
        """RRGGBB of every cell id, by its phenotype."""
        kinds = self.table["phenotype"].astype(str).to_numpy()
        ids = self.table["cell_id"].to_numpy(np.int64)
        return {int(i): self.colors.get(str(k), OTHER_COLOR)
                for i, k in zip(ids, kinds, strict=True)}

    def lut(self) -> np.ndarray[Any, Any]:
        """RGBA (uint8) per label value 0..max id: background transparent, each cell its
        phenotype's colour; index it with a label array to draw an overlay."""
        ids = self.table["cell_id"].to_numpy(np.int64)
        top = int(ids.max()) if len(ids) else 0
        out = np.zeros((top + 1, 4), np.uint8)
        for name, hexa in self.colors.items():
            sel = ids[(self.table["phenotype"].astype(str) == name).to_numpy()]
            out[sel] = [*hex_to_rgb(hexa), 255]
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def has_cells(location: str | Path) -> bool:
    """Whether a local image folder holds analysis results."""
    p = Path(location)
    return (p / "labels" / "cells").is_dir() and (p / "tables" / "cells").is_dir()


def open_cells(src: ImageSource) -> CellOverlay | None:
    """The cells of an opened image, or None when it has not been analysed."""
    if src.is_label:
        return None
    if src.client is not None and src.image_id is not None:
        return _api_cells(src.client, src.image_id)
    if not src.location or not has_cells(src.location):
        return None
    import zarr

    root = Path(src.location)
    labels = zarr.open_group(str(root / "labels" / "cells"), mode="r")
    table = _local_table(root / "tables" / "cells")
    return _overlay(labels, table)


def _overlay(labels: Any, table: Any) -> CellOverlay:
    from plexhub.ome_pipeline.readers.omezarr import ome_attrs

    ms = ome_attrs(labels)["multiscales"][0]
    levels = [labels[d["path"]] for d in ms["datasets"]]
    kind = table["phenotype"]
    names = [str(c) for c in kind.cat.categories] if hasattr(kind, "cat") \
        else list(dict.fromkeys(str(v) for v in kind))
    return CellOverlay(levels=levels, table=table, phenotypes=names)


def _local_table(where: Path) -> Any:
    import anndata
    import pandas as pd

    adata = anndata.read_zarr(str(where))
    obs = adata.obs.reset_index(drop=True)
    obs = obs.drop(columns=[c for c in ("region",) if c in obs.columns])
    means = pd.DataFrame(np.asarray(adata.X), columns=[str(v) for v in adata.var_names])
    means = means.rename(columns={c: f"{c}_mean" for c in set(means.columns) & set(obs)})
    return pd.concat([obs, means], axis=1)


def _api_cells(client: ApiClient, image_id: str) -> CellOverlay | None:
    import pandas as pd
    import zarr
    from zarr.storage import FsspecStore

    from plexhub.client import ApiNotFoundError

    try:
        raw = client.request("GET", f"/images/{image_id}/cells",
                             params={"format": "parquet"}, what=f"cells of image {image_id}")
    except ApiNotFoundError:
        return None
    table = pd.read_parquet(io.BytesIO(raw.content))
    if "phenotype" in table:
        table["phenotype"] = table["phenotype"].astype("category")
    store = FsspecStore.from_url(f"{client.zarr_url(image_id)}/labels/cells", read_only=True,
                                 storage_options={"headers": client.headers})
    return _overlay(zarr.open_group(store, mode="r"), table)
