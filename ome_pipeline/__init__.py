"""Conversion of scanner files to OME-Zarr.

Three verbs, lazily imported so that ``import plexhub.ome_pipeline`` stays cheap::

    from plexhub.ome_pipeline import open_source, convert, validate_store
    result = convert("slide.qptiff", "slide.ome.zarr")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexhub.lazy import lazy_attributes

if TYPE_CHECKING:
    from plexhub.ome_pipeline.conversion import ConversionResult, convert
    from plexhub.ome_pipeline.readers import open_source
    from plexhub.ome_pipeline.validate import validate_store

__all__ = ["ConversionResult", "convert", "open_source", "validate_store"]

_LAZY = {
    "convert": "plexhub.ome_pipeline.conversion",
    "ConversionResult": "plexhub.ome_pipeline.conversion",
    "open_source": "plexhub.ome_pipeline.readers",
    "validate_store": "plexhub.ome_pipeline.validate",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
