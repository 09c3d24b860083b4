"""The viewer's reading tools (issue 19) in Chromium against a real uvicorn server: a
sponsor's own saved view (reopened by its URL, listed for it alone, no preset changed),
staff saving the current channels as a preset, the values under the cursor, a freehand
outline, two slides side by side with pan and zoom in step, a guided view a sponsor steps
through (and loses when it is revoked), and the slide list by review state with the
"next unreviewed" key."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.e2e.test_portal_viewer import (  # the same three-slide study
    ADMIN_H,
    READY,
    Site,
    login,
    mean,
    presets_state,
    site,
)
from tests.helpers.browsing import wait_js, wait_refused
from tests.helpers.httpapi import ok

pytestmark = pytest.mark.e2e
__all__ = ["site"]  # the fixture, used by name


def login_as(page: Page, site: Site, user: str, role: str) -> None:
    token = ok(httpx.post(f"{site.base}/api/v1/tokens", headers=ADMIN_H, json={
        "user": user, "role": role}))["token"]
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")


def settle(page: Page) -> None:
    wait_js(page, READY)
    page.wait_for_timeout(300)


def test_a_sponsor_saves_its_own_view(page: Page, site: Site, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    before = presets_state(site)
    login(page, site)
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    assert page.get_by_role("button", name="Save as preset").count() == 0  # staff only
    page.get_by_label("Show DNA").uncheck()
    wait_js(page, "window.plexhubView.spec !== ''")
    settle(page)
    changed = mean(page)
    views = page.get_by_role("region", name="Saved views")
    views.get_by_label("View name").fill("no DNA")
    views.get_by_role("button", name="Save my view").click()
    wait_js(page, "!!document.getElementById('views').dataset.saved")
    assert "yours only" in page.locator("#views-status").inner_text()
    assert page.locator("#my-views option", has_text="no DNA").count() == 1
    page.screenshot(path=str(tmp_path / "saved-view.png"))
    url = page.locator("#views").get_attribute("data-saved")
    assert url is not None

    # reopened by its URL in a fresh page: the same channels and pixels
    other = page.context.new_page()
    other.goto(f"{site.base.split('/portal')[0]}{url}")
    other.wait_for_url(re.compile(rf".*/portal/images/{site.images[0]}\?.*c=-1"))
    wait_js(other, "window.plexhubView && window.plexhubView.spec !== ''")
    settle(other)
    assert not other.get_by_label("Show DNA").is_checked()
    assert mean(other) == pytest.approx(changed, abs=2)
    # listed after a reload, for this sponsor only; the CRO's presets are as they were
    other.goto(f"{site.base}/portal/images/{site.images[0]}")
    assert other.locator("#my-views option", has_text="no DNA").count() == 1
    sam = ok(httpx.post(f"{site.base}/api/v1/tokens", headers=ADMIN_H, json={
        "user": "sam", "role": "sponsor", "groups": ["acme"]}))["token"]
    assert ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/views",
                        headers={"Authorization": f"Bearer {sam}"})) == []
    assert httpx.get(f"{site.base}{url}", headers={"Authorization": f"Bearer {sam}"},
                     follow_redirects=False).status_code == 404
    assert presets_state(site) == before
    assert not errors, errors


def test_staff_save_the_channels_as_a_preset(page: Page, site: Site) -> None:
    login_as(page, site, "pat", "scientist")
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    assert page.locator("#preset-reason").count() == 0  # this study's profile asks none
    page.get_by_label("Show DNA").uncheck()
    wait_js(page, "window.plexhubView.spec !== ''")
    views = page.get_by_role("region", name="Saved views")
    views.get_by_label("View name").fill("no DNA (staff)")
    views.get_by_role("button", name="Save as preset").click()
    page.wait_for_url(re.compile(r".*[?&]preset=[0-9a-f]{32}%401"))  # the new preset
    settle(page)
    assert "no DNA (staff) · v1 · pat" in page.locator("#preset option:checked").inner_text()
    assert not page.get_by_label("Show DNA").is_checked()  # the preset's own settings now
    assert page.locator("#view-state").inner_text() == "no DNA (staff)"
    listed = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/presets",
                          headers=ADMIN_H))
    assert "no DNA (staff)" in [p["name"] for p in listed]


def test_values_under_the_cursor_and_a_freehand_outline(page: Page, site: Site,
                                                        tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login_as(page, site, "pat", "scientist")
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 20, cy - 10)
    page.mouse.move(cx, cy, steps=4)
    wait_js(page, "window.plexhubCursor.last !== null")
    page.wait_for_timeout(300)
    last = page.evaluate("window.plexhubCursor.last")
    values = page.get_by_role("status", name="Values under the cursor")
    assert values.is_visible()
    assert f"x {last['x']}, y {last['y']}" in values.inner_text()
    assert "DNA" in values.inner_text()
    direct = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/values",
                          headers=ADMIN_H, params={"x": last["x"], "y": last["y"]}))
    assert [c["value"] for c in last["channels"]] == [c["value"] for c in direct["channels"]]
    assert abs(last["x"] - 512) < 80  # the image's centre
    assert abs(last["y"] - 512) < 80

    # freehand: press, drag around, release; saved as a Polygon in level-0 pixels
    review = page.get_by_role("region", name="Review")
    review.get_by_role("button", name="Freehand").click()
    page.locator("#viewer").scroll_into_view_if_needed()  # the click scrolled the page
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    points = [(cx + 100 * math.cos(a / 20 * 2 * math.pi),
               cy + 70 * math.sin(a / 20 * 2 * math.pi)) for a in range(21)]
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()
    assert "Shape ready" in page.locator("#review-status").inner_text(), errors
    review.get_by_label("Class").fill("inflammation")
    review.get_by_role("button", name="Save annotation").click()
    wait_js(page, "document.querySelectorAll('#annotation-list li').length === 1")
    assert "freehand · inflammation" in page.locator("#annotation-list").inner_text()
    assert page.locator("svg.annotations polygon.saved").count() == 1
    page.screenshot(path=str(tmp_path / "freehand.png"))
    (saved,) = ok(httpx.get(f"{site.base}/api/v1/images/{site.images[0]}/annotations",
                            headers=ADMIN_H))["features"]
    assert saved["properties"]["shape"] == "freehand"
    ring = saved["geometry"]["coordinates"][0]
    assert saved["geometry"]["type"] == "Polygon"
    assert len(ring) > 20
    assert ring[0] == ring[-1]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert min(xs) < 512 < max(xs)
    assert min(ys) < 512 < max(ys)
    assert not errors, errors


def test_two_slides_side_by_side_move_together(page: Page, site: Site, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, site)
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    page.locator("#compare-with").select_option(site.images[1])
    page.get_by_role("button", name="Side by side").click()
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[0]}/compare\?with="))
    wait_js(page, "window.plexhubCompare && window.plexhubCompare.opened === 2")
    centres = """() => window.plexhubCompare.viewers.map(v => {
        const c = v.viewport.getCenter(true); return [c.x, c.y, v.viewport.getZoom(true)]; })"""
    # zoom in on the left one, then drag it: the right one follows
    box = page.locator("#viewer-0").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4
    page.mouse.move(x, y)
    for _ in range(3):
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(150)
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1200)
    (lt, rt) = page.evaluate(centres)
    assert lt[2] > 1.5, lt  # zoomed in
    assert lt == pytest.approx(rt, rel=1e-3, abs=1e-4), (lt, rt)
    page.screenshot(path=str(tmp_path / "compare.png"))
    # out of step: only the left one moves
    page.get_by_label("keep in step").uncheck()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1000)
    (lt2, rt2) = page.evaluate(centres)
    assert rt2 == pytest.approx(rt, abs=1e-6)
    assert lt2[0] != pytest.approx(lt[0], abs=1e-3)
    # both slides' tiles were drawn: neither canvas is black
    for i in range(2):
        lit = page.evaluate(f"""() => {{
            const c = window.plexhubCompare.viewers[{i}].drawer.canvas;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let s = 0; for (let k = 0; k < d.length; k += 4) s += d[k] + d[k + 1] + d[k + 2];
            return s; }}""")
        assert lit > 0
    assert not errors, errors


def test_a_sponsor_steps_through_a_guided_view(page: Page, site: Site, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ann = ok(httpx.post(f"{site.base}/api/v1/images/{site.images[1]}/annotations",
                        headers=ADMIN_H, json={"type": "FeatureCollection", "features": [
                            {"type": "Feature", "properties": {"class": "necrosis"},
                             "geometry": {"type": "Polygon", "coordinates": [
                                 [[400, 400], [600, 420], [520, 600], [400, 400]]]}}]}))
    guide = ok(httpx.post(f"{site.base}/api/v1/studies/V1/guides", headers=ADMIN_H, json={
        "name": "tour", "title": "Vehicle and high dose", "waypoints": [
            {"image_id": site.images[0], "title": "Vehicle", "text": "A normal liver."},
            {"image_id": site.images[1], "title": "High dose", "text": "Necrosis here.",
             "c": "-1|0:1000,2|0:3000,3|0:3000", "x": 500, "y": 480, "zoom": 1.5,
             "annotation_id": ann["ids"][0]}]}))
    login(page, site)
    page.goto(f"{site.base}/portal/studies/V1")
    page.get_by_role("link", name="Vehicle and high dose").click()
    page.wait_for_url(re.compile(rf".*/portal/guides/{guide['id']}$"))
    settle(page)
    step = page.get_by_role("region", name="Guided view step")
    assert "Step 1 of 2" in step.inner_text()
    assert "A normal liver." in step.inner_text()
    page.locator("#guide-position").click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r".*\?step=2$"))
    wait_js(page, "window.plexhubView && window.plexhubView.spec !== ''")
    settle(page)
    assert "Necrosis here." in step.inner_text()
    assert not page.get_by_label("Show DNA").is_checked()  # the waypoint's channels
    zoom = page.evaluate("""() => { const vp = window.plexhubViewer.viewport;
        return vp.viewportToImageZoom(vp.getZoom(true)); }""")
    assert zoom == pytest.approx(1.5, rel=0.05)
    assert page.locator("svg.annotations polygon.saved").count() == 1
    page.screenshot(path=str(tmp_path / "guide.png"))
    page.get_by_role("link", name="‹ previous (p)").click()
    page.wait_for_url(re.compile(r".*\?step=1$"))
    # revoked: the sponsor's page is a 404, and the study page no longer lists it
    ok(httpx.post(f"{site.base}/api/v1/guides/{guide['id']}/revoke", headers=ADMIN_H,
                  json={"reason": "superseded"}))
    wait_refused(page)
    page.goto(f"{site.base}/portal/studies/V1")
    assert page.locator("#guides").count() == 0
    assert not errors, errors


def test_slides_by_review_state_and_next_unreviewed(page: Page, site: Site) -> None:
    # the primary pathologist records a finding on the second slide and completes it: it is
    # no longer "not reviewed" (the peer review's record of the slide is its state)
    ok(httpx.put(f"{site.base}/api/v1/studies/V1/review", headers=ADMIN_H,
                 json={"primary": "patty", "peer": "pete", "reason": "assign"}))
    primary = {"Authorization": "Bearer " + ok(httpx.post(
        f"{site.base}/api/v1/tokens", headers=ADMIN_H,
        json={"user": "patty", "role": "scientist"}))["token"]}
    ok(httpx.post(f"{site.base}/api/v1/images/{site.images[1]}/findings", headers=primary,
                  json={"tissue": "liver", "term": "necrosis, hepatocellular",
                        "severity": 2}))
    done = ok(httpx.post(f"{site.base}/api/v1/images/{site.images[1]}/review/complete",
                         headers=primary, json={}))
    assert done["review_state"] == "primary_done"
    login_as(page, site, "pat", "scientist")
    page.goto(f"{site.base}/portal/studies/V1")
    page.get_by_label("Review state").select_option("not_reviewed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*review_state=not_reviewed"))
    assert page.locator("#slide-count").inner_text() == "2 of 3 slides"
    shown = page.locator("li.image").evaluate_all("els => els.map(e => e.dataset.image)")
    assert shown == [site.images[0], site.images[2]]
    # from the first slide of the whole study, u skips the reviewed one
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    assert page.get_by_role("link", name="next unreviewed (u) »").count() == 1
    page.locator("nav.crumbs").click()
    page.keyboard.press("u")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[2]}$"))
    # a sponsor is offered no review-state filter
    page.context.clear_cookies()
    login(page, site)
    page.goto(f"{site.base}/portal/studies/V1")
    assert page.get_by_label("Review state").count() == 0
    assert page.get_by_label("Dose group").count() == 1


def test_staff_compose_a_guided_view_across_slides(page: Page, site: Site) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login_as(page, site, "pat", "scientist")
    page.goto(f"{site.base}/portal/images/{site.images[0]}")
    settle(page)
    compose = page.get_by_role("group", name="Compose a guided view")
    compose.get_by_label("Guide name").fill("dose tour")
    compose.get_by_label("Step title").fill("Vehicle")
    compose.get_by_label("Step text").fill("A normal liver.")
    compose.get_by_role("button", name="Add this view as a step").click()
    assert compose.locator("#guide-steps li").count() == 1
    # the next slide, channel 1 off: the draft goes along
    page.locator("nav.crumbs").click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf".*/portal/images/{site.images[1]}$"))
    settle(page)
    page.get_by_label("Show DNA").uncheck()
    wait_js(page, "window.plexhubView.spec !== ''")
    compose = page.get_by_role("group", name="Compose a guided view")
    assert compose.get_by_label("Guide name").input_value() == "dose tour"
    compose.get_by_label("Step text").fill("High dose, without DNA.")
    compose.get_by_role("button", name="Add this view as a step").click()
    assert compose.locator("#guide-steps li").count() == 2
    compose.get_by_role("button", name="Publish guided view").click()
    wait_js(page, "!!document.getElementById('published-guide')")
    assert "Published version 1" in page.locator("#review-status").inner_text()
    (guide,) = ok(httpx.get(f"{site.base}/api/v1/studies/V1/guides", headers=ADMIN_H))
    doc = ok(httpx.get(f"{site.base}/api/v1/guides/{guide['id']}", headers=ADMIN_H))
    steps = doc["waypoints"]
    assert [w["image_id"] for w in steps] == site.images[:2]
    assert steps[0]["title"] == "Vehicle"
    assert steps[1]["c"].startswith("-1|")
    assert {"preset", "x", "y", "zoom"} <= set(steps[1])
    page.locator("#published-guide").click()
    page.wait_for_url(re.compile(rf".*/portal/guides/{guide['id']}$"))
    settle(page)
    assert "A normal liver." in page.locator("#guide-step").inner_text()
    assert not errors, errors
