"""notebooks/sponsor_report.ipynb end to end: run in a kernel against a real API server (it
reads the study's phenotype summary over HTTP), published through the API, and read by a
sponsor in the portal's notebook page: the table and the figure, inert (no script, no
widget)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image
from pydantic import SecretStr

from plexhub.api.db import Database
from plexhub.api.models import Image as ImageRow
from plexhub.client import ApiClient
from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.settings import Settings
from plexhub.storage import StoreRoots
from tests.helpers.api import ADMIN
from tests.helpers.httpapi import ingest
from tests.helpers.server import running_server

REPORT = Path(__file__).resolve().parents[3] / "notebooks" / "sponsor_report.ipynb"
RULES = {"T": "CD3+", "cytotoxic T": "CD3+ CD8+", "B": "CD20+ CD3-", "macrophage": "CD68+"}


def store_root(settings: Settings, image_id: str) -> Path:
    db = Database(settings.catalog_url, store_roots=StoreRoots.from_settings(settings))
    with db.new_session() as s:
        row = s.get(ImageRow, image_id)
        assert row is not None
        return row.store_root().path


@pytest.mark.slow
def test_the_report_reads_the_api_and_publishes_read_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                        chunk_size=64, block_size=128)
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base, ApiClient(base, ADMIN) as admin:
        admin.create_study("REP", "Report study", "acme")
        animals = {"A-01": ("vehicle", 3), "A-02": ("vehicle", 5), "A-11": ("high dose", 8)}
        for animal, (group, seed) in animals.items():
            image = ingest(base, ADMIN, incoming, "REP", f"{animal}.ome.tif",
                           SyntheticSpec(size_y=320, size_x=320, channels=8, tile=128,
                                         seed=seed),
                           {"animal_id": animal, "dose_group": group, "slide_id": f"S{seed}"})
            analyze(store_root(settings, image), nuclear="DAPI", phenotypes=RULES,
                    segmenter_options={"expand": 2}, show_progress=False)
        expected = admin.get_json("/studies/REP/phenotypes")

        # the analyst runs the report in a kernel against the API, as in JupyterLab
        monkeypatch.setenv("PLEXHUB_API_URL", base)
        monkeypatch.setenv("PLEXHUB_API_TOKEN", ADMIN)
        monkeypatch.setenv("PLEXHUB_REPORT_STUDY", "REP")
        monkeypatch.setenv("PLEXHUB_NOTEBOOK_DIR", str(tmp_path))
        nb = nbformat.read(REPORT, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        text = "".join(o.get("text", "") for o in outputs)
        assert "3 slides from study REP (plexhub API)" in text
        total = sum(sum(e["counts"].values()) for e in expected["images"])
        assert f"{total:,} cells" in text
        figure = Image.open(io.BytesIO((tmp_path / "figure.png").read_bytes()))
        assert figure.size == (760, 420)
        html_tables = [o["data"]["text/html"] for o in outputs
                       if "text/html" in o.get("data", {})]
        assert len(html_tables) == 2
        assert "vehicle" in html_tables[0]
        assert "high dose" in html_tables[0]
        assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                       for o in outputs)

        # published through the API, read by a sponsor in the portal
        published = admin.publish_notebook("REP", "immune phenotypes",
                                           json.loads(nbformat.writes(nb)),
                                           reason="week 4 report")
        admin.grant("REP", "group:acme", ["view", "view_notebooks"])
        sponsor = admin.create_token("sue", "sponsor", ["acme"])["token"]
        with httpx.Client(base_url=base, timeout=30) as web:
            r = web.post("/portal/login", data={"token": sponsor, "next": "/portal/"},
                         follow_redirects=False)
            assert r.status_code == 303, r.text
            page = web.get(f"/portal/notebooks/{published['id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Immune phenotypes by dose group" in html
    assert "Cells per mm² by dose group" in html
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html)
    assert html.count("<table") >= 3  # the two tables and the rules
    assert "high dose" in html
    assert "A-11" in html  # the per-animal table
    assert "slide_id" not in html
    assert re.search(r"<script", html, re.I) is None
    assert "widget-view" not in html
