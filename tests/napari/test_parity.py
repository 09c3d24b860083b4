"""napari draws a preset like plexhub's own renderer: within 1 per 8-bit value.

Real rendering: a shown Qt viewer under Xvfb + Mesa (hidden viewers screenshot black).
``export_figure`` crops the canvas to the data extent, so pixel (y, x) is data pixel (y, x).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from plexhub.model import Channel
from plexhub.ome_pipeline.render import render
from plexhub.presets import RenderPreset, bind, parse_preset
from plexhub.widgets.napari_plugin._layers import layer_kwargs

pytestmark = pytest.mark.gl

N = 64
CHANNELS = [Channel(0, "DAPI", "0000FF"), Channel(1, "CD3", "FF0000"),
            Channel(2, "CD8", "00FF00")]


def golden_planes() -> npt.NDArray[np.uint16]:
    """Three 64x64 uint16 planes: ramps across the window, beyond both ends, and a blob."""
    y, x = np.mgrid[0:N, 0:N].astype(np.float64)
    ramp_x = 50 + x * 70  # 50 .. 4460: below, across and above the windows
    ramp_y = y * 1000  # 0 .. 63000
    blob = 3000 * np.exp(-((y - 40) ** 2 + (x - 20) ** 2) / 200)
    return np.stack([ramp_x, ramp_y, blob]).round().astype(np.uint16)


# One channel per RGB component: napari adds layers in an 8-bit framebuffer, each layer
# rounded on its own, and its colormap texture is 8-bit too, so a component fed by one layer
# is within 1 of plexhub's value; two layers on one component can be 2 off (tested below).
GOLDEN: dict[str, Any] = {"name": "golden", "channels": [
    {"label": "DAPI", "color": "FF0000", "window": {"start": 400, "end": 4000}, "gamma": 0.5},
    {"label": "CD3", "color": "00FF00", "window": {"start": 5000, "end": 60000}, "gamma": 2.0,
     "inverted": True},
    {"label": "CD8", "color": "0000FF", "window": {"start": 100, "end": 2500}},
]}


def napari_render(viewer: Any, planes: npt.NDArray[Any], preset: RenderPreset) -> Any:
    for plane, kw in zip(planes, layer_kwargs(preset, CHANNELS, planes.dtype), strict=True):
        viewer.add_image(plane, **kw)
    shot = viewer.export_figure(flash=False)
    assert shot.shape == (N, N, 4), shot.shape
    return shot[..., :3].astype(int)


@pytest.mark.parametrize("variant", ["colours", "grey-lut", "one-hidden"])
def test_napari_matches_plexhub_render(make_napari_viewer: Any, variant: str) -> None:
    doc: dict[str, Any] = {"name": "golden", "channels": [dict(c) for c in GOLDEN["channels"]]}
    if variant == "grey-lut":  # the gray LUT alone, inverted
        doc["channels"] = [{"label": "CD3", "lut": "gray", "inverted": True, "gamma": 0.7,
                            "window": {"start": 0, "end": 63000}}]
    if variant == "one-hidden":
        doc["channels"][1]["active"] = False
    preset = parse_preset(doc)
    planes = golden_planes()
    expected = render(planes, bind(preset, CHANNELS)).astype(int)
    assert len(np.unique(expected.reshape(-1, 3), axis=0)) > 60  # a rich image, not flat
    viewer = make_napari_viewer(show=True)
    got = napari_render(viewer, planes, preset)
    diff = np.abs(got - expected)
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    assert diff.max() <= 1, (f"max diff {diff.max()} at {worst}: napari {got[worst[:2]]} "
                             f"plexhub {expected[worst[:2]]}")


def test_two_layers_on_one_component_add_in_8_bits(make_napari_viewer: Any) -> None:
    """Green fed by two layers (00FF00 and 0080FF): each is rounded to 8 bits before the
    framebuffer adds them, so the sum may be 2 off; nearly all pixels stay within 1."""
    doc: dict[str, Any] = {"name": "golden", "channels": [dict(c) for c in GOLDEN["channels"]]}
    doc["channels"][2]["color"] = "0080FF"
    preset = parse_preset(doc)
    planes = golden_planes()
    expected = render(planes, bind(preset, CHANNELS)).astype(int)
    viewer = make_napari_viewer(show=True)
    diff = np.abs(napari_render(viewer, planes, preset) - expected)
    assert diff.max() <= 2
    assert (diff <= 1).mean() > 0.98


def test_fire_lut_is_within_one_lut_entry(make_napari_viewer: Any) -> None:
    """A stepped LUT goes through vispy's 1024-texel texture: where a step edge falls inside
    a texel, napari may show the neighbouring entry (fire jumps up to ~8 per entry), so
    ±1 holds per LUT *index* there, and per 8-bit value for nearly every pixel."""
    from plexhub.ome_pipeline.luts import lut
    from plexhub.ome_pipeline.render import normalise, quantise

    preset = parse_preset({"channels": [{"label": "CD3", "lut": "fire",
                                         "window": {"start": 0, "end": 63000}}]})
    planes = golden_planes()
    expected = render(planes, bind(preset, CHANNELS)).astype(int)
    viewer = make_napari_viewer(show=True)
    got = napari_render(viewer, planes, preset)
    close = np.abs(got - expected).max(axis=-1) <= 1
    assert close.mean() > 0.9, close.mean()
    index = quantise(normalise(planes[1], preset.channels[0])).astype(int)
    table = lut("fire").astype(int)
    near = np.zeros_like(close)
    for step in (-1, 0, 1):
        near |= np.abs(got - table[np.clip(index + step, 0, 255)]).max(axis=-1) <= 1
    assert near.all(), np.argwhere(~near)[:5]
