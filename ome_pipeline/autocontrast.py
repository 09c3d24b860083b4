"""Automatic windows from the stored per-channel histograms (no pixel reads).

``auto_window`` looks up two percentiles (or the min and max) of one stored histogram;
``default_preset`` does that for every channel and records how in the preset's provenance.
``default_view`` is the view of an image when no preset is chosen, the same on every path
(the API's default preset and tiles, the notebook viewer, the napari plugin).
A window must have ``end > start``: when both percentiles land in the same histogram bin
(sparse markers whose pixels are mostly background) the channel's maximum is used as the
end instead, and a constant channel gets a window one raw unit wide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline.histogram import percentile
from plexhub.presets import ChannelRender, Domain, Provenance, RenderPreset, Window

Method = Literal["percentile", "minmax"]
Histograms = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def auto_window(stored: Mapping[str, Any], method: Method = "percentile",
                lower: float = 0.1, upper: float = 99.9) -> tuple[float, float]:
    """(start, end) for one stored histogram (``histogram.finalize`` output)."""
    if method not in ("percentile", "minmax"):
        raise InputError(repr(method), "not an auto-window method", "use percentile or minmax")
    if not 0.0 <= lower < upper <= 100.0:
        raise InputError(f"percentiles {lower}, {upper}", "not 0 <= lower < upper <= 100",
                         "for example lower=0.1, upper=99.9")
    if not stored.get("count") or stored.get("min") is None:
        return 0.0, 1.0
    vmin, vmax = float(stored["min"]), float(stored["max"])
    if method == "minmax":
        start, end = vmin, vmax
    else:
        start, end = percentile(dict(stored), lower), percentile(dict(stored), upper)
    if end <= start or _same_bin(stored, start, end):
        end = vmax
    if end <= start:
        end = start + 1.0
    return start, end


def _same_bin(stored: Mapping[str, Any], a: float, b: float) -> bool:
    """True when a and b fall in one stored bin: the percentiles did not resolve the data."""
    edges = np.asarray(stored.get("edges") or [], np.float64)
    if edges.size < 2:
        return False
    ia, ib = np.searchsorted(edges, [a, b], side="right") - 1
    return bool(ia == ib)


def _by_index(histograms: Histograms) -> dict[int, Mapping[str, Any]]:
    items = histograms.get("channels", []) if isinstance(histograms, Mapping) else histograms
    return {int(h["index"]) if "index" in h else i: h for i, h in enumerate(items)}


def _domain(dtype: np.dtype[Any], start: float, end: float,
            stored: Mapping[str, Any] | None) -> Domain:
    if dtype.kind == "b":
        return Domain(min=0.0, max=1.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return Domain(min=float(info.min), max=float(info.max))
    lo, hi = start, end
    if stored and stored.get("min") is not None:
        lo, hi = min(lo, float(stored["min"])), max(hi, float(stored["max"]))
    return Domain(min=lo, max=hi)


def default_preset(image_channels: Sequence[Channel], histograms: Histograms,
                   dtype: npt.DTypeLike, *, method: Method = "percentile",
                   lower: float = 0.1, upper: float = 99.9, max_active: int | None = 4,
                   level: int = 0, name: str = "auto") -> RenderPreset:
    """A preset for an image from its stored histograms (``histograms.json`` or its list).

    Each channel keeps the image's colour, label and marker; the first ``max_active``
    channels are active (None: all). ``window.min/max`` is the channel's data range and
    ``domain`` the dtype's range (floats: the data range). A channel without a histogram
    gets a window over its dtype range (0-1 for floats).
    """
    dt = np.dtype(dtype)
    hists = _by_index(histograms)
    rgb = isinstance(histograms, Mapping) and histograms.get("photometric") == "RGB" \
        and dt == np.uint8  # brightfield colour: true colour, not three stretched channels
    entries = []
    pixels = 0
    for pos, ch in enumerate(image_channels):
        stored = hists.get(ch.index)
        if stored is not None and stored.get("count"):
            start, end = auto_window(stored, method, lower, upper)
            pixels = max(pixels, int(stored["count"]))
            data_min, data_max = float(stored["min"]), float(stored["max"])
            if rgb:
                start, end = 0.0, 255.0
            window = Window(start=start, end=end, min=data_min, max=data_max)
        else:
            stored = None
            start, end = (0.0, float(np.iinfo(dt).max) if dt.kind in "iu" else 1.0)
            window = Window(start=start, end=end)
        entries.append(ChannelRender(
            index=ch.index, label=ch.label or None, marker=ch.marker or None,
            active=(max_active is None or pos < max_active) and not (rgb and pos == 3),
            color=ch.color, window=window,
            domain=_domain(dt, start, end, stored)))
    provenance = Provenance(
        method=method, lower=lower if method == "percentile" else None,
        upper=upper if method == "percentile" else None, level=level, pixels=pixels,
        source=f"histogram of level {level}, {pixels} pixels")
    return RenderPreset(name=name, channels=entries, provenance=provenance)


DEFAULT_ACTIVE = 4  # channels on in the default view: more than four additive colours wash out


def default_view(image_channels: Sequence[Channel], histograms: Histograms,
                 dtype: npt.DTypeLike, *, name: str = "default") -> RenderPreset:
    """The one default for an image with no preset chosen: 0.1-99.9 % windows from the
    stored histograms, the image's colours, the first :data:`DEFAULT_ACTIVE` channels on.
    The API saves it as an image's default preset and renders it when a request names
    none; the notebook viewer and the napari plugin open a local store with it, so the same
    store looks the same everywhere."""
    return default_preset(image_channels, histograms, dtype, max_active=DEFAULT_ACTIVE,
                          name=name)
