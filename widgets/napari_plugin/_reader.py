"""napari reader: an OME-Zarr path or a plexhub image URL -> one layer per channel.

Image channels become ``Image`` layers (lazy dask pyramids, additive blending) drawn with a
render preset: the one named by ``?preset=<id>[@<version>]`` on an image URL, else the
image's default (the API's default preset; for a local store its ``omero`` block where
usable, else auto-contrast from the histograms; see :mod:`plexhub.widgets.source`).
Integer label images become ``Labels`` layers. An analysed image (``labels/cells`` and
``tables/cells``) adds a ``cells`` Labels layer coloured by phenotype, the cell table as its
``features`` (see :mod:`._cells`).

``read_image(path, preset=...)`` is the same from Python, with any preset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from plexhub.client import ApiClient
from plexhub.presets import RenderPreset
from plexhub.widgets.napari_plugin._layers import META, layer_kwargs
from plexhub.widgets.source import (
    ImageSource,
    open_image,
    parse_image_url,
    resolve_preset,
    share_params,
)

LayerData = tuple[Any, dict[str, Any], str]
PresetArg = RenderPreset | Mapping[str, Any] | str | None


def _is_store(path: str) -> bool:
    p = Path(path)
    if not p.is_dir():
        return False
    return any((p / f).is_file() for f in ("zarr.json", ".zattrs", ".zgroup"))


def napari_get_reader(path: str | Sequence[str]) -> Callable[..., list[LayerData]] | None:
    """npe2 reader hook: a reader for OME-Zarr folders and plexhub image URLs, else None."""
    if not isinstance(path, str):
        if len(path) != 1:
            return None
        path = str(path[0])
    if path.startswith(("http://", "https://")):
        return read_image if parse_image_url(path) is not None else None
    if not _is_store(path):
        return None
    try:
        from plexhub.ome_pipeline.readers.omezarr import ome_attrs
        from plexhub.widgets.source import _open_group

        attrs = ome_attrs(_open_group(path))
    except Exception:  # anything unreadable is not ours
        return None
    if "multiscales" not in attrs and "bioformats2raw.layout" not in attrs:
        return None
    return read_image


def _dask_levels(arrays: Sequence[Any]) -> list[Any]:
    import dask.array as da

    return [da.from_zarr(a) for a in arrays]  # type: ignore[no-untyped-call]


def _scale(src: ImageSource, axes: str) -> list[float]:
    sizes = src.physical_sizes
    spatial = [a for a in axes if a in "zyx"]
    if not all(a in sizes for a in "yx" if a in spatial):
        return [1.0] * len(axes)
    return [float(sizes[a].value) if a in sizes else 1.0 for a in axes]


def _source_meta(src: ImageSource) -> dict[str, Any]:
    return {"image": src.image_id or src.location, "image_id": src.image_id,
            "api_url": src.client.base_url if src.client is not None else None,
            "location": src.location, "image_name": src.name, "dtype": str(src.dtype)}


def layers_of(src: ImageSource, preset: PresetArg = None) -> list[LayerData]:
    """Layer data for an opened image: one layer per channel."""
    levels = _dask_levels(src.arrays)
    ci = src.axes.index("c") if "c" in src.axes else -1  # label images may have no c axis
    rest = src.axes.replace("c", "")
    scale = _scale(src, rest)
    multiscale = len(levels) > 1

    def channel(c: int) -> Any:
        sel = tuple(c if i == ci else slice(None) for i in range(len(src.axes)))
        planes = [lvl[sel] for lvl in levels]
        return planes if multiscale else planes[0]

    common = _source_meta(src)
    if src.is_label:
        return [(channel(ch.index), {
            "name": ch.label, "multiscale": multiscale, "scale": scale, "blending": "additive",
            "metadata": {META: common | {"index": ch.index, "label": ch.label}}}, "labels")
            for ch in src.channels]
    chosen = src.default_preset() if preset is None \
        else resolve_preset(preset, src.client)[0]
    fallback = src.default_preset() if preset is not None else chosen
    out: list[LayerData] = []
    for ch, kw in zip(src.channels, layer_kwargs(chosen, src.channels, src.dtype, fallback),
                      strict=True):
        kw["metadata"][META] |= common
        kw |= {"multiscale": multiscale, "scale": scale}
        out.append((channel(ch.index), kw, "image"))
    return out


def read_image(path: str | Sequence[str], preset: PresetArg = None,
               client: ApiClient | None = None, series: int = 0) -> list[LayerData]:
    """Layer data for an OME-Zarr path, a plexhub image URL or an API image id.

    ``preset``: a :class:`RenderPreset`, a preset document, or an API preset reference
    (``<id>`` or ``<id>@<version>``); an image URL may carry it as ``?preset=``.
    """
    if not isinstance(path, str):
        path = str(path[0])
    if path.startswith(("http://", "https://")):
        preset = preset if preset is not None else share_params(path).get("preset")
    src = open_image(path, client=client, series=series)
    out = layers_of(src, preset)
    if not src.is_label:  # an analysed image: its cells on top, coloured by phenotype
        from plexhub.widgets.napari_plugin._cells import cell_layer

        cells = cell_layer(src, _scale(src, src.axes.replace("c", "")))
        if cells is not None:
            out.append(cells)
    return out


def add_to_viewer(viewer: Any, path: str, preset: PresetArg = None,
                  client: ApiClient | None = None) -> list[Any]:
    """Open ``path`` into ``viewer`` (a napari ``Viewer`` or ``ViewerModel``) like the
    reader, and set the layers' contrast-limit ranges (which napari's reader API cannot)."""
    from plexhub.widgets.napari_plugin._cells import connect_clicks
    from plexhub.widgets.napari_plugin._layers import restore_ranges

    layers = []
    for data, kw, kind in read_image(path, preset=preset, client=client):
        add = viewer.add_labels if kind == "labels" else viewer.add_image
        layers.append(add(data, **kw))
        connect_clicks(layers[-1])  # a cell layer: a click selects the cell
    restore_ranges(layers)
    return layers
