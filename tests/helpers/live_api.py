"""A real API server (uvicorn on 127.0.0.1) holding one converted synthetic image, for the
viewer tests that go over HTTP like a notebook does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.settings import Settings
from tests.helpers.httpapi import ingest
from tests.helpers.server import running_server

ADMIN = "admin-token-for-viewer-tests-0123"


@dataclass
class LiveApi:
    base: str
    image_id: str
    analyst_token: str
    data_dir: Path

    def get(self, path: str, token: str = ADMIN) -> httpx.Response:
        return httpx.get(f"{self.base}/api/v1{path}", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


@contextmanager
def live_api(tmp: Path, size: tuple[int, int] = (600, 700), channels: int = 4,
             seed: int = 3) -> Iterator[LiveApi]:
    settings = Settings(data_dir=tmp / "data", admin_token=ADMIN, chunk_size=128,
                        block_size=256)
    incoming = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        h = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=h, timeout=30) as c:
            r = c.post("/studies", json={"code": "VIEW", "title": "Viewer study",
                                         "sponsor": "acme", "profile": "non-glp"})
            assert r.status_code == 201, r.text
            image_id = ingest(f"{base}/api/v1", ADMIN, incoming, "VIEW", "slide.ome.tif",
                              SyntheticSpec(size_y=size[0], size_x=size[1],
                                            channels=channels, tile=128, seed=seed))
            r = c.post("/tokens", json={"user": "ana", "role": "analyst", "groups": []})
            assert r.status_code == 201, r.text
            token = r.json()["token"]
        yield LiveApi(base, image_id, token, tmp / "data")
