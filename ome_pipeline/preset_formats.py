"""Render presets to and from the formats other tools speak, without loss where they can.

Each ``to_*``/``from_*`` pair round-trips every preset the format can express; what a format
cannot hold is listed in the ``to_*`` docstring and is dropped (or filled) the same way
every time. Formats that address channels by position or number need an ``index`` on every
entry (``BoundPreset.as_preset()`` gives one).

- NGFF ``omero`` block: :func:`to_ngff_omero` / :func:`from_ngff_omero`
- OMERO.web query string (``c=``, ``m=``, ``maps=``): :func:`to_omero_query` /
  :func:`from_omero_query`
- ``omero render set`` file, version 2: :func:`to_omero_render` / :func:`from_omero_render`
  (:func:`omero_render_yaml` writes it as YAML text)
- napari layer settings: :func:`to_napari` / :func:`from_napari`

The two OMERO spellings live in ``preset_omero`` and are re-exported here. Every ``from_*``
reader bounds what it reads (``plexhub.limits``) and raises ``InputError`` for any malformed
document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from plexhub.errors import InputError
from plexhub.ome_pipeline.luts import lut as lut_table
from plexhub.ome_pipeline.preset_omero import (
    check_count,
    from_omero_query,
    from_omero_render,
    indexed_entries,
    is_number,
    omero_render_yaml,
    reads,
    short,
    to_omero_query,
    to_omero_render,
)
from plexhub.presets import LUT_NAMES, ChannelRender, RenderPreset, parse_lut, parse_preset

__all__ = ["from_napari", "from_ngff_omero", "from_omero_query", "from_omero_render",
           "omero_render_yaml", "to_napari", "to_ngff_omero", "to_omero_query",
           "to_omero_render"]

Doc = dict[str, Any]
_HEX = re.compile(r"^#?[0-9a-f]{6}$")
_NAPARI_HUES = {"red": "FF0000", "green": "00FF00", "blue": "0000FF", "cyan": "00FFFF",
                "magenta": "FF00FF", "yellow": "FFFF00", "white": "FFFFFF"}


# --- NGFF omero ---------------------------------------------------------------------------

def to_ngff_omero(preset: RenderPreset, version: str | None = None) -> Doc:
    """The NGFF ``omero`` block, channels in index order, all four window keys written.

    Cannot express: ``gamma``, ``domain``, ``marker``, ``group``, ``name``, ``provenance``;
    a ``lut`` is written as the colour of its brightest entry. Missing ``window.min/max``
    are filled from ``domain``, else from ``start/end``. Indices must be 0..N-1.
    """
    entries = sorted(indexed_entries(preset, "NGFF omero"), key=lambda e: e[0])
    if [i for i, _ in entries] != list(range(len(entries))):
        raise InputError("NGFF omero", "channel indices are not 0..N-1",
                         "the block lists every image channel in order")
    channels = []
    for _, c in entries:
        w = c.window
        lo = w.min if w.min is not None else c.domain.min if c.domain else w.start
        hi = w.max if w.max is not None else c.domain.max if c.domain else w.end
        color = c.color or "".join(f"{v:02X}" for v in lut_table(c.lut or "gray")[-1])
        doc: Doc = {"active": c.active, "coefficient": c.coefficient, "color": color,
                    "family": c.family, "inverted": c.inverted,
                    "window": {"min": lo, "max": hi, "start": w.start, "end": w.end}}
        if c.label is not None:
            doc["label"] = c.label
        channels.append(doc)
    rdefs: Doc = {"model": preset.model}
    if preset.default_z is not None:
        rdefs["defaultZ"] = preset.default_z
    if preset.default_t is not None:
        rdefs["defaultT"] = preset.default_t
    block: Doc = {"channels": channels, "rdefs": rdefs}
    if version is not None:
        block["version"] = version
    return block


def _mapping(what: str, value: Any, example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(what, f"is {type(value).__name__} {short(value, 40)}, not an object",
                         f"for example {example}")
    return value


def _list(what: str, value: Any, example: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(what, f"is {type(value).__name__} {short(value, 40)}, not a list",
                         f"for example {example}")
    return list(value)


def _numbers(what: str, value: Any, n: int, example: str) -> list[float]:
    if hasattr(value, "tolist"):  # a numpy array, as napari keeps some of its settings
        value = value.tolist()
    values = _list(what, value, example)
    if len(values) != n or not all(is_number(v) for v in values):
        raise InputError(what, f"is {short(value, 40)}, not {n} numbers", f"for example {example}")
    return values


@reads("NGFF omero block", 'for example {"channels": [{"color": "FF0000", "window": {...}}]}')
def from_ngff_omero(block: Mapping[str, Any]) -> RenderPreset:
    """A preset from an NGFF ``omero`` block: entry i gets index i and the block's label.

    A window with only min/max uses them as start/end; a window whose end is not above its
    start (constant channels) is widened to one raw unit.
    """
    block = _mapping("NGFF omero block", block, '{"channels": [...]}')
    items = _list("NGFF omero channels", block.get("channels") or [], '[{"color": "FF0000"}]')
    check_count("NGFF omero block", len(items))
    channels = []
    for i, item in enumerate(items):
        ch = _mapping(f"NGFF omero channel {i}", item, '{"color": "FF0000", "window": {...}}')
        window_in = _mapping(f"NGFF omero channel {i} window", ch.get("window") or {},
                             '{"start": 0, "end": 255}')
        win = {k: v for k, v in window_in.items() if v is not None}
        if not all(is_number(v) for v in win.values()):
            raise InputError(f"NGFF omero channel {i} window", f"{short(dict(win), 80)} holds "
                             "a value that is not a number", '{"start": 0, "end": 255}')
        start = win.get("start", win.get("min", 0.0))
        end = win.get("end", win.get("max", 1.0))
        if not end > start:
            end = start + 1.0
        window: Doc = {"start": start, "end": end}
        if win.get("min") is not None and win.get("max") is not None:
            window.update(min=win["min"], max=win["max"])
        entry: Doc = {"index": i, "active": ch.get("active", True),
                      "color": ch.get("color") or "FFFFFF", "window": window,
                      "inverted": ch.get("inverted", False),
                      "family": ch.get("family") or "linear",
                      "coefficient": ch.get("coefficient", 1.0)}
        if ch.get("label") not in (None, ""):
            entry["label"] = str(ch["label"])
        channels.append(entry)
    rdefs = _mapping("NGFF omero rdefs", block.get("rdefs") or {}, '{"model": "color"}')
    model = str(rdefs.get("model", "color")).lower()
    doc: Doc = {"model": "greyscale" if model in ("greyscale", "grey", "gray") else "color",
                "channels": channels}
    if rdefs.get("defaultZ") is not None:
        doc["default_z"] = rdefs["defaultZ"]
    if rdefs.get("defaultT") is not None:
        doc["default_t"] = rdefs["defaultT"]
    return parse_preset(doc)

# --- napari -------------------------------------------------------------------------------

def _napari_colormap(c: ChannelRender) -> str | Doc:
    if c.color is not None:
        return f"#{c.color.lower()}"
    if c.lut == "gray":
        return "gray"
    table = lut_table(c.lut or "gray") / 255.0
    controls = [0.0, *((k + 0.5) / 255.0 for k in range(255)), 1.0]
    return {"name": f"plexhub:{c.lut}", "colors": table.tolist(), "controls": controls,
            "interpolation": "zero"}


def to_napari(preset: RenderPreset) -> list[Doc]:
    """One dict of napari ``Image`` layer settings per channel, in preset order.

    Keys: name (label), colormap ("#rrggbb" for a colour, "gray", or a stepped colormap
    dict holding the LUT table so napari draws our LUT exactly), contrast_limits,
    contrast_limits_range (``domain``, else ``window.min/max``), gamma, visible, blending.
    Cannot express: ``marker``, ``inverted``, ``family``, ``coefficient``, ``group``, the
    greyscale model, ``name``, ``provenance``, ``default_z/t``; ``window.min/max`` comes back
    as ``domain``. napari turns the colour "#000000" into its reversed grey map.
    """
    layers = []
    for c in preset.channels:
        layer: Doc = {"name": c.label or c.marker or f"channel {c.index}",
                      "colormap": _napari_colormap(c),
                      "contrast_limits": [c.window.start, c.window.end]}
        rng = ((c.domain.min, c.domain.max) if c.domain else
               (c.window.min, c.window.max) if c.window.min is not None else None)
        if rng is not None:
            layer["contrast_limits_range"] = list(rng)
        layer |= {"gamma": c.gamma, "visible": c.active, "blending": "additive"}
        layers.append(layer)
    return layers


def _parse_napari_colormap(cmap: Any) -> Doc:
    if isinstance(cmap, Mapping):
        name = str(cmap.get("name", ""))
        if name.removeprefix("plexhub:").lower() in LUT_NAMES:
            return {"lut": parse_lut(name.removeprefix("plexhub:"))}
        colors = cmap.get("colors")
        if isinstance(colors, Sequence) and len(colors) == 2:
            return _parse_napari_colormap(list(colors[1]))
        cmap = name
    if isinstance(cmap, str):
        name = cmap.strip().lower()
        if name in _NAPARI_HUES:
            return {"color": _NAPARI_HUES[name]}
        if name.removeprefix("plexhub:") in LUT_NAMES or name in ("grey", "grays"):
            return {"lut": parse_lut(name.removeprefix("plexhub:"))}
        if _HEX.match(name):
            return {"color": name}
    if not isinstance(cmap, str) and isinstance(cmap, Sequence) and len(cmap) in (3, 4):
        return {"color": "".join(f"{round(float(v) * 255):02X}" for v in list(cmap)[:3])}
    raise InputError(f"colormap {short(cmap)}", "is not a colour, LUT name or colormap dict",
                     "use '#rrggbb', 'gray', 'viridis' or the dict to_napari writes")


@reads("napari layers", "use the list of dicts to_napari writes")
def from_napari(layers: Sequence[Mapping[str, Any]]) -> RenderPreset:
    """A preset from napari layer settings: layer i becomes index i labelled by its name.

    Any ``blending`` is read as additive.
    """
    items = _list("napari layers", layers, '[{"contrast_limits": [0, 255]}]')
    check_count("napari layers", len(items))
    entries = []
    for i, item in enumerate(items):
        layer = _mapping(f"napari layer {i}", item, '{"contrast_limits": [0, 255]}')
        if "contrast_limits" not in layer:
            raise InputError(f"napari layer {i}", "has no contrast_limits",
                             "give [start, end] in raw units")
        start, end = _numbers(f"napari layer {i} contrast_limits", layer["contrast_limits"], 2,
                              "[0, 255]")
        entry: Doc = {"index": i, "active": layer.get("visible", True),
                      "window": {"start": start, "end": end},
                      "gamma": layer.get("gamma", 1.0)}
        entry |= _parse_napari_colormap(layer.get("colormap", "gray"))
        if layer.get("name") not in (None, ""):
            entry["label"] = str(layer["name"])
        rng = layer.get("contrast_limits_range")
        if rng is not None:
            lo, hi = _numbers(f"napari layer {i} contrast_limits_range", rng, 2, "[0, 65535]")
            entry["domain"] = {"min": lo, "max": hi}
        entries.append(entry)
    return parse_preset({"channels": entries})
