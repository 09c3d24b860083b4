"""Analysis of multiplex images: segmentation, per-cell quantification, phenotypes.

Lazily imported, like :mod:`plexhub.ome_pipeline`::

    from plexhub.ome_pipeline.analysis import analyze
    result = analyze("slide.ome.zarr", nuclear="DAPI", membrane="CD3")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexhub.lazy import lazy_attributes

if TYPE_CHECKING:
    from plexhub.ome_pipeline.analysis.phenotypes import PhenotypeRule, parse_rules
    from plexhub.ome_pipeline.analysis.quantify import quantify_array
    from plexhub.ome_pipeline.analysis.run import AnalysisResult, analyze
    from plexhub.ome_pipeline.analysis.sdexport import SpatialDataExport, export_spatialdata
    from plexhub.ome_pipeline.analysis.segmentation import (
        WatershedSegmenter,
        get_segmenter,
        segment_array,
    )

__all__ = ["AnalysisResult", "PhenotypeRule", "SpatialDataExport", "WatershedSegmenter",
           "analyze", "export_spatialdata", "get_segmenter", "parse_rules", "quantify_array",
           "segment_array"]

_LAZY = {
    "analyze": "plexhub.ome_pipeline.analysis.run",
    "AnalysisResult": "plexhub.ome_pipeline.analysis.run",
    "WatershedSegmenter": "plexhub.ome_pipeline.analysis.segmentation",
    "get_segmenter": "plexhub.ome_pipeline.analysis.segmentation",
    "segment_array": "plexhub.ome_pipeline.analysis.segmentation",
    "quantify_array": "plexhub.ome_pipeline.analysis.quantify",
    "PhenotypeRule": "plexhub.ome_pipeline.analysis.phenotypes",
    "parse_rules": "plexhub.ome_pipeline.analysis.phenotypes",
    "export_spatialdata": "plexhub.ome_pipeline.analysis.sdexport",
    "SpatialDataExport": "plexhub.ome_pipeline.analysis.sdexport",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
