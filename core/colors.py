"""Channel colours, once: the default palette and the one RRGGBB parser (the converter, the
presets, the notebook viewer and napari all use these)."""

from __future__ import annotations

import re

from plexhub.errors import InputError

#: colours for channels without one: blue first (nuclear stain), then distinct hues
PALETTE = ("0000FF", "00FF00", "FF0000", "FFFF00", "FF00FF", "00FFFF", "FF8000", "FFFFFF",
           "8000FF", "00FF80", "FF0080", "80FF00")
#: the three components of an RGB(A) brightfield image
RGB_COLORS = ("FF0000", "00FF00", "0000FF")

_HEX = re.compile(r"^#?([0-9A-Fa-f]{6})$")


def parse_color(value: str) -> str:
    """RRGGBB with or without '#', any case -> upper-case RRGGBB; otherwise an
    :class:`InputError` (a ``ValueError``, so pydantic validators report it as a field error)."""
    m = _HEX.match(value.strip())
    if not m:
        raise InputError(repr(value), "is not a colour",
                         "expected six hex digits such as 00FF00")
    return m.group(1).upper()


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """RRGGBB (as :func:`parse_color` gives it) -> its red, green and blue, 0-255 each."""
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def palette_color(index: int) -> str:
    """The default colour of channel ``index``."""
    return PALETTE[index % len(PALETTE)]


def default_colors(n: int) -> list[str]:
    """Colours of ``n`` channels without their own: white for a single channel."""
    if n == 1:
        return ["FFFFFF"]
    return [palette_color(i) for i in range(n)]
