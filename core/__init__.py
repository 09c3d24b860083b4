"""plexhub: a Jupyter-centred hub for multiplex immunofluorescence and spatial-biology images.

Subpackages (each a top-level folder of the repository):
``plexhub.ome_pipeline`` (conversion to OME-Zarr), ``plexhub.api``, ``plexhub.widgets``,
``plexhub.hub``, ``plexhub.policies`` and ``plexhub.extensions``.
"""

__version__ = "0.1.0"
