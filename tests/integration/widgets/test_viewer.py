"""The notebook viewer's kernel side: tiles, edits from the UI, presets, views, exports,
on a local OME-Zarr and on an image of a real API server."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image

from plexhub.client import ApiClient
from plexhub.errors import InputError
from plexhub.ome_pipeline.conversion import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.presets import parse_preset
from plexhub.widgets import Viewer
from plexhub.widgets.source import open_image
from plexhub.widgets.tiles import TILE, render_region, scale_bar, tile_bytes, tile_png
from tests.helpers.live_api import LiveApi, live_api
from tests.helpers.zarrs import read

Sent = list[tuple[dict[str, Any], list[bytes]]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("viewer")
    write_ome_tiff(tmp / "s.ome.tif", SyntheticSpec(size_y=700, size_x=900, channels=5,
                                                    tile=256, seed=11))
    convert(tmp / "s.ome.tif", tmp / "s.zarr")
    return tmp / "s.zarr"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(tmp_path_factory.mktemp("viewer-api")) as live:
        yield live


def capture(v: Viewer) -> Sent:
    sent: Sent = []
    v.canvas.send = lambda msg, buffers=None: sent.append((msg, list(buffers or [])))
    return sent


def dirty(v: Viewer) -> bool:
    """``v.canvas.dirty`` read afresh (mypy would keep an asserted attribute narrowed across
    the edits in between)."""
    return bool(v.canvas.dirty)


def ui(v: Viewer, op: str, **args: Any) -> None:
    """What the browser sends when the user edits the panel."""
    v._on_msg(v.canvas, {"type": "op", "op": op, "args": args}, [])


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


decode = png  # Pillow reads JPEG too


def jpeg_of(got: np.ndarray, expect: np.ndarray) -> bool:
    """``got`` is ``expect`` through a JPEG at quality 85 (4:2:0): same shape, same colour
    on average, a few levels off per pixel on the synthetic images' fine noise."""
    diff = got.astype(int) - expect.astype(int)
    return got.shape == expect.shape and bool(np.abs(diff.mean(axis=(0, 1))).max() < 1.5) \
        and float(np.abs(diff).mean()) < 6.0


def test_tiles_are_the_composite_of_the_current_settings(store: Path) -> None:
    v = Viewer(store)
    sent = capture(v)
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                         "tiles": [[0, 0], [2, 3]]}, [])
    assert [m["row"] for m, _ in sent] == [0, 2]
    assert {m["mime"] for m, _ in sent} == {"image/jpeg"}
    first = decode(sent[0][1][0])
    expect = render_region(v.source, v.preset, 0, slice(0, TILE), slice(0, TILE))
    assert jpeg_of(first, expect)  # JPEG at the API's quality
    assert np.array_equal(png(tile_png(v.source, v.preset, 0, 0, 0)), expect)
    edge = decode(sent[1][1][0])  # row 2 of 700 px: 188 rows; col 3 of 900: 132 columns
    assert edge.shape == (700 - 2 * TILE, 900 - 3 * TILE, 3)
    assert v.tiles_rendered == 2
    # a request for settings that changed meanwhile is answered stale, not rendered (the
    # browser counts its requests in flight)
    ui(v, "solo", index=1)
    sent.clear()
    rendered = v.tiles_rendered
    v._on_msg(v.canvas, {"type": "tiles", "gen": "stale", "level": 0, "tiles": [[0, 0]]}, [])
    assert sent == [({"type": "tile", "gen": "stale", "level": 0, "row": 0, "col": 0,
                      "stale": True}, [])]
    assert v.tiles_rendered == rendered


def test_an_edit_pushes_the_centre_tiles_of_the_new_settings(store: Path) -> None:
    """Untick a channel: the kernel sends the view's centre tiles in the new settings
    without waiting for the browser to ask; the browser's own request for them, one round
    trip later, is answered without rendering them again."""
    v = Viewer(store)
    v.canvas.viewport = {"x": 450.0, "y": 350.0, "zoom": 1.0}  # level 0, 640 x 420 px
    sent = capture(v)
    ui(v, "set_active", indices=[0], active=False)
    pushed = [(m, b) for m, b in sent if m.get("type") == "tile"]
    assert [m["pushed"] for m, _ in pushed] == [True, True]
    assert {m["gen"] for m, _ in pushed} == {v.canvas.gen}
    assert (pushed[0][0]["row"], pushed[0][0]["col"]) == (1, 1)  # the centre's tile first
    m0 = pushed[0][0]
    assert pushed[0][1][0] == tile_bytes(v.source, v.preset, 0, m0["row"], m0["col"])
    rendered = v.tiles_rendered
    sent.clear()
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                         "tiles": [[m0["row"], m0["col"]], [0, 0]]}, [])
    assert [bool(b) for _, b in sent] == [False, True]  # the pushed one: stale, once
    assert v.tiles_rendered == rendered + 1
    sent.clear()
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                         "tiles": [[m0["row"], m0["col"]]]}, [])
    assert [bool(b) for _, b in sent] == [True]  # asked again (evicted): rendered
    # an edit that fails changes nothing and pushes nothing
    sent.clear()
    ui(v, "set_window", index=1, start=10, end=5)
    assert not [m for m, _ in sent if m.get("type") == "tile"]


def test_tiles_travel_as_compact_jpeg(store: Path) -> None:
    """Binary comm buffers holding JPEG: several times fewer bytes than the PNG they
    replace, at the API's quality."""
    v = Viewer(store)
    sent = capture(v)
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                         "tiles": [[0, 0], [0, 1], [1, 0], [1, 1]]}, [])
    jpeg = [bufs[0] for _, bufs in sent]
    assert all(isinstance(b, bytes) and b[:3] == b"\xff\xd8\xff" for b in jpeg)
    pngs = [tile_png(v.source, v.preset, 0, r, c) for r, c in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    per_tile = sum(map(len, jpeg)) / len(jpeg)
    assert per_tile * 3 < sum(map(len, pngs)) / len(pngs), (per_tile, list(map(len, pngs)))
    assert per_tile < 48_000  # 256 x 256 RGB: under 0.75 bytes per pixel


def test_ui_edits_reach_python_and_python_edits_reach_the_ui(store: Path) -> None:
    v = Viewer(store)
    gen = v.canvas.gen
    ui(v, "set_active", indices=[3], active=True)
    ui(v, "set_window", index=3, start=100, end=900)
    ui(v, "set_color", index=3, color="#ff00ff")
    assert v.preset.channels[3].active
    assert v.preset.channels[3].window.end == 900
    assert v.canvas.rows[3]["color"] == "FF00FF"
    assert v.canvas.dirty
    assert v.canvas.can_undo
    assert v.canvas.gen != gen
    # Python -> UI: setting the preset updates the rows the browser draws
    v.preset = {"name": "py", "channels": [{"index": i, "color": "FFFFFF", "active": i == 0,
                                            "window": {"start": 0, "end": 50}}
                                           for i in range(5)]}
    assert [r["active"] for r in v.canvas.rows] == [True, False, False, False, False]
    assert v.canvas.rows[0]["end"] == 50
    assert not dirty(v)
    # a bad edit shows a message and changes nothing
    ui(v, "set_window", index=0, start=10, end=5)
    assert "end > start" in v.canvas.message
    assert v.canvas.rows[0]["end"] == 50
    ui(v, "lock", locked=True)
    ui(v, "solo", index=2)
    assert "locked" in v.canvas.message
    assert v.canvas.rows[0]["active"]
    ui(v, "lock", locked=False)
    ui(v, "undo")
    ui(v, "nonsense")
    assert "unknown" in v.canvas.message


def test_histogram_follows_the_focus_and_its_box_sets_the_window(store: Path) -> None:
    v = Viewer(store)
    assert v.hist is not None
    assert v.canvas.histogram["index"] == 0
    v.canvas.focus = 2
    hist = v.canvas.histogram
    assert hist["index"] == 2
    assert hist["title"].endswith("(channel 2)")
    assert 10 < len(hist["counts"]) <= 256
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert sum(hist["counts"]) == v.source.histograms()[2]["count"]
    # the user drags the box's right edge in the browser: it sends the window
    ui(v, "set_window", index=2, start=v.canvas.rows[2]["start"], end=4321.0)
    assert v.preset.channels[2].window.end == 4321.0
    assert v.canvas.rows[2]["end"] == 4321.0  # the browser redraws the box from the row
    # no bokeh: the histogram is drawn by the viewer's own script
    assert "bokeh" not in repr(v.children).lower()


def test_values_under_the_cursor_are_raw_pixels(store: Path) -> None:
    v = Viewer(store)
    sent = capture(v)
    v.canvas.viewport = {"x": 450.0, "y": 350.0, "zoom": 1.0}  # level 0
    v._on_msg(v.canvas, {"type": "probe", "x": 123.4, "y": 456.7}, [])
    values = sent[0][0]["values"]
    raw = read(store, "0")
    active = [r["index"] for r in v.canvas.rows if r["active"]]
    assert values == {v.source.channels[c].label: float(raw[c, 456, 123]) for c in active}
    assert v.values_at(-5, 10) == {}


def test_exports_png_with_scale_bar_and_raw_ome_tiff(store: Path, tmp_path: Path) -> None:
    v = Viewer(store)
    region = (100, 50, 500, 350)
    fig = png(v.export_png(tmp_path / "fig.png", region=region, level=0))
    assert fig.shape == (300, 400, 3)
    assert (tmp_path / "fig.png").is_file()
    plain = png(v.export_png(region=region, level=0, scale_bar=False))
    bar = np.all(fig == 255, axis=2) & ~np.all(plain == 255, axis=2)
    rows, cols = np.nonzero(bar)
    assert rows.min() > 250
    assert cols.max() > 380
    _um, px, label = scale_bar(0.5, 400 / 5)
    assert label == "20 µm"
    assert px == 40.0
    assert cols.max() - cols[rows == rows.max()].min() + 1 == pytest.approx(px, abs=1)
    tiff = v.export_ome_tiff(tmp_path / "raw.ome.tif", region=region, level=1,
                             channels=[0, 2])
    with tifffile.TiffFile(io.BytesIO(tiff)) as tf:
        arr = tf.asarray()
        ome = tf.ome_metadata or ""
    raw = read(store, "1")
    assert np.array_equal(arr, raw[[0, 2], 25:175, 50:250])
    names = [c.label for c in v.source.channels]
    assert f'Name="{names[0]}"' in ome
    assert f'Name="{names[2]}"' in ome
    assert 'PhysicalSizeX="1.0"' in ome
    with pytest.raises(InputError, match="outside the image"):
        v.export_png(region=(5000, 5000, 6000, 6000))


def test_browser_exports_come_back_as_downloads(store: Path) -> None:
    v = Viewer(store)
    sent = capture(v)
    v._on_msg(v.canvas, {"type": "export", "kind": "png"}, [])
    v._on_msg(v.canvas, {"type": "export", "kind": "ome-tiff"}, [])
    (m1, b1), (m2, b2) = sent
    assert m1["filename"].endswith(".png")
    assert b1[0][:4] == b"\x89PNG"
    assert m2["filename"].endswith(".ome.tif")
    assert b2[0][:2] in (b"II", b"MM")


def test_mimebundle_carries_a_png_for_places_without_a_kernel(store: Path) -> None:
    v = Viewer(store)
    bundle: Any = v._repr_mimebundle_()  # a tuple (data, metadata) in some ipywidgets
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    img = png(base64.b64decode(data["image/png"]))
    assert img.shape[2] == 3
    assert img.max() > 0


def test_view_state_round_trips(store: Path) -> None:
    a = Viewer(store)
    ui(a, "solo", index=4)
    a.canvas.viewport = {"x": 200.0, "y": 100.0, "zoom": 2.0}
    state = json.loads(json.dumps(a.view_state))
    b = Viewer(store)
    b.view_state = state
    assert b.preset == a.preset
    assert b.canvas.viewport == a.canvas.viewport
    assert b.view_state["image"] == str(store)


def test_real_world_metadata_is_tolerated(store: Path, tmp_path: Path) -> None:
    import shutil

    odd = tmp_path / "odd.zarr"
    shutil.copytree(store, odd)
    meta = json.loads((odd / "zarr.json").read_text())
    for ch in meta["attributes"]["ome"]["omero"]["channels"]:
        ch.pop("color", None)
        ch["window"] = {"start": 500, "end": 500, "min": 0, "max": 0}
    meta["attributes"]["ome"]["omero"]["channels"][1]["color"] = "#00ff00"
    (odd / "zarr.json").write_text(json.dumps(meta))
    shutil.rmtree(odd / "histograms")
    src = open_image(odd)
    assert len({c.color for c in src.channels}) > 1  # the palette, not all one colour
    p = src.default_preset()
    assert all(c.window.end > c.window.start for c in p.channels)
    assert p.channels[1].color == "00FF00"
    v = Viewer(odd)
    assert v.hist is not None
    assert len(v.source.histograms()) == 5


def test_local_images_cannot_save_presets_or_share(store: Path) -> None:
    v = Viewer(store)
    with pytest.raises(InputError, match="needs an API image"):
        v.save_preset("x")
    with pytest.raises(InputError, match="needs an API image"):
        v.share_url()


# ----------------------------------------------------------------------------- over the API

def test_api_tiles_match_the_kernel_renderer(api: LiveApi) -> None:
    client = ApiClient(api.base, api.analyst_token)
    v = Viewer(api.image_id, client=client)
    sent = capture(v)
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                         "tiles": [[0, 0], [2, 2]]}, [])
    for (msg, bufs) in sent:
        r, c = msg["row"], msg["col"]
        local = render_region(v.source, v.preset, 0, slice(r * TILE, (r + 1) * TILE),
                              slice(c * TILE, (c + 1) * TILE))
        served = png(bufs[0])  # the API's JPEG, forwarded as it came
        assert bufs[0][:3] == b"\xff\xd8\xff"
        assert served.shape == local.shape
        assert jpeg_of(served, local)
        lossless = png(tile_png(v.source, v.preset, 0, r, c))  # the API's PNG: within 1
        assert np.abs(lossless.astype(int) - local.astype(int)).max() <= 1


def test_presets_save_versions_apply_compare_and_share(api: LiveApi) -> None:
    client = ApiClient(api.base, api.analyst_token)
    v = Viewer(f"{api.base}/api/v1/images/{api.image_id}", client=client)
    assert v.source.image_id == api.image_id
    assert any("(default)" in p["label"] for p in v.canvas.preset_list)  # the default preset
    ui(v, "set_window", index=1, start=11, end=1234)
    ui(v, "save", name="tumour view")
    ref1 = v.canvas.preset_ref
    assert ref1.endswith("@1"), v.canvas.message
    assert not dirty(v)
    ui(v, "set_gamma", index=1, gamma=0.7)
    assert dirty(v)
    ref2 = v.save_preset()
    assert ref2 == ref1[:-1] + "2"
    doc = api.get(f"/presets/{ref2.replace('@', '/versions/')}").json()["document"]
    assert doc["channels"][1]["window"]["end"] == 1234
    assert doc["channels"][1]["gamma"] == 0.7
    # apply version 1 from the picker
    ui(v, "apply", ref=ref1)
    assert v.preset.channels[1].gamma == 1.0
    assert v.canvas.preset_ref == ref1
    cmp = v.compare(ref1, ref2)
    assert "gamma" in cmp.children[1].value
    # share: pins image, preset version and viewport; a new viewer reproduces the view
    v.canvas.viewport = {"x": 300.0, "y": 200.0, "zoom": 1.5}
    url = v.share_url()
    assert f"/portal/images/{api.image_id}?" in url
    assert f"preset={ref1.replace('@', '%40')}" in url
    w = Viewer(url, client=client)
    assert w.preset == v.preset
    assert w.canvas.viewport == v.canvas.viewport
    ui(v, "solo", index=0)
    with pytest.raises(InputError, match="not a saved preset"):
        v.share_url()


def test_api_errors_are_clear(api: LiveApi) -> None:
    from plexhub.errors import NotFoundError, PermissionDeniedError

    with pytest.raises(NotFoundError, match="image nope"):
        Viewer("nope", client=ApiClient(api.base, api.analyst_token))
    with pytest.raises(PermissionDeniedError, match="PLEXHUB_API_TOKEN"):
        Viewer(api.image_id, client=ApiClient(api.base, "wrong-token"))
    v = Viewer(api.image_id, client=ApiClient(api.base, api.analyst_token))
    ui(v, "apply", ref="nonexistent@1")
    assert "not found" in v.canvas.message


def test_viewer_finds_the_api_from_the_environment(api: LiveApi,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLEXHUB_API_URL", api.base)
    monkeypatch.setenv("PLEXHUB_API_TOKEN", api.analyst_token)
    v = Viewer(api.image_id)
    assert v.client is not None
    assert v.canvas.info["api"]
    assert parse_preset(v.view_state["preset"]) == v.preset


def test_a_published_notebook_shows_the_viewer_as_an_image(api: LiveApi, store: Path) -> None:
    """Sponsors read published notebooks without a kernel: the viewer's output carries a PNG
    of its view, which the read-only page keeps while it drops the widget model."""
    import httpx

    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "v", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": "from plexhub.widgets import Viewer\n"
                                            f"Viewer({str(store)!r}, histogram=False)"}]}
    # run where the data is (the analyst's own kernel), then publish it executed: the
    # service's sandbox for execute=true sees no local store (tests/security)
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.from_dict(nb)
    NotebookClient(node, timeout=120, kernel_name="python3").execute()
    h = {"Authorization": f"Bearer {api.analyst_token}"}
    r = httpx.post(f"{api.base}/api/v1/studies/VIEW/notebooks", headers=h, timeout=180,
                   json={"name": "viewer figure", "notebook": dict(node), "execute": False})
    assert r.status_code == 201, r.text
    page = httpx.get(f"{api.base}/api/v1/notebooks/{r.json()['id']}/html", headers=h,
                     timeout=30)
    assert page.status_code == 200
    assert 'src="data:image/png;base64,' in page.text
    assert "widget-view" not in page.text


def test_sixty_channels_stay_usable(tmp_path: Path) -> None:
    """A 60-channel panel: search narrows, All/None act on the matches, groups toggle as
    one, auto-contrast for all, and tiles render only what is switched on."""
    write_ome_tiff(tmp_path / "p60.ome.tif", SyntheticSpec(size_y=200, size_x=300,
                                                           channels=60, tile=128, seed=5))
    convert(tmp_path / "p60.ome.tif", tmp_path / "p60.zarr")
    v = Viewer(tmp_path / "p60.zarr")
    sent = capture(v)
    assert len(v.canvas.rows) == 60
    assert sum(r["active"] for r in v.canvas.rows) == 4  # not all 60 at once by default
    ui(v, "select_none")
    ui(v, "select_all", query=r"^CD8(_\d+)?$", regex=True)
    on = [r["label"] for r in v.canvas.rows if r["active"]]
    assert on
    assert all(lbl.split("_")[0] == "CD8" for lbl in on)
    ui(v, "set_group", indices=[0, 10, 20], group="nuclei")
    ui(v, "toggle_group", group="nuclei")
    assert all(v.canvas.rows[i]["active"] for i in (0, 10, 20))
    ui(v, "auto")
    assert v.canvas.message == ""
    v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0, "tiles": [[0, 0]]},
              [])
    # tile (0, 0) of these settings: pushed after the last edit that changed them (the
    # request for it is then answered stale)
    drawn = [b[0] for m, b in sent if m.get("type") == "tile" and b and (m["row"], m["col"])
             == (0, 0) and m["gen"] == v.canvas.gen]
    expect = render_region(v.source, v.preset, 0, slice(0, TILE), slice(0, TILE))
    assert len(drawn) == 1
    assert jpeg_of(png(drawn[0]), expect)
    assert v.preset.channels[59].label == v.source.channels[59].label


def test_default_view_is_the_same_in_the_notebook_and_through_the_api(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """No preset chosen: the notebook viewer on the store's path and the API's tiles of the
    same image render the same pixels (one default, ``autocontrast.default_view``). Six
    channels: the viewer used to switch on every channel of a store with up to eight (and
    take the omero windows), the API the first four."""
    with live_api(tmp_path_factory.mktemp("parity"), size=(300, 520), channels=6,
                  seed=5) as live:
        stores = sorted(p.parent.parent for p in live.data_dir.rglob("histograms/zarr.json"))
        assert len(stores) == 1, stores
        v = Viewer(stores[0])  # the local path, as a notebook next to the data opens it
        assert v.source.image_id is None
        assert [r["active"] for r in v.canvas.rows] == [True] * 4 + [False] * 2
        sent = capture(v)
        for row, col in [(0, 0), (0, 1), (1, 2)]:
            served = live.get(f"/images/{live.image_id}/tiles/0/{row}/{col}.png?size=256")
            assert served.status_code == 200, served.text
            api_px = png(served.content)
            local = png(tile_png(v.source, v.preset, 0, row, col))
            assert api_px.shape == local.shape
            assert np.abs(api_px.astype(int) - local.astype(int)).max() <= 1
            if api_px.shape == (256, 256, 3):  # dark background, coloured cells: not white
                assert 10 < api_px.mean() < 160
                assert (api_px.min(axis=2) > 200).mean() < 0.2
            sent.clear()
            v._on_msg(v.canvas, {"type": "tiles", "gen": v.canvas.gen, "level": 0,
                                 "tiles": [[row, col]]}, [])
            assert jpeg_of(png(sent[0][1][0]), api_px)  # what the viewer sends: the same
