"""plexhub's napari plugin (npe2 manifest ``napari.yaml``).

- reader (``_reader``): OME-Zarr folders and plexhub image URLs -> one layer per channel,
  drawn with a render preset (``?preset=<id>[@<version>]`` on a URL, else the image default);
  integer label images -> ``Labels``;
- dock widget "Render presets" (``_dock``): choose, apply and save API presets;
- ``_layers``: render presets <-> napari layer settings (pure, no Qt).

Importing this package imports neither napari nor Qt.
"""

from plexhub.widgets.napari_plugin._reader import add_to_viewer, napari_get_reader, read_image

__all__ = ["add_to_viewer", "napari_get_reader", "read_image"]
