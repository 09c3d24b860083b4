"""The per-channel histogram under the viewer's channel panel: the focused channel's stored
histogram, log counts, the window as a box whose edges can be dragged to set the window.

The browser half draws it on its own canvas (``static/viewer.js``); this module only prepares
what it draws: the stored histogram, rebinned to at most :data:`MAX_BINS` bars, as a synced
trait. An earlier version embedded a bokeh figure through jupyter_bokeh's ``BokehModel``;
that view calls ``window.Bokeh.require`` when it is created, and BokehJS only reaches the page
through an ``output_notebook`` output that JupyterLab runs when that output is attached. In
the same cell as the widget (or after a page reload, when the kernel had already loaded it
once) the view was created first and every viewer showed "Click to show javascript error".
Drawing it ourselves needs no BokehJS in the page, nothing inline of several megabytes in
each notebook, and no bokeh import in the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_BINS = 256


def rebin(edges: Sequence[float], counts: Sequence[float],
          max_bins: int = MAX_BINS) -> tuple[list[float], list[float]]:
    """(edges, counts) with at most ``max_bins`` bins, adjacent bins summed."""
    e = np.asarray(edges, np.float64)
    c = np.asarray(counts, np.float64)
    if c.size == 0 or e.size != c.size + 1:
        return [0.0, 1.0], [0.0]
    group = -(-c.size // max_bins)
    if group > 1:
        pad = (-c.size) % group
        c = np.concatenate([c, np.zeros(pad)]).reshape(-1, group).sum(axis=1)
        e = np.concatenate([e[:-1:group], e[-1:]])
    return e.tolist(), c.tolist()


class HistogramPanel:
    """What the histogram shows; :meth:`show` switches it to a channel row."""

    def __init__(self, histograms: Sequence[Mapping[str, Any]]) -> None:
        self.histograms = {int(h.get("index", i)): h for i, h in enumerate(histograms)}
        self.index = -1
        self.data: dict[str, Any] = {}

    def show(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The histogram of channel ``row['index']`` (edges, counts, title) for the browser;
        the window and colour come from the row itself, which the browser has."""
        index = int(row["index"])
        if index != self.index:
            stored = self.histograms.get(index) or {}
            edges, counts = rebin(stored.get("edges") or [0.0, 1.0],
                                  stored.get("counts") or [0])
            self.index = index
            self.data = {"index": index, "edges": edges, "counts": counts,
                         "title": f"{row.get('marker') or row.get('label')} (channel {index})"}
        return self.data
