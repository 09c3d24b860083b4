"""The reader and the dock widget against a real API server (uvicorn on a free port)."""

from __future__ import annotations

from typing import Any

import pytest
from napari.components import ViewerModel
from qtpy.QtCore import Qt

from plexhub.presets import bind, parse_preset
from plexhub.widgets.source import open_image
from tests.helpers.napari import LiveApi

pytestmark = pytest.mark.usefixtures("api_env")


def _default(api: LiveApi, image_id: str) -> dict[str, Any]:
    summary = next(s for s in api.presets(image_id) if s["is_default"])
    return dict(api.get(f"/api/v1/presets/{summary['id']}")["document"])


def test_reader_opens_an_api_image_url(live_api: tuple[LiveApi, str]) -> None:
    api, image_id = live_api
    src = open_image(api.image_url(image_id))
    default = bind(parse_preset(_default(api, image_id)), src.channels)
    vm = ViewerModel()
    layers = vm.open(api.image_url(image_id), plugin="plexhub")
    assert [layer.name for layer in layers] == [c.label for c in src.channels]
    for layer, bc in zip(layers, default.channels, strict=True):
        assert bc.render is not None
        assert list(layer.contrast_limits) == pytest.approx(
            [bc.render.window.start, bc.render.window.end])
        assert layer.blending == "additive"
        assert layer.visible is bc.render.active
        assert layer.metadata["plexhub"]["image_id"] == image_id
    level0 = layers[0].data[0] if layers[0].multiscale else layers[0].data
    assert int(level0[:32, :32].max().compute()) > 0  # pixels over HTTP


def test_url_names_a_preset(live_api: tuple[LiveApi, str]) -> None:
    api, image_id = live_api
    labels = [c.label for c in open_image(api.image_url(image_id)).channels]
    saved = api.post(f"/api/v1/images/{image_id}/presets", {"name": "url-test", "channels": [
        {"label": labels[1], "color": "FF00FF", "window": {"start": 10, "end": 700},
         "gamma": 0.8}]})
    vm = ViewerModel()
    layers = vm.open(f"{api.image_url(image_id)}?preset={saved['id']}@1", plugin="plexhub")
    assert list(layers[1].contrast_limits) == [10, 700]
    assert layers[1].gamma == 0.8
    assert [layer.visible for layer in layers] == [False, True, False]


@pytest.mark.gl
def test_dock_lists_applies_and_saves_presets(live_api: tuple[LiveApi, str],
                                              make_napari_viewer: Any, qtbot: Any) -> None:
    api, image_id = live_api
    labels = [c.label for c in open_image(api.image_url(image_id)).channels]
    bright = api.post(f"/api/v1/images/{image_id}/presets", {"name": "bright", "channels": [
        {"label": labels[0], "color": "0000FF", "window": {"start": 0, "end": 300}},
        {"label": labels[1], "color": "FFFF00", "window": {"start": 0, "end": 200},
         "gamma": 1.5},
        {"label": labels[2], "color": "00FF00", "window": {"start": 0, "end": 100},
         "active": False}]})
    viewer = make_napari_viewer(show=True)
    viewer.open(api.image_url(image_id), plugin="plexhub")
    _, widget = viewer.window.add_plugin_dock_widget("plexhub", "Render presets")
    assert widget.image_combo.count() == 1
    listed = {widget.preset_combo.itemData(i) for i in range(widget.preset_combo.count())}
    assert {s["id"] for s in api.presets(image_id)} == listed
    assert bright["id"] in listed
    # the slider range came from the default preset's domain once the dock saw the layers
    assert list(viewer.layers[0].contrast_limits_range) == [0, 65535]

    before = viewer.export_figure(flash=False)
    assert widget.select_preset(bright["id"])
    assert widget.name_edit.text() == "bright"
    qtbot.mouseClick(widget.apply_btn, Qt.MouseButton.LeftButton)
    first, second, third = viewer.layers
    assert list(first.contrast_limits) == [0, 300]
    assert second.gamma == 1.5
    assert third.visible is False
    after = viewer.export_figure(flash=False)
    assert after[..., 0].astype(int).sum() > before[..., 0].astype(int).sum()  # yellow now

    second.contrast_limits = (20, 900)
    qtbot.mouseClick(widget.save_btn, Qt.MouseButton.LeftButton)
    assert "saved bright v2" in widget.status.text()
    latest = api.get(f"/api/v1/presets/{bright['id']}")
    assert latest["version"] == bright["version"] + 1
    by_label = {c["label"]: c for c in latest["document"]["channels"]}
    assert by_label[labels[1]]["window"]["start"] == 20
    assert by_label[labels[1]]["window"]["end"] == 900
    assert by_label[labels[1]]["color"] == "FFFF00"
    assert by_label[labels[1]]["gamma"] == 1.5
    assert by_label[labels[2]]["active"] is False
