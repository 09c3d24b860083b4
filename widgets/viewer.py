"""``Viewer``: the notebook viewer (anywidget canvas + channel panel + histogram).

The browser part (``static/viewer.js``, shipped in the package, nothing from the internet)
draws tiles on a canvas with pan and zoom, the channel panel, the focused channel's
histogram with its window, a scale bar and the values under the cursor. Tiles travel as JPEG
in binary comm buffers; the browser keeps only a few requests in flight and asks for the
next ones from the view it shows then, so a zoom never queues tiles for views already left.
Every edit goes to the kernel as a message; :class:`PanelState` applies it
and the rows come back as a synced trait, so ``viewer.preset`` and ``viewer.view_state`` are
always what the screen shows and can be set from Python.
"""

from __future__ import annotations

import base64
import contextlib
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anywidget
import ipywidgets as ipw
import traitlets as t

from plexhub.errors import InputError, PlexhubError
from plexhub.ome_pipeline.render import encode
from plexhub.presets import RenderPreset, content_hash
from plexhub.widgets.cell_overlay import CellOverlayControl
from plexhub.widgets.histogram import HistogramPanel
from plexhub.widgets.source import ImageSource, open_image, resolve_preset, share_params
from plexhub.widgets.state import PanelState
from plexhub.widgets.tiles import (
    TILE,
    TILE_FORMAT,
    Region,
    export_ome_tiff,
    export_png,
    pick_level,
    render_region,
    tile_bytes,
    write_bytes,
)

if TYPE_CHECKING:  # httpx and the settings load only for API images (fresh-kernel time)
    from plexhub.client import ApiClient

STATIC = Path(__file__).parent / "static"
PUSHED_TILES = 2  # tiles sent unasked after an edit (the browser keeps 3 requests in flight)


class ViewerCanvas(anywidget.AnyWidget):
    """The browser half; owned by :class:`Viewer`."""

    _esm = STATIC / "viewer.js"
    _css = STATIC / "viewer.css"
    info = t.Dict().tag(sync=True)
    rows: t.List[dict[str, Any]] = t.List().tag(sync=True)
    viewport = t.Dict().tag(sync=True)
    gen = t.Unicode("").tag(sync=True)
    focus = t.Int(0).tag(sync=True)
    locked = t.Bool(False).tag(sync=True)
    dirty = t.Bool(False).tag(sync=True)
    can_undo = t.Bool(False).tag(sync=True)
    preset_name = t.Unicode("").tag(sync=True)
    preset_ref = t.Unicode("").tag(sync=True)
    preset_list: t.List[dict[str, Any]] = t.List().tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    histogram = t.Dict().tag(sync=True)
    size = t.Dict({"width": 640, "height": 420}).tag(sync=True)


class Viewer(ipw.VBox):  # type: ignore[misc]
    """A pan/zoom view of an OME-Zarr path, an API image id or a plexhub image/share URL.

    ``preset`` picks the starting preset (a :class:`RenderPreset`, a document, or an API
    reference ``<id>`` / ``<id>@<version>``); the image's default preset otherwise.
    """

    def __init__(self, image: str | Path | ImageSource, preset: Any = None, *,
                 client: ApiClient | None = None, histogram: bool = True,
                 width: int = 640, height: int = 420, **kwargs: Any) -> None:
        share = share_params(image)
        self.source = open_image(image, client)
        self.client = self.source.client or client
        self.canvas = ViewerCanvas(size={"width": int(width), "height": int(height)})
        # an analysed image: the cell overlay's toggle, legend and clicked row (cell_overlay)
        self.cells = CellOverlayControl.for_source(self.source, on_change=self._push)
        self.state = PanelState(self.source.channels, self.source.default_preset(),
                                self.source.histograms(), on_change=self._push)
        self.hist = HistogramPanel(self.source.histograms()) if histogram else None
        children = [self.canvas] + ([self.cells.widget] if self.cells is not None else [])
        super().__init__(children=children, **kwargs)
        self._t = self._z = 0
        self.tiles_rendered = 0  # tiles this viewer rendered (tests read it)
        self._pushed: set[tuple[str, int, int, int]] = set()
        h, w = self.source.level_shapes[0]
        self.canvas.info = {
            "name": self.source.name, "width": w, "height": h, "tile": TILE,
            "levels": [list(s) for s in self.source.level_shapes],
            "pixel_size_um": self.source.pixel_size_um(), "dtype": str(self.source.dtype),
            "image_id": self.source.image_id or "", "api": self.client is not None}
        self.canvas.viewport = self._fit()
        self.canvas.on_msg(self._on_msg)
        self.canvas.observe(self._on_focus, names="focus")
        self.refresh_presets()
        self._push()
        if share.get("preset"):
            preset = preset or share["preset"]
        if preset is not None:
            self.preset = preset
        if share.get("viewport"):
            self.canvas.viewport = share["viewport"]
        self.state.mark_clean()
        self._push()

    # -- public state ---------------------------------------------------------------------

    @property
    def preset(self) -> RenderPreset:
        """The current settings as a preset (settable: preset, document or API ref)."""
        return self.state.to_preset()

    @preset.setter
    def preset(self, value: RenderPreset | Mapping[str, Any] | str) -> None:
        preset, ref = resolve_preset(value, self.client)
        self.state.apply(preset)
        self.state.mark_clean()
        self.canvas.preset_ref = ref
        self._push()

    @property
    def view_state(self) -> dict[str, Any]:
        """What reproduces this view: image, preset document (and its pinned reference when
        it is a saved, unchanged version), viewport, t and z."""
        return {"image": self.source.image_id or self.source.location,
                "preset": self.preset.model_dump(mode="json", exclude_none=True),
                "preset_ref": self.canvas.preset_ref if not self.state.dirty else "",
                "viewport": dict(self.canvas.viewport), "t": self._t, "z": self._z}

    @view_state.setter
    def view_state(self, value: Mapping[str, Any]) -> None:
        if value.get("preset_ref"):
            self.preset = str(value["preset_ref"])
        elif value.get("preset"):
            self.preset = value["preset"]
        if value.get("viewport"):
            vp = value["viewport"]
            self.canvas.viewport = {"x": float(vp["x"]), "y": float(vp["y"]),
                                    "zoom": float(vp["zoom"])}
        self._t, self._z = int(value.get("t", self._t)), int(value.get("z", self._z))
        self._push()

    @property
    def dirty(self) -> bool:
        return self.state.dirty

    # -- presets --------------------------------------------------------------------------

    def refresh_presets(self) -> list[dict[str, Any]]:
        """The presets visible to the user for this image (API), as the picker lists them."""
        items: list[dict[str, Any]] = []
        if self.client is not None and self.source.image_id is not None:
            items = [{"ref": f"{p['id']}@{p['latest_version']}",
                      "label": f"{p['name']} v{p['latest_version']} "
                               f"({'default' if p.get('is_default') else p['scope']})"}
                     for p in self.client.presets(self.source.image_id)]
        self.canvas.preset_list = items
        return items

    def save_preset(self, name: str | None = None, visibility: str | None = None, *,
                    reason: str = "") -> str:
        """Save the current settings through the API: a new preset, or the next version when
        ``name`` exists (``visibility`` None: study for a new preset, unchanged for a next
        version). ``reason``: the reason for change (the viewer's reason field; a GLP study
        refuses a save without one). Returns ``<id>@<version>``."""
        if self.client is None or self.source.image_id is None:
            raise InputError("save_preset", "needs an API image",
                             "open the image by its API id or URL (PLEXHUB_API_URL)")
        name = (name or self.state.name or "").strip()
        if not name:
            raise InputError("preset", "needs a name", "viewer.save_preset('my preset')")
        doc = self.state.to_preset(name).model_dump(mode="json", exclude_none=True)
        saved = self.client.save_preset(self.source.image_id, doc, visibility, reason=reason)
        self.state.name = name
        self.state.mark_clean()
        self.canvas.preset_ref = f"{saved['id']}@{saved['version']}"
        self.refresh_presets()
        self._push()
        return self.canvas.preset_ref

    def compare(self, a: RenderPreset | Mapping[str, Any] | str,
                b: RenderPreset | Mapping[str, Any] | str | None = None) -> ipw.Widget:
        """Two presets side by side on the current view, with the channels that differ."""
        pa, pb = self._resolve(a), self._resolve(b) if b is not None else self.preset
        images, level, (ys, xs) = [], *self._view_region()
        for p in (pa, pb):
            rgb = render_region(self.source, p, level, ys, xs, self._t, self._z)
            images.append(ipw.VBox([ipw.HTML(f"<b>{p.name or 'current'}</b>"),
                                    ipw.Image(value=encode(rgb, "png"), format="png")]))
        rows = []
        for ca, cb in zip(pa.channels, pb.channels, strict=False):
            da, db = ca.model_dump(exclude_none=True), cb.model_dump(exclude_none=True)
            diff = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
            if diff:
                rows.append(f"<tr><td>{ca.name}</td><td>{', '.join(diff)}</td></tr>")
        table = ipw.HTML("<table><tr><th>channel</th><th>differs in</th></tr>"
                         + "".join(rows) + "</table>" if rows else "<i>identical</i>")
        return ipw.VBox([ipw.HBox(images), table])

    def _resolve(self, p: RenderPreset | Mapping[str, Any] | str) -> RenderPreset:
        preset, ref = resolve_preset(p, self.client)
        if not ref:
            return preset
        return preset.model_copy(update={"name": f"{preset.name} v{ref.partition('@')[2]}"})

    # -- views, values and exports --------------------------------------------------------

    def _fit(self) -> dict[str, float]:
        h, w = self.source.level_shapes[0]
        size = self.canvas.size
        zoom = min(size["width"] / w, size["height"] / h)
        return {"x": w / 2, "y": h / 2, "zoom": zoom}

    def view_region(self) -> Region:
        """The level-0 region (x0, y0, x1, y1) the canvas shows now."""
        vp, size = self.canvas.viewport, self.canvas.size
        hw, hh = size["width"] / 2 / vp["zoom"], size["height"] / 2 / vp["zoom"]
        return (vp["x"] - hw, vp["y"] - hh, vp["x"] + hw, vp["y"] + hh)

    def _view_region(self) -> tuple[int, tuple[slice, slice]]:
        from plexhub.widgets.tiles import level_region

        level = pick_level(self.source, float(self.canvas.viewport["zoom"]))
        return level, level_region(self.source, self.view_region(), level)

    def values_at(self, x: float, y: float) -> dict[str, float]:
        """Raw values of the active channels at level-0 (x, y), read from the level shown."""
        active = [r["index"] for r in self.state.rows if r["active"]]
        level = pick_level(self.source, float(self.canvas.viewport["zoom"]))
        vals = self.source.value_at(x, y, active, level, self._t, self._z)
        return {self.source.channels[i].label: v for i, v in vals.items()}

    def export_png(self, path: str | Path | None = None, region: Region | None = None,
                   level: int | None = None, scale_bar: bool = True) -> bytes:
        """The current view (or a level-0 ``region``) as a PNG figure with a scale bar."""
        lvl = pick_level(self.source, float(self.canvas.viewport["zoom"])) \
            if level is None else level
        data = export_png(self.source, self.preset, region or self.view_region(), lvl,
                          self._t, self._z, scale_bar)
        if path is not None:
            write_bytes(path, data)
        return data

    def export_ome_tiff(self, path: str | Path | None = None, region: Region | None = None,
                        level: int = 0, channels: Sequence[int] | None = None) -> bytes:
        """Raw pixels of a region (default: the current view) at ``level`` as OME-TIFF."""
        data = export_ome_tiff(self.source, region or self.view_region(), level, channels,
                               self._t, self._z)
        if path is not None:
            write_bytes(path, data)
        return data

    def share_url(self) -> str:
        """A URL that pins image, preset version and viewport (API images, saved preset)."""
        if self.client is None or self.source.image_id is None:
            raise InputError("share_url", "needs an API image", "open it by API id or URL")
        if not self.canvas.preset_ref or self.state.dirty:
            raise InputError("share_url", "the current settings are not a saved preset "
                             "version", "save_preset() first, then share")
        vp = self.canvas.viewport
        query = urlencode({"preset": self.canvas.preset_ref, "x": f"{vp['x']:.1f}",
                           "y": f"{vp['y']:.1f}", "zoom": f"{vp['zoom']:.6g}"})
        return f"{self.client.base_url}/portal/images/{self.source.image_id}?{query}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, plus a PNG of the current view for places without a kernel
        (published notebooks, nbconvert, GitHub). The PNG comes from the level nearest the
        screen's size (at most the canvas's pixels, not the finer level the tiles use): the
        kernel makes it before the browser can ask for the first tile."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        level = pick_level(self.source, float(self.canvas.viewport["zoom"]) / 2)
        with contextlib.suppress(PlexhubError):
            data["image/png"] = base64.b64encode(self.export_png(level=level)).decode()
        return bundle  # type: ignore[no-any-return]

    # -- plumbing -------------------------------------------------------------------------

    def _push(self) -> None:
        st, c = self.state, self.canvas
        with c.hold_sync():
            c.rows = [dict(r) for r in st.rows]
            c.locked, c.dirty, c.can_undo = st.locked, st.dirty, st.can_undo
            c.preset_name = st.name
            c.gen = content_hash(st.to_preset(name="")) + f":{self._t}:{self._z}" \
                + (self.cells.gen_suffix() if self.cells is not None else "")
            self._show_histogram()

    def _show_histogram(self) -> None:
        focus, rows = self.canvas.focus, self.state.rows
        if self.hist is not None and 0 <= focus < len(rows):
            self.canvas.histogram = self.hist.show(rows[focus])

    def _on_focus(self, _change: dict[str, Any]) -> None:
        self._show_histogram()

    def _guarded(self, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
            self.canvas.message = ""
            return result
        except PlexhubError as exc:
            self.canvas.message = str(exc)
            self._push()  # put the UI back to the state that holds
            return None

    def _op(self, op: str, a: dict[str, Any]) -> Any:
        st = self.state
        ops: dict[str, Callable[[], Any]] = {
            "set_active": lambda: st.set_active(a["indices"], bool(a["active"])),
            "select_all": lambda: st.select_all(a.get("query", ""), bool(a.get("regex"))),
            "select_none": lambda: st.select_none(a.get("query", ""), bool(a.get("regex"))),
            "solo": lambda: st.solo(int(a["index"])),
            "toggle_group": lambda: st.toggle_group(str(a["group"])),
            "set_group": lambda: st.set_group(a["indices"], a.get("group")),
            "set_color": lambda: st.set_color(int(a["index"]), str(a["color"])),
            "set_window": lambda: st.set_window(int(a["index"]), float(a["start"]),
                                                float(a["end"])),
            "set_gamma": lambda: st.set_gamma(int(a["index"]), float(a["gamma"])),
            "set_inverted": lambda: st.set_inverted(int(a["index"]), bool(a["inverted"])),
            "auto": lambda: st.auto(a.get("indices")),
            "undo": st.undo,
            "lock": lambda: st.lock(bool(a["locked"])),
            "apply": lambda: setattr(self, "preset", str(a["ref"])),
            "save": lambda: self.save_preset(str(a.get("name") or ""),
                                             reason=str(a.get("reason") or "")),
            "share": lambda: setattr(self.canvas, "message", self.share_url()),
        }
        if op not in ops:
            raise InputError(f"viewer operation {op!r}", "is unknown")
        return ops[op]()

    def _on_msg(self, _widget: Any, msg: dict[str, Any], _buffers: list[bytes]) -> None:
        kind = msg.get("type")
        try:
            if kind == "tiles":
                self._send_tiles(msg)
            elif kind == "op":
                op, gen = str(msg.get("op")), self.canvas.gen
                self._guarded(lambda: self._op(op, dict(msg.get("args") or {})))
                if self.canvas.gen != gen:
                    self._push_first_tiles()
                if op == "share" and self.canvas.message.startswith("http"):
                    self.canvas.send({"type": "share", "url": self.canvas.message})
            elif kind == "probe":
                vals = self.values_at(float(msg["x"]), float(msg["y"]))
                self.canvas.send({"type": "probe", "x": msg["x"], "y": msg["y"],
                                  "values": vals})
            elif kind == "export":
                self._send_export(str(msg.get("kind")))
            elif kind == "click" and self.cells is not None:  # a click that did not pan
                self.cells.select(float(msg["x"]), float(msg["y"]))
        except PlexhubError as exc:
            self.canvas.message = str(exc)
        except Exception:  # a UI event must never kill the comm; show what happened
            self.canvas.message = "internal error: " + traceback.format_exc(limit=3)

    def _send_tiles(self, msg: dict[str, Any]) -> None:
        """Answer every requested tile: the browser counts its requests in flight, so a
        request for settings that no longer hold, or for a tile already pushed, is answered
        ``stale`` (and not rendered)."""
        gen, level = str(msg.get("gen")), int(msg["level"])
        stale = gen != self.canvas.gen
        preset = None if stale else self.preset
        for row, col in msg.get("tiles", [])[:64]:
            head = {"type": "tile", "gen": gen, "level": level, "row": row, "col": col}
            key = (gen, level, int(row), int(col))
            if preset is None or key in self._pushed:
                self._pushed.discard(key)  # once: a tile the browser dropped is rendered again
                self.canvas.send(head | {"stale": True})
                continue
            self._send_tile(head, preset)

    def _send_tile(self, head: dict[str, Any], preset: RenderPreset) -> None:
        data = tile_bytes(self.source, preset, head["level"], int(head["row"]),
                          int(head["col"]), self._t, self._z, TILE_FORMAT)
        if self.cells is not None:  # the cell overlay, when on, re-encodes it (PNG)
            data = self.cells.composite(data, head["level"], int(head["row"]),
                                        int(head["col"]), TILE)
        self.tiles_rendered += 1
        mime = "image/png" if data[:4] == b"\x89PNG" else f"image/{TILE_FORMAT}"  # (overlays)
        self.canvas.send(head | {"mime": mime}, buffers=[data])

    def _push_first_tiles(self, count: int = PUSHED_TILES) -> None:
        """After an edit from the panel, the view's centre tiles in the new settings, sent
        unasked: the browser's own request would come one round trip later (it asks once
        the new settings reach it; a pushed tile's request is answered ``stale``)."""
        gen, preset = self.canvas.gen, self.preset
        try:
            level, (ys, xs) = self._view_region()
        except PlexhubError:
            return
        vp = self.canvas.viewport
        fy, fx = self.source.downsample(level)
        cells = [(math.hypot((c + 0.5) * TILE * fx - vp["x"], (r + 0.5) * TILE * fy - vp["y"]),
                  r, c)
                 for r in range(ys.start // TILE, (ys.stop - 1) // TILE + 1)
                 for c in range(xs.start // TILE, (xs.stop - 1) // TILE + 1)]
        self._pushed = set()
        for _, r, c in sorted(cells)[:count]:
            self._pushed.add((gen, level, r, c))
            self._send_tile({"type": "tile", "gen": gen, "level": level, "row": r, "col": c,
                             "pushed": True}, preset)

    def _send_export(self, kind: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.source.name)
        if kind == "png":
            data, name, mime = self.export_png(), f"{base}-{stamp}.png", "image/png"
        elif kind == "ome-tiff":
            data, name, mime = self.export_ome_tiff(), f"{base}-{stamp}.ome.tif", "image/tiff"
        else:
            raise InputError(f"export {kind!r}", "is not png or ome-tiff")
        self.canvas.send({"type": "export", "filename": name, "mime": mime}, buffers=[data])

