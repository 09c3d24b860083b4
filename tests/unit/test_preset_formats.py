from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ome_zarr_models.common.omero import Omero

from plexhub.errors import InputError
from plexhub.ome_pipeline import preset_formats as pf
from plexhub.presets import LUT_NAMES, Domain, RenderPreset, parse_preset

FINITE = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
COLOR = st.from_regex(r"[0-9A-F]{6}", fullmatch=True)
FAMILY = st.sampled_from(["linear", "polynomial", "exponential", "logarithmic"])
LABEL = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                min_size=1, max_size=12)  # NUL is refused; text() leaves out surrogates too


@st.composite
def _pair(draw: st.DrawFn) -> tuple[float, float]:
    a, b = draw(FINITE), draw(FINITE)
    if a == b:
        b = a + 1.0
    return (a, b) if a < b else (b, a)


@st.composite
def presets(draw: st.DrawFn, fmt: str) -> RenderPreset:
    """Random presets holding exactly what ``fmt`` can express."""
    n = draw(st.integers(1, 60))
    if fmt in ("ngff", "napari"):
        indices = list(range(n))
    else:
        indices = draw(st.lists(st.integers(0, 200), min_size=n, max_size=n, unique=True))
    channels = []
    for i in indices:
        start, end = draw(_pair())
        ch: dict[str, Any] = {"index": i, "active": draw(st.booleans()),
                              "window": {"start": start, "end": end}}
        if fmt != "ngff" and draw(st.booleans()):
            ch["lut"] = draw(st.sampled_from(LUT_NAMES))
        else:
            ch["color"] = draw(COLOR)
        if fmt == "ngff" or (fmt == "cli" and draw(st.booleans())):
            lo, hi = draw(_pair())
            ch["window"] |= {"min": lo, "max": hi}
        if fmt in ("ngff", "query"):
            ch |= {"inverted": draw(st.booleans()), "family": draw(FAMILY),
                   "coefficient": draw(st.floats(1e-3, 100.0))}
        if fmt == "napari":
            ch |= {"label": draw(LABEL), "gamma": draw(st.floats(0.05, 10.0))}
            if draw(st.booleans()):
                lo, hi = draw(_pair())
                ch["domain"] = {"min": lo, "max": hi}
        elif fmt != "query" and draw(st.booleans()):
            ch["label"] = draw(LABEL)
        channels.append(ch)
    doc: dict[str, Any] = {"channels": channels}
    if fmt != "napari":
        doc["model"] = draw(st.sampled_from(["color", "greyscale"]))
    if fmt in ("ngff", "cli"):
        for key in ("default_z", "default_t"):
            if draw(st.booleans()):
                doc[key] = draw(st.integers(0, 500))
    return parse_preset(doc)


def _json(x: Any) -> Any:
    return json.loads(json.dumps(x))


@settings(max_examples=60, deadline=None)
@given(presets("ngff"))
def test_ngff_omero_round_trips(p: RenderPreset) -> None:
    block = _json(pf.to_ngff_omero(p, version="0.4"))
    Omero.model_validate(block)
    assert all(set(c["window"]) == {"min", "max", "start", "end"} for c in block["channels"])
    assert pf.from_ngff_omero(block) == p


@settings(max_examples=60, deadline=None)
@given(presets("query"))
def test_omero_query_round_trips(p: RenderPreset) -> None:
    assert pf.from_omero_query(pf.to_omero_query(p)) == p


@settings(max_examples=60, deadline=None)
@given(presets("cli"))
def test_omero_render_file_round_trips(p: RenderPreset) -> None:
    assert pf.from_omero_render(_json(pf.to_omero_render(p))) == p
    assert pf.from_omero_render(pf.omero_render_yaml(p)) == p


@settings(max_examples=60, deadline=None)
@given(presets("napari"))
def test_napari_settings_round_trip(p: RenderPreset) -> None:
    assert pf.from_napari(_json(pf.to_napari(p))) == p


FULL = parse_preset({
    "name": "full", "model": "greyscale", "default_z": 3, "default_t": 1,
    "provenance": {"method": "percentile", "lower": 0.1, "upper": 99.9, "pixels": 10},
    "channels": [
        {"index": 0, "label": "DAPI", "marker": "DNA", "color": "0000FF", "gamma": 2.0,
         "window": {"start": 10, "end": 20}, "domain": {"min": 0, "max": 255},
         "inverted": True, "family": "exponential", "coefficient": 0.5, "group": "nuclei"},
        {"index": 1, "label": "CD3", "lut": "fire", "active": False,
         "window": {"start": 1, "end": 2, "min": 0, "max": 9}},
    ],
})


def _drop(p: RenderPreset, preset: dict[str, Any], *per_channel: dict[str, Any]
          ) -> RenderPreset:
    chans = [c.model_copy(update=u) for c, u in zip(p.channels, per_channel, strict=True)]
    return p.model_copy(update={**preset, "channels": chans})


def test_ngff_drops_what_it_cannot_hold() -> None:
    from plexhub.ome_pipeline.luts import lut

    back = pf.from_ngff_omero(pf.to_ngff_omero(FULL))
    w0 = FULL.channels[0].window.model_copy(update={"min": 0.0, "max": 255.0})
    brightest = "".join(f"{v:02X}" for v in lut("fire")[-1])
    assert back == _drop(
        FULL, {"name": "", "provenance": None},
        {"marker": None, "gamma": 1.0, "domain": None, "group": None, "window": w0},
        {"lut": None, "color": brightest})


def test_query_drops_what_it_cannot_hold() -> None:
    back = pf.from_omero_query(pf.to_omero_query(FULL))
    plain = {"label": None, "marker": None, "gamma": 1.0, "domain": None, "group": None}
    assert back == _drop(
        FULL, {"name": "", "provenance": None, "default_z": None, "default_t": None},
        plain, plain | {"window": FULL.channels[1].window.model_copy(
            update={"min": None, "max": None})})


def test_omero_render_drops_what_it_cannot_hold() -> None:
    back = pf.from_omero_render(pf.omero_render_yaml(FULL))
    assert back == _drop(
        FULL, {"name": "", "provenance": None},
        {"marker": None, "gamma": 1.0, "domain": None, "group": None, "inverted": False,
         "family": "linear", "coefficient": 1.0}, {})


def test_napari_drops_what_it_cannot_hold() -> None:
    back = pf.from_napari(pf.to_napari(FULL))
    c1 = FULL.channels[1]
    assert back == _drop(
        FULL, {"name": "", "provenance": None, "model": "color", "default_z": None,
               "default_t": None},
        {"marker": None, "group": None, "inverted": False, "family": "linear",
         "coefficient": 1.0},
        {"window": c1.window.model_copy(update={"min": None, "max": None}),
         "domain": Domain(min=0.0, max=9.0)})


def test_omero_web_example_and_base_filling() -> None:
    q = "c=1|100:505$0000FF,2|463:2409$00FF00,3|620:3879$FF0000,-4|447:4136$FF0000&p=normal"
    p = pf.from_omero_query(q)
    assert [(c.index, c.active, c.window.start, c.color) for c in p.channels] == [
        (0, True, 100.0, "0000FF"), (1, True, 463.0, "00FF00"), (2, True, 620.0, "FF0000"),
        (3, False, 447.0, "FF0000")]
    base = pf.from_omero_query(q.replace("$0000FF", "$cool.lut".replace("cool", "viridis")))
    base = base.model_copy(update={"channels": [c.model_copy(update={"label": f"L{c.index}"})
                                                for c in base.channels]})
    short = pf.from_omero_query('?c=2,-1|5:6&m=g&maps=[{"reverse":{"enabled":true}}]', base)
    by_index = {c.index: c for c in short.channels}
    assert short.model == "greyscale"
    assert by_index[1].window.start == 463.0
    assert by_index[1].inverted
    assert by_index[1].label == "L1"
    assert (by_index[0].active, by_index[0].window.end, by_index[0].lut) == (False, 6.0,
                                                                              "viridis")
    assert not by_index[2].active
    assert not by_index[3].active
    with pytest.raises(InputError, match="no window"):
        pf.from_omero_query("c=1$FF0000")
    with pytest.raises(InputError, match="not \\[-\\]N"):
        pf.from_omero_query("c=x|1:2$FF0000")


def test_omero_render_version_one_and_one_based_planes() -> None:
    doc = {"channels": {1: {"color": "FF0000", "min": 5, "max": 50, "label": "A"},
                        "2": {"color": "grays.lut", "min": 0, "max": 10, "active": False}},
           "greyscale": True, "z": 4, "t": 1}
    p = pf.from_omero_render(doc)
    assert p.model == "greyscale"
    assert (p.default_z, p.default_t) == (3, 0)
    a, b = p.channels
    assert (a.window.start, a.window.end, a.window.min, a.label) == (5.0, 50.0, None, "A")
    assert (b.lut, b.active) == ("gray", False)
    with pytest.raises(InputError, match="no colour"):
        pf.from_omero_render({"version": 2, "channels": {1: {"start": 0, "end": 1}}})


def test_napari_reads_common_colormap_spellings() -> None:
    layers = [{"name": n, "contrast_limits": [0, 1], "colormap": cm}
              for n, cm in [("a", "red"), ("b", "#00ff00"), ("c", [0.0, 0.0, 1.0]),
                            ("d", "viridis"), ("e", {"name": "plexhub:hot", "colors": []}),
                            ("f", "grey")]]
    got = [(c.color, c.lut) for c in pf.from_napari(layers).channels]
    assert got == [("FF0000", None), ("00FF00", None), ("0000FF", None), (None, "viridis"),
                   (None, "hot"), (None, "gray")]
    with pytest.raises(InputError, match="colormap"):
        pf.from_napari([{"contrast_limits": [0, 1], "colormap": "inferno"}])


def test_napari_lut_dicts_step_like_the_renderer() -> None:
    layer = pf.to_napari(FULL)[1]
    cmap = layer["colormap"]
    assert cmap["interpolation"] == "zero"
    assert len(cmap["controls"]) == len(cmap["colors"]) + 1 == 257


def test_index_based_formats_need_indices() -> None:
    p = parse_preset({"channels": [{"label": "a", "color": "FF0000",
                                    "window": {"start": 0, "end": 1}}]})
    for fn in (pf.to_ngff_omero, pf.to_omero_query, pf.to_omero_render):
        with pytest.raises(InputError, match="index on every channel"):
            fn(p)
    assert pf.to_napari(p)[0]["name"] == "a"


def test_broken_yaml_is_an_input_error() -> None:
    import pytest

    from plexhub.errors import InputError
    from plexhub.ome_pipeline.preset_formats import from_omero_render

    with pytest.raises(InputError, match="not valid YAML"):
        from_omero_render("channels: {1: [\x96")
