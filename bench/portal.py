"""The portal's viewer in Chromium, timed (issue 19): a script, never a test.

    python bench/portal.py                # 9 slides of 8 × 2,048² uint16, 8 repeats
    python bench/portal.py --repeats 4 --size 1024

A plexhub server (127.0.0.1, a free port, data under bench/out/portal/) ingests synthetic
8-channel slides; Debian's Chromium (headless, ``--disable-gpu``: no GPU, as on the remote
desktops the issue measured) opens the portal as a sponsor. The server runs with its tile
cache off (``tile_cache_bytes=0``): every tile a figure waits for is rendered, so these
are the figures of a slide nobody opened before.

What is measured, each in a fresh browser context on another slide, after the login and the
studies page (whose idle prefetch of the viewer's versioned scripts is let finish, as it does
for a reader who looks at the page; ``--no-idle`` opens the image at once instead; tiles are
never in the browser's cache before their page asks):

- open: navigation start to the first non-black pixel on the viewer's canvas;
- next: ``n`` pressed (once the slide is drawn and the next one prefetched) to the first
  non-black pixel of the next slide's canvas;
- pan: at full resolution, a 500 px drag released to the first newly loaded tile
  (OpenSeadragon's ``tile-loaded``) plus the frame that draws it;
- toggle: ``2`` pressed (channel 2 off) to the first frame whose pixels differ.

The page is sampled every animation frame (a 32 × 32 downscale of the canvas), by a script
injected before the page's own. Medians and ranges are printed with the goals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plexhub.ome_pipeline.synthetic import SyntheticSpec  # noqa: E402
from plexhub.settings import Settings  # noqa: E402
from tests.helpers.browsing import ARGS, CHROMIUM  # noqa: E402
from tests.helpers.httpapi import ingest, ok  # noqa: E402
from tests.helpers.server import running_server  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
H = {"Authorization": f"Bearer {ADMIN}"}
GOALS = {"open": 300, "next": 250, "pan": 200, "toggle": 300}
# where an open's time goes: page answered, scripts run, first tile asked, first tile in
# and when the tile the main view draws first (OpenSeadragon's closest level, the largest
# that is one tile) was asked for: its preload, else OpenSeadragon's own request
BREAKDOWN = """() => { const n = performance.getEntriesByType('navigation')[0];
  const t = performance.getEntriesByType('resource').filter(e => e.name.includes('/tiles/'));
  const src = window.plexhubViewer.world.getItemAt(0).source;
  const mine = '/tiles/' + (src.maxLevel - src.getClosestLevel()) + '/0/0.jpg';
  const main = t.filter(e => e.name.includes(mine));
  return [n.responseEnd, n.domContentLoadedEventEnd,
          Math.min(...t.map(e => e.startTime)), Math.min(...t.map(e => e.responseEnd)),
          t.length, Math.min(...main.map(e => e.startTime))]; }"""
PROBE = """
(() => {
  const small = document.createElement('canvas'); small.width = 32; small.height = 32;
  const ctx = small.getContext('2d', { willReadFrequently: true });
  window.__bench = { first: null, change: null, loaded: [], last: '' };
  function frame() {
    const v = window.plexhubViewer;
    if (v && v.drawer && v.drawer.canvas && v.drawer.canvas.width) {
      if (!window.__bench.hooked) {
        window.__bench.hooked = true;
        v.addHandler('tile-loaded', () => window.__bench.loaded.push(performance.now()));
      }
      ctx.clearRect(0, 0, 32, 32);
      ctx.drawImage(v.drawer.canvas, 0, 0, 32, 32);
      const d = ctx.getImageData(0, 0, 32, 32).data;
      let sum = 0, key = '';
      for (let i = 0; i < d.length; i += 4) { sum += d[i] + d[i + 1] + d[i + 2];
        if (i % 64 === 0) key += d[i] + ',' + d[i + 1] + ',' + d[i + 2] + ';'; }
      const now = performance.now();
      if (sum > 0 && window.__bench.first === null) window.__bench.first = now;
      if (key !== window.__bench.last) { window.__bench.change = now; window.__bench.last = key; }
    }
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
})();
"""


def wait(page, expression: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile-cache-mb", type=int, default=0,
                    help="the server's tile cache (default 0: every tile is rendered)")
    ap.add_argument("--no-idle", action="store_true",
                    help="open the image at once after the login (the studies page's idle "
                         "prefetch of the viewer's scripts not done yet)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "portal")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.out))
    settings = Settings(data_dir=work / "data", admin_token=SecretStr(ADMIN),
                        tile_cache_bytes=args.tile_cache_mb * 2**20)
    incoming = work / "data" / "incoming"
    incoming.mkdir(parents=True)
    times: dict[str, list[float]] = {k: [] for k in GOALS}
    parts: list[list[float]] = []
    delivered: list[str] = []
    with running_server(settings) as base:
        ok(httpx.post(f"{base}/api/v1/studies", headers=H,
                      json={"code": "B1", "title": "bench", "sponsor": "acme"}))
        slides = [ingest(f"{base}/api/v1", ADMIN, incoming, "B1", f"s{i:02}.ome.tif",
                         SyntheticSpec(size_y=args.size, size_x=args.size, channels=8,
                                       tile=512, seed=i),
                         {"animal_id": f"A-{i}", "dose_group": "high", "tissue": "liver"},
                         timeout=600)
                  for i in range(args.repeats + 1)]
        sponsor = ok(httpx.post(f"{base}/api/v1/tokens", headers=H, json={
            "user": "sue", "role": "sponsor", "groups": ["acme"]}))["token"]
        ok(httpx.post(f"{base}/api/v1/studies/B1/grants", headers=H, json={
            "principal": "group:acme", "capabilities": ["view"]}))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            for i in range(args.repeats):
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                ctx.add_init_script(PROBE)
                page = ctx.new_page()
                page.goto(f"{base}/portal/login")
                page.fill("#token", sponsor)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/portal/")
                if not args.no_idle:  # as a reader on the studies page (its prefetches done)
                    page.wait_for_load_state("networkidle")
                page.goto(f"{base}/portal/images/{slides[i]}")
                wait(page, "window.__bench && window.__bench.first !== null")
                times["open"].append(page.evaluate("window.__bench.first"))
                parts.append(page.evaluate(BREAKDOWN))
                wait(page, "window.plexhubView.ready")
                # channel toggle
                page.wait_for_timeout(300)
                t0 = page.evaluate("performance.now()")
                page.keyboard.press("2")
                wait(page, f"window.__bench.change > {t0}")
                times["toggle"].append(page.evaluate("window.__bench.change") - t0)
                wait(page, "window.plexhubView.ready")
                # pan at full resolution
                page.evaluate("""() => { const vp = window.plexhubViewer.viewport;
                    vp.zoomTo(vp.imageToViewportZoom(1), null, true); }""")
                wait(page, "window.plexhubView.ready")
                page.wait_for_timeout(300)
                box = page.locator("#viewer").bounding_box()
                assert box is not None
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(cx, cy)
                page.mouse.down()
                page.mouse.move(cx + 500, cy + 200, steps=8)
                t0 = page.evaluate("performance.now()")
                page.mouse.up()
                wait(page, f"window.__bench.loaded.some(t => t > {t0})")
                loaded = page.evaluate(f"window.__bench.loaded.find(t => t > {t0})")
                page.wait_for_timeout(50)
                times["pan"].append(loaded - t0 + 1000 / 60)
                # next slide (prefetched once this one was drawn)
                page.goto(f"{base}/portal/images/{slides[i]}")
                wait(page, "window.plexhubView && window.plexhubView.ready")
                wait(page, "(window.plexhubView.prefetched || []).length > 0")
                page.wait_for_timeout(500)
                page.locator("nav.crumbs").click()
                t_key = page.evaluate("Date.now()")
                page.keyboard.press("n")
                page.wait_for_url(f"**/images/{slides[i + 1]}")
                wait(page, "window.__bench && window.__bench.first !== null")
                shown = page.evaluate("performance.timeOrigin + window.__bench.first")
                times["next"].append(shown - t_key)
                # "navigational-prefetch" when the page came from its speculation rules
                delivered.append(page.evaluate(
                    "performance.getEntriesByType('navigation')[0].deliveryType || 'network'"))
                ctx.close()
                print(f"slide {i}: " + ", ".join(f"{k} {v[-1]:.0f} ms"
                                                  for k, v in times.items()), flush=True)
            browser.close()
    print(f"\nportal viewer, {args.repeats} slides of 8 × {args.size}² uint16, tile cache "
          f"{args.tile_cache_mb} MB, Chromium headless --disable-gpu, canvas drawer")
    print(f"{'figure':8} {'median ms':>10} {'range':>14} {'goal':>6}")
    for k, v in times.items():
        med = statistics.median(v)
        verdict = "met" if med <= GOALS[k] else "missed"
        print(f"{k:8} {med:10.0f} {min(v):6.0f}–{max(v):<6.0f} {GOALS[k]:6} {verdict}")
    if parts:
        cols = list(zip(*(c[:5] for c in parts), strict=True))
        print("open, medians: page answered {:.0f} ms, scripts run {:.0f}, first tile asked "
              "{:.0f}, first tile in {:.0f}, tiles asked {:.0f}".format(
                  *(statistics.median(c) for c in cols)))
        # little dependent on the machine's load: how long after the page's HTML arrived
        # its first tile was asked for (0 when the HTML's preload asks as it is parsed)
        after = statistics.median(a - p for p, _, a, *_ in parts)
        main = statistics.median(c[5] for c in parts)
        print(f"open, medians, load-independent: first tile asked {after:.0f} ms after the "
              f"page arrived; the main view's first tile asked {main:.0f} ms after navigation "
              "start")
    if delivered:
        print("next, the page delivered by: " + ", ".join(
            f"{k} {delivered.count(k)}" for k in sorted(set(delivered))))
    (args.out / f"portal-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
