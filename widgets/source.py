"""One image as the viewers see it: a local OME-Zarr path or an image of the plexhub API.

:func:`open_image` takes a path to an NGFF image (any version 0.1-0.5, or a
``bioformats2raw.layout`` collection, whose ``series`` picks the image), an image id of the
configured API, or a plexhub image URL (``http(s)://…/api/v1/images/<id>``, also the portal's
``…/images/<id>`` pages). API images are read through the API's permission-checked raw zarr
endpoint, so the kernel never needs the store's path.

Metadata is read tolerantly: missing colours get the palette; the default view takes its
windows from the stored histograms (or from the smallest level when a store has none), never
from the ``omero`` block, so a local store opens exactly as the API renders it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt

from plexhub.colors import palette_color
from plexhub.errors import InputError, NotFoundError
from plexhub.model import Channel, PhysicalSize
from plexhub.ome_pipeline import histogram as hist
from plexhub.ome_pipeline.autocontrast import default_view
from plexhub.ome_pipeline.metadata import micrometers_per
from plexhub.ome_pipeline.readers.omezarr import axes_of, ome_attrs, physical_sizes_of
from plexhub.presets import RenderPreset, parse_preset

if TYPE_CHECKING:  # httpx and the settings load only for API images (fresh-kernel time)
    from plexhub.client import ApiClient

Array = npt.NDArray[Any]
_IMAGE_URL = re.compile(r"^(?P<base>https?://.+?)(?:/api/v1)?(?:/portal)?/images/"
                        r"(?P<id>[A-Za-z0-9_\-]+)/?(?:view)?(?:[?#].*)?$")


@dataclass
class ImageSource:
    """An opened NGFF image: metadata plus region reads at any pyramid level."""

    name: str
    axes: str
    dtype: np.dtype[Any]
    channels: list[Channel]
    arrays: list[Any]  # zarr arrays, level 0 first
    physical_sizes: dict[str, PhysicalSize] = field(default_factory=dict)
    omero: dict[str, Any] = field(default_factory=dict)
    is_label: bool = False
    image_id: str | None = None
    client: ApiClient | None = None
    location: str = ""
    _histograms: list[dict[str, Any]] | None = None

    # -- geometry -------------------------------------------------------------------------

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of every level."""
        iy, ix = self.axes.index("y"), self.axes.index("x")
        return [(int(a.shape[iy]), int(a.shape[ix])) for a in self.arrays]

    def size(self, axis: str) -> int:
        return int(self.arrays[0].shape[self.axes.index(axis)]) if axis in self.axes else 1

    def downsample(self, level: int) -> tuple[float, float]:
        """Level-0 pixels per pixel of ``level`` along (y, x)."""
        (h0, w0), (h, w) = self.level_shapes[0], self.level_shapes[level]
        return h0 / h, w0 / w

    def pixel_size_um(self) -> float | None:
        """Level-0 pixel width in micrometres, when the store says."""
        px = self.physical_sizes.get("x")
        if px is None:
            return None
        factor = micrometers_per(px.unit)
        return px.value * factor if factor else None

    # -- pixels ---------------------------------------------------------------------------

    def read(self, level: int, channels: Sequence[int], ys: slice, xs: slice,
             t: int = 0, z: int = 0) -> Array:
        """(len(channels), h, w) raw pixels of a region of ``level`` (clipped to the level)."""
        if not 0 <= level < len(self.arrays):
            raise InputError(f"level {level}", f"not in 0..{len(self.arrays) - 1}")
        h, w = self.level_shapes[level]
        y0, y1 = max(0, ys.start or 0), min(h, ys.stop if ys.stop is not None else h)
        x0, x1 = max(0, xs.start or 0), min(w, xs.stop if xs.stop is not None else w)
        arr = self.arrays[level]
        out = np.zeros((len(channels), max(0, y1 - y0), max(0, x1 - x0)), self.dtype)
        if out.size == 0:
            return out
        pos: dict[str, Any] = {"t": t, "z": z, "y": slice(y0, y1), "x": slice(x0, x1)}
        for i, c in enumerate(channels):
            sel = tuple(c if a == "c" else pos[a] for a in self.axes)
            out[i] = arr[sel]
        return out

    def value_at(self, x: float, y: float, channels: Sequence[int], level: int = 0,
                 t: int = 0, z: int = 0) -> dict[int, float]:
        """Raw values at level-0 coordinates (x, y) read from ``level``; {} outside."""
        h0, w0 = self.level_shapes[0]
        if not (0 <= x < w0 and 0 <= y < h0):
            return {}
        fy, fx = self.downsample(level)
        yi, xi = int(y / fy), int(x / fx)
        px = self.read(level, channels, slice(yi, yi + 1), slice(xi, xi + 1), t, z)
        return {c: float(px[i, 0, 0]) for i, c in enumerate(channels)}

    # -- histograms and presets -----------------------------------------------------------

    def histograms(self) -> list[dict[str, Any]]:
        """Stored per-channel histograms (``histograms.json``), else from the smallest level."""
        if self._histograms is None:
            doc = None
            for name in hist.HISTOGRAMS_FILES:  # the histograms group, or an older store's file
                doc = self._read_json(name)
                doc = hist.histograms_document(name, doc) if name != "histograms.json" else doc
                if doc:
                    break
            items = (doc.get("channels") if isinstance(doc, dict) else doc) if doc else None
            if not items:
                items = self._histograms_from_level()
            self._histograms = [dict(h) for h in items]
        return self._histograms

    def _histograms_from_level(self) -> list[dict[str, Any]]:
        level = len(self.arrays) - 1
        h, w = self.level_shapes[level]
        data = self.read(level, range(self.size("c")), slice(0, h), slice(0, w))
        return [{"index": c} | hist.finalize(hist.PartialHistogram.of(data[c]), self.dtype)
                for c in range(data.shape[0])]

    def default_preset(self) -> RenderPreset:
        """The API's default preset for an API image; for a local store the same default
        the API would compute for it (:func:`~plexhub.ome_pipeline.autocontrast.default_view`:
        windows from the stored histograms, the first four channels on), so a store looks
        the same in the notebook as through the API's tiles."""
        if self.client is not None and self.image_id is not None:
            for summary in self.client.presets(self.image_id):
                if summary.get("is_default"):
                    return parse_preset(self.client.preset(summary["id"])["document"])
        return default_view(self.channels, self.histograms(), self.dtype,
                            name="label" if self.is_label else "default")

    def _read_json(self, name: str) -> Any:
        try:
            if self.client is not None and self.image_id is not None:
                return self.client.get_json(f"/images/{self.image_id}/zarr/{name}",
                                            what=f"{name} of image {self.image_id}")
            path = Path(self.location) / name
            return json.loads(path.read_text()) if path.is_file() else None
        except (NotFoundError, ValueError, OSError):
            return None


def _open_group(store: Any) -> Any:
    import zarr

    try:
        return zarr.open_group(store, mode="r")
    except Exception as exc:  # zarr raises several unrelated types for "not a group"
        raise InputError(str(store), f"is not a readable OME-Zarr group ({exc})",
                         "pass an NGFF image folder (.zarr) or a plexhub image id") from exc


def _from_group(group: Any, location: str, name: str | None = None,
                series: int = 0) -> tuple[Any, dict[str, Any], str]:
    attrs = ome_attrs(group)
    if "bioformats2raw.layout" in attrs:  # a collection: its root multiscales are copies
        try:
            group = group[str(series)]
        except KeyError:
            raise NotFoundError(f"{location}", f"has no series {series}") from None
        location = f"{location}/{series}"
        attrs = ome_attrs(group)
    if not attrs.get("multiscales"):
        raise InputError(location, "has no NGFF multiscales metadata",
                         "is it an OME-Zarr image (or a collection; pick series=)?")
    plexhub_attrs = group.attrs.get("plexhub")
    label = plexhub_attrs.get("label_image") if isinstance(plexhub_attrs, dict) else None
    if isinstance(label, str) and re.fullmatch(r"labels/[A-Za-z0-9_.-]+", label):
        # a store written with --as-labels: the root is a display image of the IDs, the
        # label image itself is labels/<name>
        try:
            group, location = group[label], f"{location}/{label}"
        except KeyError:
            return group, attrs, location
        attrs = ome_attrs(group)
    return group, attrs, location


def _build(group: Any, attrs: dict[str, Any], location: str, name: str | None,
           channels_meta: Sequence[dict[str, Any]] | None = None) -> ImageSource:
    ms = attrs["multiscales"][0]
    arrays = [group[d["path"]] for d in ms["datasets"]]
    axes = axes_of(ms, arrays[0].ndim)
    n_c = int(arrays[0].shape[axes.index("c")]) if "c" in axes else 1  # no c: one channel
    omero: dict[str, Any] = attrs["omero"] if isinstance(attrs.get("omero"), dict) else {}
    stored: list[Any] = omero["channels"] if isinstance(omero.get("channels"), list) else []
    channels = []
    for i in range(n_c):
        meta: dict[str, Any] = dict(channels_meta[i]) if channels_meta and i < len(
            channels_meta) else {}
        entry = stored[i] if i < len(stored) and isinstance(stored[i], dict) else {}
        label = str(meta.get("label") or entry.get("label") or f"Channel {i}")
        color = str(meta.get("color") or entry.get("color") or "").lstrip("#").upper()
        if not re.fullmatch(r"[0-9A-F]{6}", color):
            color = palette_color(i)
        channels.append(Channel(index=i, label=label, color=color,
                                marker=meta.get("marker") or None))
    return ImageSource(name=name or str(ms.get("name") or Path(location).name), axes=axes,
                       dtype=np.dtype(arrays[0].dtype), channels=channels, arrays=arrays,
                       physical_sizes=physical_sizes_of(ms, axes), omero=dict(omero),
                       is_label="image-label" in attrs, location=location)


def open_path(path: str | Path, series: int = 0) -> ImageSource:
    """A local OME-Zarr image (or ``series`` of a collection)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise NotFoundError(str(path), "does not exist", "pass the folder of an OME-Zarr image")
    group, attrs, location = _from_group(_open_group(str(p)), str(p), series=series)
    return _build(group, attrs, location, None)


def open_api_image(client: ApiClient, image_id: str) -> ImageSource:
    """An image of the API, pixels through its raw zarr endpoint (permission-checked)."""
    from zarr.storage import FsspecStore

    meta = client.image(image_id)
    if meta.get("status") != "ready":
        raise InputError(f"image {image_id}", f"is {meta.get('status')}, not ready",
                         "wait for its conversion job to finish")
    store = FsspecStore.from_url(client.zarr_url(image_id), read_only=True,
                                 storage_options={"headers": client.headers})
    group = _open_group(store)
    group, attrs, location = _from_group(group, client.zarr_url(image_id))
    src = _build(group, attrs, location, str(meta.get("name") or image_id),
                 channels_meta=meta.get("channels") or None)
    src.image_id, src.client = image_id, client
    return src


def parse_image_url(url: str) -> tuple[str, str] | None:
    """(API base URL, image id) of a plexhub image URL, or None when ``url`` is not one."""
    m = _IMAGE_URL.match(url.strip())
    return (m.group("base"), m.group("id")) if m else None


def open_image(image: str | Path | ImageSource, client: ApiClient | None = None,
               series: int = 0) -> ImageSource:
    """Open a local OME-Zarr path, a plexhub image URL, or an image id of ``client`` (by
    default the API in ``PLEXHUB_API_URL``)."""
    if isinstance(image, ImageSource):
        return image
    text = str(image)
    parsed = parse_image_url(text) if text.startswith(("http://", "https://")) else None
    if parsed is not None:
        from plexhub.client import ApiClient

        base, image_id = parsed
        if client is None or not parsed[0].startswith(client.base_url):
            env = ApiClient.from_settings()
            client = env if env is not None and base.startswith(env.base_url) \
                else ApiClient(base, client.token if client else None)
        return open_api_image(client, image_id)
    if isinstance(image, Path) or Path(text).expanduser().exists() or "/" in text:
        return open_path(text, series)
    from plexhub.client import ApiClient

    client = client or ApiClient.from_settings()
    if client is None:
        raise InputError(f"image {text!r}", "is neither an existing path nor an API image id "
                         "(no API configured)", "set PLEXHUB_API_URL or pass a path")
    return open_api_image(client, text)


def share_params(url: Any) -> dict[str, Any]:
    """The preset (``<id>@<version>``) and viewport (level-0 x, y; zoom) a share URL's query
    pins; empty for anything that is not such a URL."""
    if not isinstance(url, str) or "?" not in url:
        return {}
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    out: dict[str, Any] = {}
    if q.get("preset"):
        out["preset"] = q["preset"]
    try:
        if {"x", "y", "zoom"} <= set(q):
            out["viewport"] = {"x": float(q["x"]), "y": float(q["y"]),
                               "zoom": float(q["zoom"])}
    except ValueError:
        raise InputError(f"share URL {url!r}", "has a non-numeric x, y or zoom") from None
    return out


def resolve_preset(value: RenderPreset | Mapping[str, Any] | str,
                   client: ApiClient | None) -> tuple[RenderPreset, str]:
    """A preset from a :class:`RenderPreset`, a preset document or an API reference
    (``<id>`` or ``<id>@<version>``), and for a reference the version it resolved to
    (``"<id>@<version>"``; ``""`` otherwise)."""
    if isinstance(value, RenderPreset):
        return value, ""
    if isinstance(value, str):
        if client is None:
            raise InputError(f"preset {value!r}", "names an API preset but no API is "
                             "configured (the image is local)",
                             "pass a RenderPreset or a preset document")
        doc = client.preset(value)
        return parse_preset(doc["document"]), f"{doc['id']}@{doc['version']}"
    return parse_preset(dict(value)), ""
