"""Issue 12, finding 1 and the symlink finding: hostile bytes are served inert, writes that the
portal's session cookie authenticates need same-origin proof, and every file read for an image
stays inside its folder (at ingest and when serving)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import tifffile
from fastapi.testclient import TestClient

from plexhub.api.tilelane import TileLane
from plexhub.errors import PermissionDeniedError
from plexhub.ome_pipeline import convert, open_source
from plexhub.ome_pipeline.confine import check_tree
from plexhub.ome_pipeline.readers.omezarr import OmeZarrReader
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import notebook
from tests.helpers.server import running_server

# one database is enough here: nothing below depends on the catalog's engine
sqlite = pytest.mark.parametrize("api", ["sqlite"], indirect=True)

PAYLOAD = ('<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:body>'
           '<h:script>fetch("/api/v1/studies/S1/grants",{method:"POST",'
           'credentials:"include",body:"{}"})</h:script></h:body></h:html>')
# content types a browser renders as an active document (HTML, XHTML, SVG, XML, script)
ACTIVE = ("text/html", "application/xhtml+xml", "image/svg+xml", "application/xml",
          "text/xml", "application/javascript", "text/javascript")


def hostile_ome_tiff(path: Path) -> Path:
    """A valid OME-TIFF whose OME-XML also carries an XHTML document with a script."""
    write_ome_tiff(path, SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=3))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        xml = page.description
    tifffile.tiffcomment(path, xml.replace("</OME>", PAYLOAD + "</OME>").encode())
    return path


def wait_ready(api: Api, job_id: str, token: str = ADMIN) -> None:
    assert api.wait_job(job_id, token=token)["state"] == "done"


def ingest(api: Api, source: str, token: str = ADMIN, code: str = "S1") -> str:
    r = api.post(f"/api/v1/studies/{code}/images", {"source": source}, token)
    assert r.status_code == 202, r.text
    wait_ready(api, r.json()["job_id"], token)
    return str(r.json()["image_id"])


def assert_inert(r: httpx.Response, what: str) -> None:
    """Nothing in ``r`` can run as a document of the API's origin."""
    assert r.headers.get("x-content-type-options") == "nosniff", what
    csp = r.headers.get("content-security-policy", "")
    attachment = r.headers.get("content-disposition", "").startswith("attachment")
    sandboxed = "sandbox" in csp.split(";")[0] and "default-src 'none'" in csp
    assert sandboxed or attachment, (what, csp)
    media = r.headers.get("content-type", "").split(";")[0].strip()
    if media in ACTIVE:  # only server-made documents, and only sandboxed
        assert sandboxed, (what, media, csp)


def login(client: TestClient, token: str) -> None:
    r = client.post("/portal/login", data={"token": token, "next": "/portal/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def lane_calls(app: Any) -> list[int]:
    """Count the requests that get past the tile fast lane (to FastAPI)."""
    node: Any = app.middleware_stack
    while not isinstance(node, TileLane):
        node = node.app
    behind, calls = node.app, [0]

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        calls[0] += 1
        await behind(scope, receive, send)

    node.app = counted
    return calls


# ------------------------------------------------------------------------- inert bytes

@sqlite
def test_a_hostile_ome_xml_and_every_file_like_answer_are_served_inert(api: Api) -> None:
    api.study("S1")
    scientist = api.token("sam", "scientist")
    hostile_ome_tiff(api.incoming / "hostile.ome.tif")
    image = ingest(api, "hostile.ome.tif", scientist)
    xml_url = f"/api/v1/images/{image}/zarr/OME/METADATA.ome.xml"

    # the scientist's browser opens the file: its bytes are the source's, served inert
    login(api.client, scientist)
    r = api.client.get(xml_url)  # the session cookie, as the browser sends it
    assert r.status_code == 200
    assert "<h:script>" in r.text  # kept verbatim: the store is a faithful copy
    assert_inert(r, xml_url)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    with running_server(api.settings) as base:  # the same over real HTTP (uvicorn)
        real = httpx.get(base + xml_url, headers=api.h(scientist))
        assert real.status_code == 200
        assert_inert(real, "real server: " + xml_url)
        assert real.headers["content-type"] == "application/octet-stream"

    preset = api.get(f"/api/v1/images/{image}/presets").json()[0]
    ref = f"{preset['id']}@{preset['latest_version']}"
    nb = api.post("/api/v1/studies/S1/notebooks", {"name": "n", "notebook": notebook()})
    assert nb.status_code == 201, nb.text
    nb_id = nb.json()["id"]
    raw = f"/api/v1/images/{image}/zarr"
    urls = [f"{raw}/zarr.json", f"{raw}/0/zarr.json", f"{raw}/0/c/0/0/0",
            f"{raw}/OME/zarr.json", f"{raw}/histograms/zarr.json",
            f"/api/v1/images/{image}/thumbnail.png",
            f"/api/v1/images/{image}/tiles/0/0/0.png",
            f"/api/v1/images/{image}/image.dzi",
            f"/api/v1/images/{image}/image_files/6/0_0.jpeg",
            f"/webgateway/render_image_region/{image}/0/0/?tile=0,0,0",
            f"/api/v1/images/{image}/original",
            f"/api/v1/notebooks/{nb_id}", f"/api/v1/notebooks/{nb_id}/html",
            f"{raw}/no/such/file", "/api/v1/health"]
    urls += [f"/api/v1/presets/{preset['id']}/versions/1/export?format={f}"
             for f in ("omero-query", "omero-yaml", "ngff-omero", "napari")]
    for url in urls:
        r = api.get(url)
        assert r.status_code in (200, 404), (url, r.status_code, r.text[:200])
        assert_inert(r, url)
    # raw store files: JSON stays JSON, everything else is a download
    assert api.get(f"{raw}/zarr.json").headers["content-type"] == "application/json"
    chunk = api.get(f"{raw}/0/c/0/0/0")
    assert chunk.headers["content-type"] == "application/octet-stream"
    assert chunk.headers["content-disposition"].startswith("attachment")
    original = api.get(f"/api/v1/images/{image}/original")
    assert original.headers["content-disposition"].startswith("attachment")
    html = api.get(f"/api/v1/notebooks/{nb_id}/html")
    assert html.headers["content-security-policy"].startswith("sandbox;")
    assert "img-src data:" in html.headers["content-security-policy"]  # its own, kept

    # the tile fast lane answers before FastAPI: the same headers on its answers
    calls = lane_calls(api.client.app)
    tile = f"/api/v1/images/{image}/tiles/0/0/0.png"
    for _ in range(2):
        r = api.get(tile, params={"preset": ref})
        assert r.status_code == 200
        assert_inert(r, "tile " + tile)
    assert calls[0] == 1, "the second tile should have come from the fast lane"

    # the portal's pages keep their own policy (they run the portal's script)
    page = api.client.get("/portal/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------------------- CSRF

def csrf_meta(client: TestClient) -> str:
    page = client.get("/portal/")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found, "the portal's pages carry the CSRF token for their scripts"
    return found[1]


@sqlite
def test_cookie_authenticated_writes_need_same_origin_proof(api: Api) -> None:
    api.study("S1")
    api.study("S2", sponsor="globex")
    scientist = api.token("sam", "scientist")
    login(api.client, scientist)
    grants = "/api/v1/studies/S2/grants"
    body = {"principal": "group:acme", "capabilities": ["view"]}
    token = csrf_meta(api.client)

    def post(headers: dict[str, str]) -> httpx.Response:
        return api.client.post(grants, json=body, headers=headers)  # the cookie only

    refused = [
        post({}),  # what a form or script of another site can send
        post({"Origin": "https://evil.example"}),
        post({"Origin": "null", "X-Plexhub-CSRF": token}),  # a sandboxed document
        post({"Origin": "https://evil.example", "X-Plexhub-CSRF": token}),
        post({"Sec-Fetch-Site": "cross-site", "X-Plexhub-CSRF": token}),
        post({"Sec-Fetch-Site": "same-site", "X-Plexhub-CSRF": token}),
        post({"Origin": "http://testserver", "X-Plexhub-CSRF": "0" * 64}),
        api.client.patch("/api/v1/studies/S2", json={"title": "renamed"}),
        api.client.post("/api/v1/tokens", json={"user": "x", "role": "admin"}),
    ]
    for r in refused:
        assert r.status_code == 403, r.text
        assert list(r.json()) == ["detail"]
        assert "X-Plexhub-CSRF" in r.json()["detail"]
    assert api.get(grants).json() == []  # nothing was created (asked as the admin)
    assert api.get("/api/v1/studies/S2").json()["title"] == "Study S2"

    # reads need no proof; a bearer caller needs none either
    assert api.client.get("/api/v1/studies/S2").status_code == 200
    # with the proof the portal's own scripts send, the write goes through
    ok = post({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin",
               "X-Plexhub-CSRF": token})
    assert ok.status_code == 201, ok.text
    assert post({"X-Plexhub-CSRF": token}).status_code == 201  # no Origin: the token decides
    assert [g["principal"] for g in api.get(grants).json()] == ["group:acme", "group:acme"]
    grant = ok.json()["id"]
    assert api.client.delete(f"/api/v1/grants/{grant}").status_code == 403
    assert api.delete(f"/api/v1/grants/{grant}", scientist).status_code == 200  # bearer

    # another session has another token
    api.client.cookies.clear()
    login(api.client, api.token("ann", "scientist"))
    assert csrf_meta(api.client) != token
    assert post({"X-Plexhub-CSRF": token}).status_code == 403


# --------------------------------------------------------------------------- symlinks

def ome_zarr(folder: Path, name: str, seed: int) -> Path:
    src = write_ome_tiff(folder / f"{name}.ome.tif",
                         SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=seed))
    dst = folder / f"{name}.ome.zarr"
    convert(src, dst, settings=Settings(chunk_size=64, block_size=128))
    src.unlink()
    return dst


def shards(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file() and "c" in p.parts)


def link_out(path: Path, outside: Path) -> bytes:
    """Move ``path`` outside (a valid chunk that reads fine if followed) and leave a symlink
    to it in its place; returns the bytes."""
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / f"{len(list(outside.iterdir()))}-{path.name}"
    shutil.move(path, target)
    path.symlink_to(target)
    return target.read_bytes()


def refused(api: Api, source: str, tmp_path: Path) -> None:
    r = api.post("/api/v1/studies/S1/images", {"source": source})
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert "symlink" in detail
    assert "resolves outside" in detail
    assert str(tmp_path / "outside") not in detail  # names the link, not its target


@sqlite
def test_an_ome_zarr_linking_out_of_its_folder_is_refused_at_ingest(api: Api,
                                                                     tmp_path: Path) -> None:
    api.study("S1")
    store = ome_zarr(api.incoming, "linked", seed=5)
    chunk = shards(store)[0]
    link_out(chunk, tmp_path / "outside")  # a chunk linked outside the ingest roots
    refused(api, "linked.ome.zarr", tmp_path)
    chunk.unlink()
    chunk.parent.rename(tmp_path / "outside" / "folder")
    chunk.parent.symlink_to(tmp_path / "outside" / "folder")  # a folder linked out
    refused(api, "linked.ome.zarr", tmp_path)
    r = api.post("/api/v1/studies/S1/images:batch", {"items": [{"source": "linked.ome.zarr"}]})
    assert r.status_code == 403, r.text
    assert api.get("/api/v1/studies/S1/images").json() == []  # nothing registered


def test_links_inside_a_folder_are_fine_and_links_out_are_refused_by_the_reader(
        tmp_path: Path) -> None:
    store = ome_zarr(tmp_path, "s", seed=6)
    (store / "alias.json").symlink_to(store / "zarr.json")  # inside: fine
    check_tree(store)
    doc = OmeZarrReader().open(str(store))
    pixels = doc.images[0].pixels
    link_out(shards(store)[0], tmp_path / "outside")  # swapped in after the check
    with pytest.raises(PermissionDeniedError, match="resolves outside"):
        pixels.read(0, 0, [0], slice(0, 8), slice(0, 8))  # the conversion's reads
    with pytest.raises(PermissionDeniedError, match="symlink"):
        OmeZarrReader().open(str(store))  # the CLI and a job's conversion


@pytest.fixture
def swapped(api: Api, tmp_path: Path) -> tuple[str, str, list[bytes]]:
    """An image whose every chunk file was swapped for a symlink to a copy outside its
    store after conversion; (image id, a granted sponsor's token, the linked bytes)."""
    api.study("S1", sponsor="acme")
    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=7))
    image = ingest(api, "a.ome.tif")
    sponsor = api.token("sue", "sponsor", ["acme"])
    assert api.post("/api/v1/studies/S1/grants", {"principal": "group:acme"}).status_code == 201
    (store,) = api.settings.stores_dir.glob("S1/*.ome.zarr")
    outside = tmp_path / "outside"
    linked = [link_out(p, outside) for p in shards(store)]
    linked.append(link_out(store / "histograms" / "zarr.json", outside))
    return image, sponsor, linked


@sqlite
def test_a_store_swapped_for_links_after_conversion_is_not_read(
        api: Api, swapped: tuple[str, str, list[bytes]]) -> None:
    image, sponsor, linked = swapped
    for token in (ADMIN, sponsor):
        urls = [f"/api/v1/images/{image}/zarr/0/c/{c}/0/0" for c in (0, 1)]
        urls += [f"/api/v1/images/{image}/tiles/0/0/0.png",
                 f"/api/v1/images/{image}/tiles/0/0/0.jpg?size=256",
                 f"/api/v1/images/{image}/thumbnail.png",
                 f"/api/v1/images/{image}/image_files/6/0_0.jpeg",
                 f"/webgateway/render_image_region/{image}/0/0/?region=0,0,32,32"]
        for url in urls:
            r = api.get(url, token)
            assert r.status_code in (403, 404, 422), (url, r.status_code)
            assert list(r.json()) == ["detail"], url
            assert "Traceback" not in r.text, url
            assert "/outside" not in r.text, url
            assert not any(b in r.content for b in linked if len(b) > 16), url
    r = api.get(f"/api/v1/images/{image}/autocontrast", ADMIN)  # reads the histograms
    assert r.status_code == 403, r.text
    assert "histograms/zarr.json" in r.json()["detail"]


@sqlite
def test_a_level_folder_swapped_for_a_link_is_not_read(api: Api, tmp_path: Path) -> None:
    api.study("S1")
    write_ome_tiff(api.incoming / "b.ome.tif",
                   SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=8))
    image = ingest(api, "b.ome.tif")
    (store,) = api.settings.stores_dir.glob("S1/*.ome.zarr")
    copy = tmp_path / "outside" / "c"
    shutil.copytree(store / "0" / "c", copy)
    shutil.rmtree(store / "0" / "c")
    os.symlink(copy, store / "0" / "c")
    r = api.get(f"/api/v1/images/{image}/tiles/0/0/0.png")
    assert r.status_code == 403, r.text
    assert "resolves outside" in r.json()["detail"]
    assert api.get(f"/api/v1/images/{image}/zarr/0/c/0/0/0").status_code == 422


def test_a_multi_file_ome_tiff_never_reads_a_sibling_outside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    path = write_ome_tiff(folder / "a.ome.tif",
                          SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=9))
    shutil.copy(path, tmp_path / "outside.ome.tif")  # readable, one folder up
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        xml = page.description
    sibling = ('<TiffData IFD="0" PlaneCount="2"><UUID FileName="../outside.ome.tif">'
               'urn:uuid:00000000-0000-0000-0000-000000000000</UUID></TiffData>')
    hostile = xml.replace('<TiffData IFD="0" PlaneCount="2"/>', sibling)
    assert hostile != xml
    tifffile.tiffcomment(path, hostile.encode())
    with pytest.raises(PermissionDeniedError, match="outside the folder"):
        open_source(str(path))
