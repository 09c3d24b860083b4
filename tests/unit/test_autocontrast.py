from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline.autocontrast import auto_window, default_preset
from plexhub.ome_pipeline.histogram import PartialHistogram, finalize
from plexhub.presets import bind


def _stored(values: np.ndarray[Any, Any]) -> dict[str, Any]:
    stored = finalize(PartialHistogram.of(values), values.dtype)
    return dict(json.loads(json.dumps(stored)))  # as read back from histograms.json


def test_percentile_window_follows_the_data() -> None:
    rng = np.random.default_rng(0)
    v = rng.gamma(2.0, 300.0, 200_000).astype(np.uint16)
    start, end = auto_window(_stored(v), "percentile", 0.1, 99.9)
    assert start == pytest.approx(np.percentile(v, 0.1), abs=2)
    assert end == pytest.approx(np.percentile(v, 99.9), abs=2)
    assert auto_window(_stored(v), "minmax") == (float(v.min()), float(v.max()))


def test_sparse_and_constant_channels_still_get_a_window() -> None:
    sparse = np.zeros(100_000, np.uint16)
    sparse[:20] = 5000
    start, end = auto_window(_stored(sparse))  # both percentiles in the zero bin -> max
    assert start == pytest.approx(0.0, abs=0.01)
    assert end == 5000.0
    assert auto_window(_stored(np.full(100, 7, np.uint8))) == (7.0, 8.0)
    empty = finalize(PartialHistogram.empty(), np.dtype(np.uint16))
    assert auto_window(empty) == (0.0, 1.0)


def test_bad_arguments_are_refused() -> None:
    stored = _stored(np.arange(10, dtype=np.uint8))
    with pytest.raises(InputError, match="auto-window method"):
        auto_window(stored, "median")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="lower < upper"):
        auto_window(stored, "percentile", 99, 1)


def _sixty() -> tuple[list[Channel], dict[str, Any]]:
    rng = np.random.default_rng(1)
    channels = [Channel(i, f"m{i}", "00FF00", marker=f"CD{i}") for i in range(60)]
    hists = []
    for i in range(60):
        v = rng.integers(0, 40_000 + 300 * i, 65_536).astype(np.uint16)
        hists.append({"index": i, "label": f"m{i}", **_stored(v)})
    return channels, {"channels": hists}


def test_default_preset_for_sixty_channels_is_fast_and_complete() -> None:
    channels, doc = _sixty()
    assert all(len(h["counts"]) <= 4096 for h in doc["channels"])
    t0 = time.perf_counter()
    preset = default_preset(channels, doc, "uint16")
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0  # typically ~20 ms: histogram lookups only
    assert len(preset.channels) == 60
    assert [c.active for c in preset.channels[:6]] == [True] * 4 + [False] * 2
    first = preset.channels[0]
    assert (first.index, first.label, first.marker, first.color) == (0, "m0", "CD0", "00FF00")
    assert first.domain is not None
    assert (first.domain.min, first.domain.max) == (0.0, 65535.0)
    h0 = doc["channels"][0]
    assert (first.window.min, first.window.max) == (h0["min"], h0["max"])
    assert h0["min"] <= first.window.start < first.window.end <= h0["max"]
    prov = preset.provenance
    assert prov is not None
    assert (prov.method, prov.lower, prov.upper, prov.level) == ("percentile", 0.1, 99.9, 0)
    assert prov.source == "histogram of level 0, 65536 pixels"
    assert len(bind(preset, channels).active()) == 4


def test_default_preset_accepts_a_list_and_fills_missing_histograms() -> None:
    v = np.linspace(0.0, 2.0, 1000).astype(np.float32)
    channels = [Channel(0, "a", "FF0000"), Channel(1, "b", "0000FF")]
    preset = default_preset(channels, [{"index": 0, **_stored(v)}], np.float32,
                            method="minmax", max_active=None)
    a, b = preset.channels
    assert (a.window.start, a.window.end) == (0.0, 2.0)
    assert a.domain is not None
    assert (a.domain.min, a.domain.max) == (0.0, 2.0)
    assert (b.window.start, b.window.end, b.window.min) == (0.0, 1.0, None)
    assert a.active
    assert b.active
    assert preset.provenance is not None
    assert preset.provenance.lower is None
