"""The demo data of ``plexhub up``: synthetic samples and the studies DEMO and DEMO-2.

Everything goes through the API (``PLEXHUB_ADMIN_TOKEN``) and is idempotent: an existing
study, an already ingested file (same content) or an active grant is reused.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plexhub.client import ApiClient
from plexhub.errors import ConflictError, PlexhubError


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


def seed_demo(api: ApiClient, samples: dict[str, Path], timeout: float = 600,
              log: Callable[[str], None] = print) -> dict[str, int]:
    """Create DEMO and DEMO-2, ingest the samples, grant DEMO to ``sponsor``.
    ``api`` holds the admin token. Returns images per study."""
    for code, title in STUDIES.items():
        api.create_study(code, title, "acme", "non-glp", exist_ok=True)
    jobs = []
    for s in SAMPLES:
        answer = api.ingest(s.study, str(samples[s.name]),
                            {"animal_id": s.animal_id, "tissue": "liver",
                             "dose_group": s.dose_group})
        job_id = answer.get("job_id")
        if job_id and not (answer.get("existing") and api.job(job_id)["state"] == "done"):
            jobs.append(job_id)
    if jobs:
        log(f"plexhub: converting {len(jobs)} sample(s) into OME-Zarr")
    for job_id in jobs:
        job = api.wait_for_job(job_id, timeout)
        if job["state"] != "done":  # e.g. interrupted by a previous Ctrl-C: try once more
            with contextlib.suppress(ConflictError):  # it was already requeued
                api.retry_job(job_id)
            job = api.wait_for_job(job_id, timeout)
        if job["state"] != "done":
            raise PlexhubError(f"sample {job.get('source')}", f"conversion {job['state']}: "
                               f"{job.get('error')}")
    if not any(g["principal"] == SPONSOR_GRANT and g["revoked_at"] is None
               and g["expires_at"] is None for g in api.grants("DEMO")):
        api.grant("DEMO", SPONSOR_GRANT, ["view", "view_notebooks"],
                  "demo deployment (plexhub up)")
    return {code: len(api.images(code)) for code in STUDIES}
