"""Browser logins through the hub (Debian chromium driven by Playwright; the ``browser``
fixture is tests/conftest.py's): a scientist lands in JupyterLab, a sponsor on the portal
and never on /hub/spawn."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from plexhub.ome_pipeline.synthetic import SyntheticSpec
from tests.helpers.browsing import Tiles, wait_refused
from tests.helpers.httpapi import ingest, ok
from tests.helpers.hub import ADMIN_TOKEN, PASSWORD, PREFIX, Hub, running_hub
from tests.helpers.sample_data import notebook

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub-e2e")) as h:
        yield h


def _login(browser: Any, hub: Hub, user: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    page = context.new_page()
    visited: list[str] = []
    page.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    return context, page, visited


def test_scientist_lands_in_jupyterlab(hub: Hub, browser: Any) -> None:
    context, page, _ = _login(browser, hub, "scientist")
    try:
        page.wait_for_url(re.compile(rf"^{re.escape(hub.base)}/user/scientist/lab"),
                          timeout=120_000)
        page.locator("#jp-main-dock-panel").wait_for(timeout=120_000)  # the Lab shell
        assert page.title().endswith("JupyterLab")
    finally:
        context.close()


def test_sponsor_lands_on_the_portal(hub: Hub, browser: Any) -> None:
    context, page, visited = _login(browser, hub, "sponsor")
    portal = f"{hub.base}{PREFIX}/portal/"
    try:
        # the portal's own pages decide what follows (its sign-in or OAuth through the hub)
        page.wait_for_url(re.compile(rf"^{re.escape(portal)}"), timeout=60_000)
        last_login = max(i for i, u in enumerate(visited)
                         if u.startswith(f"{hub.base}/hub/login"))
        assert visited[last_login + 1] == portal, visited  # the hub's redirect after login
        assert not [u for u in visited if "/hub/spawn" in u], visited
        assert hub.hub_api("GET", "/users/sponsor").json()["servers"] == {}
        page.goto(f"{hub.base}/hub/spawn")  # asking for a server anyway: refused
        assert "403" in page.content()
        assert hub.hub_api("GET", "/users/sponsor").json()["servers"] == {}
    finally:
        context.close()


def test_sponsor_through_the_hub_sees_only_the_granted_study(hub: Hub, browser: Any) -> None:
    """The whole sponsor path behind the hub: hub login form, OAuth into the portal, only
    the granted study, an image whose tiles load and pan, a published notebook, another
    study by URL is a 404, and a revoked grant is refused within 10 s."""
    images = {}
    for code, seed in (("H1", 1), ("H2", 2)):
        ok(hub.api("POST", "/studies", json={"code": code, "title": f"Hub study {code}",
                                             "sponsor": "acme"}))
        images[code] = ingest(f"{hub.base}{PREFIX}/api/v1", ADMIN_TOKEN,
                              hub.data_dir / "incoming", code, f"{code.lower()}.ome.tif",
                              SyntheticSpec(size_y=1024, size_x=1024, channels=2, tile=256,
                                            seed=seed))
    grant = ok(hub.api("POST", "/studies/H1/grants", json={
        "principal": "user:sponsor", "capabilities": ["view", "view_notebooks"],
        "reason": "e2e"}))["id"]
    nb = ok(hub.api("POST", "/studies/H1/notebooks", json={
        "name": "Hub report", "notebook": notebook(markdown="# Hub report\n\nDose groups.")}))

    context, page, _ = _login(browser, hub, "sponsor")
    portal = f"{hub.base}{PREFIX}/portal/"
    try:
        tiles = Tiles(page)
        page.wait_for_url(re.compile(rf"^{re.escape(portal)}"), timeout=60_000)
        studies = page.locator("[data-study]")
        assert [studies.nth(i).get_attribute("data-study")
                for i in range(studies.count())] == ["H1"]
        page.click("text=H1")
        page.click(f"[data-image='{images['H1']}'] a")
        page.wait_for_url(re.compile(rf".*/portal/images/{images['H1']}$"))
        first = tiles.wait_new(page, set(), "opening the image")
        box = page.locator("#viewer").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        for _ in range(4):
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(150)
        page.mouse.down()
        page.mouse.move(cx - 300, cy - 200, steps=8)
        page.mouse.up()
        tiles.wait_new(page, first, "zooming and panning")

        page.goto(f"{portal}notebooks/{nb['id']}")
        assert "Dose groups." in page.locator("#notebook").inner_text()

        for path in ("studies/H2", f"images/{images['H2']}"):
            response = page.goto(f"{portal}{path}")
            assert response is not None
            assert response.status == 404, path

        page.goto(f"{portal}images/{images['H1']}")
        ok(hub.api("DELETE", f"/grants/{grant}", params={"reason": "e2e done"}))
        wait_refused(page)
    finally:
        context.close()
