"""A real API server (uvicorn on 127.0.0.1) holding one converted synthetic image, for the
viewer tests that go over HTTP like a notebook does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from plexhub.client import ApiClient
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
    settings = Settings(data_dir=tmp / "data", admin_token=SecretStr(ADMIN), chunk_size=128,
                        block_size=256)
    incoming = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        with ApiClient(base, ADMIN) as api:
            api.create_study("VIEW", "Viewer study", "acme")
            image_id = ingest(base, ADMIN, incoming, "VIEW", "slide.ome.tif",
                              SyntheticSpec(size_y=size[0], size_x=size[1],
                                            channels=channels, tile=128, seed=seed))
            token = str(api.create_token("ana", "analyst")["token"])
        yield LiveApi(base, image_id, token, tmp / "data")
