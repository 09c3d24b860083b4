"""Existing OME-Zarr stores of any NGFF version (0.1-0.5), bioformats2raw collections and
SpatialData stores; the output is written at the version asked for (an upgrade or a
downgrade), with a freshly computed pyramid.

A store is read only when no symlink in it leads outside it (checked when it is opened), and
its pixels are read through a store that refuses such a link if one appears later."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plexhub.colors import parse_color
from plexhub.errors import CorruptFileError, InputError, PermissionDeniedError
from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.confine import check_tree
from plexhub.ome_pipeline.metadata import udunits
from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.source import Array, ChannelMeta, PixelSource, SourceDocument, SourceImage
from plexhub.storage import (
    StorageOptions,
    StoreLocation,
    filesystem,
    is_url,
    storage_options,
    zarr_target,
)

_KNOWN_UNITS = {"micrometer", "nanometer", "millimeter", "centimeter", "meter", "angstrom",
                "picometer", "second", "millisecond", "minute", "hour", "microsecond",
                "nanosecond"}


class ZarrPixels(PixelSource):
    """Region reads from one Zarr array whose axes are a subset of t, c, z, y, x; with
    ``root`` (a folder holding ``url``), only from files that resolve inside ``root``."""

    def __init__(self, url: str, axes: str, root: str | None = None,
                 options: StorageOptions | None = None) -> None:
        self.url = url
        self.axes = axes
        self.root = root
        # a URL: the options (endpoint, credentials) of the process that opened it, handed
        # to Dask workers with the pixels
        self.options = options if options is not None or not is_url(url) else \
            storage_options(url, credentials=True)
        self._array: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "axes": self.axes, "root": self.root, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["axes"], state.get("root"),  # type: ignore[misc]
                      state.get("options"))

    def _open(self) -> Any:
        with self._lock:
            if self._array is None:
                import zarr

                if self.options is not None:
                    self._array = zarr.open_array(StoreLocation(self.url, self.options)
                                                  .zarr_store(), mode="r")
                elif self.root is None:
                    self._array = zarr.open_array(self.url, mode="r")
                else:
                    from plexhub.ome_pipeline.zarr_confined import ConfinedStore

                    key = Path(self.url).relative_to(self.root).as_posix()
                    self._array = zarr.open_array(ConfinedStore(self.root), mode="r",
                                                  path="" if key == "." else key)
            return self._array

    def check(self) -> None:
        arr = self._open()
        sel = tuple(slice(0, min(n, 16)) for n in arr.shape)
        try:
            arr[sel]
        except PermissionDeniedError:
            raise  # a link out of the store: not a damaged file
        except Exception as exc:
            raise CorruptFileError(self.url, f"its first chunk cannot be read ({exc})") from exc

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        arr = self._open()
        pos = {"t": t, "z": z, "y": ys, "x": xs}
        out = np.empty((len(channels), ys.stop - ys.start, xs.stop - xs.start), arr.dtype)
        for i, c in enumerate(channels):
            # basic indexing per channel: zarr's orthogonal (list) selection over-allocates
            sel = tuple(c if a == "c" else pos[a] for a in self.axes)
            try:
                out[i] = arr[sel]
            except PermissionDeniedError:
                raise
            except Exception as exc:
                raise CorruptFileError(self.url, f"chunks cannot be read ({exc})") from exc
        return out


def ome_attrs(group: Any) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return dict(attrs["ome"]) if "ome" in attrs else attrs


def axes_of(ms: dict[str, Any], ndim: int) -> str:
    axes = ms.get("axes")
    if axes is None:  # NGFF 0.1 / 0.2: always 5-D t, c, z, y, x
        return "tczyx"[-ndim:]
    names = "".join((a["name"] if isinstance(a, dict) else str(a)).lower() for a in axes)
    if len(names) != ndim or set(names) - set("tczyx") or len(set(names)) != ndim:
        raise InputError(str(ms.get("name", "")), f"has axes {names!r} for {ndim} dimensions",
                         "only t, c, z, y, x axes are supported")
    return names


def physical_sizes_of(ms: dict[str, Any], axes: str) -> dict[str, PhysicalSize]:
    scale = [1.0] * len(axes)
    datasets = ms.get("datasets") or [{}]
    for source in (datasets[0].get("coordinateTransformations", []),
                   ms.get("coordinateTransformations", [])):
        for tr in source:
            if tr.get("type") == "scale" and len(tr.get("scale", [])) == len(axes):
                scale = [a * b for a, b in zip(scale, tr["scale"], strict=True)]
    units = {}
    for a in ms.get("axes", []):
        if isinstance(a, dict) and a.get("unit"):
            units[a["name"].lower()] = udunits(a["unit"], "")
    out = {}
    for a, v in zip(axes, scale, strict=True):
        if a != "c" and units.get(a) in _KNOWN_UNITS:
            out[a] = PhysicalSize(float(v), units[a])
    return out


def open_group(url: str) -> Any:
    import zarr

    return zarr.open_group(zarr_target(url), mode="r")


def open_ngff_image(url: str, name: str | None = None) -> SourceImage:
    """The full-resolution level of the NGFF image group at ``url``."""
    import zarr

    group = open_group(url)
    attrs = ome_attrs(group)
    ms = (attrs.get("multiscales") or [None])[0]
    if not ms or not ms.get("datasets"):
        raise InputError(url, "has no NGFF multiscales metadata", "is it an OME-Zarr image?")
    level0 = f"{url}/{ms['datasets'][0]['path']}"
    try:
        arr = zarr.open_array(zarr_target(level0), mode="r")
    except Exception as exc:
        raise CorruptFileError(level0, f"its array metadata cannot be read ({exc})") from exc
    axes = axes_of(ms, arr.ndim)
    size = dict.fromkeys("tczyx", 1) | dict(zip(axes, arr.shape, strict=True))
    is_label = "image-label" in attrs
    channels = [ChannelMeta(label=f"Channel {i}") for i in range(size["c"])]
    omero = attrs.get("omero") or {}
    for meta, ch in zip(channels, omero.get("channels", []), strict=False):
        if ch.get("label") is not None:
            meta.label = str(ch["label"])
        if ch.get("color"):
            try:
                meta.color = parse_color(str(ch["color"]))
            except InputError:
                meta.color = None
    image = SourceImage(
        name=name or str(ms.get("name") or url.rstrip("/").rsplit("/", 1)[-1]),
        dtype=arr.dtype,
        shape=(size["t"], size["c"], size["z"], size["y"], size["x"]),
        pixels=ZarrPixels(level0, axes), channels=channels,
        physical_sizes=physical_sizes_of(ms, axes), is_label=is_label,
        keep_axes="".join(a for a in "tz" if a in axes))
    return image


def _remote_xml(url: str) -> str | None:
    """The store's ``OME/METADATA.ome.xml`` (None when it has none)."""
    fs, inner = filesystem(url)
    try:
        return bytes(fs.cat_file(f"{inner}/OME/METADATA.ome.xml")).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _layout1(p: Path) -> bool:
    """A bioformats2raw layout-1 folder (its first releases): ``data.zarr/`` holding the
    series, ``METADATA.ome.xml`` beside it, no Zarr metadata of its own."""
    return (p / "data.zarr").is_dir() and (p / "METADATA.ome.xml").is_file() and \
        not any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zattrs"))


class OmeZarrReader(Reader):
    """OME-Zarr of NGFF 0.1-0.5, bioformats2raw layouts and SpatialData stores."""

    name = "ome-zarr"
    description = "OME-Zarr (NGFF 0.1-0.5), bioformats2raw collections, SpatialData"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        p = Path(path)
        return p.is_dir() and (any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zattrs"))
                               or _layout1(p))

    def open(self, path: str) -> SourceDocument:
        remote = is_url(path)
        path = path.rstrip("/") if remote else path
        top = path
        if not remote and _layout1(Path(path)):  # bioformats2raw layout 1: data.zarr + XML
            path = str(Path(path) / "data.zarr")
        if not remote:
            check_tree(top)  # before any read: a link out of the store would be converted
        try:
            root = open_group(path)
        except Exception as exc:
            raise CorruptFileError(path, f"is not a readable Zarr group ({exc})") from exc
        attrs = ome_attrs(root)
        ome_xml = _remote_xml(path) if remote else None
        xml_path = Path(path) / "OME" / "METADATA.ome.xml"
        if not remote and not xml_path.exists() and Path(path).name == "data.zarr":
            xml_path = Path(path).parent / "METADATA.ome.xml"
        if not remote and xml_path.exists() and (xml_path.parent.name == "OME"
                                                 or not xml_path.is_symlink()):
            ome_xml = xml_path.read_text(encoding="utf-8", errors="replace")
        images: list[SourceImage] = []
        # a collection first: its root may also carry the series' multiscales (plexhub
        # writes them there for readers without bioformats2raw support)
        if "bioformats2raw.layout" in attrs or ("multiscales" not in attrs
                                                and self._numbered(root)):
            series = self._series(root, path)
            for key in series:
                image = open_ngff_image(f"{path}/{key}", name=None)
                image.labels = self._labels(root[key], f"{path}/{key}", image)
                images.append(image)
            self._names_from_xml(images, ome_xml)
        elif "multiscales" in attrs:
            images.append(open_ngff_image(path))
            images[0].labels = self._labels(root, path, images[0])
            self._names_from_xml(images, ome_xml)
        elif "images" in root:  # SpatialData
            images += [open_ngff_image(f"{path}/images/{key}", name=key)
                       for key in sorted(open_group(f"{path}/images").group_keys())]
            if "labels" in root:
                for key in sorted(open_group(f"{path}/labels").group_keys()):
                    label = open_ngff_image(f"{path}/labels/{key}", name=key)
                    label.is_label = True
                    target = next((im for im in images if im.shape[3:] == label.shape[3:]),
                                  None)
                    if target is not None:
                        target.labels[key] = label
        if not images:
            raise InputError(path, "holds no NGFF image", "expected multiscales metadata, a "
                             "bioformats2raw layout or a SpatialData images/ group")
        for image in images:
            for pixels in (image.pixels, *(label.pixels for label in image.labels.values())):
                if isinstance(pixels, ZarrPixels) and not remote:
                    pixels.root = path  # later reads stay inside the store, too
            image.pixels.check()
        return SourceDocument(path=top, format=self.name, images=images, ome_xml=ome_xml)

    @staticmethod
    def _numbered(root: Any) -> bool:
        return "0" in root and "multiscales" in ome_attrs(root["0"])

    @staticmethod
    def _series(root: Any, path: str) -> list[str]:
        if "OME" in root:
            series = ome_attrs(root["OME"]).get("series")
            if series:
                return [str(s) for s in series]
        keys = sorted((k for k in root.group_keys() if k.isdigit()), key=int)
        if not keys:
            raise InputError(path, "declares a bioformats2raw layout but holds no series")
        return keys

    @staticmethod
    def _labels(group: Any, url: str, image: SourceImage) -> dict[str, SourceImage]:
        if "labels" not in group:
            return {}
        out = {}
        for key in ome_attrs(group["labels"]).get("labels", []):
            label = open_ngff_image(f"{url}/labels/{key}", name=key)
            label.is_label = True
            if label.shape[3:] == image.shape[3:]:
                out[key] = label
        return out

    @staticmethod
    def _names_from_xml(images: list[SourceImage], xml: str | None) -> None:
        if not xml:
            return
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            return
        elements = [el for el in root.iter() if el.tag.endswith("}Image") or el.tag == "Image"]
        for image, el in zip(images, elements, strict=False):
            if el.get("Name"):
                image.name = str(el.get("Name"))
            pixels = next((p for p in el if p.tag.endswith("Pixels")), None)
            if pixels is None:
                continue
            names = [c.get("Name") for c in pixels if c.tag.endswith("Channel")]
            if len(names) == len(image.channels):  # where the NGFF metadata has none
                for meta, name in zip(image.channels, names, strict=True):
                    if name and meta.label == f"Channel {image.channels.index(meta)}":
                        meta.label = name
            for axis in "xyz":
                value = pixels.get(f"PhysicalSize{axis.upper()}")
                if axis not in image.physical_sizes and value:
                    try:
                        size = float(value)
                    except ValueError:
                        continue
                    if size > 0:
                        image.physical_sizes[axis] = PhysicalSize(
                            size, udunits(pixels.get(f"PhysicalSize{axis.upper()}Unit")
                                          or "µm"))
