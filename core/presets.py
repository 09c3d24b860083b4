"""Render presets: one validated document that the API, the notebook viewer and napari share.

A preset is a superset of the NGFF ``omero`` block. Each :class:`ChannelRender` says how one
image channel looks: its window in raw units, colour *or* lookup table, gamma, inversion.
:func:`bind` pairs the entries with an image's channels; ``plexhub.ome_pipeline.render``
turns the bound preset into pixels. Converters to and from other formats live in
``plexhub.ome_pipeline.preset_formats``.

Entries match image channels by ``marker`` or ``label`` when they have one (case and
surrounding spaces ignored; an image channel answers to its marker and to its label), else
by ``index``. Repeated names (a DAPI per cycle) pair up in order; among channels of the same
name the one at the entry's ``index`` is preferred.

Sizes (entries, text lengths, gamma range, indices) are bounded by ``plexhub.limits``.

This module imports only the standard library, pydantic, ``plexhub.errors``,
``plexhub.colors`` and ``plexhub.limits``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plexhub.colors import parse_color
from plexhub.errors import InputError
from plexhub.limits import PRESET_CHANNEL_INDEX, PRESET_CHANNELS, PRESET_GAMMA, PRESET_TEXT_CHARS

#: Lookup tables every renderer implements (``plexhub.ome_pipeline.luts`` holds the tables).
LUT_NAMES = ("gray", "fire", "viridis", "hot")
_LUT_ALIASES = {"grey": "gray", "grays": "gray", "greys": "gray"}

Family = Literal["linear", "polynomial", "exponential", "logarithmic"]
_TEXT = PRESET_TEXT_CHARS
_PROBLEMS_SHOWN = 5  # validation problems a message names before "and N more"


class InvalidPresetError(InputError):
    """A preset document does not validate."""


class PresetMismatchError(InputError):
    """A preset cannot be applied to an image's channels."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """A NUL in a name or label: no catalog (PostgreSQL) or file can hold it."""
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character (\\u0000)")
        return value


def parse_lut(value: str) -> str:
    """A LUT name in any case, with or without OMERO's '.lut' suffix -> canonical name."""
    name = value.strip().lower().removesuffix(".lut")
    name = _LUT_ALIASES.get(name, name)
    if name not in LUT_NAMES:
        raise ValueError(f"unknown LUT {value!r}; known: {', '.join(LUT_NAMES)}")
    return name


class Window(_Strict):
    """Display window in raw units; ``min``/``max`` is the data range OMERO records beside it."""

    start: float
    end: float
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if not self.end > self.start:
            raise ValueError(f"window end {self.end} must be greater than start {self.start}; "
                             "widen the window")
        if (self.min is None) != (self.max is None):
            raise ValueError("window min and max must be given together")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"window max {self.max} is below min {self.min}")
        return self


class Domain(_Strict):
    """The range a contrast slider spans (napari's ``contrast_limits_range``)."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Domain:
        if not self.max > self.min:
            raise ValueError(f"domain max {self.max} must be greater than min {self.min}")
        return self


class ChannelRender(_Strict):
    """How one image channel is drawn. Exactly one of ``color`` and ``lut``."""

    index: int | None = Field(default=None, ge=0, le=PRESET_CHANNEL_INDEX)
    label: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    marker: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    active: bool = True
    color: str | None = Field(default=None, max_length=_TEXT)
    lut: str | None = Field(default=None, max_length=_TEXT)
    window: Window
    domain: Domain | None = None
    gamma: float = Field(default=1.0, gt=0, le=PRESET_GAMMA)
    inverted: bool = False
    family: Family = "linear"
    coefficient: float = Field(default=1.0, gt=0, le=PRESET_GAMMA)
    group: str | None = Field(default=None, max_length=_TEXT)

    @field_validator("color")
    @classmethod
    def _color(cls, v: str | None) -> str | None:
        return None if v is None else parse_color(v)

    @field_validator("lut")
    @classmethod
    def _lut(cls, v: str | None) -> str | None:
        return None if v is None else parse_lut(v)

    @model_validator(mode="after")
    def _complete(self) -> ChannelRender:
        if (self.color is None) == (self.lut is None):
            raise ValueError(f"channel {self.name}: give exactly one of color and lut")
        if self.index is None and self.label is None and self.marker is None:
            raise ValueError("a preset channel needs an index, a label or a marker")
        return self

    @property
    def name(self) -> str:
        """How messages refer to this entry: marker, label or '#index'."""
        return self.marker or self.label or f"#{self.index}"


class Provenance(_Strict):
    """Where automatic windows came from."""

    method: Literal["percentile", "minmax"]
    lower: float | None = Field(default=None, ge=0, le=100)
    upper: float | None = Field(default=None, ge=0, le=100)
    level: int = Field(default=0, ge=0, le=PRESET_CHANNEL_INDEX)
    pixels: int | None = Field(default=None, ge=0, le=2**63 - 1)
    source: str = Field(default="", max_length=_TEXT)

    @model_validator(mode="after")
    def _ordered(self) -> Provenance:
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"percentiles {self.lower}, {self.upper}: lower must be below upper")
        return self


class RenderPreset(_Strict):
    """A render preset document."""

    name: str = Field(default="", max_length=_TEXT)
    model: Literal["color", "greyscale"] = "color"
    blending: Literal["additive"] = "additive"
    channels: list[ChannelRender] = Field(min_length=1, max_length=PRESET_CHANNELS)
    provenance: Provenance | None = None
    default_z: int | None = Field(default=None, ge=0, le=PRESET_CHANNEL_INDEX)
    default_t: int | None = Field(default=None, ge=0, le=PRESET_CHANNEL_INDEX)

    @property
    def index_bound(self) -> bool:
        """True when every entry is addressed by index alone."""
        return all(c.label is None and c.marker is None for c in self.channels)


def parse_preset(doc: Mapping[str, Any] | str | bytes) -> RenderPreset:
    """Validate a preset from a dict or JSON text, raising :class:`InvalidPresetError`.

    A dict with more than :data:`~plexhub.limits.PRESET_CHANNELS` channel entries is refused
    before any entry is validated; the message names at most five problems."""
    channels = doc.get("channels") if isinstance(doc, Mapping) else None
    if isinstance(channels, Sequence) and not isinstance(channels, str) \
            and len(channels) > PRESET_CHANNELS:
        raise InvalidPresetError("render preset", f"channels: has {len(channels)} entries, more "
                                 f"than the limit of {PRESET_CHANNELS}",
                                 "split the preset or drop inactive channels")
    try:
        if isinstance(doc, str | bytes):
            return RenderPreset.model_validate_json(doc)
        if not isinstance(doc, Mapping):
            raise InvalidPresetError("render preset", f"is a {type(doc).__name__}, "
                                     "not a JSON object", 'send {"channels": [...]}')
        return RenderPreset.model_validate(doc)
    except pydantic.ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)
        problems = "; ".join(_problem(err) for err in errors[:_PROBLEMS_SHOWN])
        if len(errors) > _PROBLEMS_SHOWN:
            problems += f"; and {len(errors) - _PROBLEMS_SHOWN} more"
        raise InvalidPresetError("render preset", problems,
                                 "see plexhub.presets.RenderPreset for the fields") from e


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "document"
    return f"{where}: {' '.join(str(err['msg']).split())[:300]}"


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        f = float(format(value, ".15g")) + 0.0  # 15 significant digits; -0.0 -> 0.0
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def content_hash(preset: RenderPreset) -> str:
    """SHA-256 (hex) of the canonical JSON of the whole document, defaults included.

    Keys sorted, no whitespace, floats rounded to 15 significant digits and integral floats
    written as integers, so equal documents hash equally however they were spelled.
    """
    doc = _canonical(preset.model_dump(mode="json"))
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChannelLike(Protocol):
    """What :func:`bind` needs of an image channel (``plexhub.model.Channel`` fits)."""

    @property
    def index(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def marker(self) -> str | None: ...


@dataclass(frozen=True)
class BoundChannel:
    """One image channel and the preset entry that drives it (None: no entry matched)."""

    index: int
    label: str
    render: ChannelRender | None

    @property
    def active(self) -> bool:
        return self.render is not None and self.render.active


@dataclass(frozen=True)
class BoundPreset:
    """A preset resolved against an image: one :class:`BoundChannel` per image channel."""

    preset: RenderPreset
    channels: tuple[BoundChannel, ...]
    warnings: tuple[str, ...] = ()

    @property
    def model(self) -> Literal["color", "greyscale"]:
        return self.preset.model

    def active(self) -> list[tuple[int, ChannelRender]]:
        """(image channel index, settings) of each active channel, in image order."""
        return [(c.index, c.render) for c in self.channels
                if c.render is not None and c.render.active]

    def as_preset(self) -> RenderPreset:
        """An index- and label-bound copy: one entry per matched image channel, image order."""
        entries = [c.render.model_copy(update={"index": c.index, "label": c.label or None})
                   for c in self.channels if c.render is not None]
        return self.preset.model_copy(update={"channels": entries})


def _key(name: str) -> str:
    return name.strip().casefold()


def bind(preset: RenderPreset, channels: Sequence[ChannelLike]) -> BoundPreset:
    """Pair preset entries with image channels; unmatched entries become warnings.

    Raises :class:`PresetMismatchError` when an index-bound preset has a different number of
    entries than the image has channels, since its indices then mean nothing for this image.
    """
    if preset.index_bound and len(preset.channels) != len(channels):
        raise PresetMismatchError(
            f"preset {preset.name!r}" if preset.name else "preset",
            f"addresses channels by index only and has {len(preset.channels)} entries, "
            f"but the image has {len(channels)} channels",
            "give the entries labels or markers, or use a preset made for this image")
    names = [{_key(n) for n in (ch.label, ch.marker) if n} for ch in channels]
    taken: dict[int, ChannelRender] = {}
    warnings: list[str] = []
    for entry in preset.channels:
        pos = _match(entry, channels, names, taken)
        if pos is None:
            warnings.append(f"preset channel {entry.name!r} matches no image channel")
            continue
        taken[pos] = entry
        if entry.active and entry.family != "linear":
            warnings.append(f"preset channel {entry.name!r}: family {entry.family!r} is kept "
                            "but rendered as linear")
    bound = tuple(BoundChannel(ch.index, ch.label, taken.get(pos))
                  for pos, ch in enumerate(channels))
    return BoundPreset(preset, bound, tuple(warnings))


def _match(entry: ChannelRender, channels: Sequence[ChannelLike], names: list[set[str]],
           taken: Mapping[int, ChannelRender]) -> int | None:
    free = [p for p in range(len(channels)) if p not in taken]
    wanted = [n for n in (entry.marker, entry.label) if n]
    for name in wanted:
        hits = [p for p in free if _key(name) in names[p]]
        if hits:
            return next((p for p in hits if channels[p].index == entry.index), hits[0])
    if wanted:
        return None
    return next((p for p in free if channels[p].index == entry.index), None)
