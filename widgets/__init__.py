"""plexhub.widgets: the notebook viewer and the napari plugin.

``from plexhub.widgets import Viewer`` shows an OME-Zarr path or an API image in a notebook.
Heavy imports (anywidget, bokeh, napari) happen only when a viewer is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plexhub.widgets.viewer import Viewer

__all__ = ["Viewer"]


def __getattr__(name: str) -> Any:
    if name == "Viewer":
        from plexhub.widgets.viewer import Viewer

        return Viewer
    raise AttributeError(name)
