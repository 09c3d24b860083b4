"""Talking to a running API server over HTTP from tests: ingest a synthetic image and wait
for its conversion (the standalone server, the hub's service, the viewers' and napari's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, r.text
    return r.json()


def ingest(api: str, token: str, incoming: Path, code: str, name: str, spec: SyntheticSpec,
           metadata: dict[str, Any] | None = None, timeout: float = 120) -> str:
    """Write ``spec`` as ``incoming/name``, ingest it into study ``code`` through the API at
    ``api`` (its root, or ending in ``/api/v1``) and wait until it is converted; returns the
    image id."""
    write_ome_tiff(incoming / name, spec)
    with ApiClient(api, token) as client:
        body = client.ingest(code, name, metadata)
        job = client.wait_for_job(body["job_id"], timeout, interval=0.05)
    assert job["state"] == "done", job
    return body["image_id"]
