"""GLP in the browser (issue 14): in a real JupyterLab driven by Chromium, an analyst edits a
preset of an image on a GLP study in the notebook viewer; saving without a reason is refused
and the viewer says that a reason is required; with the reason typed into the viewer's
reason field the save goes through, and the study's auditor report shows the reason.
(Signing with a wrong password or token is refused and audited:
tests/integration/api/test_signatures.py; a page that signs:
tests/e2e/test_peer_review_browser.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.e2e.test_viewer_lab import RUN_ALL, lab, wait_stats  # noqa: F401 (lab: a fixture)
from tests.helpers.live_api import ADMIN, LiveApi
from tests.helpers.server import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.requirement("reason.clients", "audit.report")]
REASON = "window matched to SOP-7 (Zürich)"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """A real API with GLP study GLPV holding one 4-channel image."""
    tmp = tmp_path_factory.mktemp("glp-api")
    settings = Settings(data_dir=tmp / "data", admin_token=SecretStr(ADMIN), chunk_size=128,
                        block_size=256)
    incoming: Path = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        with ApiClient(base, ADMIN) as client:
            client.create_study("GLPV", "GLP viewer study", "acme", profile="glp")
            write_ome_tiff(incoming / "slide.ome.tif", SyntheticSpec(
                size_y=600, size_x=700, channels=4, tile=128, seed=3))
            body = client.ingest("GLPV", "slide.ome.tif", reason="day 28 necropsy slides")
            job = client.wait_for_job(body["job_id"], 120, interval=0.05)
            assert job["state"] == "done", job
            token = str(client.create_token("ana", "analyst")["token"])
        yield LiveApi(base, body["image_id"], token, tmp / "data")


@pytest.fixture(scope="module")
def stores() -> dict[str, str]:
    """The lab fixture's local stores: none here (its view.ipynb opens the API's image)."""
    return {}


def test_a_glp_preset_edit_asks_for_a_reason_and_the_report_shows_it(
        page: Page, lab: tuple[str, str], api: LiveApi) -> None:  # noqa: F811
    base, token = lab
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/view.ipynb?reset&token={token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell")
    page.evaluate(RUN_ALL, "view.ipynb")
    page.wait_for_selector(".plexhub-row[data-index='3']")
    before = wait_stats(page)
    end = page.locator(".plexhub-row[data-index='0'] .plexhub-end")
    end.fill("250")
    end.press("Enter")
    page.wait_for_function(
        "document.querySelector('.plexhub-dirty').textContent.includes('modified')")
    wait_stats(page, changed_from=before)

    reason = page.get_by_role("textbox", name="reason for change")
    assert reason.is_visible()
    page.locator(".plexhub-name").fill("glp edit")
    page.locator(".plexhub-save").click()  # no reason: refused, and the viewer says why
    status = page.locator(".plexhub-status")
    status.filter(has_text="reason: is required").wait_for()
    assert "profile glp requires a reason for preset.save" in (status.text_content() or "")
    assert page.locator(".plexhub-dirty").text_content() != ""  # still unsaved
    assert page.locator(".plexhub-name").input_value() == "glp edit"  # kept for the retry

    reason.fill(REASON)
    page.locator(".plexhub-save").click()
    page.wait_for_function("document.querySelector('.plexhub-dirty').textContent === ''")
    page.wait_for_function(  # the refusal's message is gone once the save went through
        "!document.querySelector('.plexhub-status').textContent.includes('is required')")
    page.screenshot(path=str(api.data_dir / "viewer-glp.png"), full_page=True)

    r = httpx.get(f"{api.base}/api/v1/studies/GLPV/audit/report", timeout=30,
                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text
    assert REASON in r.text
    saves = [(e["actor"], e["role"], e["after"]["name"], e["reason"])
             for e in api.get("/audit?study=GLPV").json()
             if e["action"] == "preset.save" and e["role"] != "system"]  # not the default's
    assert saves == [("ana", "analyst", "glp edit", REASON)]
