"""What the browser tests share: the Chromium they drive (Debian's package, never
``playwright install``: CI installs ``chromium`` with apt and nothing is downloaded), waiting
on the page, the DeepZoom tiles it loads, and waiting until a revoked grant is refused."""

from __future__ import annotations

import time

from playwright.sync_api import Page, Response

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


# the share of the notebook viewer's canvas that is lit (tiles drawn, not a black canvas)
CANVAS_LIT = """() => {
  const c = document.querySelector('.plexhub-canvas');
  if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
  return lit / (d.length / 4);
}"""


def wait_js(page: Page, expression: str, timeout: float = 15) -> None:
    """Poll a JavaScript expression (page.wait_for_function evaluates strings with eval,
    which the portal's Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


class Tiles:
    """Tile responses the page received (the tile route's or DeepZoom's)."""

    def __init__(self, page: Page) -> None:
        self.seen: list[tuple[str, int, str]] = []
        page.on("response", self._on)

    def _on(self, response: Response) -> None:
        if "/image_files/" in response.url or "/tiles/" in response.url:
            self.seen.append((response.url, response.status,
                              response.headers.get("content-type", "")))

    def urls(self) -> set[str]:
        return {u for u, _, _ in self.seen}

    def wait_new(self, page: Page, before: set[str], what: str, timeout: float = 15) -> set[str]:
        deadline = time.monotonic() + timeout
        while not (self.urls() - before):
            assert time.monotonic() < deadline, f"no new tile requests after {what}"
            page.wait_for_timeout(100)
        page.wait_for_timeout(500)  # let the rest of that batch arrive
        new = self.urls() - before
        for url, status, ctype in self.seen:
            if url in new:
                assert status == 200, (url, status)
                assert ctype.startswith("image/"), (url, ctype)
        return new


def wait_refused(page: Page, within: float = 10.0) -> None:
    """Reload until the page answers 404 (a revoked or expired grant); fail after
    ``within`` seconds."""
    t0 = time.monotonic()
    while True:
        response = page.reload()
        assert response is not None
        if response.status == 404:
            return
        assert time.monotonic() - t0 < within, \
            f"the revoked grant still works after {within:.0f} s"
        page.wait_for_timeout(250)
