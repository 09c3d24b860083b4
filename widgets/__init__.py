"""plexhub.widgets: the notebook viewer and the napari plugin.

``from plexhub.widgets import Viewer`` shows an OME-Zarr path or an API image in a notebook.
Heavy imports (anywidget, zarr, napari) happen only when a viewer is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexhub.lazy import lazy_attributes

if TYPE_CHECKING:
    from plexhub.widgets.viewer import Viewer

__all__ = ["Viewer"]


__getattr__ = lazy_attributes(__name__, {"Viewer": "plexhub.widgets.viewer"})
