"""The API app in a test client (the ``api`` fixture of tests/conftest.py yields one per
database): requests as the admin or another token, studies, tokens and conversions."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from plexhub.client import ApiClient
from plexhub.settings import Settings

ADMIN = "admin-token-for-tests-0123456789"


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

    def client_as(self, token: str = ADMIN) -> ApiClient:
        """plexhub's API client over this test client."""
        return ApiClient(str(self.client.base_url), token, http=self.client)

    def wait_job(self, job_id: str, timeout: float = 120, token: str = ADMIN) -> dict[str, Any]:
        """The job once it is done, failed or cancelled (ApiTimeoutError past ``timeout``)."""
        return dict(self.client_as(token).wait_for_job(job_id, timeout, interval=0.05))

    def add_file(self, src: Path, name: str | None = None) -> str:
        dst = self.incoming / (name or src.name)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
        return dst.name
