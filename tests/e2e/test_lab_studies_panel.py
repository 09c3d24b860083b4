"""The Studies panel in a real JupyterLab (Chromium via Playwright): the demo study is listed
with its image (thumbnail, channels, conversion state), opening the image inserts a viewer
cell that renders tiles, and "Publish notebook to study" publishes the notebook; the notebook
toolbar's Publish asks for the reason and the signature a GLP study needs; a file of the file
browser is ingested from its context menu and its job shows in the status bar until done."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.browsing import CANVAS_LIT
from tests.helpers.httpapi import ingest
from tests.helpers.lab import Lab, running_lab
from tests.helpers.sample_data import notebook
from tests.helpers.server import running_server

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-studies-panel-tests"


@dataclass
class World:
    base: str
    image: str
    lab: Lab
    shots: Path
    token: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("studies-panel")
    # the lab's root (<tmp>/sam/notebooks) is sam's own folder: sam may ingest from it
    settings = Settings(data_dir=tmp / "data", admin_token=SecretStr(ADMIN), chunk_size=128,
                        block_size=256, ingest_user_root=str(tmp / "{user}" / "notebooks"))
    incoming = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        with ApiClient(base, ADMIN) as api:
            api.create_study("DEMO", "Demo study", "acme")
            api.create_study("GLP1", "A GLP study", "acme", profile="glp")
            image = ingest(base, ADMIN, incoming, "DEMO", "demo-liver.ome.tif",
                           SyntheticSpec(size_y=600, size_x=800, channels=3, tile=128, seed=4),
                           metadata={"animal_id": "A01"})
            token = str(api.create_token("sam", "scientist")["token"])
        with running_lab(tmp / "sam", {"PLEXHUB_API_URL": base,
                                       "PLEXHUB_API_TOKEN": token}) as lab:
            yield World(base, image, lab, tmp, token)




VISIBILITY = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => %s});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def wait_until(page: Page, what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(str(check)):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(200)


def test_studies_panel_opens_an_image_in_a_viewer_cell_and_publishes(page: Page,
                                                                      world: World) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    page.goto(world.lab.url("lab?reset"))
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell")
    tab = page.locator(".jp-SideBar [data-id='plexhub-studies']")
    tab.click()
    panel = page.get_by_role("region", name="plexhub studies")
    study = panel.locator("[data-study='DEMO']")
    study.wait_for()
    assert "Demo study" in study.inner_text()
    study.locator("summary").click()
    row = panel.locator(f"[data-image='{world.image}']")
    row.wait_for()
    with ApiClient(world.base, ADMIN) as api:
        name = api.image(world.image)["name"]
    assert row.locator(".plexhub-image-name").inner_text() == name
    assert row.locator(".plexhub-badge").inner_text() == "ready"
    assert row.locator(".plexhub-channel").count() == 3
    swatch = row.locator(".plexhub-swatch").first.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert swatch not in ("", "rgba(0, 0, 0, 0)"), swatch
    assert "animal_id: A01" in row.inner_text()
    page.wait_for_function(
        f"document.querySelector(\"[data-image='{world.image}'] img\").src.startsWith('blob:')"
        f" && document.querySelector(\"[data-image='{world.image}'] img\").naturalWidth > 0")
    page.screenshot(path=str(world.shots / "studies-panel.png"))

    # no notebook is open: opening the image makes one with the viewer cell, run
    row.get_by_role("button", name=f"Open {name} in a viewer").click()
    page.locator(".plexhub-canvas").wait_for(timeout=120_000)
    wait_until(page, "tiles on the viewer's canvas", f"({CANVAS_LIT})() > 0.2", timeout=120)
    source = page.evaluate("""() => {
      const nb = window.jupyterapp.shell.currentWidget;
      return nb.content.activeCell.model.sharedModel.getSource();
    }""")
    assert f'Viewer("{world.image}")' in source
    assert source.startswith("from plexhub.widgets import Viewer")
    page.screenshot(path=str(world.shots / "studies-panel-viewer.png"))

    # publish the notebook through the command (the palette's "Publish notebook to study")
    # (not awaited: the command's promise ends when the dialog does)
    page.evaluate("() => { window.jupyterapp.commands.execute('plexhub:publish-notebook'); }")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Study").select_option("DEMO")
    dialog.get_by_label("Name").fill("Lab viewer notebook")
    dialog.get_by_label("Version note").fill("first look")
    page.screenshot(path=str(world.shots / "studies-panel-publish.png"))
    dialog.get_by_role("button", name="Publish").click()
    page.get_by_text("Published “Lab viewer notebook” version 1 to DEMO").wait_for()
    with ApiClient(world.base, ADMIN) as api:
        published = api.get_json("/studies/DEMO/notebooks")
    assert [n["name"] for n in published] == ["Lab viewer notebook"]
    assert not [e for e in errors if "plexhub" in e.lower()], errors


def test_toolbar_publish_asks_for_reason_and_signature(page: Page, world: World) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    (world.lab.root / "glp.ipynb").write_text(json.dumps(notebook(markdown="# GLP read")))
    page.goto(world.lab.url("lab/tree/glp.ipynb?reset"))
    button = page.locator(".jp-NotebookPanel-toolbar [data-command='plexhub:publish-notebook']")
    button.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Study").select_option("GLP1")
    assert not dialog.get_by_label("Reason for change").is_visible()  # not known yet
    dialog.get_by_label("Name").fill("GLP read")
    dialog.get_by_label("Version note").fill("dose groups 1-3")
    dialog.get_by_role("button", name="Publish").click()
    # the API named the reason: asked for, the rest kept
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("alert").filter(has_text="asks for a reason for change").wait_for()
    assert dialog.get_by_label("Version note").input_value() == "dose groups 1-3"
    dialog.get_by_label("Reason for change").fill("final read")
    dialog.get_by_role("button", name="Publish").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("alert").filter(has_text="your signature").wait_for()
    dialog.get_by_label("Password to sign").fill("not my credential")
    dialog.get_by_role("button", name="Publish").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("alert").filter(has_text="refused").wait_for()
    assert dialog.get_by_label("Reason for change").input_value() == "final read"
    # standalone, the credential is the user's own API token, typed in again
    dialog.get_by_label("Password to sign").fill(world.token)
    page.screenshot(path=str(world.shots / "studies-panel-publish-glp.png"))
    dialog.get_by_role("button", name="Publish").click()
    page.get_by_text("Published “GLP read” version 1 to GLP1, signed").wait_for()
    with ApiClient(world.base, ADMIN) as api:
        (listed,) = api.get_json("/studies/GLP1/notebooks")
        published = api.get_json(f"/notebooks/{listed['latest']['id']}")
        sigs = api.signatures("GLP1")
    assert published["ipynb"]["metadata"]["plexhub"] == {"version_note": "dose groups 1-3"}
    assert [(s["signer"], s["meaning"], s["action"]) for s in sigs] == [
        ("sam", "approved", "notebook.publish")]
    assert not [e for e in errors if "plexhub" in e.lower()], errors


def test_ingest_from_the_file_browser_shows_the_job_in_the_status_bar(
        page: Page, world: World) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    write_ome_tiff(world.lab.root / "fresh-scan.ome.tif",
                   SyntheticSpec(size_y=1536, size_x=1536, channels=4, tile=256, seed=8))
    page.goto(world.lab.url("lab?reset"))
    status = page.get_by_role("status", name="plexhub conversion jobs")
    status.filter(has_text="No conversions running").wait_for()
    page.locator("#jp-main-dock-panel").wait_for()
    if not page.locator("#filebrowser").is_visible():  # ?reset: usually open already
        page.locator(".jp-SideBar [data-id='filebrowser']").click()
    item = page.locator(".jp-DirListing-item", has_text="fresh-scan.ome.tif")
    item.click()
    item.click(button="right")
    page.get_by_role("menuitem", name="Ingest into a plexhub study…").click()
    dialog = page.get_by_role("dialog")
    assert "fresh-scan.ome.tif" in dialog.get_by_role("list", name="Files to ingest").inner_text()
    dialog.get_by_label("Study").select_option("DEMO")
    dialog.get_by_role("button", name="Ingest").click()
    status.filter(has_text="1 conversion running").wait_for()
    page.screenshot(path=str(world.shots / "lab-ingest-running.png"))
    # while the page is hidden the status item does not poll (it polls every 3 s while a
    # job runs), and polls at once when the page is shown again
    polls: list[float] = []
    page.on("request", lambda r: polls.append(time.monotonic())
            if r.url.split("?")[0].endswith("/plexhub/api/jobs") else None)
    page.evaluate(VISIBILITY % "true")
    hidden_at = time.monotonic()
    page.wait_for_timeout(7000)
    shown_at = time.monotonic()
    page.evaluate(VISIBILITY % "false")
    page.wait_for_timeout(2000)
    assert not [t for t in polls if hidden_at + 0.5 < t < shown_at], polls
    assert [t for t in polls if t >= shown_at], polls
    status.filter(has_text="No conversions running").wait_for(timeout=120_000)
    assert "fresh-scan.ome.tif (DEMO): done" in (status.get_attribute("title") or "")
    # the job's notification ended on its outcome (the toast may have closed: the centre)
    page.locator(".jp-Notification-Status").click()
    page.locator(".jp-Notification-Center").get_by_text(
        "fresh-scan.ome.tif is ready in study DEMO").wait_for()
    page.screenshot(path=str(world.shots / "lab-ingest-done.png"))
    with ApiClient(world.base, ADMIN) as api:
        names = [i["name"] for i in api.images("DEMO")]
    assert len(names) == 2, names
    assert not [e for e in errors if "plexhub" in e.lower()], errors
