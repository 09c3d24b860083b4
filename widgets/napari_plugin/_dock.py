"""The "Render presets" dock widget: pick a preset of the API, apply it to an image's layers,
save the layers' current settings as a preset (the same name again = its next version).

It works on the layers the plexhub reader opened (their ``metadata['plexhub']`` names the
image and channel). API images list their presets from the API; a local store offers its
own default only, and cannot save (presets live in the API).
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plexhub.client import ApiClient
from plexhub.errors import PlexhubError
from plexhub.presets import RenderPreset, parse_preset
from plexhub.widgets.napari_plugin._layers import (
    META,
    apply_preset,
    preset_from_layers,
    restore_ranges,
)

LOCAL_DEFAULT = "__store_default__"


class PresetWidget(QWidget):
    """Choose, apply and save render presets for the plexhub layers of a viewer."""

    def __init__(self, napari_viewer: Any, client: ApiClient | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._client = client
        self._clients: dict[str, ApiClient] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self._presets: dict[str, RenderPreset] = {}

        self.image_combo = QComboBox()
        self.preset_combo = QComboBox()
        self.refresh_btn = QPushButton("Refresh")
        self.apply_btn = QPushButton("Apply")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("preset name (same name = new version)")
        self.reason_edit = QLineEdit()
        self.reason_edit.setPlaceholderText("reason for change (GLP studies require one)")
        self.save_btn = QPushButton("Save as preset")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Preset", self.preset_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_btn)
        buttons.addWidget(self.apply_btn)
        save = QHBoxLayout()
        save.addWidget(self.name_edit)
        save.addWidget(self.save_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(save)
        layout.addWidget(self.reason_edit)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.refresh_btn.clicked.connect(self.refresh_presets)
        self.apply_btn.clicked.connect(self.apply)
        self.save_btn.clicked.connect(self.save)
        self.image_combo.currentIndexChanged.connect(self.refresh_presets)
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.viewer.layers.events.inserted.connect(self._inserted)
        self.viewer.layers.events.removed.connect(self.refresh_images)
        restore_ranges(list(self.viewer.layers))
        self.refresh_images()

    # -- what is open ------------------------------------------------------------------

    def image_layers(self, image: str | None = None) -> list[Any]:
        """The plugin's ``Image`` layers of ``image`` (default: the chosen one)."""
        key = image if image is not None else self.image_combo.currentData()
        if key is None:
            return []
        return [layer for layer in self.viewer.layers
                if layer._type_string == "image"
                and (layer.metadata.get(META) or {}).get("image") == key]

    def _meta(self) -> dict[str, Any]:
        layers = self.image_layers()
        return dict(layers[0].metadata[META]) if layers else {}

    def _inserted(self, event: Any) -> None:
        restore_ranges([event.value])
        self.refresh_images()

    def refresh_images(self, *_: Any) -> None:
        current = self.image_combo.currentData()
        seen: dict[str, str] = {}
        for layer in self.viewer.layers:
            meta = layer.metadata.get(META) or {}
            if layer._type_string == "image" and meta.get("image"):
                seen.setdefault(meta["image"], str(meta.get("image_name") or meta["image"]))
        keys = [self.image_combo.itemData(i) for i in range(self.image_combo.count())]
        if keys == list(seen):
            return
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for key, name in seen.items():
            self.image_combo.addItem(name, key)
        if current in seen:
            self.image_combo.setCurrentIndex(list(seen).index(current))
        self.image_combo.blockSignals(False)
        self.refresh_presets()

    def client(self) -> ApiClient | None:
        """The API client of the chosen image (None for a local store)."""
        url = self._meta().get("api_url")
        if not url:
            return None
        if self._client is not None and str(url).startswith(self._client.base_url):
            return self._client
        if url not in self._clients:
            env = ApiClient.from_settings()
            self._clients[url] = env if env is not None and env.base_url == url \
                else ApiClient(url, env.token if env is not None else None)
        return self._clients[url]

    # -- actions -------------------------------------------------------------------------

    def _report(self, text: str) -> None:
        self.status.setText(text)

    def refresh_presets(self, *_: Any) -> None:
        """List the presets that apply to the chosen image."""
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self._summaries.clear()
        meta = self._meta()
        try:
            api = self.client()
            if api is not None and meta.get("image_id"):
                for s in api.presets(str(meta["image_id"])):
                    self._summaries[s["id"]] = s
                    tag = " (default)" if s.get("is_default") else ""
                    self.preset_combo.addItem(
                        f"{s['name']} v{s['latest_version']}{tag} [{s['scope']}]", s["id"])
            elif meta:
                self.preset_combo.addItem("store default", LOCAL_DEFAULT)
            self._report(f"{self.preset_combo.count()} preset(s)" if meta else
                         "open an OME-Zarr or a plexhub image URL with the plexhub reader")
        except PlexhubError as exc:
            self._report(f"cannot list presets: {exc}")
        finally:
            self.preset_combo.blockSignals(False)
        self._preset_chosen()

    def _preset_chosen(self, *_: Any) -> None:
        s = self._summaries.get(self.preset_combo.currentData() or "")
        if s is not None:
            self.name_edit.setText(str(s["name"]))

    def select_preset(self, name_or_id: str) -> bool:
        """Choose a listed preset by id or name; False when it is not listed."""
        for i in range(self.preset_combo.count()):
            pid = self.preset_combo.itemData(i)
            if name_or_id in (pid, (self._summaries.get(pid) or {}).get("name")):
                self.preset_combo.setCurrentIndex(i)
                return True
        return False

    def chosen_preset(self) -> RenderPreset | None:
        pid = self.preset_combo.currentData()
        if pid is None:
            return None
        if pid == LOCAL_DEFAULT:
            from plexhub.widgets.source import open_image

            return open_image(self._meta()["location"]).default_preset()
        api = self.client()
        if api is None:
            return None
        return parse_preset(api.preset(str(pid))["document"])

    def apply(self) -> None:
        """Apply the chosen preset to the chosen image's layers."""
        try:
            preset = self.chosen_preset()
            if preset is None:
                self._report("no preset chosen")
                return
            warnings = apply_preset(self.image_layers(), preset)
            self._report(f"applied {preset.name or 'preset'}"
                         + (f"; {'; '.join(warnings)}" if warnings else ""))
        except PlexhubError as exc:
            self._report(f"cannot apply: {exc}")

    def save(self) -> dict[str, Any] | None:
        """Save the layers' settings under the name field (same name: next version)."""
        name = self.name_edit.text().strip()
        meta = self._meta()
        try:
            api = self.client()
            if api is None or not meta.get("image_id"):
                self._report("saving needs an image opened from the plexhub API")
                return None
            if not name:
                self._report("give the preset a name")
                return None
            doc = preset_from_layers(self.image_layers(), name).model_dump(
                mode="json", exclude_none=True)
            saved = api.save_preset(str(meta["image_id"]), doc,
                                    reason=self.reason_edit.text())
        except PlexhubError as exc:
            self._report(f"cannot save: {exc}")
            return None
        self.refresh_presets()
        self.select_preset(str(saved["id"]))
        self._report(f"saved {name} v{saved['version']}"
                     + (f"; {'; '.join(saved.get('warnings') or [])}"
                        if saved.get("warnings") else ""))
        return saved
