"""The scientist's whole day in JupyterLab behind a real JupyterHub (configurable-http-proxy
on loopback, the API as the hub's service; Debian chromium via Playwright), and what the
sponsor then sees:

a scientist logs in, finds the quick start in ``plexhub/``, opens the Studies panel, opens an
image from it (a viewer cell appears and renders tiles), publishes the notebook with the
notebook toolbar's button, and the sponsor sees it in the portal; a file of the scientist's
home is ingested from the file browser's context menu and its job runs to the end in the
status bar's item.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.browsing import CANVAS_LIT
from tests.helpers.httpapi import ingest, ok
from tests.helpers.hub import ADMIN_TOKEN, PASSWORD, PREFIX, Hub, running_hub

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("lab-hub")) as h:
        yield h


def _login(browser: Any, hub: Hub, user: str) -> tuple[Any, Page, list[str]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    return context, page, errors


def _wait(page: Page, what: str, check: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(200)


def _upload(hub: Hub, user: str, path: Path) -> None:
    """Put a file into the user's home through their own server (the contents API)."""
    token = hub.user_token(user)
    r = httpx.put(f"{hub.base}/user/{user}/api/contents/{path.name}", timeout=120,
                  headers={"Authorization": f"token {token}"},
                  json={"type": "file", "format": "base64",
                        "content": base64.b64encode(path.read_bytes()).decode()})
    assert r.status_code in (200, 201), r.text


def test_scientist_publishes_from_jupyterlab_and_the_sponsor_sees_it(
        hub: Hub, browser: Any, tmp_path: Path) -> None:
    ok(hub.api("POST", "/studies", json={"code": "DEMO", "title": "Demo study",
                                         "sponsor": "acme"}))
    image = ingest(f"{hub.base}{PREFIX}/api/v1", ADMIN_TOKEN, hub.data_dir / "incoming",
                   "DEMO", "demo-liver.ome.tif",
                   SyntheticSpec(size_y=768, size_x=1024, channels=3, tile=256, seed=3),
                   metadata={"animal_id": "A01"})
    ok(hub.api("POST", "/studies/DEMO/grants", json={
        "principal": "user:sponsor", "capabilities": ["view", "view_notebooks"],
        "reason": "e2e"}))

    context, page, errors = _login(browser, hub, "scientist")
    try:
        # the first start opens JupyterLab on the quick start, copied into ~/plexhub
        page.wait_for_url(re.compile(rf"^{re.escape(hub.base)}/user/scientist/lab"),
                          timeout=180_000)
        page.locator(".lm-TabBar-tab", has_text="viewer-quickstart.ipynb").wait_for(
            timeout=120_000)
        assert "plexhub" in page.locator(".jp-BreadCrumbs").inner_text()
        listing = page.locator(".jp-DirListing-content")
        listing.locator(".jp-DirListing-item", has_text="viewer-quickstart.ipynb").wait_for()
        page.screenshot(path=str(tmp_path / "hub-lab-quickstart.png"))

        # the Studies panel: DEMO and its image; opening it adds a viewer cell, which renders
        page.locator(".jp-SideBar [data-id='plexhub-studies']").click()
        panel = page.get_by_role("region", name="plexhub studies")
        study = panel.locator("[data-study='DEMO']")
        study.wait_for()
        study.locator("summary").click()
        row = panel.locator(f"[data-image='{image}']")
        row.locator(".plexhub-badge", has_text="ready").wait_for()
        name = row.locator(".plexhub-image-name").inner_text()
        row.get_by_role("button", name=f"Open {name} in a viewer").click()
        page.locator(".plexhub-canvas").wait_for(timeout=180_000)
        _wait(page, "tiles on the viewer's canvas", f"({CANVAS_LIT})() > 0.2", timeout=180)
        cells = page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor")
        assert any(f'Viewer("{image}")' in cells.nth(i).inner_text()
                   for i in range(cells.count()))
        page.screenshot(path=str(tmp_path / "hub-lab-viewer.png"))

        # publish with the notebook toolbar's button
        page.locator(".jp-NotebookPanel-toolbar [data-command='plexhub:publish-notebook']"
                     ).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Study").select_option("DEMO")
        dialog.get_by_label("Name").fill("Quick start on DEMO")
        dialog.get_by_label("Version note").fill("first look at A01")
        dialog.get_by_role("button", name="Publish").click()
        page.get_by_text("Published “Quick start on DEMO” version 1 to DEMO").wait_for()

        # ingest a file of the home from the file browser; the status bar follows its job
        scan = tmp_path / "fresh-scan.ome.tif"
        write_ome_tiff(scan, SyntheticSpec(size_y=1536, size_x=1536, channels=4, tile=256,
                                           seed=8))
        _upload(hub, "scientist", scan)
        status = page.get_by_role("status", name="plexhub conversion jobs")
        status.filter(has_text="No conversions running").wait_for()
        if not page.locator("#filebrowser").is_visible():
            page.locator(".jp-SideBar [data-id='filebrowser']").click()
        page.locator("#filebrowser .jp-BreadCrumbs-home").click()  # the home, listed anew
        item = listing.locator(".jp-DirListing-item", has_text="fresh-scan.ome.tif")
        item.click()
        item.click(button="right")
        page.get_by_role("menuitem", name="Ingest into a plexhub study…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Study").select_option("DEMO")
        dialog.get_by_role("button", name="Ingest").click()
        status.filter(has_text="1 conversion running").wait_for()
        page.screenshot(path=str(tmp_path / "hub-lab-ingest-running.png"))
        status.filter(has_text="No conversions running").wait_for(timeout=180_000)
        assert "fresh-scan.ome.tif (DEMO): done" in (status.get_attribute("title") or "")
        page.locator(".jp-Notification-Status").click()  # the toast may have closed
        page.locator(".jp-Notification-Center").get_by_text(
            "fresh-scan.ome.tif is ready in study DEMO").wait_for()
        page.screenshot(path=str(tmp_path / "hub-lab-ingest-done.png"))
        assert not [e for e in errors if "plexhub" in e.lower()], errors
    finally:
        context.close()
    images = ok(hub.api("GET", "/studies/DEMO/images"))
    assert len(images) == 2
    assert all(i["status"] == "ready" for i in images)

    # the sponsor sees the published notebook in the portal
    context, page, errors = _login(browser, hub, "sponsor")
    portal = f"{hub.base}{PREFIX}/portal/"
    try:
        page.wait_for_url(re.compile(rf"^{re.escape(portal)}"), timeout=60_000)
        page.click("text=DEMO")
        link = page.locator("#notebooks li a", has_text="Quick start on DEMO")
        link.click()
        page.wait_for_url(re.compile(r".*/portal/notebooks/[0-9a-f]+$"))
        text = page.locator("#notebook").inner_text()
        assert "Viewer quick start" in text
        assert f'Viewer("{image}")' in text
        page.screenshot(path=str(tmp_path / "hub-portal-notebook.png"))
    finally:
        context.close()
