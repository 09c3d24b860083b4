from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.presets import (
    LUT_NAMES,
    ChannelRender,
    InvalidPresetError,
    PresetMismatchError,
    RenderPreset,
    Window,
    bind,
    content_hash,
    parse_preset,
)

REPO = Path(__file__).resolve().parents[2]


def _doc(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "tumour", "model": "color",
        "channels": [
            {"label": "DAPI", "color": "#0000ff", "window": {"start": 100, "end": 2000}},
            {"marker": "CD3", "lut": "Fire.lut", "window": {"start": 0.5, "end": 90.25},
             "gamma": 2, "inverted": True},
        ],
    }
    doc.update(over)
    return doc


def test_colours_and_luts_are_normalised() -> None:
    p = parse_preset(_doc())
    assert p.channels[0].color == "0000FF"
    assert p.channels[1].lut == "fire"
    assert p.channels[1].gamma == 2.0
    assert ChannelRender(index=0, color="abcdef", window=Window(start=0, end=1)).color == "ABCDEF"


@pytest.mark.parametrize(("channel", "message"), [
    ({"index": 0, "color": "F00", "window": {"start": 0, "end": 1}}, "six hex digits"),
    ({"index": 0, "lut": "jet", "window": {"start": 0, "end": 1}}, "unknown LUT"),
    ({"index": 0, "color": "FF0000", "lut": "gray", "window": {"start": 0, "end": 1}},
     "exactly one of color and lut"),
    ({"index": 0, "window": {"start": 0, "end": 1}}, "exactly one of color and lut"),
    ({"index": 0, "color": "FF0000", "window": {"start": 5, "end": 5}},
     "must be greater than start"),
    ({"index": 0, "color": "FF0000", "window": {"start": 0, "end": 1}, "gamma": 0},
     "greater than 0"),
    ({"color": "FF0000", "window": {"start": 0, "end": 1}}, "index, a label or a marker"),
    ({"index": 0, "color": "FF0000", "window": {"start": 0, "end": 1}, "opacity": 1},
     "Extra inputs"),
    ({"index": "0", "color": "FF0000", "window": {"start": 0, "end": 1}}, "valid integer"),
])
def test_invalid_channels_are_refused_with_a_reason(channel: dict[str, object],
                                                    message: str) -> None:
    with pytest.raises(InvalidPresetError, match=message) as info:
        parse_preset({"channels": [channel]})
    assert isinstance(info.value, InputError)


def test_json_text_parses_the_same() -> None:
    assert parse_preset(json.dumps(_doc())) == parse_preset(_doc())


def test_hash_is_stable_across_spellings() -> None:
    a = parse_preset(_doc())
    spelled = _doc()
    spelled["channels"] = [
        {"label": "DAPI", "color": "0000FF", "window": {"start": 100.0, "end": 2000.0},
         "gamma": 1.0, "active": True},
        {"marker": "CD3", "lut": "fire", "window": {"start": 0.5, "end": 90.25}, "gamma": 2.0,
         "inverted": True, "family": "linear"},
    ]
    b = parse_preset(json.loads(json.dumps(spelled)))
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    c = a.model_copy(update={"name": "other"})
    assert content_hash(c) != content_hash(a)
    assert content_hash(parse_preset(_doc(name="x"))) == content_hash(parse_preset(_doc(name="x")))


def _image(*labels: str, markers: tuple[str | None, ...] = ()) -> list[Channel]:
    ms = list(markers) + [None] * (len(labels) - len(markers))
    return [Channel(i, lab, "FFFFFF", ms[i]) for i, lab in enumerate(labels)]


def test_bind_matches_by_marker_or_label_and_warns_on_leftovers() -> None:
    p = parse_preset({"channels": [
        {"marker": "cd3", "color": "00FF00", "window": {"start": 0, "end": 1}},
        {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 1}},
        {"label": "Ki67", "color": "FF0000", "window": {"start": 0, "end": 1}},
    ]})
    image = _image("DAPI", "Opal 520", "PanCK", markers=(None, "CD3"))
    bound = bind(p, image)
    assert [c.render.name if c.render else None for c in bound.channels] == ["DAPI", "cd3", None]
    assert [i for i, _ in bound.active()] == [0, 1]
    assert bound.warnings == ("preset channel 'Ki67' matches no image channel",)


def test_repeated_names_pair_in_order_and_prefer_the_entry_index() -> None:
    image = _image("DAPI", "CD3", "DAPI", "CD8", "DAPI")
    p = parse_preset({"channels": [
        {"label": "DAPI", "index": 4, "color": "0000FF", "window": {"start": 0, "end": 4}},
        {"label": "dapi ", "color": "0000FF", "window": {"start": 0, "end": 1}},
        {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 2}},
    ]})
    bound = bind(p, image)
    ends = {c.index: c.render.window.end for c in bound.channels if c.render}
    assert ends == {4: 4.0, 0: 1.0, 2: 2.0}
    assert bound.warnings == ()


def test_index_bound_preset_must_fit_the_channel_count() -> None:
    p = parse_preset({"name": "by index", "channels": [
        {"index": i, "color": "FFFFFF", "window": {"start": 0, "end": 1}} for i in range(3)]})
    assert len(bind(p, _image("a", "b", "c")).active()) == 3
    with pytest.raises(PresetMismatchError, match="3 entries, but the image has 4"):
        bind(p, _image("a", "b", "c", "d"))


def test_bind_warns_about_families_it_renders_linearly() -> None:
    p = parse_preset({"channels": [{"index": 0, "color": "FFFFFF", "family": "logarithmic",
                                    "window": {"start": 0, "end": 1}}]})
    assert "rendered as linear" in bind(p, _image("a")).warnings[0]


def test_as_preset_gives_every_matched_channel_its_index_and_label() -> None:
    p = parse_preset({"channels": [
        {"marker": "CD3", "color": "00FF00", "window": {"start": 0, "end": 1}}]})
    out = bind(p, _image("DAPI", "Opal 520", markers=(None, "CD3"))).as_preset()
    assert [(c.index, c.label, c.marker) for c in out.channels] == [(1, "Opal 520", "CD3")]


def test_sixty_channels_bind() -> None:
    image = [Channel(i, f"marker{i}", "FFFFFF") for i in range(60)]
    p = RenderPreset(channels=[ChannelRender(label=f"MARKER{i}", color="FF00FF",
                                             window=Window(start=0, end=i + 1)) for i in range(60)])
    bound = bind(p, image)
    assert len(bound.active()) == 60
    assert bound.warnings == ()


def test_lut_names_match_the_tables() -> None:
    from plexhub.ome_pipeline import luts

    assert set(LUT_NAMES) == set(luts.NAMES)
    for name in LUT_NAMES:
        table = luts.lut(name)
        assert table.shape == (256, 3)
        assert table.dtype.name == "uint8"


def test_presets_module_imports_only_what_the_rules_allow() -> None:
    tree = ast.parse((REPO / "core" / "presets.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed_first_party = {"plexhub.model", "plexhub.errors", "plexhub.colors",
                           "plexhub.limits"}
    for name in imported:
        if name.startswith("plexhub"):
            assert name in allowed_first_party, name
        else:
            assert name.split(".")[0] in {"__future__", "hashlib", "json", "re", "collections",
                                          "dataclasses", "typing", "pydantic"}, name
