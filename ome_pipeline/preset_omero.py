"""OMERO's own preset spellings: OMERO.web query strings and ``omero render set`` files.

Both address channels by 1-based number, so every entry needs an ``index``; both let a
caller omit values, which ``base=`` (e.g. the image's default preset) then supplies, as
OMERO keeps current values. Use them through ``plexhub.ome_pipeline.preset_formats``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from plexhub.errors import InputError
from plexhub.presets import ChannelRender, RenderPreset, parse_lut, parse_preset

Doc = dict[str, Any]
_C_ITEM = re.compile(r"^(?P<off>-?)(?P<idx>\d+)(?:\|(?P<win>[^$]*))?(?:\$(?P<col>.+))?$")


def _num(x: float) -> str:
    """Shortest text that float() reads back exactly; integral values without '.0'."""
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def indexed_entries(preset: RenderPreset, fmt: str) -> list[tuple[int, ChannelRender]]:
    """(index, entry) pairs, refusing entries without an index or with a shared one."""
    missing = [c.name for c in preset.channels if c.index is None]
    if missing:
        raise InputError(fmt, f"needs an index on every channel; {', '.join(missing)} have none",
                         "bind the preset to the image and use BoundPreset.as_preset()")
    out = [(c.index, c) for c in preset.channels if c.index is not None]
    if len({i for i, _ in out}) != len(out):
        raise InputError(fmt, "two preset channels share an index", "give each its own index")
    return out


def _color_token(ch: ChannelRender) -> str:
    return ch.color if ch.color is not None else f"{ch.lut}.lut"


def _parse_token(token: str) -> Doc:
    t = token.strip()
    return {"lut": parse_lut(t)} if t.lower().endswith(".lut") else {"color": t}


def _base_entry(base: RenderPreset | None, index: int) -> Doc:
    if base is None:
        return {}
    for c in base.channels:
        if c.index == index:
            return c.model_dump(exclude_none=True)
    return {}


def _need(entry: Doc, keys: Sequence[str], where: str) -> None:
    if "window" not in entry or not all(k in entry["window"] for k in ("start", "end")):
        raise InputError(where, "gives no window start:end for this channel",
                         "pass base= (e.g. the image's default preset) to fill omitted values")
    if not any(k in entry for k in keys):
        raise InputError(where, "gives no colour for this channel",
                         "pass base= (e.g. the image's default preset) to fill omitted values")


def _set_colour(entry: Doc, token: str) -> None:
    entry.pop("color", None)
    entry.pop("lut", None)
    entry.update(_parse_token(token))


# --- OMERO.web query string ---------------------------------------------------------------

def to_omero_query(preset: RenderPreset) -> str:
    """``c=1|100:2000$FF0000,-2|0:500$fire.lut&m=c&maps=[...]`` (1-based, '-' = inactive).

    ``maps`` carries per-channel ``inverted`` and ``quantization`` (family, coefficient).
    Cannot express: ``label``, ``marker``, ``gamma``, ``window.min/max``, ``domain``,
    ``group``, ``name``, ``provenance``, ``default_z/t`` (they belong to the URL path).
    """
    entries = indexed_entries(preset, "OMERO query")
    c = ",".join(f"{'' if ch.active else '-'}{i + 1}|{_num(ch.window.start)}:"
                 f"{_num(ch.window.end)}${_color_token(ch)}" for i, ch in entries)
    maps = [{"inverted": {"enabled": ch.inverted},
             "quantization": {"family": ch.family, "coefficient": ch.coefficient}}
            for _, ch in entries]
    params = {"c": c, "m": "g" if preset.model == "greyscale" else "c",
              "maps": json.dumps(maps, separators=(",", ":"))}
    return urlencode(params, safe="|$:,", quote_via=quote)


def from_omero_query(query: str | Mapping[str, str], base: RenderPreset | None = None
                     ) -> RenderPreset:
    """A preset from OMERO.web's ``c``/``m``/``maps`` parameters.

    ``base`` supplies what the string omits (windows, colours, labels, gamma...), as OMERO
    keeps current values; its channels missing from ``c`` become inactive, as OMERO does.
    Without ``base`` every ``c`` item needs ``start:end`` and a colour.
    """
    params = dict(parse_qsl(query.lstrip("?"), keep_blank_values=True)
                  if isinstance(query, str) else query)
    if "c" not in params and base is None:
        raise InputError("OMERO query", "has no c= parameter",
                         "give c=1|start:end$COLOR,... or pass base=")
    try:
        maps = json.loads(params["maps"]) if params.get("maps") else []
    except json.JSONDecodeError as e:
        raise InputError("maps", f"is not JSON ({e.msg})", "one object per c= item") from None
    if not isinstance(maps, list):
        raise InputError("maps", "is not a JSON list", "one object per c= item")
    entries: list[Doc] = []
    for k, item in enumerate(filter(None, params.get("c", "").split(","))):
        m = _C_ITEM.match(item.strip())
        if not m:
            raise InputError(f"c item {item!r}", "is not [-]N[|start:end][$COLOR]",
                             "for example 1|100:2000$FF0000")
        index = int(m["idx"]) - 1
        entry = _base_entry(base, index) | {"index": index, "active": not m["off"]}
        if m["win"]:
            start, _, end = m["win"].partition(":")
            try:
                entry["window"] = entry.get("window", {}) | {"start": float(start),
                                                             "end": float(end)}
            except ValueError:
                raise InputError(f"c item {item!r}", "has a window that is not start:end",
                                 "for example 1|100:2000$FF0000") from None
        if m["col"]:
            _set_colour(entry, m["col"])
        _need(entry, ("color", "lut"), f"c item {item!r}")
        codomain = maps[k] if k < len(maps) and isinstance(maps[k], dict) else {}
        inv = codomain.get("inverted", codomain.get("reverse"))
        if isinstance(inv, dict) and "enabled" in inv:
            entry["inverted"] = inv["enabled"]
        quant = codomain.get("quantization")
        if isinstance(quant, dict):
            entry.update({k2: quant[k2] for k2 in ("family", "coefficient") if k2 in quant})
        entries.append(entry)
    listed = {e["index"] for e in entries}
    if base is not None:
        off = {"active": False} if "c" in params else {}
        entries += [c.model_dump(exclude_none=True) | off
                    for c in base.channels if c.index is None or c.index not in listed]
    doc: Doc = {"channels": entries}
    if base is not None:
        doc |= base.model_dump(exclude_none=True, include={"name", "model", "default_z",
                                                            "default_t"})
    if params.get("m") in ("c", "g"):
        doc["model"] = "greyscale" if params["m"] == "g" else "color"
    return parse_preset(doc)


# --- omero render set (version 2) ---------------------------------------------------------

def to_omero_render(preset: RenderPreset) -> Doc:
    """The ``omero render set`` document, version 2 (1-based channel keys, z and t).

    Channel keys: label, color (hex or ``name.lut``), min, max (``window.min/max``),
    start, end, active. Cannot express: ``marker``, ``gamma``, ``inverted``, ``family``,
    ``coefficient``, ``domain``, ``group``, ``name``, ``provenance``.
    """
    channels: dict[int, Doc] = {}
    for i, c in indexed_entries(preset, "omero render"):
        doc: Doc = {"label": c.label} if c.label is not None else {}
        doc["color"] = _color_token(c)
        if c.window.min is not None and c.window.max is not None:
            doc |= {"min": c.window.min, "max": c.window.max}
        doc |= {"start": c.window.start, "end": c.window.end, "active": c.active}
        channels[i + 1] = doc
    out: Doc = {"version": 2, "channels": channels, "greyscale": preset.model == "greyscale"}
    if preset.default_z is not None:
        out["z"] = preset.default_z + 1
    if preset.default_t is not None:
        out["t"] = preset.default_t + 1
    return out


def omero_render_yaml(preset: RenderPreset) -> str:
    """:func:`to_omero_render` as YAML text for ``omero render set``."""
    import yaml  # PyYAML, imported when used

    return str(yaml.safe_dump(to_omero_render(preset), sort_keys=False))


def from_omero_render(doc: Mapping[str, Any] | str, base: RenderPreset | None = None
                      ) -> RenderPreset:
    """A preset from an ``omero render set`` document (dict, or YAML/JSON text).

    Version 1 files (or files without ``version`` and only min/max) use min/max as the
    window. Channels the file omits keep ``base``'s settings, as ``omero render set`` does.
    """
    if isinstance(doc, str):
        import yaml

        try:
            doc = yaml.safe_load(doc)
        except yaml.YAMLError as exc:
            raise InputError("omero render file", f"is not valid YAML ({exc})".replace(
                "\n", " "), "write it as `omero render` does") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("channels"), Mapping):
        raise InputError("omero render file", "has no channels mapping",
                         "expected channels: {1: {start: ..., end: ...}}")
    chans: Mapping[Any, Mapping[str, Any]] = doc["channels"]
    version = doc.get("version")
    if version is None:
        version = 2 if any("start" in c or "end" in c for c in chans.values()) else 1
    entries: list[Doc] = []
    for key, c in chans.items():
        where = f"omero render channel {key}"
        if not str(key).isdigit() or int(key) < 1 or not isinstance(c, Mapping):
            raise InputError(where, "is not a 1-based channel number with a mapping",
                             "for example 1: {start: 0, end: 255, color: FF0000}")
        index = int(key) - 1
        entry = _base_entry(base, index) | {"index": index, "active": c.get("active", True)}
        window = dict(entry.get("window", {}))
        if version == 1:
            window |= {k: c[m] for k, m in (("start", "min"), ("end", "max")) if m in c}
        else:
            window |= {k: c[k] for k in ("start", "end", "min", "max") if k in c}
        entry["window"] = window
        if c.get("label") not in (None, ""):
            entry["label"] = str(c["label"])
        if "color" in c:
            _set_colour(entry, str(c["color"]))
        _need(entry, ("color", "lut"), where)
        entries.append(entry)
    listed = {e["index"] for e in entries}
    if base is not None:
        entries += [c.model_dump(exclude_none=True) for c in base.channels
                    if c.index is None or c.index not in listed]
    out: Doc = {"channels": entries}
    if base is not None:
        out |= base.model_dump(exclude_none=True, include={"name", "model", "default_z",
                                                            "default_t"})
    if "greyscale" in doc:
        out["model"] = "greyscale" if doc["greyscale"] else "color"
    for key, field in (("z", "default_z"), ("t", "default_t")):
        if doc.get(key) is not None:
            out[field] = int(doc[key]) - 1
    return parse_preset(out)
