"""Every limit on what a caller or a source file may make plexhub parse, hold or render, in
one place (the README's limits table is checked against :data:`LIMITS`).

A limit is data: a name, a value, its unit and what it protects. Code reads the constants
below; nothing else in the tree hard-codes a size a hostile input could push on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    value: int
    unit: str
    what: str


LIMITS: dict[str, Limit] = {}


def _limit(name: str, value: int, unit: str, what: str) -> int:
    LIMITS[name] = Limit(name, value, unit, what)
    return value


# --- published notebooks ----------------------------------------------------------------
NOTEBOOK_BYTES = _limit("notebook_bytes", 50 * 2**20, "bytes",
                        "an .ipynb document published to a study")

# --- portal forms -------------------------------------------------------------------------
LOGIN_FORM_BYTES = _limit("login_form_bytes", 8192, "bytes", "the portal's login form body")

# --- rendering ----------------------------------------------------------------------------
REGION_PIXELS = _limit("region_pixels", 4096 * 4096, "pixels",
                       "one rendered region (webgateway render_image_region, tiles)")
