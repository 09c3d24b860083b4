"""Browser logins through the hub (Debian chromium driven by Playwright; the ``browser``
fixture is tests/e2e/conftest.py's): a scientist lands in JupyterLab, a sponsor on the portal
and never on /hub/spawn."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.hubtools import PASSWORD, PREFIX, Hub, running_hub

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
