"""Cells in napari: the image's ``labels/cells`` as a ``Labels`` layer with the cell table as
its ``features`` (napari's status bar shows the row of the cell under the cursor), coloured
by phenotype; a click on a cell selects it (``layer.selected_label``), and the "Cells" dock
widget shows the selected cell's row and the phenotype legend.

Layer data only here (no napari import at module import); the dock widget imports Qt.
"""

from __future__ import annotations

from typing import Any

from plexhub.colors import hex_to_rgb
from plexhub.widgets.cells import CellOverlay, open_cells
from plexhub.widgets.napari_plugin._layers import META
from plexhub.widgets.source import ImageSource

CELLS_KIND = "cells"


def _rgba(hexa: str, alpha: float = 1.0) -> list[float]:
    return [c / 255 for c in hex_to_rgb(hexa)] + [alpha]


def colormap_of(overlay: CellOverlay) -> dict[int | None, list[float]]:
    """napari's direct label colormap: each cell its phenotype's colour, the background
    transparent (``None``: labels not in the table)."""
    cmap: dict[int | None, list[float]] = {None: [0.0, 0.0, 0.0, 0.0], 0: [0.0, 0.0, 0.0, 0.0]}
    cmap.update({k: _rgba(v) for k, v in overlay.color_of_labels().items()})
    return cmap


def features_of(overlay: CellOverlay) -> Any:
    """The cell table with napari's ``index`` column (the label value of each row)."""
    table = overlay.table.copy()
    table.insert(0, "index", table["cell_id"].to_numpy())
    return table


def cell_layer(src: ImageSource, scale: list[float],
               overlay: CellOverlay | None = None) -> tuple[Any, dict[str, Any], str] | None:
    """Layer data ``(data, kwargs, "labels")`` for the cells of ``src``, or None when it has
    none."""
    import dask.array as da

    overlay = overlay if overlay is not None else open_cells(src)
    if overlay is None:
        return None
    levels = []
    for arr in overlay.levels:
        lazy = da.from_zarr(arr)  # type: ignore[no-untyped-call]
        levels.append(lazy[(0,) * (lazy.ndim - 2)] if lazy.ndim > 2 else lazy)
    multiscale = len(levels) > 1
    yx = scale[-2:] if len(scale) >= 2 else [1.0, 1.0]
    meta = {"kind": CELLS_KIND, "image": src.image_id or src.location,
            "phenotypes": overlay.phenotypes, "colors": overlay.colors}
    kw = {"name": "cells", "multiscale": multiscale, "scale": yx, "opacity": 0.6,
          "features": features_of(overlay), "colormap": colormap_of(overlay),
          "metadata": {META: meta}}
    return (levels if multiscale else levels[0]), kw, "labels"


def is_cell_layer(layer: Any) -> bool:
    meta = getattr(layer, "metadata", {}).get(META, {})
    return isinstance(meta, dict) and meta.get("kind") == CELLS_KIND


def cell_row(layer: Any, label: int) -> dict[str, Any] | None:
    """The features row of cell ``label`` of a cell layer, or None (background, unknown)."""
    features = layer.features
    if label <= 0 or "index" not in features:
        return None
    hit = features.index[features["index"] == label]
    if len(hit) == 0:
        return None
    rec = features.loc[hit[0]].to_dict()
    rec.pop("index", None)
    return {str(k): (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}


def label_at(layer: Any, position: Any) -> int | None:
    """The cell id at a world position, read from full resolution (the level on screen may
    be a coarser one, whose 2x2 modes can name a neighbour); None outside the image."""
    import numpy as np

    data = layer.data[0] if layer.multiscale else layer.data
    yx = np.round(np.asarray(layer.world_to_data(position), dtype=float)[-2:]).astype(int)
    if (yx < 0).any() or yx[0] >= data.shape[-2] or yx[1] >= data.shape[-1]:
        return None
    lead = (0,) * (data.ndim - 2)
    return int(np.asarray(data[(*lead, int(yx[0]), int(yx[1]))]))


def on_cell_click(layer: Any, event: Any) -> None:
    """Mouse press on a cell layer: select the cell under the pointer (0 on background)."""
    if event.type != "mouse_press":
        return
    label = label_at(layer, event.position)
    if label is not None:
        layer.selected_label = label


def connect_clicks(layer: Any) -> None:
    """Make clicks on ``layer`` select cells (once per layer)."""
    if is_cell_layer(layer) and on_cell_click not in layer.mouse_drag_callbacks:
        layer.mouse_drag_callbacks.append(on_cell_click)
