"""An API app per test, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from plexhub.api.main import create_app
from plexhub.settings import Settings
from tests.postgres import fresh_database, postgres_server

ADMIN = "admin-token-for-tests-0123456789"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@dataclass
class Api:
    client: TestClient
    settings: Settings
    incoming: Path

    def h(self, token: str = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def get(self, url: str, token: str = ADMIN, **kw: Any) -> httpx.Response:
        return self.client.get(url, headers=self.h(token), **kw)

    def post(self, url: str, body: Any = None, token: str = ADMIN, **kw: Any) -> httpx.Response:
        return self.client.post(url, json=body, headers=self.h(token), **kw)

    def delete(self, url: str, token: str = ADMIN, **kw: Any) -> httpx.Response:
        return self.client.delete(url, headers=self.h(token), **kw)

    def token(self, user: str, role: str, groups: list[str] | None = None) -> str:
        r = self.post("/api/v1/tokens", {"user": user, "role": role, "groups": groups or []})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def study(self, code: str, sponsor: str = "acme") -> None:
        r = self.post("/api/v1/studies", {"code": code, "title": f"Study {code}",
                                          "sponsor": sponsor, "profile": "non-glp"})
        assert r.status_code == 201, r.text

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
                return dict(job)
            time.sleep(0.05)

    def add_file(self, src: Path, name: str | None = None) -> str:
        dst = self.incoming / (name or src.name)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
        return dst.name


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN, database_url=url,
                        chunk_size=64, block_size=128)
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with TestClient(create_app(settings, migrate=True)) as client:
        yield Api(client, settings, incoming)
