"""A sponsor uses the portal in a real browser (Chromium) against a real uvicorn server:
token login, only the granted study, the OpenSeadragon viewer (pan, zoom, preset, next
image), a published notebook whose scripts do not run, 404 for another study by URL, and
revocation taking effect on the next page load."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from pydantic import SecretStr

from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.browsing import Tiles, wait_js, wait_refused
from tests.helpers.httpapi import ingest, ok
from tests.helpers.sample_data import hostile_notebook
from tests.helpers.server import running_server

pytestmark = pytest.mark.e2e
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Site:
    base: str
    sponsor: str
    images: list[str]
    other_image: str
    notebook: str
    grant: str


def _ingest(base: str, incoming: Path, code: str, name: str, size: int, seed: int) -> str:
    return ingest(f"{base}/api/v1", ADMIN, incoming, code, name,
                  SyntheticSpec(size_y=size, size_x=size, channels=2, tile=256, seed=seed),
                  {"animal_id": f"A-{seed}", "slide_id": f"SL-{seed}", "tissue": "liver",
                   "dose_group": "high" if seed % 2 else "vehicle", "study_day": 28})


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN))
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        for code, org in (("E1", "acme"), ("E2", "globex")):
            ok(httpx.post(f"{base}/api/v1/studies", headers=ADMIN_H,
                           json={"code": code, "title": f"Study {code}", "sponsor": org}))
        # the first image is large enough that its full resolution (8 x 8 tiles of 512) is
        # never all in view: at 2048 px OpenSeadragon loads all 16 full-resolution tiles on
        # the way in, and a pan then has nothing left to load
        images = [_ingest(base, incoming, "E1", f"e1-{i}.ome.tif", size, i)
                  for i, size in ((1, 4096), (2, 2048))]
        other = _ingest(base, incoming, "E2", "e2.ome.tif", 256, 3)
        default = ok(httpx.get(f"{base}/api/v1/images/{images[0]}/presets",
                               headers=ADMIN_H))[0]["id"]
        doc = ok(httpx.get(f"{base}/api/v1/presets/{default}", headers=ADMIN_H))["document"]
        bright = {**doc, "name": "bright", "channels": [
            {**c, "window": {**c["window"], "end": c["window"]["end"] / 2}}
            for c in doc["channels"]]}
        ok(httpx.post(f"{base}/api/v1/images/{images[0]}/presets", headers=ADMIN_H,
                      json=bright))
        nb = ok(httpx.post(f"{base}/api/v1/studies/E1/notebooks", headers=ADMIN_H, timeout=60,
                            json={"name": "Week 4 report", "notebook": hostile_notebook()}))
        sponsor = ok(httpx.post(f"{base}/api/v1/tokens", headers=ADMIN_H, json={
            "user": "sue", "role": "sponsor", "groups": ["acme"]}))["token"]
        grant = ok(httpx.post(f"{base}/api/v1/studies/E1/grants", headers=ADMIN_H, json={
            "principal": "group:acme", "capabilities": ["view", "view_notebooks"]}))["id"]
        yield Site(base, sponsor, images, other, nb["id"], grant)


def test_a_sponsor_uses_the_portal(page: Page, site: Site) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    tiles = Tiles(page)

    # login with a token: the portal redirects there first
    page.goto(f"{site.base}/portal/")
    assert "/portal/login" in page.url
    page.fill("#token", site.sponsor)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")
    studies = page.locator("[data-study]")
    assert [studies.nth(i).get_attribute("data-study")
            for i in range(studies.count())] == ["E1"]
    assert "E2" not in page.content()

    # the study page: thumbnails (loaded) and de-identified metadata
    page.click("text=E1")
    page.wait_for_url(re.compile(r".*/portal/studies/E1$"))
    assert page.locator("img.thumb").count() == 2
    wait_js(page, "[...document.querySelectorAll('img.thumb')]"
                  ".every(i => i.complete && i.naturalWidth > 0)")
    assert "A-1" in page.content()
    assert "SL-1" not in page.content()

    # the viewer: first tiles, then zoom and pan load more (all 200 images)
    page.click(f"[data-image='{site.images[0]}'] a")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[0]}$"))
    first = tiles.wait_new(page, set(), "opening the image")
    viewer = page.locator("#viewer")
    box = viewer.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    for _ in range(10):  # to full resolution: 1.2 ** 10 = 6.2 x the home view
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(150)
    zoomed = tiles.wait_new(page, first, "zooming in")
    # pan towards a corner until the view reaches tiles not loaded yet (the zoom's batch and
    # the prefetch may already hold the first neighbours)
    for _ in range(4):
        before = tiles.urls()
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx - 350, cy - 250, steps=10)
        page.mouse.up()
        for _ in range(30):  # up to 3 s for that pan's tiles (CI runs loaded)
            page.wait_for_timeout(100)
            if tiles.urls() - before:
                break
        if tiles.urls() - before:
            break
    assert tiles.urls() - (first | zoomed), "no new tile requests after panning"
    assert any("/tiles/0/" in u for u in tiles.urls())  # full resolution (4096 px)

    # another rendering preset (listed by name, version and author): tiles again, pinned
    assert page.locator("#preset option").nth(0).inner_text() == "image default · v1 · auto"
    assert page.locator("#preset option").nth(1).inner_text() == "bright · v1 · admin"
    option = page.locator("#preset option").nth(1)
    value = option.get_attribute("value")
    assert value
    assert "@" in value
    before = tiles.urls()
    page.select_option("#preset", value)
    pinned = tiles.wait_new(page, before, "choosing a preset")
    assert all("preset=" in u for u in pinned)

    # keyboard: n goes to the next image of the study
    page.locator("h1, nav.crumbs").first.click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[1]}$"))
    page.keyboard.press("p")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[0]}$"))

    # a published notebook, rendered read-only: its scripts never run
    page.goto(f"{site.base}/portal/studies/E1")
    page.click("text=Week 4 report")
    page.wait_for_url(re.compile(rf".*/portal/notebooks/{site.notebook}$"))
    assert page.locator("#notebook").inner_text().count("Tumour area by dose group.") == 1
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("#notebook script").count() == 0

    # another study, by URL: the 404 page (never a 403)
    for path in ("/portal/studies/E2", f"/portal/images/{site.other_image}"):
        response = page.goto(f"{site.base}{path}")
        assert response is not None
        assert response.status == 404
        assert page.locator("#not-found").is_visible()
        assert "Study E2" not in page.content()

    # revocation: the next page load is refused within 10 s
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    r = httpx.delete(f"{site.base}/api/v1/grants/{site.grant}", headers=ADMIN_H,
                     params={"reason": "review finished"})
    assert r.status_code == 200
    wait_refused(page)
    page.goto(f"{site.base}/portal/")
    assert page.locator("#no-studies").is_visible()
    assert not errors, errors


def test_a_share_url_opens_the_pinned_preset_and_viewport(page: Page, site: Site) -> None:
    """The notebook viewer's share_url() (?preset=<id>@<v>&x=&y=&zoom=) in the portal."""
    presets = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/presets",
                            headers=ADMIN_H))
    ref = f"{presets[0]['id']}@1"
    tiles = Tiles(page)
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", site.sponsor)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")
    page.goto(f"{site.base}/portal/images/{site.images[0]}?preset={ref}&x=1500&y=600&zoom=2")
    loaded = tiles.wait_new(page, set(), "opening a share URL")
    mine = [u for u in loaded if site.images[0] in u]  # not the next slide's, prefetched
    assert mine
    assert all(f"preset={ref.replace('@', '%40')}" in u for u in mine)
    wait_js(page, "window.plexhubViewer && window.plexhubViewer.world.getItemCount() > 0")
    page.wait_for_timeout(500)
    zoom, cx, cy = page.evaluate("""() => { const vp = window.plexhubViewer.viewport;
        const c = vp.viewportToImageCoordinates(vp.getCenter(true));
        return [vp.viewportToImageZoom(vp.getZoom(true)), c.x, c.y]; }""")
    assert zoom == pytest.approx(2, rel=0.02)
    assert (cx, cy) == (pytest.approx(1500, abs=5), pytest.approx(600, abs=5))
    assert page.locator("#preset").input_value() == ref
