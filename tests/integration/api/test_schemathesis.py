"""Property-based API testing from the OpenAPI document: no 5xx, no schema violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from plexhub.settings import Settings
from tests.integration.api.conftest import ADMIN
from tests.integration.api.server import running_server


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(tmp_path: Path, real: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN, chunk_size=64,
                        block_size=128)
    (tmp_path / "data" / "incoming").mkdir(parents=True)
    shutil.copy(real / "qptiff" / "small_vectra.qptiff", tmp_path / "data" / "incoming")
    h = {"Authorization": f"Bearer {ADMIN}"}
    # the coverage phase is left out: with Python 3.11 it trips over a hypothesis-internal
    # error ("AST constructor recursion depth mismatch") that is not about this API
    with running_server(settings) as base:
        # something to find: a study, a converted image, a preset
        httpx.post(f"{base}/api/v1/studies", headers=h,
                   json={"code": "S001", "title": "t", "sponsor": "acme"}).raise_for_status()
        job = httpx.post(f"{base}/api/v1/studies/S001/images", headers=h,
                         json={"source": "small_vectra.qptiff"}).json()
        for _ in range(600):
            if httpx.get(f"{base}/api/v1/jobs/{job['job_id']}",
                         headers=h).json()["state"] == "done":
                break
            import time

            time.sleep(0.1)
        res = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run",
             f"{base}/api/v1/openapi.json", "-H", f"Authorization: Bearer {ADMIN}",
             "--checks", "not_a_server_error,response_schema_conformance",
             "--phases", "examples,fuzzing", "--max-examples", "15",
             "--seed", "1", "--workers", "2", "--request-timeout", "30",
             "--suppress-health-check", "all", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    (tmp_path / "schemathesis.txt").write_text(res.stdout + res.stderr)
    tail = res.stdout[-6000:]
    assert res.returncode == 0, tail
    assert "passed" in tail.lower() or "no issues" in tail.lower(), tail
