"""The reader and the preset <-> layer mapping through napari's model (no Qt, no GL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import npe2
import numpy as np
import pytest
from napari.components import ViewerModel

from plexhub.colors import PALETTE
from plexhub.presets import bind, parse_preset
from plexhub.widgets.napari_plugin import add_to_viewer, napari_get_reader
from plexhub.widgets.napari_plugin._layers import apply_preset, preset_from_layers
from plexhub.widgets.source import open_image


def _top_colour(layer: Any) -> str:
    """The colour a layer draws at full intensity, as RRGGBB."""
    return "".join(f"{round(v * 255):02X}" for v in layer.colormap.colors[-1][:3])


def test_manifest_declares_reader_and_widget() -> None:
    mf = npe2.PluginManager.instance().get_manifest("plexhub")
    readers, widgets = mf.contributions.readers, mf.contributions.widgets
    assert readers is not None
    assert widgets is not None
    assert [r.command for r in readers] == ["plexhub.get_reader"]
    assert [w.display_name for w in widgets] == ["Render presets", "Cells"]


def test_reader_claims_ome_zarr_and_image_urls_only(store: Path, tmp_path: Path) -> None:
    assert napari_get_reader(str(store)) is not None
    assert napari_get_reader("http://example.org/api/v1/images/abc123") is not None
    assert napari_get_reader("http://example.org/index.html") is None
    (tmp_path / "x.zarr").mkdir()
    assert napari_get_reader(str(tmp_path / "x.zarr")) is None  # not a zarr group
    assert napari_get_reader(str(tmp_path)) is None


def test_one_layer_per_channel_with_the_default_preset(store: Path) -> None:
    src = open_image(store)
    default = bind(src.default_preset(), src.channels)
    vm = ViewerModel()
    layers = vm.open(str(store), plugin="plexhub")
    assert [layer.name for layer in layers] == [c.label for c in src.channels]
    assert len(src.level_shapes) == 2
    for layer, bc in zip(layers, default.channels, strict=True):
        r = bc.render
        assert r is not None
        assert type(layer).__name__ == "Image"
        assert layer.multiscale
        assert len(layer.data) == 2
        assert layer.data[1].shape == (256, 256)  # lazy dask level 1
        assert layer.blending == "additive"
        assert _top_colour(layer) == r.color
        assert list(layer.contrast_limits) == pytest.approx([r.window.start, r.window.end])
        assert layer.gamma == r.gamma
        assert layer.visible is r.active
    # the slider range is the preset's domain once set (napari's reader API cannot)
    layers = add_to_viewer(ViewerModel(), str(store))
    first = default.channels[0].render
    assert first is not None
    assert first.domain is not None
    assert list(layers[0].contrast_limits_range) == [first.domain.min, first.domain.max]


def test_a_chosen_preset_drives_the_layers(store: Path) -> None:
    src = open_image(store)
    labels = [c.label for c in src.channels]
    preset = parse_preset({"name": "two", "channels": [
        {"label": labels[2], "color": "00FF80", "window": {"start": 100, "end": 900},
         "gamma": 0.5, "domain": {"min": 0, "max": 4000}},
        {"label": labels[0], "lut": "fire", "window": {"start": 10, "end": 20},
         "inverted": True},
    ]})
    vm = ViewerModel()
    layers = add_to_viewer(vm, str(store), preset=preset)
    a, b, c = layers
    assert list(c.contrast_limits) == [100, 900]
    assert c.gamma == 0.5
    assert c.visible
    assert list(c.contrast_limits_range) == [0, 4000]
    assert _top_colour(c) == "00FF80"
    assert list(a.contrast_limits) == [10, 20]
    assert a.colormap.name == "plexhub:inverted:fire"
    assert b.visible is False  # not in the preset: plexhub's renderer does not draw it
    # and back: the layers' settings are the preset again (plus the hidden channel)
    back = preset_from_layers(layers, "two")
    by_label = {ch.label: ch for ch in back.channels}
    assert by_label[labels[0]].lut == "fire"
    assert by_label[labels[0]].inverted
    assert by_label[labels[2]].color == "00FF80"
    assert by_label[labels[2]].gamma == 0.5
    domain = by_label[labels[2]].domain
    assert domain is not None
    assert domain.max == 4000
    assert by_label[labels[1]].active is False


def test_apply_and_save_round_trip_in_the_model(store: Path) -> None:
    vm = ViewerModel()
    layers = add_to_viewer(vm, str(store))
    layers[1].contrast_limits = (200, 3000)
    layers[1].gamma = 1.5
    layers[0].visible = False
    saved = preset_from_layers(layers, "mine")
    assert saved.channels[1].window.start == 200
    assert saved.channels[1].window.end == 3000
    assert saved.channels[1].gamma == 1.5
    assert saved.channels[0].active is False
    fresh = add_to_viewer(ViewerModel(), str(store))
    warnings = apply_preset(fresh, saved)
    assert warnings == []
    assert list(fresh[1].contrast_limits) == [200, 3000]
    assert fresh[1].gamma == 1.5
    assert fresh[0].visible is False
    assert fresh[2].visible is True


def test_real_world_omero_block_still_opens(odd_store: Path) -> None:
    vm = ViewerModel()
    layers = vm.open(str(odd_store), plugin="plexhub")
    assert len(layers) == 3
    colours = [_top_colour(layer) for layer in layers]
    assert colours == list(PALETTE[:3])  # missing colours: the palette
    for layer in layers:
        lo, hi = layer.contrast_limits
        assert hi > lo
        assert lo != 500
        assert layer.visible
    data = np.asarray(layers[0].data[1][:64, :64])
    assert data.dtype == np.uint16
    assert data.any()


def test_integer_labels_open_as_labels(label_store: Path) -> None:
    vm = ViewerModel()
    layers = vm.open(str(label_store), plugin="plexhub")
    assert [type(layer).__name__ for layer in layers] == ["Labels"]
    data = np.asarray(layers[0].data)
    assert data.dtype.kind in "iu"
    assert data.shape == (128, 128)
