"""The "Cells" dock widget: the phenotype legend of the viewer's cell layers and the row of
the selected cell (click a cell in the layer; see :mod:`._cells`)."""

from __future__ import annotations

from html import escape
from typing import Any

from qtpy.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from plexhub.widgets.napari_plugin._cells import cell_row, connect_clicks, is_cell_layer
from plexhub.widgets.napari_plugin._layers import META


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class CellWidget(QWidget):
    """Legend and selected-cell table for the cell layers of a viewer."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.legend = QLabel("No cell layer: open an analysed image (plexhub analyze).")
        self.legend.setWordWrap(True)
        self.legend.setAccessibleName("Phenotype legend")
        self.hint = QLabel("Click a cell to show its row.")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["field", "value"])
        self.table.setAccessibleName("Selected cell")
        header = self.table.verticalHeader()
        if header is not None:
            header.setVisible(False)
        lay = QVBoxLayout(self)
        lay.addWidget(self.legend)
        lay.addWidget(self.hint)
        lay.addWidget(self.table)
        self.row: dict[str, Any] | None = None
        napari_viewer.layers.events.inserted.connect(lambda e: self._watch(e.value))
        for layer in napari_viewer.layers:
            self._watch(layer)

    def _watch(self, layer: Any) -> None:
        if not is_cell_layer(layer):
            return
        connect_clicks(layer)
        layer.events.selected_label.connect(lambda e, lyr=layer: self.show_cell(lyr))
        meta = layer.metadata[META]
        swatches = [f'<span style="color:#{escape(str(c))}">■</span> {escape(str(n))}'
                    for n, c in meta.get("colors", {}).items()]
        self.legend.setText("  ".join(swatches))

    def show_cell(self, layer: Any) -> None:
        """Fill the table with the row of ``layer``'s selected cell."""
        self.row = cell_row(layer, int(layer.selected_label))
        items = list(self.row.items()) if self.row else []
        self.hint.setText(f"Cell {self.row['cell_id']}" if self.row
                          else "Click a cell to show its row.")
        self.table.setRowCount(len(items))
        for i, (k, v) in enumerate(items):
            self.table.setItem(i, 0, QTableWidgetItem(str(k)))
            self.table.setItem(i, 1, QTableWidgetItem(_shown(v)))
