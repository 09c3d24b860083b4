"""Validation of written stores: the NGFF JSON schemas (ome-zarr-models) plus stricter checks
that the schemas leave out (colour format, all four window keys, dimension names, units)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plexhub.errors import ValidationError
from plexhub.storage import zarr_target

_COLOR = re.compile(r"^[0-9A-F]{6}$")
_UNITS = {"angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
          "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer",
          "mile", "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter",
          "yard", "yoctometer", "yottameter", "zeptometer", "zettameter", "attosecond",
          "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
          "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond",
          "minute", "nanosecond", "petasecond", "picosecond", "second", "terasecond",
          "yoctosecond", "yottasecond", "zeptosecond", "zettasecond"}


def _attrs(group: Any) -> tuple[str, dict[str, Any]]:
    attrs = dict(group.attrs)
    if "ome" in attrs:
        ome = dict(attrs["ome"])
        return str(ome.get("version", "")), ome
    ms = attrs.get("multiscales") or [{}]
    return str(ms[0].get("version", "0.4")), attrs


def validate_store(path: str | Path, expect_version: str | None = None,
                   documents: Mapping[str, bytes] | None = None) -> list[str]:
    """Validate every image in the store; return the group paths checked. With
    ``documents`` (every Zarr metadata document of the store by key, as the conversion wrote
    them) those are validated instead of reading the store at ``path`` back."""
    import zarr

    try:
        store = _store(path, documents)
        root = zarr.open_group(store, mode="r")
    except Exception as exc:
        raise ValidationError(str(path), f"is not a Zarr group ({exc})") from exc
    _version, attrs = _attrs(root)
    checked: list[str] = []
    if "bioformats2raw.layout" in attrs:
        ome = zarr.open_group(store, path="OME", mode="r")
        _, ome_attrs = _attrs(ome)
        for key in ome_attrs.get("series", []):
            checked += _validate_image(store, str(path), key, expect_version)
    else:
        checked += _validate_image(store, str(path), "", expect_version)
    if "associated" in root:
        for name in zarr.open_group(store, path="associated", mode="r").group_keys():
            checked += _validate_image(store, str(path), f"associated/{name}", expect_version)
    return checked


def _store(path: str | Path, documents: Mapping[str, bytes] | None) -> Any:
    """The zarr store to validate: the store at ``path``, or its documents in memory."""
    if documents is None:
        return zarr_target(str(path))
    import zarr.storage
    from zarr.core.buffer import default_buffer_prototype

    buffer = default_buffer_prototype().buffer
    return zarr.storage.MemoryStore({k: buffer.from_bytes(v) for k, v in documents.items()},
                                    read_only=True)


def _validate_image(store: Any, root: str, key: str, expect: str | None) -> list[str]:
    import zarr
    from ome_zarr_models import open_ome_zarr

    where = f"{root}/{key}" if key else root
    group = zarr.open_group(store, path=key, mode="r")
    version, attrs = _attrs(group)
    if expect and version != expect:
        raise ValidationError(where, f"is NGFF {version}, expected {expect}")
    try:
        open_ome_zarr(group, version=version)  # type: ignore[arg-type]
    except Exception as exc:
        raise ValidationError(where, f"fails the NGFF {version} schema: {exc}") from exc
    ms = attrs["multiscales"][0]
    axes = [a["name"] for a in ms["axes"]]
    for a in ms["axes"]:
        if "unit" in a and a["unit"] not in _UNITS:
            raise ValidationError(where, f"axis {a['name']} has unit {a['unit']!r}, "
                                  "not a UDUNITS-2 name")
    prev: tuple[int, ...] | None = None
    for ds in ms["datasets"]:
        arr = zarr.open_array(store, path=f"{key}/{ds['path']}" if key else ds["path"],
                              mode="r")
        if version == "0.5":
            names = list(getattr(arr.metadata, "dimension_names", None) or [])
            if names != axes:
                raise ValidationError(f"{where}/{ds['path']}",
                                      f"dimension_names {names} differ from axes {axes}")
        if prev is not None:
            expect_shape = tuple((n + 1) // 2 if a in "yx" else n
                                 for n, a in zip(prev, axes, strict=True))
            if tuple(arr.shape) != expect_shape:
                raise ValidationError(f"{where}/{ds['path']}",
                                      f"shape {arr.shape}, expected {expect_shape}")
        prev = tuple(arr.shape)
    omero = attrs.get("omero")
    if omero is not None:
        for i, ch in enumerate(omero.get("channels", [])):
            if not _COLOR.match(str(ch.get("color", ""))):
                raise ValidationError(where, f"omero channel {i} colour {ch.get('color')!r} "
                                      "is not six upper-case hex digits")
            win = ch.get("window", {})
            if not all(isinstance(win.get(k), int | float) for k in ("min", "max", "start",
                                                                      "end")):
                raise ValidationError(where, f"omero channel {i} window {json.dumps(win)} "
                                      "lacks one of min, max, start, end")
    checked = [where]
    if "labels" in group:
        _, lattrs = _attrs(group["labels"])
        for name in lattrs.get("labels", []):
            sub = f"{key}/labels/{name}" if key else f"labels/{name}"
            checked += _validate_image(store, root, sub, expect)
            lg = zarr.open_group(store, path=sub, mode="r")
            _, la = _attrs(lg)
            if len(la["multiscales"][0]["datasets"]) != len(ms["datasets"]):
                raise ValidationError(f"{root}/{sub}", "has a different number of levels "
                                      "than its image")
    return checked
