"""The notebook viewer's cell overlay: an analysed image's cells drawn over its tiles,
coloured by phenotype (a toggle), and the row of the cell clicked on.

The :class:`~plexhub.widgets.viewer.Viewer` holds one :class:`CellOverlayControl` when the
image has ``labels/cells`` and ``tables/cells`` (:func:`plexhub.widgets.cells.open_cells`)
and calls it at three points: each tile it sends (:meth:`CellOverlayControl.composite`), the
tile generation it publishes (:meth:`~CellOverlayControl.gen_suffix`, so that toggling
redraws), and a click on the canvas (:meth:`~CellOverlayControl.select`). The controls are
ipywidgets below the canvas: the toggle, the phenotype legend, the clicked cell's row.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as ipw
import numpy as np

from plexhub.widgets.cells import CellOverlay, open_cells
from plexhub.widgets.source import ImageSource

ALPHA = 0.45  # how much of a cell's pixel is its phenotype's colour
EDGE_ALPHA = 0.9  # cell outlines, so neighbours of one phenotype stay apart


class CellOverlayControl:
    """Toggle, legend and clicked-cell table for the cells of one image."""

    def __init__(self, source: ImageSource, cells: CellOverlay,
                 on_change: Callable[[], None] | None = None) -> None:
        self.source, self.cells = source, cells
        self._lut = cells.lut()
        self._on_change = on_change
        self.toggle = ipw.ToggleButton(value=False, description="Cells by phenotype",
                                       tooltip="Draw the cell labels coloured by phenotype",
                                       icon="circle", layout=ipw.Layout(width="auto"))
        self.legend = ipw.HTML(self._legend_html())
        self.table = ipw.HTML(_EMPTY)
        self.row: dict[str, Any] | None = None
        self.toggle.observe(self._toggled, names="value")
        self.widget = ipw.VBox([ipw.HBox([self.toggle, self.legend]), self.table])

    @classmethod
    def for_source(cls, source: ImageSource, on_change: Callable[[], None] | None = None
                   ) -> CellOverlayControl | None:
        cells = open_cells(source)
        return None if cells is None else cls(source, cells, on_change)

    # -- state ---------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.toggle.value)

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.toggle.value = bool(value)

    def gen_suffix(self) -> str:
        return ":cells" if self.enabled else ""

    def _toggled(self, _change: dict[str, Any]) -> None:
        if self._on_change is not None:
            self._on_change()

    def _legend_html(self) -> str:
        counts = self.cells.table["phenotype"].astype(str).value_counts().to_dict()
        items = [f'<span title="{escape(n)}" style="white-space:nowrap;margin-right:10px">'
                 f'<span style="display:inline-block;width:10px;height:10px;'
                 f'background:#{c};margin-right:4px"></span>{escape(n)} '
                 f'({counts.get(n, 0)})</span>'
                 for n, c in self.cells.colors.items()]
        return f'<div class="plexhub-cell-legend" aria-label="Phenotype legend">' \
               f'{"".join(items)}</div>'

    # -- drawing -------------------------------------------------------------------------

    def labels_for(self, level: int, ys: slice, xs: slice) -> np.ndarray[Any, Any]:
        """Labels covering ``(ys, xs)`` of image ``level``: the label level of the same shape,
        else the nearest level-0 label of each pixel."""
        shape = self.source.level_shapes[level]
        if shape in self.cells.level_shapes:
            return self.cells.plane(self.cells.level_shapes.index(shape), ys, xs)
        fy, fx = self.source.downsample(level)
        h0, w0 = self.cells.level_shapes[0]
        rows = np.minimum((np.arange(ys.start, ys.stop) * fy).astype(int), h0 - 1)
        cols = np.minimum((np.arange(xs.start, xs.stop) * fx).astype(int), w0 - 1)
        block = self.cells.plane(0, slice(int(rows.min()), int(rows.max()) + 1),
                                 slice(int(cols.min()), int(cols.max()) + 1))
        return block[np.ix_(rows - rows.min(), cols - cols.min())]

    def draw(self, rgb: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]
             ) -> np.ndarray[Any, Any]:
        """``rgb`` (h, w, 3 uint8) with each cell's pixels tinted by its phenotype's colour
        and its outline drawn; the background is left as it is."""
        labels = labels[: rgb.shape[0], : rgb.shape[1]].astype(np.int64)
        safe = np.where(labels < len(self._lut), labels, 0)
        rgba = self._lut[safe]
        edge = np.zeros(labels.shape, bool)
        edge[1:, :] |= labels[1:, :] != labels[:-1, :]
        edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        alpha = rgba[..., 3:].astype(np.float32) / 255 * \
            np.where(edge & (labels > 0), EDGE_ALPHA, ALPHA)[..., None]
        out = rgb.astype(np.float32) * (1 - alpha) + rgba[..., :3].astype(np.float32) * alpha
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def composite(self, png: bytes, level: int, row: int, col: int, tile: int) -> bytes:
        """A tile (PNG) with the cells drawn over it when the overlay is on."""
        if not self.enabled:
            return png
        from PIL import Image

        from plexhub.ome_pipeline.render import encode

        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        h, w = rgb.shape[:2]
        labels = self.labels_for(level, slice(row * tile, row * tile + h),
                                 slice(col * tile, col * tile + w))
        return encode(self.draw(rgb, labels), "png")

    # -- clicks --------------------------------------------------------------------------

    def select(self, x: float, y: float) -> dict[str, Any] | None:
        """The cell at level-0 ``(x, y)``: its row is shown below the canvas and returned
        (None and a hint on the background or outside the image)."""
        h, w = self.cells.level_shapes[0]
        r, c = int(np.floor(y)), int(np.floor(x))
        cid = int(self.cells.plane(0, slice(r, r + 1), slice(c, c + 1))[0, 0]) \
            if 0 <= r < h and 0 <= c < w else 0
        self.row = self.cells.row(cid) if cid else None
        self.table.value = _row_html(self.row, self.cells.colors) if self.row else _EMPTY
        return self.row


_EMPTY = '<div class="plexhub-cell-row" aria-label="Selected cell">' \
         '<i>Click a cell to show its row.</i></div>'


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _row_html(row: dict[str, Any], colors: dict[str, str]) -> str:
    kind = str(row.get("phenotype", ""))
    swatch = f'<span style="display:inline-block;width:10px;height:10px;' \
             f'background:#{colors.get(kind, "808080")}"></span> ' if kind else ""
    head = f"<b>Cell {escape(str(row.get('cell_id', '')))}</b> {swatch}{escape(kind)}"
    cells = "".join(f"<tr><th style='text-align:left;padding-right:8px'>{escape(str(k))}"
                    f"</th><td>{escape(_shown(v))}</td></tr>" for k, v in row.items())
    return f'<div class="plexhub-cell-row" aria-label="Selected cell">{head}' \
           f'<table role="table">{cells}</table></div>'
