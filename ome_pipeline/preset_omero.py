"""OMERO's own preset spellings: OMERO.web query strings and ``omero render set`` files.

Both address channels by 1-based number, so every entry needs an ``index``; both let a
caller omit values, which ``base=`` (e.g. the image's default preset) then supplies, as
OMERO keeps current values. Use them through ``plexhub.ome_pipeline.preset_formats``.

Readers take untrusted text: sizes are bounded by ``plexhub.limits`` (text length, channel
entries, YAML nodes and depth; YAML anchors and aliases are refused, so a small file cannot
expand into a large document), and any malformed document raises :class:`InputError`
(:func:`reads`), never another exception.
"""

from __future__ import annotations

import functools
import json
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from plexhub.errors import InputError, PlexhubError, TooLargeError
from plexhub.limits import PRESET_CHANNELS, PRESET_IMPORT_CHARS, YAML_DEPTH, YAML_NODES
from plexhub.presets import ChannelRender, RenderPreset, parse_lut, parse_preset

Doc = dict[str, Any]
_C_ITEM = re.compile(r"^(?P<off>-?)(?P<idx>\d{1,9})(?:\|(?P<win>[^$]*))?(?:\$(?P<col>.+))?$")
P = ParamSpec("P")
R = TypeVar("R")


def short(value: Any, width: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``width`` characters (for error messages)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def reads(fmt: str, hint: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a reader of documents in ``fmt``: an error other than a :class:`PlexhubError`
    (a wrong type where a reader expected another, a number out of range...) becomes an
    :class:`InputError` naming the format, so a malformed document is never a crash."""
    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except PlexhubError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError,
                    OverflowError, RecursionError) as exc:
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise InputError(fmt, f"is not a document plexhub can read ({reason})",
                                 hint) from None
        return inner
    return wrap


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_text(what: str, text: str) -> None:
    """Refuse text longer than :data:`~plexhub.limits.PRESET_IMPORT_CHARS`."""
    if len(text) > PRESET_IMPORT_CHARS:
        raise TooLargeError(what, f"has {len(text)} characters, more than the limit of "
                            f"{PRESET_IMPORT_CHARS}", "send the settings of fewer channels")


def check_count(what: str, n: int) -> None:
    """Refuse more than :data:`~plexhub.limits.PRESET_CHANNELS` channel entries."""
    if n > PRESET_CHANNELS:
        raise InputError(what, f"has {n} channel entries, more than the limit of "
                         f"{PRESET_CHANNELS}", "split the preset or drop inactive channels")


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


@reads("OMERO query", "for example c=1|100:2000$FF0000,-2|0:500$fire.lut&m=c")
def from_omero_query(query: str | Mapping[str, str], base: RenderPreset | None = None
                     ) -> RenderPreset:
    """A preset from OMERO.web's ``c``/``m``/``maps`` parameters.

    ``base`` supplies what the string omits (windows, colours, labels, gamma...), as OMERO
    keeps current values; its channels missing from ``c`` become inactive, as OMERO does.
    Without ``base`` every ``c`` item needs ``start:end`` and a colour.
    """
    if isinstance(query, str):
        check_text("OMERO query", query)
        params = dict(parse_qsl(query.lstrip("?"), keep_blank_values=True))
    elif isinstance(query, Mapping):
        params = dict(query)
        for key, value in params.items():
            if not isinstance(value, str):
                raise InputError(f"OMERO query parameter {short(key)}",
                                 f"is {type(value).__name__}, not text",
                                 "for example c=1|0:255$FF0000")
        check_text("OMERO query", "".join(params.values()))
    else:
        raise InputError("OMERO query", f"is {type(query).__name__}, not a query string",
                         "for example c=1|0:255$FF0000&m=c")
    if "c" not in params and base is None:
        raise InputError("OMERO query", "has no c= parameter",
                         "give c=1|start:end$COLOR,... or pass base=")
    try:
        maps = json.loads(params["maps"]) if params.get("maps") else []
    except json.JSONDecodeError as e:
        raise InputError("maps", f"is not JSON ({e.msg})", "one object per c= item") from None
    if not isinstance(maps, list):
        raise InputError("maps", "is not a JSON list", "one object per c= item")
    items = [item for item in params.get("c", "").split(",") if item]
    check_count("OMERO query c=", len(items))
    entries: list[Doc] = []
    for k, item in enumerate(items):
        m = _C_ITEM.match(item.strip())
        if not m:
            raise InputError(f"c item {short(item)}", "is not [-]N[|start:end][$COLOR]",
                             "for example 1|100:2000$FF0000")
        index = int(m["idx"]) - 1
        entry = _base_entry(base, index) | {"index": index, "active": not m["off"]}
        if m["win"]:
            start, _, end = m["win"].partition(":")
            try:
                entry["window"] = entry.get("window", {}) | {"start": float(start),
                                                             "end": float(end)}
            except ValueError:
                raise InputError(f"c item {short(item)}", "has a window that is not start:end",
                                 "for example 1|100:2000$FF0000") from None
        if m["col"]:
            _set_colour(entry, m["col"])
        _need(entry, ("color", "lut"), f"c item {short(item)}")
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


def load_yaml(text: str, what: str = "omero render file") -> Any:
    """YAML text -> plain data, safely: at most :data:`~plexhub.limits.PRESET_IMPORT_CHARS`
    characters, :data:`~plexhub.limits.YAML_NODES` nodes and :data:`~plexhub.limits.YAML_DEPTH`
    levels, no anchors or aliases (a billion-laughs file is refused at its first anchor),
    checked on the parser's event stream before anything is built."""
    import yaml

    check_text(what, text)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    nodes = depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise InputError(what, "uses YAML anchors or aliases (& or *)",
                                 "write every value out; aliases are refused so that a small "
                                 "file cannot expand into a huge document")
            if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                nodes += 1
                if nodes > YAML_NODES:
                    raise TooLargeError(what, f"has more than {YAML_NODES} YAML nodes",
                                        "send the settings of fewer channels")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > YAML_DEPTH:
                    raise InputError(what, f"nests deeper than {YAML_DEPTH} levels",
                                     "an omero render file is two or three levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except PlexhubError:
        raise
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise InputError(what, f"is not valid YAML ({reason})",
                         "write it as `omero render` does") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a 5000-digit integer
        reason = " ".join(str(exc).split())[:200]
        raise InputError(what, f"has a value YAML cannot hold ({reason})",
                         "write numbers as ordinary decimals") from None


def _plane_number(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"omero render {key}: {short(value)}", "is not a 1-based plane number",
                         f"for example {key}: 1")
    return value - 1


@reads("omero render file", "write it as `omero render` does")
def from_omero_render(doc: Mapping[str, Any] | str, base: RenderPreset | None = None
                      ) -> RenderPreset:
    """A preset from an ``omero render set`` document (dict, or YAML/JSON text).

    Version 1 files (or files without ``version`` and only min/max) use min/max as the
    window. Channels the file omits keep ``base``'s settings, as ``omero render set`` does.
    Text is read by :func:`load_yaml` (bounded, no aliases).
    """
    if isinstance(doc, str):
        doc = load_yaml(doc)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("channels"), Mapping):
        raise InputError("omero render file", "has no channels mapping",
                         "expected channels: {1: {start: ..., end: ...}}")
    chans: Mapping[Any, Mapping[str, Any]] = doc["channels"]
    check_count("omero render file", len(chans))
    for key, c in chans.items():
        text = str(key) if isinstance(key, int | str) and not isinstance(key, bool) else ""
        if not (text.isdigit() and len(text) <= 9 and int(text) >= 1) \
                or not isinstance(c, Mapping):
            raise InputError(f"omero render channel {short(key)}", "is not a 1-based channel "
                             "number with a mapping",
                             "for example 1: {start: 0, end: 255, color: FF0000}")
    version = doc.get("version")
    if version is None:
        version = 2 if any("start" in c or "end" in c for c in chans.values()) else 1
    entries: list[Doc] = []
    for key, c in chans.items():
        where = f"omero render channel {key}"
        index = int(key) - 1
        entry = _base_entry(base, index) | {"index": index, "active": c.get("active", True)}
        window = dict(entry.get("window", {}))
        if version == 1:
            window |= {k: c[m] for k, m in (("start", "min"), ("end", "max")) if m in c}
        else:
            window |= {k: c[k] for k in ("start", "end", "min", "max") if k in c}
        entry["window"] = window
        for name in ("label", "color"):
            if c.get(name) is not None and not isinstance(c[name], str | int | float):
                raise InputError(f"{where} {name}", f"is {type(c[name]).__name__}, not text",
                                 "for example label: DAPI, color: FF0000")
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
        plane = _plane_number(doc, key)
        if plane is not None:
            out[field] = plane
    return parse_preset(out)
