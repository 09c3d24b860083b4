"""Static figures for reports that are published read-only (no kernel, no JavaScript): a
grouped bar chart drawn with Pillow into a PNG.

``grouped_bars({"vehicle": {"T": 120.0, "B": 40.0}, "high dose": {...}})`` draws one group
of bars per key (e.g. a dose group), one bar per category (e.g. a phenotype) in the given
colours, with the value axis, a legend and the optional error bars (``errors``, same shape).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from plexhub.colors import parse_color

FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSans", "Arial.ttf")


def _font(size: int) -> tuple[Any, bool]:
    """A font that has ² and µ where the system has one (DejaVu Sans), else Pillow's own
    (ASCII only: the caller writes ^2 instead)."""
    from PIL import ImageFont

    for name in FONT_NAMES:
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    return ImageFont.load_default(size=size), False


def nice_step(top: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 x 10^k) that covers ``top`` in about ``ticks`` steps."""
    if top <= 0 or not math.isfinite(top):
        return 1.0
    raw = top / ticks
    mag = float(10 ** math.floor(math.log10(raw)))
    return next(float(m * mag) for m in (1, 2, 5, 10) if m * mag >= raw)


def grouped_bars(values: Mapping[str, Mapping[str, float]], colors: Mapping[str, str],
                 *, title: str = "", unit: str = "",
                 errors: Mapping[str, Mapping[str, float]] | None = None,
                 categories: Sequence[str] | None = None,
                 size: tuple[int, int] = (760, 420)) -> bytes:
    """A PNG of grouped bars: groups along x (the keys of ``values``), one bar per category
    (``categories``, default: every category in the order first seen)."""
    from PIL import Image, ImageDraw

    cats = list(categories) if categories is not None else \
        list(dict.fromkeys(c for g in values.values() for c in g))
    groups = list(values)
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font, full = _font(13)
    small, _ = _font(11)
    if not full:
        title, unit = (s.replace("²", "^2").replace("µ", "u") for s in (title, unit))
    left, right, top, bottom = 70, 150, 56, 44
    plot_w, plot_h = w - left - right, h - top - bottom
    highest = max([values[g].get(c, 0.0) + (errors or {}).get(g, {}).get(c, 0.0)
                   for g in groups for c in cats] or [0.0])
    step = nice_step(highest)
    ymax = step * max(1, math.ceil(highest / step)) if highest > 0 else 1.0

    def y_of(v: float) -> float:
        return top + plot_h * (1 - v / ymax)

    if title:
        draw.text((left, 8), title, fill="black", font=font)
    k = 0.0
    while k <= ymax + 1e-9:
        y = y_of(k)
        draw.line([(left - 4, y), (left + plot_w, y)], fill=(225, 225, 225))
        label = f"{k:g}"
        box = draw.textbbox((0, 0), label, font=small)
        draw.text((left - 8 - (box[2] - box[0]), y - (box[3] - box[1]) / 2 - 2), label,
                  fill="black", font=small)
        k += step
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)],
              fill="black")
    if unit:  # above the value axis, below the title
        draw.text((8, top - 24), unit, fill="black", font=small)
    slot = plot_w / max(1, len(groups))
    bar = slot * 0.8 / max(1, len(cats))
    for gi, g in enumerate(groups):
        x0 = left + gi * slot + slot * 0.1
        for ci, c in enumerate(cats):
            v = float(values[g].get(c, 0.0))
            rgb = "#" + parse_color(colors.get(c, "808080"))
            xa, xb = x0 + ci * bar, x0 + (ci + 1) * bar - 2
            draw.rectangle([(xa, y_of(v)), (xb, y_of(0))], fill=rgb, outline="black")
            err = (errors or {}).get(g, {}).get(c)
            if err:
                xm = (xa + xb) / 2
                draw.line([(xm, y_of(v - err)), (xm, y_of(v + err))], fill="black", width=1)
                draw.line([(xm - 3, y_of(v + err)), (xm + 3, y_of(v + err))], fill="black")
        box = draw.textbbox((0, 0), g, font=font)
        draw.text((left + gi * slot + (slot - (box[2] - box[0])) / 2, top + plot_h + 10), g,
                  fill="black", font=font)
    for ci, c in enumerate(cats):  # the legend
        y = top + ci * 20
        draw.rectangle([(w - right + 16, y + 2), (w - right + 28, y + 14)],
                       fill="#" + parse_color(colors.get(c, "808080")), outline="black")
        draw.text((w - right + 34, y), c, fill="black", font=small)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
