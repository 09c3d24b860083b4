"""Small metadata helpers: OME colour integers and UDUNITS-2 unit names (the palette and the
colour parser are :mod:`plexhub.colors`)."""

from __future__ import annotations

from plexhub.colors import parse_color


def ome_color_to_hex(value: int | str) -> str:
    """Decode an OME-XML ``Color``: a signed 32-bit integer holding R, G, B, A (high to low)."""
    v = int(value) & 0xFFFFFFFF
    return f"{(v >> 24) & 0xFF:02X}{(v >> 16) & 0xFF:02X}{(v >> 8) & 0xFF:02X}"


def hex_to_ome_color(color: str) -> int:
    """Encode RRGGBB as OME's signed RGBA integer (opaque)."""
    v = (int(parse_color(color), 16) << 8) | 0xFF
    return v - (1 << 32) if v >= 1 << 31 else v


def rgb_triplet_to_hex(text: str) -> str | None:
    """'0,255,0' (Akoya style) -> '00FF00'; None when it is not such a triplet."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    r, g, b = (min(255, int(p)) for p in parts)
    return f"{r:02X}{g:02X}{b:02X}"


_UNITS = {
    "µm": "micrometer", "um": "micrometer", "μm": "micrometer", "micron": "micrometer",
    "microns": "micrometer", "micrometer": "micrometer", "micrometre": "micrometer",
    "nm": "nanometer", "nanometer": "nanometer", "mm": "millimeter", "millimeter": "millimeter",
    "cm": "centimeter", "centimeter": "centimeter", "m": "meter", "meter": "meter",
    "å": "angstrom", "angstrom": "angstrom", "pm": "picometer",
    "s": "second", "sec": "second", "second": "second", "ms": "millisecond",
    "millisecond": "millisecond", "min": "minute", "minute": "minute", "h": "hour",
    "hour": "hour", "µs": "microsecond", "us": "microsecond", "microsecond": "microsecond",
    "ns": "nanosecond",
}

_TO_MICROMETER = {"nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "centimeter": 1e4,
                  "meter": 1e6, "angstrom": 1e-4, "picometer": 1e-6}


def udunits(unit: str | None, default: str = "micrometer") -> str:
    """Map OME/vendor unit spellings to UDUNITS-2 names NGFF accepts."""
    if not unit:
        return default
    u = str(unit).strip()
    return _UNITS.get(u, _UNITS.get(u.lower(), default))


def to_micrometer(value: float, unit: str) -> float:
    return value * _TO_MICROMETER[udunits(unit)]


def micrometers_per(unit: str | None) -> float | None:
    """Micrometres in one ``unit`` (a UDUNITS-2 name or an OME/vendor spelling: ``µm``,
    ``nm``, ``mm``, ...); None for no unit, a unit not known or one that is not a length."""
    if not unit:
        return None
    u = str(unit).strip()
    name = _UNITS.get(u, _UNITS.get(u.lower()))
    return _TO_MICROMETER.get(name) if name else None
