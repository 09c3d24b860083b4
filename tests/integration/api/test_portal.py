"""The sponsor portal (server-rendered pages) through the ASGI app: login with a token
cookie, pages, 404 (never 403) for what is not shared, sanitized notebooks, mount prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plexhub.api.main import create_app
from tests.helpers.api import Api
from tests.helpers.sample_data import hostile_notebook, ingest_synthetic, notebook

TEMPLATES = Path(__file__).resolve().parents[3] / "api" / "portal" / "templates"
PAGES = ("/portal/", "/portal/studies/S001", "/portal/images/x", "/portal/notebooks/x")


@dataclass
class World:
    sponsor: str
    images: list[str]
    other_image: str
    notebook: str
    notebook_v2: str
    hidden_notebook: str


@pytest.fixture
def world(api: Api) -> World:
    api.study("S001", sponsor="acme")
    api.study("S002", sponsor="globex")
    meta = {"animal_id": "A-1", "slide_id": "SL-1", "notes": "internal note"}
    images = [ingest_synthetic(api, "S001", f"a{i}.ome.tif", i, meta)[0] for i in range(3)]
    other = ingest_synthetic(api, "S002", "b.ome.tif", 9, meta)[0]
    api.client.patch("/api/v1/studies/S001", json={"internal_fields": ["notes"]},
                     headers=api.h())
    nb1 = api.post("/api/v1/studies/S001/notebooks",
                   {"name": "report", "notebook": notebook("Version one")}).json()["id"]
    nb2 = api.post("/api/v1/studies/S001/notebooks",
                   {"name": "report", "notebook": hostile_notebook()}).json()["id"]
    hidden = api.post("/api/v1/studies/S002/notebooks",
                      {"name": "secret", "notebook": notebook("Other")}).json()["id"]
    sponsor = api.token("sue", "sponsor", ["acme"])
    api.post("/api/v1/studies/S001/grants", {"principal": "group:acme",
                                             "capabilities": ["view", "view_notebooks"]})
    return World(sponsor, images, other, nb1, nb2, hidden)


def login(client: TestClient, token: str, prefix: str = "") -> None:
    r = client.post(f"{prefix}/portal/login", data={"token": token,
                                                    "next": f"{prefix}/portal/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{prefix}/portal/"


def test_pages_need_a_session_and_login_sets_a_safe_cookie(api: Api, world: World) -> None:
    c = api.client
    for path in PAGES:
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 302, path
        assert r.headers["location"].startswith("/portal/login?next=")
    assert c.get("/portal/login").status_code == 200
    r = c.post("/portal/login", data={"token": "phk_wrong"}, follow_redirects=False)
    assert r.status_code == 401
    assert "unknown or revoked" in r.text
    r = c.post("/portal/login", data={"token": world.sponsor},
               headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403
    assert "plexhub-session" not in r.headers.get("set-cookie", "")
    r = c.post("/portal/login", data={"token": world.sponsor, "next": "https://evil.example/"},
               follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/portal/"  # never off-site
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("plexhub-session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    page = c.get("/portal/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'data-user="sue"' in page.text
    r = c.post("/portal/logout", follow_redirects=False)
    assert r.status_code == 303
    assert 'plexhub-session=""' in r.headers["set-cookie"]
    assert c.get("/portal/", follow_redirects=False).status_code == 302


def test_sponsor_sees_only_granted_studies_and_de_identified_metadata(api: Api,
                                                                     world: World) -> None:
    login(api.client, world.sponsor)
    home = api.client.get("/portal/").text
    assert re.findall(r'data-study="([^"]+)"', home) == ["S001"]
    assert "S002" not in home
    study = api.client.get("/portal/studies/S001").text
    assert re.findall(r'data-image="([^"]+)"', study) == world.images
    for image in world.images:
        assert f'src="/api/v1/images/{image}/thumbnail.png?max=256"' in study
    assert "A-1" in study
    assert "SL-1" not in study
    assert "internal note" not in study
    assert f'data-notebook="{world.notebook_v2}"' in study
    thumb = api.client.get(f"/api/v1/images/{world.images[0]}/thumbnail.png?max=256")
    assert thumb.status_code == 200  # the cookie authenticates the API too
    assert thumb.content.startswith(b"\x89PNG")


def test_not_shared_is_a_404_page_that_confirms_nothing(api: Api, world: World) -> None:
    login(api.client, world.sponsor)
    unknown = api.client.get("/portal/studies/NOPE")
    for path in ("/portal/studies/S002", f"/portal/images/{world.other_image}",
                 f"/portal/notebooks/{world.hidden_notebook}"):
        r = api.client.get(path)
        assert r.status_code == 404, path
        assert "text/html" in r.headers["content-type"]
        assert r.text == unknown.text  # the same page as for something that does not exist
        assert "S002" not in r.text
        assert "globex" not in r.text
    # a grant with only view_notebooks shows the study's notebooks but no images
    api.post("/api/v1/studies/S002/grants", {"principal": "user:sue",
                                             "capabilities": ["view_notebooks"]})
    study = api.client.get("/portal/studies/S002")
    assert study.status_code == 200
    assert f'data-notebook="{world.hidden_notebook}"' in study.text
    assert "data-image=" not in study.text
    assert api.client.get(f"/portal/images/{world.other_image}").status_code == 404


def test_image_page_has_the_bundled_viewer_and_neighbours(api: Api, world: World) -> None:
    login(api.client, world.sponsor)
    first, middle, last = world.images
    r = api.client.get(f"/portal/images/{middle}")
    assert r.status_code == 200
    html = r.text
    assert re.search(r'src="/portal/static/vendor/openseadragon\.min\.js\?v=[0-9a-f]{16}"', html)
    assert "cdn" not in html.lower()
    assert "https://" not in html
    assert f'data-tiles="/api/v1/images/{middle}/tiles/"' in html
    assert f'data-prev="/portal/images/{first}"' in html
    assert f'data-next="/portal/images/{last}"' in html
    assert 'data-next=""' in api.client.get(f"/portal/images/{last}").text
    assert "SL-1" not in html
    assert "internal note" not in html
    js = api.client.get("/portal/static/vendor/openseadragon.min.js")
    assert js.status_code == 200
    assert js.text.startswith("//! openseadragon 6.")
    assert api.client.get("/portal/static/vendor/images/zoomin_rest.png").status_code == 200
    assert api.client.get("/portal/static/viewer.js").status_code == 200
    dzi = api.client.get(f"/api/v1/images/{middle}/image.dzi")
    assert dzi.status_code == 200
    assert 'Width="64"' in dzi.text


def test_notebook_page_is_sanitized_with_a_version_switcher(api: Api, world: World) -> None:
    login(api.client, world.sponsor)
    r = api.client.get(f"/portal/notebooks/{world.notebook_v2}")
    assert r.status_code == 200
    html = r.text
    assert "Tumour area by dose group." in html
    assert re.search(r"<script", html, re.I) is None  # the page itself needs none either
    assert re.search(r"\bon[a-z]+\s*=", html, re.I) is None
    assert "javascript:" not in html.lower()
    assert "pwned" not in html
    assert f'href="/portal/notebooks/{world.notebook}"' in html
    assert "v2</strong>" in html
    assert "script-src 'self'" in r.headers["content-security-policy"]
    old = api.client.get(f"/portal/notebooks/{world.notebook}")
    assert "Version one" in old.text


def test_pages_work_under_a_mount_prefix(api: Api, world: World) -> None:
    prefix = "/services/plexhub"
    with TestClient(create_app(api.settings), root_path=prefix) as c:
        r = c.get(f"{prefix}/portal/studies/S001", follow_redirects=False)
        assert r.status_code == 302
        assert r.headers["location"] == \
            f"{prefix}/portal/login?next={prefix}/portal/studies/S001"
        r = c.post(f"{prefix}/portal/login", data={
            "token": world.sponsor, "next": f"{prefix}/portal/studies/S001"},
            follow_redirects=False)
        assert r.headers["location"] == f"{prefix}/portal/studies/S001"
        assert f"Path={prefix}/" in r.headers["set-cookie"]
        html = c.get(f"{prefix}/portal/images/{world.images[0]}").text
        links = re.findall(r'(?:href|src|action|data-[a-z]+)="(/[^"]*)"', html)
        assert links
        assert all(link.startswith(prefix + "/") for link in links), links
        study = c.get(f"{prefix}/portal/studies/S001").text
        assert f'src="{prefix}/api/v1/images/{world.images[0]}/thumbnail.png' in study
        assert c.get(f"{prefix}/portal/static/portal.css").status_code == 200


def test_templates_build_every_url_from_the_mount_prefix() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        absolute = re.findall(r'(?:href|src|action|data-[a-z]+)="/', text)
        assert not absolute, f"{template.name}: use {{{{ base }}}} before absolute URLs"


def test_catalog_text_is_escaped_in_pages(api: Api) -> None:
    r = api.post("/api/v1/studies", {"code": "X1", "title": "<script>alert(1)</script>",
                                     "sponsor": "<img src=x onerror=alert(2)>"})
    assert r.status_code == 201
    for path in ("/portal/", "/portal/studies/X1"):
        html = api.get(path).text  # staff, with the bearer header
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert" not in html
        assert "<img src=x" not in html


def test_static_assets_are_compressed_and_cached_by_version(api: Api) -> None:
    html = api.get("/portal/").text  # staff, with the bearer header
    css = re.search(r'href="(/portal/static/portal\.css\?v=[0-9a-f]{16})"', html)
    assert css
    from plexhub.api.portal.web import ASSETS

    url = ASSETS.url("", "vendor/openseadragon.min.js")
    r = api.client.get(url, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < 130_000  # 353 KB uncompressed
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.text.startswith("//! openseadragon 6.")
    again = api.client.get(url, headers={"Accept-Encoding": "gzip",
                                         "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    plain = api.client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 300_000
    unpinned = api.client.get("/portal/static/viewer.js")
    assert unpinned.headers["cache-control"] == "public, max-age=300"
    assert unpinned.headers["content-type"] == "text/javascript; charset=utf-8"
    for bad in ("/portal/static/../web.py", "/portal/static/%2e%2e/web.py",
                "/portal/static/nope.js"):
        assert api.client.get(bad).status_code == 404, bad


def test_the_image_page_preloads_the_tiles_its_viewer_draws_first(api: Api,
                                                                  world: World) -> None:
    """The image page preloads the tiles its viewer draws first (the main view's first
    level, then the overview map's), so their requests start before the scripts run; each
    is an ordinary tile request (a caller without a grant gets the 404)."""
    image = ingest_synthetic(api, "S001", "big.ome.tif", 5, size=1100)[0]
    outsider = api.token("gus", "sponsor", ["globex"])
    login(api.client, world.sponsor)
    html = api.client.get(f"/portal/images/{image}").text
    urls = [unescape(u) for u in
            re.findall(r'<link rel="preload" as="image" href="([^"]+)"', html)]
    # levels of 1100, 550, 275 and 137 px: the largest that is one 512 px tile is the main
    # view's first (OpenSeadragon's getClosestLevel), the smallest the overview map's
    assert [u.split("/tiles/")[1].split("?")[0] for u in urls] == ["2/0/0.jpg", "3/0/0.jpg"]
    assert 'fetchpriority="high"' in html
    denied = api.client.get(urls[0], headers={"Authorization": f"Bearer {outsider}"})
    assert denied.status_code == 404
    first = api.client.get(urls[0])
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    # a view of the reader's own channels (c=) preloads nothing: its tiles are not these
    html = api.client.get(f"/portal/images/{image}?c=-1|0:100").text
    assert 'rel="preload"' not in html
