"""Render presets <-> napari layer settings, for the plexhub napari plugin.

Pure functions on plain data (and on duck-typed layers): nothing here imports napari or Qt
at module import time, so the mapping is testable without either.

napari draws an ``Image`` layer with the same steps as ``plexhub.ome_pipeline.render``:
``clip((x - lo) / (hi - lo), 0, 1) ** gamma`` (vispy's shader, the convention plexhub's
renderer follows), then the colormap, then additive blending over a black canvas. So
``window`` -> ``contrast_limits``, ``gamma`` -> ``gamma`` map one to one. ``inverted`` is
``1 - v`` *after* gamma, which is a reversed colormap: colour -> black instead of black ->
colour (named ``plexhub:inverted:<base>`` so saving reads it back as ``inverted``).
Not expressible in napari (kept from the preset a layer was opened with when saved again):
``family``/``coefficient`` (plexhub renders them linearly too), ``group``, the greyscale
model (layers keep their colours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from plexhub.colors import hex_to_rgb
from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline.preset_formats import from_napari, to_napari
from plexhub.presets import (
    LUT_NAMES,
    BoundPreset,
    ChannelRender,
    RenderPreset,
    bind,
    parse_preset,
)

#: Key of the plexhub block in ``layer.metadata``.
META = "plexhub"
INVERTED_PREFIX = "plexhub:inverted:"

Doc = dict[str, Any]


# --- preset -> layer settings ---------------------------------------------------------

#: vispy draws a stepped ("zero") colormap through a 1024-texel LUT texture sampled nearest.
_VISPY_LUT_LEN = 1024


def stepped_controls(n: int = 256, texels: int = _VISPY_LUT_LEN) -> list[float]:
    """Controls for an ``n``-entry stepped colormap so vispy's LUT texture picks entry
    ``floor(v * (n - 1) + 0.5)`` (plexhub's LUT index) at each texel's centre.

    vispy fills texel ``i`` with the colour at ``i / (texels - 1)`` but the shader samples
    texel ``floor(t * texels)``; the plain controls ``(k + 0.5) / (n - 1)`` then pick one
    entry too low for about a quarter of each step. Inside the texel holding a step edge the
    index can still be one off (the texture's resolution: 1/4 of a step).
    """
    centre = (np.arange(texels) + 0.5) / texels
    want = np.floor(centre * (n - 1) + 0.5).astype(int)
    controls = [0.0]
    for k in range(1, n):
        first = int(np.argmax(want >= k))  # first texel that should show entry k
        controls.append((first - 0.5) / (texels - 1))
    return [*controls, 1.0]


def _ramp(name: str, rgb: list[float], inverted: bool,
          texels: int = _VISPY_LUT_LEN) -> Doc:
    """A linear black -> ``rgb`` colormap (reversed when ``inverted``), its two end colours
    pulled in by half a texel: vispy fills texel ``i`` with the colour at ``i / (texels - 1)``
    but samples it at ``(i + 0.5) / texels``, which otherwise darkens low values and
    brightens high ones by up to half a texel (enough to cross an 8-bit rounding edge)."""
    lo, hi = 0.5 / texels, (texels - 0.5) / texels
    ends = [1.0 - lo, 1.0 - hi] if inverted else [lo, hi]
    return {"name": name, "colors": [[e * c for c in rgb] + [1.0] for e in ends],
            "controls": [0.0, 1.0]}


def colormap_for(ch: ChannelRender) -> str | Doc:
    """The napari colormap for one preset entry (see :func:`to_napari`): a colour or the
    gray LUT as a linear ramp, other LUTs as stepped maps of their 256 entries; reversed
    when the entry is ``inverted``. Named ``plexhub:...`` so saving reads them back."""
    prefix = INVERTED_PREFIX if ch.inverted else "plexhub:"
    if ch.color is not None:
        return _ramp(f"{prefix}#{ch.color.lower()}",
                     [c / 255.0 for c in hex_to_rgb(ch.color)], ch.inverted)
    if ch.lut == "gray":
        return _ramp(f"{prefix}gray", [1.0, 1.0, 1.0], ch.inverted)
    base = to_napari(parse_preset({"channels": [ch.model_dump(mode="json")]}))[0]["colormap"]
    colors = list(base["colors"])
    return dict(base) | {"name": f"{prefix}{ch.lut}", "controls": stepped_controls(),
                         "colors": colors[::-1] if ch.inverted else colors}


def dtype_range(dtype: Any) -> tuple[float, float] | None:
    """The full value range of an integer dtype (None for floats)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    if dt.kind == "b":
        return 0.0, 1.0
    return None


def _slider_range(ch: ChannelRender, dtype: Any) -> list[float]:
    """``contrast_limits_range``: the domain (else window min/max, else the dtype's range),
    widened to hold the window (napari clamps the limits into the range)."""
    if ch.domain is not None:
        lo, hi = ch.domain.min, ch.domain.max
    elif ch.window.min is not None and ch.window.max is not None:
        lo, hi = ch.window.min, ch.window.max
    else:
        lo, hi = dtype_range(dtype) or (ch.window.start, ch.window.end)
    lo, hi = min(lo, ch.window.start), max(hi, ch.window.end)
    return [float(lo), float(hi)]


def channel_settings(ch: ChannelRender, dtype: Any) -> Doc:
    """napari ``Image`` settings for one preset entry (no name, no data)."""
    return {"colormap": colormap_for(ch),
            "contrast_limits": [float(ch.window.start), float(ch.window.end)],
            "contrast_limits_range": _slider_range(ch, dtype),
            "gamma": float(ch.gamma), "visible": bool(ch.active), "blending": "additive",
            "opacity": 1.0}


def layer_kwargs(preset: RenderPreset, channels: Sequence[Channel], dtype: Any,
                 fallback: RenderPreset | None = None) -> list[Doc]:
    """One dict of ``Image`` layer keyword arguments per image channel, in image order.

    ``preset`` is bound to ``channels`` (by marker, label or index); channels it does not
    cover take ``fallback``'s entry (the image default) and are hidden, since plexhub's
    renderer does not draw them either. ``metadata['plexhub']`` records the channel and the
    entry so :func:`preset_from_layers` can write the preset back.
    """
    bound = bind(preset, channels)
    spare: BoundPreset | None = bind(fallback, channels) if fallback is not None else None
    out = []
    for pos, (bc, ch) in enumerate(zip(bound.channels, channels, strict=True)):
        render = bc.render
        hidden = False
        if render is None:
            render = spare.channels[pos].render if spare is not None else None
            hidden = True
        if render is None:  # nothing at all: grey, the dtype's range, hidden
            lo, hi = dtype_range(dtype) or (0.0, 1.0)
            render = ChannelRender(index=ch.index, color=ch.color,
                                   window={"start": lo, "end": hi})  # type: ignore[arg-type]
        kw = channel_settings(render, dtype)
        if hidden:
            kw["visible"] = False
        kw["name"] = ch.label
        # napari's add_image takes no contrast_limits_range: it travels in the metadata and
        # restore_ranges() (the dock widget does it on insert) sets it on the layer
        kw["metadata"] = {META: {"index": ch.index, "label": ch.label, "marker": ch.marker,
                                 "color": ch.color,
                                 "contrast_limits_range": kw.pop("contrast_limits_range"),
                                 "render": render.model_dump(mode="json", exclude_none=True),
                                 "preset": preset.name}}
        out.append(kw)
    return out


# --- layers -> preset -----------------------------------------------------------------

def _colormap_entry(cmap: Any) -> Doc:
    """{'color': ...} or {'lut': ...} plus 'inverted' from a napari colormap (object, dict
    or name)."""
    if isinstance(cmap, Mapping):
        name = str(cmap.get("name", ""))
        colors = cmap.get("colors")
    elif isinstance(cmap, str):
        name, colors = cmap, None
    else:
        name = str(getattr(cmap, "name", ""))
        raw = getattr(cmap, "colors", None)
        colors = np.asarray(raw).tolist() if raw is not None else None
    if name.startswith("plexhub:"):  # ours: the name says it all
        inverted = name.startswith(INVERTED_PREFIX)
        base = name.removeprefix(INVERTED_PREFIX if inverted else "plexhub:")
        return {"inverted": inverted} | (
            {"lut": base} if base in LUT_NAMES else {"color": base.lstrip("#").upper()})
    probe = {"name": name, "colors": colors} if colors is not None else name
    try:
        layer = from_napari([{"contrast_limits": [0, 1], "colormap": probe}])
    except InputError:
        if not colors:
            raise
        # any other napari colormap: its brightest colour
        top = max(colors, key=lambda c: sum(c[:3]))
        layer = from_napari([{"contrast_limits": [0, 1], "colormap": list(top[:3])}])
    entry = layer.channels[0]
    return {"color": entry.color} if entry.color is not None else {"lut": entry.lut}


def settings_of(layer: Any) -> Doc:
    """The render settings of a napari ``Image`` layer as plain data."""
    return {"name": layer.name, "colormap": layer.colormap,
            "contrast_limits": [float(v) for v in layer.contrast_limits],
            "contrast_limits_range": [float(v) for v in layer.contrast_limits_range],
            "gamma": float(layer.gamma), "visible": bool(layer.visible),
            "metadata": dict(layer.metadata or {})}


def preset_from_layers(layers: Sequence[Any], name: str,
                       base: RenderPreset | None = None) -> RenderPreset:
    """A preset from image layers opened by the plugin (or plain settings dicts from
    :func:`settings_of`): one entry per layer, addressed by the channel's index and label
    (and marker) recorded at open time, so renamed layers still save to their channel.

    Fields napari cannot show (family, coefficient, group) are kept from the entry the layer
    was opened with; ``base`` supplies the model and default z/t.
    """
    entries = []
    for pos, layer in enumerate(layers):
        s = layer if isinstance(layer, Mapping) else settings_of(layer)
        meta = dict((s.get("metadata") or {}).get(META) or {})
        old = dict(meta.get("render") or {})
        start, end = (float(v) for v in s["contrast_limits"])
        if not end > start:  # napari allows equal limits; a preset window cannot
            end = start + max(abs(start) * 1e-6, 1e-6)
        entry: Doc = {"index": int(meta.get("index", pos)),
                      "label": str(meta.get("label") or s.get("name") or f"channel {pos}"),
                      "active": bool(s.get("visible", True)),
                      "window": {"start": start, "end": end},
                      "gamma": float(s.get("gamma", 1.0))}
        if meta.get("marker"):
            entry["marker"] = str(meta["marker"])
        entry |= _colormap_entry(s.get("colormap", "gray"))
        rng = s.get("contrast_limits_range")
        opened = meta.get("contrast_limits_range")  # in case restore_ranges never ran
        if rng is not None and opened is not None:
            rng = [min(float(rng[0]), float(opened[0])), max(float(rng[1]), float(opened[1]))]
        if rng is not None and float(rng[1]) > float(rng[0]):
            entry["domain"] = {"min": float(rng[0]), "max": float(rng[1])}
        for key in ("family", "coefficient", "group"):
            if old.get(key) is not None:
                entry[key] = old[key]
        entries.append(entry)
    doc: Doc = {"name": name, "channels": entries}
    if base is not None:
        doc["model"] = base.model
        if base.default_z is not None:
            doc["default_z"] = base.default_z
        if base.default_t is not None:
            doc["default_t"] = base.default_t
    return parse_preset(doc)


def channels_of(layers: Sequence[Any]) -> list[Channel]:
    """The image channels recorded in the plugin's layers (index, label, colour, marker)."""
    out = []
    for pos, layer in enumerate(layers):
        meta = dict((getattr(layer, "metadata", None) or {}).get(META) or {})
        out.append(Channel(index=int(meta.get("index", pos)),
                           label=str(meta.get("label") or layer.name),
                           color=str(meta.get("color") or "FFFFFF"),
                           marker=meta.get("marker") or None))
    return out


def restore_ranges(layers: Sequence[Any]) -> None:
    """Set each plugin layer's ``contrast_limits_range`` (slider span) from its metadata,
    keeping its contrast limits."""
    for layer in layers:
        rng = (getattr(layer, "metadata", None) or {}).get(META, {}).get("contrast_limits_range")
        if rng is None or not hasattr(layer, "contrast_limits_range"):
            continue
        limits = [float(v) for v in layer.contrast_limits]
        layer.contrast_limits_range = [min(rng[0], limits[0]), max(rng[1], limits[1])]
        layer.contrast_limits = limits


def apply_preset(layers: Sequence[Any], preset: RenderPreset, dtype: Any = None) -> list[str]:
    """Set the plugin's image layers of one image to ``preset``; returns bind's warnings.

    Channels the preset does not cover are hidden (plexhub's renderer skips them too).
    """
    from napari.utils.colormaps import ensure_colormap

    channels = channels_of(layers)
    bound = bind(preset, channels)
    for layer, bc in zip(layers, bound.channels, strict=True):
        if bc.render is None:
            layer.visible = False
            continue
        kw = channel_settings(bc.render, dtype if dtype is not None else layer.dtype)
        layer.colormap = ensure_colormap(kw["colormap"])
        layer.contrast_limits_range = kw["contrast_limits_range"]
        layer.contrast_limits = kw["contrast_limits"]
        layer.gamma = kw["gamma"]
        layer.visible = kw["visible"]
        meta = dict(layer.metadata.get(META) or {})
        meta["render"] = bc.render.model_dump(mode="json", exclude_none=True)
        meta["contrast_limits_range"] = kw["contrast_limits_range"]
        meta["preset"] = preset.name
        layer.metadata = dict(layer.metadata) | {META: meta}
    return list(bound.warnings)
