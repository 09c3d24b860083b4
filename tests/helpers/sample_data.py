"""Sample data for the notebook, portal and isolation tests: small notebooks (one with
scripts in every place a notebook can carry them) and tiny synthetic images."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api

SCRIPT_MD = "# Results\n\nTumour area by dose group.\n\n<script>window.pwned = 1</script>\n" \
            '<img src="x" onerror="window.pwned = 2"> [click](javascript:window.pwned=3)'
SCRIPT_HTML = '<b>table</b><script>window.pwned = 4</script>' \
              '<a href="javascript:window.pwned=5">x</a><div onclick="window.pwned=6">y</div>'


def png_b64() -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def notebook(title: str = "Results", code: str = "print(6 * 7)",
             outputs: list[dict[str, Any]] | None = None,
             markdown: str | None = None) -> dict[str, Any]:
    """An nbformat 4.5 notebook: one markdown cell and one code cell."""
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "widgets": {"application/vnd.jupyter.widget-state+json": {
                         "state": {"m1": {"model_name": "IntSliderModel"}}}}},
        "cells": [
            {"cell_type": "markdown", "id": "md1", "metadata": {},
             "source": markdown if markdown is not None else f"# {title}\n\nSome text."},
            {"cell_type": "code", "id": "code1", "metadata": {}, "execution_count": None,
             "source": code, "outputs": outputs or []},
        ],
    }


def hostile_notebook() -> dict[str, Any]:
    """Scripts in a markdown cell and in outputs, plus an embedded PNG."""
    outputs: list[dict[str, Any]] = [
        {"output_type": "display_data", "metadata": {},
         "data": {"text/html": SCRIPT_HTML, "text/plain": "table"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"application/javascript": "window.pwned = 7", "text/plain": "js"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m1",
                                                               "version_major": 2,
                                                               "version_minor": 0},
                  "text/plain": "IntSlider(value=3)"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": png_b64(), "text/plain": "<Figure>"}},
    ]
    return notebook(markdown=SCRIPT_MD, outputs=outputs)


def ingest_synthetic(api: Api, code: str, name: str, seed: int,
                     meta: dict[str, str] | None = None, size: int = 64) -> tuple[str, str]:
    """Write a 2-channel synthetic OME-TIFF into incoming/, ingest it into ``code`` and wait
    for the conversion; returns (image id, job id)."""
    write_ome_tiff(api.incoming / name, SyntheticSpec(size_y=size, size_x=size, channels=2,
                                                      tile=64, seed=seed))
    r = api.post(f"/api/v1/studies/{code}/images", {"source": name, "metadata": meta or {}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    return str(body["image_id"]), str(body["job_id"])


def ingest_qptiff(api: Api, real: Path, code: str = "S001",
                  metadata: dict[str, Any] | None = None) -> str:
    """Study ``code`` holding the real QPTIFF, converted; returns the image id."""
    api.study(code)
    name = api.add_file(real / "qptiff" / "small_vectra.qptiff")
    body = api.post(f"/api/v1/studies/{code}/images",
                    {"source": name, "metadata": metadata or {}}).json()
    assert api.wait_job(body["job_id"])["state"] == "done"
    return str(body["image_id"])
