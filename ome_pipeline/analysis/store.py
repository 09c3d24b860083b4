"""Reading an image out of an OME-Zarr store, and putting analysis results back into it.

Results are NGFF label images (``labels/cells``, ``labels/nuclei``: a pyramid of 2x2 modes,
``image-label`` metadata, in the store's own NGFF version, 0.4 or 0.5) and an AnnData table
at ``tables/cells`` (SpatialData's table layout: ``uns/spatialdata_attrs`` names the label
image it annotates). Everything is written into a hidden folder of the store first and moved
into place at the end, so a rerun replaces the previous results as a whole or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plexhub.errors import InputError, MissingFileError
from plexhub.ome_pipeline.chunkio import OutputStore, is_remote
from plexhub.ome_pipeline.metadata import micrometers_per
from plexhub.ome_pipeline.ngff import multiscales_json, wrap, write_group
from plexhub.ome_pipeline.pyramid import downsample_mode, level_shapes

TMP_PREFIX = ".plexhub-analysis-"
OWNED_LABELS = ("cells", "nuclei")  # label images a run writes (or removes, if it has none)
LABEL_CHUNK = 512


@dataclass(frozen=True)
class StoredImage:
    """What the analysis needs to know about the store's image."""

    root: Path
    version: str  # NGFF "0.4" | "0.5"
    axes: str  # e.g. "cyx"
    shape: tuple[int, ...]
    channels: list[str]
    pixel_size_um: float | None

    @property
    def zarr_format(self) -> int:
        return 3 if self.version == "0.5" else 2

    @property
    def height(self) -> int:
        return self.shape[self.axes.index("y")]

    @property
    def width(self) -> int:
        return self.shape[self.axes.index("x")]

    def level0(self) -> Any:
        import zarr

        return zarr.open_array(str(self.root / "0"), mode="r")

    def plane(self, arr: Any, c: int, ys: slice, xs: slice) -> Any:
        where = {"t": 0, "z": 0, "c": c, "y": ys, "x": xs}
        return arr[tuple(where[a] for a in self.axes)]

    def channel_index(self, name: str, option: str) -> int:
        if name in self.channels:
            return self.channels.index(name)
        folded = [c.casefold() for c in self.channels]
        if folded.count(name.casefold()) == 1:
            return folded.index(name.casefold())
        raise InputError(f"{option} {name}", f"is not a channel of {self.root}",
                         f"the channels are: {', '.join(self.channels)}")


def open_stored_image(path: str | os.PathLike[str]) -> StoredImage:
    """The image at the root of a local OME-Zarr store (as ``plexhub convert`` writes)."""
    text = os.fspath(path)
    if is_remote(text):
        raise InputError(text, "is a remote store; analysis writes results in place and "
                         "needs a local one for now", "analyse a local copy")
    root = Path(text)
    if not root.exists():
        raise MissingFileError(text, "does not exist", "give the path of an OME-Zarr store")
    attrs, version = _root_attrs(root)
    if attrs is None or not attrs.get("multiscales"):
        hint = ("this is a collection; analyse one of its series, e.g. "
                f"{text.rstrip('/')}/0") if attrs and "bioformats2raw.layout" in attrs \
            else "convert the image first: plexhub convert SRC STORE"
        raise InputError(text, "is not an OME-Zarr image (no multiscales at its root)", hint)
    ms = attrs["multiscales"][0]
    axes = "".join(a["name"] for a in ms["axes"])
    if not set("cyx") <= set(axes):
        raise InputError(text, f"has axes {axes!r}; analysis needs channels, y and x",
                         "convert it with plexhub convert")
    arr = _open_level(root, ms["datasets"][0]["path"])
    shape = tuple(int(s) for s in arr.shape)
    for a in "tz":
        if a in axes and shape[axes.index(a)] != 1:
            raise InputError(text, f"has {shape[axes.index(a)]} {a} planes; analysis "
                             "handles a single 2-D plane per channel for now",
                             "convert one plane of the source")
    nch = shape[axes.index("c")]
    omero = attrs.get("omero") or {}
    names = [str(ch.get("label", i)) for i, ch in enumerate(omero.get("channels", []))]
    if len(names) != nch:
        names = [str(i) for i in range(nch)]
    size = None
    scale = next((t["scale"] for t in ms["datasets"][0].get("coordinateTransformations", [])
                  if t.get("type") == "scale"), None)
    unit = ms["axes"][axes.index("x")].get("unit")
    factor = micrometers_per(unit)
    if scale is not None and factor is not None:
        size = float(scale[axes.index("x")]) * factor
    if ms["datasets"][0]["path"] != "0":
        raise InputError(text, "level 0 is not at path '0'", "convert it with plexhub convert")
    return StoredImage(root=root, version=version, axes=axes, shape=shape, channels=names,
                       pixel_size_um=size)


def _root_attrs(root: Path) -> tuple[dict[str, Any] | None, str]:
    v3 = root / "zarr.json"
    if v3.is_file():
        doc = json.loads(v3.read_text())
        attrs = doc.get("attributes", {})
        ome = attrs.get("ome")
        if isinstance(ome, dict):
            return ome, str(ome.get("version", "0.5"))
        return attrs, "0.5"
    v2 = root / ".zattrs"
    if v2.is_file():
        attrs = json.loads(v2.read_text())
        ms = attrs.get("multiscales") or [{}]
        return attrs, str(ms[0].get("version", "0.4"))
    return None, ""


def _open_level(root: Path, path: str) -> Any:
    import zarr

    return zarr.open_array(str(root / path), mode="r")


# -- writing ---------------------------------------------------------------------------------

class ResultWriter:
    """Collects one run's results in a hidden folder of the store; :meth:`commit` moves
    them into place, :meth:`discard` (or an exception in ``with``) drops them."""

    def __init__(self, image: StoredImage) -> None:
        self.image = image
        self.tmp = image.root / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}"
        self.tmp.mkdir()
        self.labels: list[str] = []
        self.has_table = False

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scratch(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...],
                dtype: Any) -> Any:
        import zarr

        return zarr.create_array(store=str(self.tmp / "scratch" / name), shape=shape,
                                 chunks=chunks, dtype=dtype, zarr_format=3, fill_value=0)

    def label_levels(self, name: str) -> list[Any]:
        """Create the arrays of label image ``name`` (level 0 first), to be filled."""
        import zarr

        im = self.image
        label_axes = im.axes.replace("c", "")
        levels = level_shapes(im.height, im.width)
        out = []
        for k, (h, w) in enumerate(levels):
            shape = tuple(h if a == "y" else w if a == "x" else 1 for a in label_axes)
            chunks = tuple(LABEL_CHUNK if a in "yx" else 1 for a in label_axes)
            kwargs: dict[str, Any] = {}
            if im.zarr_format == 3:
                kwargs["dimension_names"] = list(label_axes)
            else:
                kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
            out.append(zarr.create_array(store=str(self.tmp / name / str(k)), shape=shape,
                                         chunks=chunks, dtype=np.uint32,
                                         zarr_format=3 if im.zarr_format == 3 else 2,
                                         fill_value=0,
                                         **kwargs))
        from plexhub.model import PhysicalSize

        sizes = {"y": PhysicalSize(im.pixel_size_um), "x": PhysicalSize(im.pixel_size_um)} \
            if im.pixel_size_um else {}
        ms = multiscales_json(name, label_axes, len(levels), sizes, im.version, "mode")
        meta: dict[str, Any] = {"source": {"image": "../../"}}
        if im.version == "0.4":
            meta["version"] = "0.4"
        store = OutputStore(str(self.tmp / name), direct=False)
        write_group(store, "", wrap(im.version, {"multiscales": [ms], "image-label": meta}),
                    im.version)
        self.labels.append(name)
        return out

    def write_table(self, adata: Any) -> None:
        import warnings

        import anndata

        with anndata.settings.override(zarr_write_format=self.image.zarr_format), \
                warnings.catch_warnings():
            # anndata leaves zarr's chunking defaults alone; zarr 3.1 announces a change
            warnings.filterwarnings("ignore", "zarr v3 autosharding", UserWarning)
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            warnings.filterwarnings("ignore", "Writing zarr v2 data", UserWarning)
            adata.write_zarr(str(self.tmp / "table"))
        import zarr

        # SpatialData's table format version (0.1 on Zarr v2, 0.2 on v3): spatialdata's
        # reader refuses a table without it
        group = zarr.open_group(str(self.tmp / "table"), mode="r+")
        group.attrs["version"] = "0.2" if self.image.zarr_format == 3 else "0.1"
        self.has_table = True

    def commit(self) -> None:
        """Move every result into place (each an old-aside, new-in, old-gone swap) and list
        the label images in ``labels/``."""
        im = self.image
        store = OutputStore(str(im.root), direct=False)
        moves = [(self.tmp / name, im.root / "labels" / name) for name in self.labels]
        if self.has_table:
            moves.append((self.tmp / "table", im.root / "tables" / "cells"))
            if not _is_group(im.root / "tables"):
                write_group(store, "tables", {}, im.version)
        stale = [n for n in OWNED_LABELS if n not in self.labels]
        if self.labels:
            _add_labels(store, im, self.labels, stale)
        old = self.tmp / "old"
        old.mkdir()
        for i, (src, dst) in enumerate(moves):
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                os.replace(dst, old / str(i))
            os.replace(src, dst)
        for name in stale:  # e.g. nuclei of an earlier run that had cells larger than nuclei
            if (im.root / "labels" / name).exists():
                os.replace(im.root / "labels" / name, old / f"stale-{name}")
        self.discard()


def _is_group(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def _add_labels(store: OutputStore, im: StoredImage, names: list[str],
                drop: list[str]) -> None:
    key = "labels/zarr.json" if im.version == "0.5" else "labels/.zattrs"
    doc = store.get_json(key) or {}
    attrs = doc.get("attributes", {}) if im.version == "0.5" else doc
    inner = attrs.get("ome", attrs) if im.version == "0.5" else attrs
    listed = [str(n) for n in inner.get("labels", []) if n not in drop]
    listed += [n for n in names if n not in listed]
    write_group(store, "labels", wrap(im.version, {"labels": listed}), im.version)


def build_pyramid(levels: list[Any], block: int = 4 * LABEL_CHUNK) -> None:
    """Fill levels 1.. of a label pyramid from level 0 by 2x2 modes, block by block."""
    from plexhub.ome_pipeline.analysis._lazy import module

    da = module("dask.array")

    for k in range(1, len(levels)):
        src = da.from_zarr(levels[k - 1])
        even = tuple(min(2 * block, s) if s > 1 else 1 for s in src.shape)
        src = src.rechunk(even)
        out_chunks = tuple(tuple((c + 1) // 2 for c in cs) if len(cs) and src.shape[i] > 1
                           else cs for i, cs in enumerate(src.chunks))
        small = src.map_blocks(_mode_last2, chunks=out_chunks, dtype=src.dtype)
        da.store(small, levels[k], lock=False)


def _mode_last2(block: Any) -> Any:
    return downsample_mode(block)
