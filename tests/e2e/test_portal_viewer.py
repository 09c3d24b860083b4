"""The portal's viewer as a sponsor uses it (issue 19), in Chromium against a real uvicorn
server: the channel legend (swatch, name, marker), a channel switched off and a window
changed redraw the canvas with other pixels, the URL then reproduces that view in a fresh
page, and no preset changed on the way; the metadata bar, the scale bar, the slide filter
and the next slide's prefetched tiles."""

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
from tests.helpers.browsing import Tiles, wait_js
from tests.helpers.httpapi import ingest, ok
from tests.helpers.server import running_server

pytestmark = pytest.mark.e2e
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
READY = "window.plexhubView && window.plexhubView.ready"
# the mean R, G, B of the viewer's canvas (OpenSeadragon's canvas drawer)
MEAN_RGB = """() => { const c = window.plexhubViewer.drawer.canvas;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const s = [0, 0, 0]; for (let i = 0; i < d.length; i += 4) {
    s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
  const n = d.length / 4; return s.map(v => v / n); }"""


@dataclass
class Site:
    base: str
    sponsor: str
    images: list[str]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN))
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base:
        ok(httpx.post(f"{base}/api/v1/studies", headers=ADMIN_H,
                      json={"code": "V1", "title": "Viewer", "sponsor": "acme"}))
        images = []
        for i, dose in enumerate(("vehicle", "high", "high")):
            images.append(ingest(
                f"{base}/api/v1", ADMIN, incoming, "V1", f"v{i}.ome.tif",
                SyntheticSpec(size_y=1024, size_x=1024, channels=3, tile=256, seed=i),
                {"animal_id": f"A-{i}", "tissue": "liver", "dose_group": dose,
                 "study_day": 28, "stain_panel": {"DAPI": "DNA"}}))
        sponsor = ok(httpx.post(f"{base}/api/v1/tokens", headers=ADMIN_H, json={
            "user": "sue", "role": "sponsor", "groups": ["acme"]}))["token"]
        ok(httpx.post(f"{base}/api/v1/studies/V1/grants", headers=ADMIN_H, json={
            "principal": "group:acme", "capabilities": ["view"]}))
        yield Site(base, sponsor, images)


def login(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", site.sponsor)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")


def presets_state(site: Site) -> list[tuple[str, list[int]]]:
    ids = [p["id"] for image in site.images for p in ok(httpx.get(
        f"{site.base}/api/v1/images/{image}/presets", headers=ADMIN_H))]
    return sorted((i, ok(httpx.get(f"{site.base}/api/v1/presets/{i}/versions",
                                   headers=ADMIN_H))) for i in ids)


def mean(page: Page) -> list[float]:
    return [float(v) for v in page.evaluate(MEAN_RGB)]


def test_a_sponsor_changes_channels_and_shares_the_view(page: Page, site: Site,
                                                        tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    before = presets_state(site)
    tiles = Tiles(page)
    login(page, site)
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    wait_js(page, READY)

    # metadata above the image, the legend with swatches, names and markers
    facts = page.locator("#facts").inner_text()
    for text in ("A-0", "vehicle", "liver", "DNA", "28"):
        assert text in facts, facts
    legend = page.get_by_role("complementary", name="Channels")
    assert legend.locator("li.channel").count() == 3
    assert page.get_by_label("Show DNA").is_checked()  # DAPI's marker from the stain panel
    swatch = legend.locator("li.channel .swatch").first.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert swatch.startswith("rgb(")
    assert page.locator("#scalebar").is_visible()
    assert "µm" in page.locator("#scalebar").inner_text()
    assert page.locator("#loading").is_hidden()
    first = mean(page)
    assert sum(first) > 1, first

    # switch the first channel off: new tiles (inline spec), other pixels
    page.get_by_label("Show DNA").uncheck()
    wait_js(page, "window.plexhubView.spec !== ''")
    wait_js(page, READY)
    page.wait_for_timeout(300)
    off = mean(page)
    assert off != first
    assert any("spec=" in u for u in tiles.urls())
    # change the second channel's window: brighter
    second = legend.locator("li.channel").nth(1)
    end = second.get_by_label(re.compile("window end$"))
    lowest = float(end.get_attribute("min") or 0)
    spec = page.evaluate("window.plexhubView.spec")
    end.evaluate(f"e => {{ e.value = String({lowest} + (e.value - {lowest}) / 4); "
                 "e.dispatchEvent(new Event('input')); }")
    wait_js(page, f"window.plexhubView.spec !== '{spec}'")
    wait_js(page, READY)
    page.wait_for_timeout(300)
    windowed = mean(page)
    assert sum(windowed) > sum(off), (windowed, off)
    assert page.locator("#view-state").inner_text() == "your view (the preset is unchanged)"
    page.screenshot(path=str(tmp_path / "viewer.png"))

    # the URL pins image, preset version, channels and viewport; a fresh page reproduces it
    url = page.url
    assert re.search(r"[?&]preset=[0-9a-f]{32}@1", url), url
    assert re.search(r"[?&]c=-1\|", url), url
    assert re.search(r"[?&]zoom=", url), url
    other = page.context.new_page()
    other.goto(url)
    wait_js(other, "window.plexhubView && window.plexhubView.spec !== ''")
    wait_js(other, READY)
    other.wait_for_timeout(300)
    assert not other.get_by_label("Show DNA").is_checked()
    again = mean(other)
    assert again == pytest.approx(windowed, abs=2), (again, windowed)

    # reset: back to the preset's pixels
    page.get_by_role("button", name="Reset").click()
    wait_js(page, "window.plexhubView.spec === ''")
    wait_js(page, READY)
    page.wait_for_timeout(300)
    assert mean(page) == pytest.approx(first, abs=2)
    assert "c=" not in page.url

    # no preset was changed or added on the way, and nothing was written
    assert presets_state(site) == before
    events = ok(httpx.get(f"{site.base}/api/v1/audit", headers=ADMIN_H))
    assert not [e for e in events if e["action"].startswith("preset.")
                and e["actor"] == "sue"]
    assert not errors, errors


def test_slide_list_filter_and_next_slide_prefetch(page: Page, site: Site) -> None:
    tiles = Tiles(page)
    login(page, site)
    page.goto(f"{site.base}/portal/studies/V1")
    assert page.locator("li.image").count() == 3
    page.get_by_label("Dose group").select_option("high")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*dose_group=high"))
    assert page.locator("#slide-count").inner_text() == "2 of 3 slides"
    page.locator("li.image a").first.click()
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[1]}\?dose_group=high"))
    assert "slide 1 of 2" in page.locator("nav.crumbs").inner_text()
    wait_js(page, READY)
    # the next slide (in the filter) is prefetched once this one is drawn
    wait_js(page, "(window.plexhubView.prefetched || []).length > 0")
    prefetched = page.evaluate("window.plexhubView.prefetched")
    assert all(f"/images/{site.images[2]}/tiles/" in u for u in prefetched)
    wait_js(page, f"{len(prefetched)} <= performance.getEntriesByType('resource')"
                  f".filter(e => e.name.includes('{site.images[2]}')).length")
    page.locator("nav.crumbs").click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[2]}\?dose_group=high"))
    wait_js(page, READY)
    assert tiles.urls()
    page.keyboard.press("p")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[1]}\?dose_group=high"))


def test_a_pathologist_draws_records_a_finding_and_moves_on(page: Page, site: Site,
                                                            tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    token = ok(httpx.post(f"{site.base}/api/v1/tokens", headers=ADMIN_H, json={
        "user": "pat", "role": "scientist"}))["token"]
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    wait_js(page, READY)
    review = page.get_by_role("region", name="Review")
    wait_js(page, "document.querySelectorAll('#finding-term option').length > 0")

    # a polygon of four clicks on the image
    review.get_by_role("button", name="Polygon").click()
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-80, -60), (90, -50), (70, 80), (-60, 60)):
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(120)
    review.get_by_role("button", name="Finish").click()
    review.get_by_label("Class").fill("necrosis")
    review.get_by_label("Note").fill("centrilobular")
    review.get_by_role("button", name="Save annotation").click()
    wait_js(page, "document.querySelectorAll('#annotation-list li').length === 1")
    assert page.locator("svg.annotations polygon.saved").count() == 1
    saved = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/annotations",
                         headers=ADMIN_H))["features"]
    assert len(saved) == 1
    ring = saved[0]["geometry"]["coordinates"][0]
    assert len(ring) == 5
    assert ring[0] == ring[-1]
    assert all(0 <= x <= 1024 and 0 <= y <= 1024 for x, y in ring)
    assert saved[0]["properties"]["class"] == "necrosis"
    assert saved[0]["properties"]["author"] == "pat"

    # a finding on the slide, linked to the polygon
    # (a select's accessible name includes its chosen option: addressed by id)
    assert page.locator("#finding-tissue").input_value() == "liver"  # the slide's tissue
    page.locator("#finding-term").select_option("necrosis, hepatocellular")
    page.locator("#finding-severity").select_option("2")
    page.locator("#finding-distribution").select_option("multifocal")
    review.get_by_label("Comment").fill("around central veins")
    review.locator("#finding-annotations input").check()
    review.get_by_role("button", name="Record finding").click()
    wait_js(page, "document.querySelectorAll('#finding-list li').length === 1")
    assert "necrosis, hepatocellular, grade 2" in page.locator("#finding-list").inner_text()
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    findings = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/findings",
                            headers=ADMIN_H))
    assert [(f["term"], f["severity"], f["annotations"], f["author"]) for f in findings] == \
        [("necrosis, hepatocellular", 2, [saved[0]["id"]], "pat")]

    # the next slide by keyboard
    page.locator("nav.crumbs").click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[1]}$"))
    wait_js(page, READY)
    assert not errors, errors


def test_the_first_tile_is_asked_before_the_scripts_run_and_zoom_buttons(
        page: Page, site: Site, tmp_path: Path) -> None:
    """Opening a slide asks for its first tile while the page is parsed (the HTML's
    preload, before OpenSeadragon runs) and fetches no button images; the page's own zoom
    buttons zoom in, out and back to the whole slide."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    login(page, site)
    page.goto(f"{site.base}/portal/images/{site.images[1]}")
    wait_js(page, READY)
    first_tile, scripts_ran = page.evaluate("""() => {
        const t = performance.getEntriesByType('resource').filter(e => e.name.includes('/tiles/'));
        return [Math.min(...t.map(e => e.startTime)),
                performance.getEntriesByType('navigation')[0].domContentLoadedEventStart]; }""")
    assert first_tile < scripts_ran, (first_tile, scripts_ran)
    assert not [u for u in asked if "/vendor/images/" in u], asked
    zoom = "window.plexhubViewer.viewport.getZoom(true)"
    home = page.evaluate(zoom)
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    wait_js(page, f"{zoom} > {home} * 2.2")
    page.get_by_role("button", name="Zoom out").click()
    wait_js(page, f"{zoom} < {home} * 1.6 && {zoom} > {home} * 1.4")
    page.get_by_role("button", name="Whole slide").click()
    wait_js(page, f"Math.abs({zoom} - {home}) < {home} * 0.01")
    page.locator("#viewer-wrap").screenshot(path=str(tmp_path / "zoom-buttons.png"))
