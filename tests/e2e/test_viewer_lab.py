"""The notebook viewer in a real JupyterLab driven by Chromium: open a notebook, show the
viewer on an API image, toggle a channel and change a window in the panel, check that the
pixels on screen changed, save the preset from the UI and read it back from the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.helpers.hub import wait_ok
from tests.helpers.live_api import ADMIN, LiveApi, live_api
from tests.helpers.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(tmp_path_factory.mktemp("lab-api"), size=(900, 1100)) as live:
        yield live


@pytest.fixture(scope="module")
def lab(api: LiveApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("lab")
    root, settings = tmp / "notebooks", tmp / "settings"
    root.mkdir()
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    cell = f"from plexhub.widgets import Viewer\nv = Viewer({api.image_id!r})\nv"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                   "source": cell, "outputs": []}]}
    (root / "view.ipynb").write_text(json.dumps(nb))
    port, token = free_port(), uuid.uuid4().hex
    env = os.environ | {
        "PLEXHUB_API_URL": api.base, "PLEXHUB_API_TOKEN": api.analyst_token,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--allow-root", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "lab.log", "wb"))  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{base}/api/status?token={token}", proc, tmp / "lab.log", timeout=60)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


RUN_ALL = """async () => {
  const app = window.jupyterapp;
  let panel = null;
  for (let i = 0; i < 200 && !panel; i++) {
    for (const w of app.shell.widgets('main')) {
      if (w.context && w.context.path === 'view.ipynb') panel = w;
    }
    if (!panel) await new Promise(r => setTimeout(r, 100));
  }
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  await app.commands.execute('notebook:run-all-cells');
}"""

CANVAS_STATS = """() => {
  const c = document.querySelector('.plexhub-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let r = 0, g = 0, b = 0, lit = 0;
  for (let i = 0; i < d.length; i += 4) {
    r += d[i]; g += d[i + 1]; b += d[i + 2]; if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
  }
  const n = d.length / 4;
  return [r / n, g / n, b / n, lit / n];
}"""


def wait_stats(page: Page, changed_from: list[float] | None = None,
               timeout: float = 60) -> list[float]:
    """Canvas colour means once tiles are drawn (and differ from ``changed_from``)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = page.evaluate(CANVAS_STATS)
        drawn = stats[3] > 0.2
        if drawn and (changed_from is None
                      or max(abs(a - b) for a, b in zip(stats, changed_from, strict=True)) > 1):
            time.sleep(0.5)  # let the remaining tiles of this generation land
            return list(page.evaluate(CANVAS_STATS))
        status = page.locator(".plexhub-status").text_content()
        assert time.monotonic() < deadline, f"canvas did not change: {stats} ({status})"
        time.sleep(0.25)


def test_viewer_in_jupyterlab_edits_render_and_save(page: Page, lab: tuple[str, str],
                                                     api: LiveApi) -> None:
    base, token = lab
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/view.ipynb?reset&token={token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell")
    page.evaluate(RUN_ALL)
    page.wait_for_selector(".plexhub-row[data-index='3']")
    page.wait_for_selector(".bk-Figure, .bk-root, canvas >> nth=1")
    before = wait_stats(page)
    shot_before = page.locator(".plexhub-canvas").screenshot()

    rows = page.locator(".plexhub-row")
    assert rows.count() == 4
    # toggle channel 3 on (the default preset shows all of a 4-channel image: turn one off)
    box = page.locator(".plexhub-row[data-index='1'] .plexhub-active")
    was_on = box.is_checked()
    box.click()
    page.wait_for_function(
        f"document.querySelector(\".plexhub-row[data-index='1'] .plexhub-active\")"
        f".checked === {'false' if was_on else 'true'}")
    after_toggle = wait_stats(page, changed_from=before)

    end = page.locator(".plexhub-row[data-index='0'] .plexhub-end")
    end.fill("250")
    end.press("Enter")
    page.wait_for_function(
        "document.querySelector(\".plexhub-row[data-index='0'] .plexhub-end\").value === '250'"
        " && document.querySelector('.plexhub-dirty').textContent.includes('modified')")
    wait_stats(page, changed_from=after_toggle)
    assert page.locator(".plexhub-canvas").screenshot() != shot_before

    page.locator(".plexhub-name").fill("lab edit")
    page.locator(".plexhub-save").click()
    page.wait_for_function("document.querySelector('.plexhub-dirty').textContent === ''")

    presets = api.get(f"/images/{api.image_id}/presets", token=ADMIN).json()
    saved = next(p for p in presets if p["name"] == "lab edit")
    doc = api.get(f"/presets/{saved['id']}", token=ADMIN).json()["document"]
    chans = {c["index"]: c for c in doc["channels"]}
    assert chans[0]["window"]["end"] == 250
    assert chans[1]["active"] is (not was_on)
    page.screenshot(path=str(api.data_dir / "viewer-lab.png"), full_page=True)
    # the histogram under the viewer drew the focused channel's bars (BokehJS inline)
    assert page.locator(".plexhub-viewer").count() == 1
