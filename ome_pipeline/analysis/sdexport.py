"""``plexhub export spatialdata``: a store's image, label images and tables as a SpatialData
store that ``spatialdata.read_zarr`` opens with the table linked to the cell labels.

Why a copy and not the store itself (spatialdata 0.7.3, ome-zarr-py 0.15 under it, zarr 3.1):

- SpatialData reads images only from ``images/<name>/`` and opens each level relative to that
  group; zarr refuses ``..`` in a path (``../../0``), so the store's level arrays at its root
  cannot be named from there, and a symlink would not survive object storage or a copy.
- it reads every child of ``labels/`` and wants, in each, a version it knows
  (``0.5-dev-spatialdata``, not NGFF's ``0.5``), transformations to named coordinate systems
  on the multiscales, and no ``image-label.source``: ome-zarr-py opens the parent image a
  source names, and SpatialData refuses a label image that yields two images;
- element names are unique across images, labels and tables, so ``tables/cells`` and
  ``labels/cells`` cannot both keep their names.

Changing the store's NGFF labels that way would break the NGFF readers that open the store
today. The export copies each level's files as they are (no decoding, no re-encoding), keeps
the store's Zarr format (NGFF 0.5: Zarr v3 and SpatialData's current container format; NGFF
0.4: Zarr v2 and its 0.1 container format) and writes the metadata SpatialData reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plexhub.errors import DestinationExistsError, InputError, MissingFileError
from plexhub.ome_pipeline.analysis.store import _root_attrs
from plexhub.ome_pipeline.chunkio import OutputStore, is_remote
from plexhub.ome_pipeline.confine import check_tree
from plexhub.ome_pipeline.metadata import micrometers_per
from plexhub.ome_pipeline.ngff import write_group

# the raster formats spatialdata 0.7 reads and writes, per NGFF version of the store
RASTER = {"0.5": {"ngff": "0.5-dev-spatialdata", "spatialdata": "0.3"},
          "0.4": {"ngff": "0.4-dev-spatialdata", "spatialdata": "0.2"}}
CONTAINER = {"0.5": "0.2", "0.4": "0.1"}  # spatialdata_attrs.version at the root
TABLE = {"0.5": "0.2", "0.4": "0.1"}  # the table group's "version"
IMAGE_AXES = ("cyx", "czyx")  # SpatialData's 2-D and 3-D images
LABEL_AXES = ("yx", "zyx")
GLOBAL = "global"  # level-0 pixels, as the table's centroids and obsm["spatial"]
PHYSICAL = "micrometers"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class SpatialDataExport:
    """What :func:`export_spatialdata` wrote."""

    path: Path
    image: str
    labels: list[str]
    tables: dict[str, str]  # table in the store -> its element name in the export
    skipped: dict[str, str] = field(default_factory=dict)  # element -> why
    bytes_copied: int = 0

    def summary(self) -> str:
        tables = ", ".join(f"{e} (tables/{t})" if e != t else e
                           for t, e in self.tables.items()) or "none"
        lines = [f"{self.path}: SpatialData store, image {self.image!r}, "
                 f"labels {', '.join(self.labels) or 'none'}, tables {tables}; "
                 f"{self.bytes_copied / 1e6:.1f} MB copied"]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped.items()]
        return "\n".join(lines)


def export_spatialdata(store: str | os.PathLike[str], out: str | os.PathLike[str], *,
                       name: str = "image", overwrite: bool = False) -> SpatialDataExport:
    """Write the image at the root of ``store`` (a local store written by ``plexhub
    convert``), its label images and its tables to a new SpatialData store ``out``.

    The image becomes ``images/<name>`` (channel names as its ``c`` coordinates), each label
    image ``labels/<label>``, each table ``tables/<table>`` (``<table>_table`` when a label
    image has its name: SpatialData's names are unique across elements). Transformations:
    ``global`` in level-0 pixels (the table's units), and ``micrometers`` when the store
    gives a pixel size. ``out`` appears whole or not at all.
    """
    text = os.fspath(store)
    if is_remote(text):
        raise InputError(text, "is a remote store; the export reads a local one",
                         "export a local copy")
    root = Path(text)
    if not root.exists():
        raise MissingFileError(text, "does not exist", "give the path of an OME-Zarr store")
    if not root.is_dir():
        raise InputError(text, "is a file, not an OME-Zarr store",
                         "convert it first: plexhub convert SRC STORE")
    _check_name(name, "--name")
    dst = Path(out)
    if dst.exists() and not overwrite:
        raise DestinationExistsError(str(dst), "already exists", "pass --overwrite to replace it")
    if _inside(dst, root) or _inside(root, dst):
        raise InputError(str(dst), f"overlaps the store {root}", "export to another folder")
    check_tree(root)  # no symlink out of the store: its files are copied
    attrs, version = _root_attrs(root)
    if attrs is None or not attrs.get("multiscales"):
        raise InputError(text, "is not an OME-Zarr image (no multiscales at its root)",
                         "export a store written by plexhub convert")
    if version not in RASTER:
        raise InputError(text, f"is NGFF {version}", "convert it to NGFF 0.5 or 0.4 first")
    image_ms = attrs["multiscales"][0]
    axes = "".join(a["name"] for a in image_ms["axes"])
    if axes not in IMAGE_AXES:
        raise InputError(text, f"has axes {axes!r}; SpatialData images have axes "
                         f"{' or '.join(IMAGE_AXES)}", "export a single time point")

    dst.parent.mkdir(parents=True, exist_ok=True)
    work = dst.parent / f".{dst.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        result = _write(root, work, dst, version, attrs, name)
        _swap_in(work, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _write(root: Path, work: Path, dst: Path, version: str, attrs: dict[str, Any],
           name: str) -> SpatialDataExport:
    from plexhub import __version__

    sink = OutputStore(str(work), direct=False)
    write_group(sink, "", {"spatialdata_attrs": {"version": CONTAINER[version]},
                           "plexhub": {"exported_from": root.name,
                                       "plexhub_version": __version__}}, version)
    copied = 0
    # the image
    ms = attrs["multiscales"][0]
    nch = _shape(root / ms["datasets"][0]["path"])[0]  # c comes first (IMAGE_AXES)
    sources = (attrs.get("omero") or {}).get("channels") or []
    if len(sources) != nch:
        sources = [{} for _ in range(nch)]
    channels = [{**ch, "label": str(ch.get("label", i))} for i, ch in enumerate(sources)]
    element, n = _raster(root, work / "images" / name, ms, version, name)
    element["omero"] = {"channels": channels}
    write_group(sink, "images", {}, version)
    write_group(sink, f"images/{name}", _place(version, element), version)
    copied += n
    # the label images
    used = {name.casefold()}
    labels: list[str] = []
    skipped: dict[str, str] = {}
    for label in _listed_labels(root):
        where = f"labels/{label}"
        named = _NAME.fullmatch(label) and label not in (".", "..")  # before any read
        doc = _group_attrs(root / "labels" / label)[0] if named else None
        lms = (doc or {}).get("multiscales") or []
        why = _unusable(label, used, lms)
        if why:
            skipped[where] = why
            continue
        element, n = _raster(root / "labels" / label, work / "labels" / label, lms[0],
                             version, label)
        meta = {k: v for k, v in (doc or {}).get("image-label", {}).items()
                if k not in ("source", "version")}  # a source makes spatialdata see 2 images
        if meta:
            element["image-label"] = meta
        write_group(sink, where, _place(version, element), version)
        copied += n
        labels.append(label)
        used.add(label.casefold())
    if labels:
        write_group(sink, "labels", _place(version, {"labels": labels}), version)
    # the tables (AnnData), as they are, with the format version spatialdata reads
    tables: dict[str, str] = {}
    for table in _tables(root):
        if not _NAME.fullmatch(table) or table.startswith("__"):
            skipped[f"tables/{table}"] = "its name is not a SpatialData element name"
            continue
        element_name = table
        while element_name.casefold() in used:
            element_name = f"{element_name}_table"
        copied += _copy(root / "tables" / table, work / "tables" / element_name)
        _set_table_version(work / "tables" / element_name, version)
        tables[table] = element_name
        used.add(element_name.casefold())
    if tables:
        write_group(sink, "tables", {}, version)
    return SpatialDataExport(path=dst, image=name, labels=labels, tables=tables,
                             skipped=skipped, bytes_copied=copied)


def _raster(base: Path, target: Path, ms: dict[str, Any], version: str,
            name: str) -> tuple[dict[str, Any], int]:
    """Copy the levels of the multiscales ``ms`` of group ``base`` to ``target`` and return
    SpatialData's multiscales metadata for them."""
    axes = [a["name"] for a in ms["axes"]]
    paths = [str(d["path"]) for d in ms["datasets"]]
    if not all(_level_path(p) for p in paths):
        raise InputError(str(base), f"has levels at {paths}", "a level outside its group "
                         "cannot be exported; convert the image with plexhub convert")
    shapes = [_shape(base / p) for p in paths]
    copied = sum(_copy(base / p, target / p) for p in paths)
    datasets = [{"path": p, "coordinateTransformations": [
        {"type": "scale", "scale": [full / level for full, level in zip(shapes[0], s,
                                                                          strict=True)]}]}
                for p, s in zip(paths, shapes, strict=True)]
    key = "".join(axes)
    transforms: list[dict[str, Any]] = [{"type": "identity", "input": _system(key, axes),
                                         "output": _system(GLOBAL, axes)}]
    um = _micrometers(ms)
    if um is not None:
        transforms.append({"type": "scale", "scale": [um.get(a, 1.0) for a in axes],
                           "input": _system(key, axes), "output": _system(PHYSICAL, axes)})
    out: dict[str, Any] = {
        "name": name,
        "axes": [{"name": a, "type": "channel" if a == "c" else "space"} for a in axes],
        "datasets": datasets,
        "coordinateTransformations": transforms,
    }
    if version == "0.4":
        out["version"] = RASTER[version]["ngff"]
    return {"multiscales": [out]}, copied


def _system(name: str, axes: list[str]) -> dict[str, Any]:
    return {"name": name, "axes": [{"name": a, "type": "channel"} if a == "c" else
                                   {"name": a, "type": "space", "unit": "unit"}
                                   for a in axes]}


def _micrometers(ms: dict[str, Any]) -> dict[str, float] | None:
    """Level 0's pixel size per spatial axis in micrometres, or None when the store has no
    unit for one of them."""
    scale = next((t["scale"] for t in ms["datasets"][0].get("coordinateTransformations", [])
                  if t.get("type") == "scale"), None)
    if scale is None:
        return None
    out = {}
    for a, s in zip(ms["axes"], scale, strict=True):
        if a["name"] == "c":
            continue
        factor = micrometers_per(a.get("unit"))
        if factor is None:
            return None
        out[a["name"]] = float(s) * factor
    return out


def _place(version: str, element: dict[str, Any]) -> dict[str, Any]:
    """A raster group's attributes where spatialdata looks for them in each Zarr format."""
    fmt = RASTER[version]
    if version == "0.5":
        attrs: dict[str, Any] = {"ome": {"version": fmt["ngff"], **element}}
    else:
        attrs = dict(element)
    if "multiscales" in element:
        attrs["spatialdata_attrs"] = {"version": fmt["spatialdata"]}
    return attrs


def _listed_labels(root: Path) -> list[str]:
    doc, _ = _group_attrs(root / "labels")
    return [str(n) for n in (doc or {}).get("labels", [])]


def _tables(root: Path) -> list[str]:
    folder = root / "tables"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and _group_attrs(p)[0] is not None)


def _unusable(label: str, used: set[str], lms: list[dict[str, Any]]) -> str:
    if not _NAME.fullmatch(label) or label in (".", "..") or label.startswith("__"):
        return "its name is not a SpatialData element name"
    if label.casefold() in used:
        return "its name is taken (SpatialData's names are unique, whatever the case)"
    if not lms:
        return "no multiscales"
    axes = "".join(a["name"] for a in lms[0]["axes"])
    if axes not in LABEL_AXES:
        return f"axes {axes!r} (SpatialData labels have {' or '.join(LABEL_AXES)})"
    if not all(_level_path(str(d["path"])) for d in lms[0]["datasets"]):
        return "a level outside its group"
    return ""


def _group_attrs(path: Path) -> tuple[dict[str, Any] | None, int]:
    """A group's NGFF attributes (under ``ome`` in Zarr v3) and its Zarr format."""
    v3 = path / "zarr.json"
    if v3.is_file():
        doc = json.loads(v3.read_text())
        if doc.get("node_type") != "group":
            return None, 3
        attrs = doc.get("attributes", {})
        return attrs.get("ome", attrs), 3
    if (path / ".zgroup").is_file():
        z = path / ".zattrs"
        return (json.loads(z.read_text()) if z.is_file() else {}), 2
    return None, 0


def _shape(array: Path) -> list[int]:
    meta = array / "zarr.json"
    if not meta.is_file():
        meta = array / ".zarray"
    if not meta.is_file():
        raise InputError(str(array), "is not a Zarr array", "the store is incomplete")
    return [int(s) for s in json.loads(meta.read_text())["shape"]]


def _copy(src: Path, dst: Path) -> int:
    """Copy a folder's files as they are; the bytes copied."""
    shutil.copytree(src, dst)
    return sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())


def _set_table_version(table: Path, version: str) -> None:
    """spatialdata's reader needs the table format version on the table group (tables
    written before plexhub set it lack it)."""
    if version == "0.5":
        meta = table / "zarr.json"
        doc = json.loads(meta.read_text())
        doc.setdefault("attributes", {}).setdefault("version", TABLE[version])
    else:
        meta = table / ".zattrs"
        doc = json.loads(meta.read_text()) if meta.is_file() else {}
        doc.setdefault("version", TABLE[version])
    meta.write_text(json.dumps(doc, indent=2))


def _level_path(path: str) -> bool:
    return bool(_NAME.fullmatch(path)) and path not in (".", "..")


def _check_name(name: str, option: str) -> None:
    if not _NAME.fullmatch(name) or name in (".", "..") or name.startswith("__"):
        raise InputError(f"{option} {name}", "is not a SpatialData element name",
                         "use letters, digits, '_', '-' and '.'")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _swap_in(work: Path, dst: Path) -> None:
    """Put ``work`` at ``dst``; an existing ``dst`` is moved aside first and removed after."""
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:12]}"
        os.replace(dst, old)
        os.replace(work, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, dst)
