"""The demo data of ``plexhub up``: synthetic samples and the studies DEMO and DEMO-2.

Everything goes through the API (``PLEXHUB_ADMIN_TOKEN``) and is idempotent: an existing
study, an already ingested file (same content) or an active grant is reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from plexhub.errors import PlexhubError


@dataclass(frozen=True)
class Sample:
    """One synthetic 8-channel OME-TIFF and the study it goes into."""

    name: str
    size_y: int
    size_x: int
    seed: int
    study: str
    animal_id: str
    dose_group: str


SAMPLES = (
    Sample("demo-liver-a01.ome.tif", 1024, 1024, 1, "DEMO", "A01", "vehicle"),
    Sample("demo-liver-a02.ome.tif", 768, 1024, 2, "DEMO", "A02", "high dose"),
    Sample("demo-liver-b01.ome.tif", 512, 512, 3, "DEMO-2", "B01", "vehicle"),
)
STUDIES = {"DEMO": "Demo study (granted to sponsor)",
           "DEMO-2": "Second demo study (not granted to sponsor)"}
SPONSOR_GRANT = "user:sponsor"


def make_samples(folder: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Write the samples into ``folder`` (an ingest root) unless present; name -> path.

    They are written by ``plexhub synth`` in a child process: the hub package uses the
    conversion pipeline only as a command, never as an import (the layers in pyproject)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for s in SAMPLES:
        path = folder / s.name
        if not path.exists():
            log(f"plexhub: generating sample {path}")
            tmp = path.with_name(f".{s.name}.tmp")
            cmd = [sys.executable, "-m", "plexhub", "synth", str(tmp), "--size-y",
                   str(s.size_y), "--size-x", str(s.size_x), "--channels", "8", "--seed",
                   str(s.seed), "--tile", "256"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PlexhubError(str(path), "the synthetic sample could not be written",
                                   done.stderr.strip()[-500:])
            os.replace(tmp, path)
        out[s.name] = path
    return out


def _check(r: httpx.Response, *ok: int) -> Any:
    if r.status_code not in ok:
        raise PlexhubError(f"{r.request.method} {r.request.url.path}",
                           f"the API answered {r.status_code}: {r.text[:500]}")
    return r.json() if r.content else None


def _wait_job(api: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = _check(api.get(f"/jobs/{job_id}"), 200)
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise PlexhubError(f"job {job_id}", f"still {job['state']} after {timeout:.0f} s")
        time.sleep(0.25)


def seed_demo(api: httpx.Client, samples: dict[str, Path], timeout: float = 600,
              log: Callable[[str], None] = print) -> dict[str, int]:
    """Create DEMO and DEMO-2, ingest the samples, grant DEMO to ``sponsor``.
    ``api`` has base URL ``…/api/v1`` and the admin token. Returns images per study."""
    for code, title in STUDIES.items():
        _check(api.post("/studies", json={"code": code, "title": title, "sponsor": "acme",
                                          "profile": "non-glp"}), 201, 409)
    jobs = []
    for s in SAMPLES:
        body = {"source": str(samples[s.name]),
                "metadata": {"animal_id": s.animal_id, "tissue": "liver",
                             "dose_group": s.dose_group}}
        answer = _check(api.post(f"/studies/{s.study}/images", json=body), 202)
        job_id = answer.get("job_id")
        if job_id and not (answer.get("existing") and
                           _check(api.get(f"/jobs/{job_id}"), 200)["state"] == "done"):
            jobs.append(job_id)
    if jobs:
        log(f"plexhub: converting {len(jobs)} sample(s) into OME-Zarr")
    for job_id in jobs:
        job = _wait_job(api, job_id, timeout)
        if job["state"] != "done":  # e.g. interrupted by a previous Ctrl-C: try once more
            _check(api.post(f"/jobs/{job_id}/retry"), 200, 409)
            job = _wait_job(api, job_id, timeout)
        if job["state"] != "done":
            raise PlexhubError(f"sample {job.get('source')}", f"conversion {job['state']}: "
                               f"{job.get('error')}")
    grants = _check(api.get("/studies/DEMO/grants"), 200)
    if not any(g["principal"] == SPONSOR_GRANT and g["revoked_at"] is None
               and g["expires_at"] is None for g in grants):
        _check(api.post("/studies/DEMO/grants", json={
            "principal": SPONSOR_GRANT, "capabilities": ["view", "view_notebooks"],
            "reason": "demo deployment (plexhub up)"}), 201)
    return {code: len(_check(api.get(f"/studies/{code}/images"), 200)) for code in STUDIES}
