"""The per-channel histogram under the viewer: bokeh, log counts, the window as a box whose
edges can be dragged (bokeh's editable ``BoxAnnotation``) to set the channel's window.

BokehJS must be in the page before a ``BokehModel`` can draw: :func:`ensure_bokehjs` loads
the INLINE resources once per kernel (the default CDN is unreachable offline and behind
many CRO firewalls).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

_LOADED = False


def ensure_bokehjs() -> None:
    global _LOADED
    from IPython import get_ipython

    if get_ipython() is None:  # not in a kernel (a script, the tests): nothing to load into
        return
    if not _LOADED:
        from bokeh.io import output_notebook
        from bokeh.resources import INLINE

        output_notebook(INLINE, hide_banner=True)
        _LOADED = True


class HistogramPanel:
    """One figure; :meth:`show` switches it to a channel row (see ``PanelState``)."""

    def __init__(self, histograms: Sequence[Mapping[str, Any]],
                 on_window: Callable[[int, float, float], None]) -> None:
        from bokeh.models import ColumnDataSource
        from bokeh.models.annotations import BoxAnnotation, Title
        from bokeh.plotting import figure

        self.histograms = {int(h.get("index", i)): h for i, h in enumerate(histograms)}
        self.on_window = on_window
        self.index = -1
        self._updating = False
        self.source = ColumnDataSource({"left": [], "right": [], "top": [], "bottom": []})
        fig = figure(height=170, width=640, y_axis_type="log", toolbar_location=None,
                     tools="xpan,xwheel_zoom,reset", title="")
        fig.quad(left="left", right="right", top="top", bottom="bottom", source=self.source,
                 fill_color="#888888", line_color=None)
        fig.yaxis.axis_label = "pixels"
        self.box = BoxAnnotation(left=0, right=1, fill_alpha=0.15, fill_color="#3a7bd5",
                                 line_color="#3a7bd5", editable=True)
        fig.add_layout(self.box)
        self.box.on_change("left", self._box_moved)
        self.box.on_change("right", self._box_moved)
        self.figure = fig
        self.title = Title(text="")
        fig.title = self.title
        self._widget: Any = None

    @property
    def widget(self) -> Any:
        """The jupyter_bokeh widget (made on first use, after BokehJS is loaded)."""
        if self._widget is None:
            from jupyter_bokeh import BokehModel

            ensure_bokehjs()
            self._widget = BokehModel(self.figure)
        return self._widget

    def show(self, row: Mapping[str, Any]) -> None:
        """Draw channel ``row['index']``'s histogram and window."""
        self._updating = True
        try:
            index = int(row["index"])
            if index != self.index:
                self.index = index
                stored = self.histograms.get(index) or {}
                edges = np.asarray(stored.get("edges") or [0.0, 1.0], np.float64)
                counts = np.asarray(stored.get("counts") or [0], np.float64)
                keep = counts > 0
                self.source.data = {"left": edges[:-1][keep].tolist(),
                                    "right": edges[1:][keep].tolist(),
                                    "top": counts[keep].tolist(),
                                    "bottom": [0.8] * int(keep.sum())}
                self.title.text = f"{row.get('marker') or row.get('label')} (channel {index})"
            self.box.left, self.box.right = float(row["start"]), float(row["end"])
            self.box.fill_color = self.box.line_color = f"#{row.get('color') or '3A7BD5'}"
        finally:
            self._updating = False

    def _box_moved(self, _attr: str, _old: Any, _new: Any) -> None:
        if self._updating or self.index < 0:
            return
        left, right = self.box.left, self.box.right
        if not isinstance(left, int | float) or not isinstance(right, int | float):
            return  # bokeh allows screen units and dates; the window is in data units
        self.on_window(self.index, min(left, right), max(left, right))
