"""Talking to a running API server over HTTP from tests: ingest a synthetic image and wait
for its conversion (the standalone server, the hub's service, the viewers' and napari's)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, r.text
    return r.json()


def ingest(api: str, token: str, incoming: Path, code: str, name: str, spec: SyntheticSpec,
           metadata: dict[str, Any] | None = None, timeout: float = 120) -> str:
    """Write ``spec`` as ``incoming/name``, ingest it into study ``code`` through the API at
    ``api`` (ending in ``/api/v1``) and wait until it is converted; returns the image id."""
    write_ome_tiff(incoming / name, spec)
    h = {"Authorization": f"Bearer {token}"}
    body = ok(httpx.post(f"{api}/studies/{code}/images", headers=h, timeout=60,
                         json={"source": name, "metadata": metadata or {}}))
    deadline = time.monotonic() + timeout
    while True:
        job = ok(httpx.get(f"{api}/jobs/{body['job_id']}", headers=h, timeout=60))
        if job["state"] in ("done", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"conversion did not finish: {job}"
        time.sleep(0.05)
    assert job["state"] == "done", job
    return str(body["image_id"])
