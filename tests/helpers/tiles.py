"""Rendered tiles in tests: a display preset with every channel option, and PNG decoding."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

PRESET: dict[str, Any] = {
    "name": "golden",
    "channels": [
        {"label": "DAPI", "color": "0000FF", "window": {"start": 10, "end": 120}},
        {"label": "FITC", "color": "00FF00", "window": {"start": 5, "end": 200}, "gamma": 2.0},
        {"label": "Cy3", "color": "FF0000", "window": {"start": 0, "end": 255},
         "inverted": True, "active": False},
    ],
}


def png(data: bytes) -> np.ndarray:
    """A PNG's pixels as an RGB array."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
