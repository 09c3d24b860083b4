"""What the napari plugin tests share: converted synthetic stores and a live API client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from plexhub.ome_pipeline.conversion import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.httpapi import ingest


def make_store(root: Path, name: str, size: int = 512, channels: int = 3,
               as_labels: bool = False) -> Path:
    """A converted synthetic OME-Zarr (NGFF 0.5; 512 px gives two pyramid levels)."""
    tif = root / f"{name}.ome.tif"
    write_ome_tiff(tif, SyntheticSpec(size_y=size, size_x=size, channels=channels, tile=64,
                                      seed=7))
    settings = Settings(data_dir=root / "data", chunk_size=64, block_size=128)
    dst = root / f"{name}.zarr"
    convert(tif, dst, settings=settings, as_labels=as_labels, show_progress=False)
    return dst


class LiveApi:
    """A real API server (uvicorn) with one study and one ingested synthetic image."""

    def __init__(self, base: str, settings: Settings) -> None:
        self.base, self.settings = base, settings
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=60)

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code in (200, 201, 202), r.text
        return r.json()

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def ingest(self, code: str, name: str, channels: int = 3) -> str:
        incoming = self.settings.data_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return ingest(f"{self.base}/api/v1", ADMIN, incoming, code, name,
                      SyntheticSpec(size_y=256, size_x=256, channels=channels, tile=64, seed=3))

    def image_url(self, image_id: str) -> str:
        return f"{self.base}/api/v1/images/{image_id}"

    def presets(self, image_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v1/images/{image_id}/presets"))
