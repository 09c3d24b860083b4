"""Issue 12, finding 1 in a real browser (Chromium) against a real server: a scientist opens
the OME-XML of a crafted OME-TIFF from the API's origin, and its script creates no grant;
the portal's own page can still write, with the CSRF token it carries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import tifffile
from playwright.sync_api import Page
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.httpapi import ok
from tests.helpers.server import running_server

pytestmark = pytest.mark.e2e
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
GRANTS = "/api/v1/studies/S1/grants"
# what the crafted file's script does with the scientist's session: share the study
SCRIPT = ('fetch("' + GRANTS + '",{method:"POST",credentials:"include",'
          'headers:{"Content-Type":"application/json"},'
          'body:JSON.stringify({principal:"group:evil"})})')
PAYLOAD = ('<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:body><h:script>' + SCRIPT
           + '</h:script></h:body></h:html>')


@dataclass
class Site:
    base: str
    scientist: str
    image: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN))
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    path = write_ome_tiff(incoming / "hostile.ome.tif",
                          SyntheticSpec(size_y=64, size_x=64, channels=2, tile=64, seed=3))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        xml = page.description
    tifffile.tiffcomment(path, xml.replace("</OME>", PAYLOAD + "</OME>").encode())
    with running_server(settings) as base:
        api = f"{base}/api/v1"
        ok(httpx.post(f"{api}/studies", headers=ADMIN_H,
                      json={"code": "S1", "title": "Study S1", "sponsor": "acme"}))
        scientist = ok(httpx.post(f"{api}/tokens", headers=ADMIN_H, json={
            "user": "sam", "role": "scientist", "groups": []}))["token"]
        h = {"Authorization": f"Bearer {scientist}"}
        body = ok(httpx.post(f"{api}/studies/S1/images", headers=h,
                             json={"source": "hostile.ome.tif"}))
        with ApiClient(base, scientist) as client:
            assert client.wait_for_job(body["job_id"], 120, interval=0.1)["state"] == "done"
        yield Site(base, scientist, body["image_id"])


def grants(site: Site) -> list[str]:
    rows = ok(httpx.get(site.base + GRANTS, headers=ADMIN_H))
    return [g["principal"] for g in rows]


def test_a_crafted_ome_xml_opened_by_a_scientist_creates_no_grant(page: Page,
                                                                 site: Site) -> None:
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", site.scientist)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")

    # the scientist opens the file's OME-XML: a download, never a document of this origin
    url = f"{site.base}/api/v1/images/{site.image}/zarr/OME/METADATA.ome.xml"
    with page.expect_download() as download:
        page.evaluate("url => { window.location.href = url; }", url)  # as a link would
    assert download.value.suggested_filename == "METADATA.ome.xml"
    page.wait_for_timeout(1000)  # what a script would have had to run
    assert grants(site) == []

    # the portal's page can write, with the token it carries; without it, it cannot
    page.goto(f"{site.base}/portal/")
    send = ("async (withToken) => {"
            " const token = document.querySelector('meta[name=\"csrf-token\"]').content;"
            " const r = await fetch('" + GRANTS + "', {method: 'POST',"
            "  credentials: 'same-origin', headers: Object.assign("
            "  {'Content-Type': 'application/json'},"
            "  withToken ? {'X-Plexhub-CSRF': token} : {}),"
            "  body: JSON.stringify({principal: 'group:acme'})});"
            " return r.status; }")
    assert page.evaluate(send, False) == 403
    assert grants(site) == []
    assert page.evaluate(send, True) == 201
    assert grants(site) == ["group:acme"]
