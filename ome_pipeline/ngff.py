"""OME-NGFF 0.4 / 0.5 metadata documents (multiscales, omero, labels, collections)."""

from __future__ import annotations

from typing import Any

from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.chunkio import OutputStore

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


# Which common readers open a store of each version (README: "Which tools open the output").
READERS = {
    "0.5": "zarr-python >= 3, ome-zarr-py >= 0.10 (napari-ome-zarr on it), ngff-zarr; "
           "not zarr-python 2 or ome-zarr-py <= 0.9 (write --ngff-version 0.4 for those)",
    "0.4": "zarr-python 2 and 3, ome-zarr-py (0.4 and later), napari-ome-zarr, ngff-zarr",
}


def zarr_format(version: str) -> int:
    return 3 if version == "0.5" else 2


def axes_json(axes: str, sizes: dict[str, PhysicalSize]) -> list[dict[str, Any]]:
    out = []
    for a in axes:
        entry: dict[str, Any] = {"name": a, "type": AXIS_TYPES[a]}
        if a in sizes and a != "c" and sizes[a].unit:
            entry["unit"] = sizes[a].unit  # none invented: a time axis without one has none
        out.append(entry)
    return out


def datasets_json(axes: str, nlevels: int, sizes: dict[str, PhysicalSize],
                  downsampled: bool = True,
                  origin: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Scale (and, for 2x2 means, the half-pixel translation) of every level; ``origin``
    (y, x in physical units) places the image among the others of a collection."""
    origin = origin or {}
    out = []
    for k in range(nlevels):
        f = 2**k
        scale, shift = [], []
        for a in axes:
            base = sizes[a].value if a in sizes and a != "c" else 1.0
            if a in "yx":
                scale.append(base * f)
                shift.append((base * (f - 1) / 2.0 if downsampled else 0.0)
                             + origin.get(a, 0.0))
            else:
                scale.append(base)
                shift.append(0.0)
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": shift})
        out.append({"path": str(k), "coordinateTransformations": transforms})
    return out


def multiscales_json(name: str, axes: str, nlevels: int, sizes: dict[str, PhysicalSize],
                     version: str, method: str,
                     origin: dict[str, float] | None = None) -> dict[str, Any]:
    ms: dict[str, Any] = {
        "name": name,
        "axes": axes_json(axes, sizes),
        "datasets": datasets_json(axes, nlevels, sizes, downsampled=method == "mean",
                                  origin=origin),
        "type": method,
        "metadata": {"description": f"2x2 {method} per level, ceiling division at edges",
                     "method": f"plexhub.ome_pipeline.pyramid.downsample_{method}"},
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


def omero_json(channels: list[dict[str, Any]], default_z: int, version: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "channels": channels,
        "rdefs": {"model": "color", "defaultZ": default_z, "defaultT": 0},
    }
    if version == "0.4":
        doc["version"] = "0.4"
    return doc


def collection_root(series: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """NGFF keys of a collection's root beside ``bioformats2raw.layout``: one ``multiscales``
    entry per series (paths ``<series>/<level>``, its own name and transforms) and the first
    series' ``omero``. The spec lets a group hold several multiscales, "the first as a
    fallback": readers without bioformats2raw support (ome-zarr-py's Reader, so
    ``ome_zarr info`` and napari-ome-zarr < 0.10) open the first series at the root instead
    of nothing; readers that follow the layout (napari-ome-zarr 0.10, Bio-Formats, plexhub)
    still open every series from its own group."""
    multiscales = [{**ms, "datasets": [{**d, "path": f"{key}/{d['path']}"}
                                       for d in ms["datasets"]]}
                   for key, attrs in series for ms in attrs.get("multiscales", [])[:1]]
    out: dict[str, Any] = {"multiscales": multiscales} if multiscales else {}
    if series and "omero" in series[0][1]:
        out["omero"] = series[0][1]["omero"]
    return out


def wrap(version: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Place NGFF keys where each version wants them."""
    if version == "0.5":
        return {"ome": {"version": "0.5", **attrs}}
    return attrs


def write_group(store: OutputStore, key: str, attrs: dict[str, Any], version: str) -> None:
    prefix = f"{key}/" if key else ""
    if version == "0.5":
        store.put_json(f"{prefix}zarr.json",
                       {"zarr_format": 3, "node_type": "group", "attributes": attrs})
    else:
        store.put_json(f"{prefix}.zgroup", {"zarr_format": 2})
        store.put_json(f"{prefix}.zattrs", attrs)


def root_metadata_key(version: str) -> str:
    return "zarr.json" if version == "0.5" else ".zattrs"
