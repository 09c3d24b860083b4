"""Golden images for THE compositing formula: hand-computed 8-bit values (see render.py)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline.render import encode, render
from plexhub.presets import BoundPreset, bind, parse_preset


def _bind(channels: list[dict[str, Any]], model: str = "color") -> BoundPreset:
    preset = parse_preset({"model": model, "channels": channels})
    image = [Channel(i, f"c{i}", "FFFFFF") for i in range(len(channels))]
    return bind(preset, image)


def _row(*values: float, dtype: Any = np.uint16) -> npt.NDArray[Any]:
    return np.array([values], dtype=dtype)


def test_two_colour_channels_window_gamma_and_addition() -> None:
    bound = _bind([
        {"index": 0, "color": "FF0000", "window": {"start": 100, "end": 300}},
        {"index": 1, "color": "00FF80", "window": {"start": 0, "end": 1000}, "gamma": 2},
    ])
    planes = np.stack([_row(50, 100, 150, 200, 300, 400), _row(0, 250, 500, 750, 1000, 1000)])
    out = render(planes, bound)
    # ch0: v = 0, 0, .25, .5, 1, 1 -> R = floor(255 v + .5)
    # ch1: v = 0, .25, .5, .75, 1, 1; v**2 = 0, .0625, .25, .5625, 1, 1
    #      G = floor(255 v**2 + .5), B = floor(128 v**2 + .5)
    expected = np.array([[[0, 0, 0], [0, 16, 8], [64, 64, 32], [128, 143, 72],
                          [255, 255, 128], [255, 255, 128]]], np.uint8)
    assert out.dtype == np.uint8
    assert out.shape == (1, 6, 3)
    assert np.array_equal(out, expected)


def test_sum_clips_at_white() -> None:
    bound = _bind([
        {"index": 0, "color": "FF0000", "window": {"start": 0, "end": 4}},
        {"index": 1, "color": "FF8000", "window": {"start": 0, "end": 4}},
    ])
    out = render(np.stack([_row(3, 1), _row(3, 1)]), bound)
    # v = .75 each: R = 1.5 -> clipped 255, G = .75 * 128 -> 96; v = .25: R = 128, G = 32
    assert out[0].tolist() == [[255, 96, 0], [128, 32, 0]]


def test_inverted_fire_lut() -> None:
    bound = _bind([{"index": 0, "lut": "fire", "window": {"start": 0, "end": 255},
                    "inverted": True}])
    out = render(_row(0, 255, 127, dtype=np.uint8)[None], bound)
    # inverted v = 1, 0, 128/255 -> LUT entries 255, 0, 128; fire[128] = (240, 79, 0)
    assert out[0].tolist() == [[255, 255, 255], [0, 0, 0], [240, 79, 0]]


def test_gamma_below_one_and_nan_on_float_data() -> None:
    bound = _bind([{"index": 0, "color": "FFFFFF", "window": {"start": 0, "end": 1},
                    "gamma": 0.5}])
    out = render(_row(np.nan, 0.25, 1.0, -3.0, dtype=np.float32)[None], bound)
    # v = (nan -> 0), .25, 1, 0; sqrt -> 0, .5, 1, 0 -> 0, 128, 255, 0
    assert out[0, :, 0].tolist() == [0, 128, 255, 0]
    assert np.array_equal(out[..., 0], out[..., 1])


def test_greyscale_draws_the_first_active_channel_in_grey() -> None:
    bound = _bind([
        {"index": 0, "color": "00FF00", "active": False, "window": {"start": 0, "end": 1}},
        {"index": 1, "color": "FF0000", "window": {"start": 0, "end": 100}},
        {"index": 2, "lut": "fire", "window": {"start": 0, "end": 100}},
    ], model="greyscale")
    planes = np.stack([_row(1, 1, 1), _row(0, 50, 100), _row(100, 100, 100)])
    out = render(planes, bound)
    assert out[0].tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_viridis_lut_ends_and_lut_plus_colour() -> None:
    bound = _bind([
        {"index": 0, "lut": "viridis", "window": {"start": 0, "end": 10}},
        {"index": 1, "color": "000010", "window": {"start": 0, "end": 10}},
    ])
    out = render(np.stack([_row(0, 10), _row(0, 10)]), bound)
    assert out[0].tolist() == [[68, 1, 84], [253, 231, 37 + 16]]


def test_integer_tables_match_the_float_path() -> None:
    rng = np.random.default_rng(3)
    bound = _bind([
        {"index": 0, "color": "FF8000", "window": {"start": 120.5, "end": 3000}, "gamma": 0.7},
        {"index": 1, "lut": "hot", "window": {"start": 10, "end": 900}, "inverted": True},
        {"index": 2, "color": "00FFFF", "window": {"start": 0, "end": 5000}, "gamma": 1.8},
    ])
    planes = rng.integers(0, 6000, (3, 64, 64)).astype(np.uint16)
    assert np.array_equal(render(planes, bound), render(planes.astype(np.float32), bound))
    signed = (planes.astype(np.int32) - 3000).astype(np.int16)
    assert np.array_equal(render(signed, bound), render(signed.astype(np.float32), bound))


def test_sixty_channels_bind_and_render() -> None:
    colours = ["FF0000", "00FF00", "0000FF"]
    bound = _bind([{"index": i, "color": colours[i % 3], "window": {"start": 0, "end": 100}}
                   for i in range(60)])
    planes = np.ones((60, 8, 8), np.uint16)
    out = render(planes, bound)
    # 20 channels per primary, v = .01 each -> .2 -> 51
    assert np.abs(out.astype(int) - 51).max() <= 1


def test_only_active_planes_are_needed() -> None:
    bound = _bind([
        {"index": 0, "color": "FF0000", "window": {"start": 0, "end": 2}},
        {"index": 1, "color": "00FF00", "active": False, "window": {"start": 0, "end": 2}},
    ])
    out = render({0: _row(0, 1, 2)}, bound)
    assert out[0, :, 0].tolist() == [0, 128, 255]
    with pytest.raises(InputError, match="no plane for image channel 0"):
        render({1: _row(0, 1, 2)}, bound)


def test_no_active_channel_is_black() -> None:
    bound = _bind([{"index": 0, "color": "FF0000", "active": False,
                    "window": {"start": 0, "end": 2}}])
    assert not render(np.ones((1, 4, 5), np.uint8), bound).any()


def _reference(planes: npt.NDArray[Any], bound: BoundPreset) -> npt.NDArray[np.uint8]:
    """The formula written out plainly: every weighted term added to zeros, in order."""
    from plexhub.ome_pipeline.render import _lut_float

    def normalise(x: npt.NDArray[Any], ch: Any) -> npt.NDArray[np.float32]:
        f32 = np.float32
        v = (x.astype(f32) - f32(ch.window.start)) * f32(1.0 / (ch.window.end - ch.window.start))
        v = np.clip(v, f32(0), f32(1))
        if ch.gamma != 1.0:
            v = v ** f32(ch.gamma)
        return f32(1) - v if ch.inverted else v

    active = bound.active()
    acc = np.zeros((3, *planes.shape[1:]), np.float32)
    for i, ch in active:
        if ch.color is not None:
            v = normalise(planes[i], ch)
            for c, j in enumerate((0, 2, 4)):
                acc[c] += v * np.float32(int(ch.color[j:j + 2], 16) / 255.0)
    for i, ch in active:
        if ch.lut is not None:
            table = _lut_float(ch.lut)
            idx = np.floor(normalise(planes[i], ch) * np.float32(255) + np.float32(0.5))
            idx = idx.astype(np.uint8)
            for c in range(3):
                acc[c] += table[c][idx]
    q = np.floor(np.clip(acc, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    return np.moveaxis(q, 0, -1)


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_paths_equal_the_plain_formula_bit_for_bit(seed: int) -> None:
    """Primaries written straight into their sums, weights of 255 not multiplied: the same
    bits as the plain formula, for any mix of colours, LUTs, gammas and inversions."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    palette = ["FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "80FF00", "123456",
               "FFFFFF", "000000"]
    channels = []
    for i in range(n):
        entry: dict[str, Any] = {"index": i, "window": {"start": float(rng.integers(0, 500)),
                                                        "end": float(rng.integers(600, 9000))},
                                 "gamma": float(rng.choice([1.0, 0.6, 1.7])),
                                 "inverted": bool(rng.random() < 0.2),
                                 "active": bool(rng.random() < 0.85)}
        if rng.random() < 0.2:
            entry["lut"] = str(rng.choice(["hot", "viridis", "fire"]))
        else:
            entry["color"] = str(rng.choice(palette))
        channels.append(entry)
    bound = _bind(channels)
    planes = rng.integers(0, 10000, (n, 48, 40)).astype(np.uint16)
    assert np.array_equal(render(planes, bound), _reference(planes, bound))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_produces_decodable_images(fmt: str) -> None:
    from PIL import Image

    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12, 0] = 200
    data = encode(rgb, fmt, quality=95)  # type: ignore[arg-type]
    img = Image.open(io.BytesIO(data))
    assert img.size == (24, 16)
    back = np.asarray(img.convert("RGB"))
    if fmt == "png":
        assert np.array_equal(back, rgb)
    else:
        assert np.abs(back.astype(int) - rgb).mean() < 4


def test_encode_refuses_bad_arguments() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(InputError, match="not an image format"):
        encode(rgb, "gif")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="out of range"):
        encode(rgb, "jpeg", quality=0)
    with pytest.raises(InputError, match="uint8 image"):
        encode(rgb.astype(np.float32), "png")


def test_planes_must_share_one_shape() -> None:
    bound = _bind([{"index": i, "color": "FF0000", "window": {"start": 0, "end": 2}}
                   for i in range(2)])
    with pytest.raises(InputError, match="same for every channel"):
        render({0: np.zeros((4, 4), np.uint8), 1: np.zeros((4, 5), np.uint8)}, bound)
