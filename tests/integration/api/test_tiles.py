"""Rendered tiles, the OMERO webgateway region endpoint and DeepZoom."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plexhub.api.tiles import encode_spec
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_qptiff
from tests.helpers.tiles import PRESET, png
from tests.helpers.zarrs import level as zarr_level


@pytest.fixture
def image(api: Api, real: Path) -> str:
    return ingest_qptiff(api, real)


def expected_tile(api: Api, image: str, level: int, ys: slice, xs: slice) -> np.ndarray:
    store_dir = next((api.settings.stores_dir / "S001").iterdir())
    data = np.asarray(zarr_level(store_dir, str(level))[:, ys, xs]).astype(np.float64)
    acc = np.zeros((*data.shape[1:], 3))
    for c, ch in enumerate(PRESET["channels"]):
        if ch.get("active", True) is False:
            continue
        w = ch["window"]
        v = np.clip((data[c] - w["start"]) / (w["end"] - w["start"]), 0, 1)
        v = v ** ch.get("gamma", 1.0)
        if ch.get("inverted"):
            v = 1 - v
        rgb = [int(ch["color"][i:i + 2], 16) / 255 for i in (0, 2, 4)]
        acc += v[..., None] * np.array(rgb)
    return np.floor(np.clip(acc, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_png_tiles_match_the_formula_and_edges_are_cropped(api: Api, image: str) -> None:
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    ref = f"{saved['id']}@{saved['version']}"
    r = api.get(f"/api/v1/images/{image}/tiles/0/1/2.png", params={"preset": ref})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    got = png(r.content)
    want = expected_tile(api, image, 0, slice(512, 1024), slice(1024, 1536))
    assert got.shape == (512, 512, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    # the level is 1440 x 1920: the last row of 512-tiles is 416 high, the last column 384
    edge = png(api.get(f"/api/v1/images/{image}/tiles/0/2/3.png",
                       params={"preset": ref}).content)
    assert edge.shape == (416, 384, 3)
    small = png(api.get(f"/api/v1/images/{image}/tiles/1/0/0.png",
                        params={"preset": ref, "size": 256}).content)
    want1 = expected_tile(api, image, 1, slice(0, 256), slice(0, 256))
    assert np.abs(small.astype(int) - want1.astype(int)).max() <= 1


def test_etags_cache_control_and_inline_specs(api: Api, image: str) -> None:
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    url = f"/api/v1/images/{image}/tiles/0/0/0.jpg"
    pinned = api.get(url, params={"preset": f"{saved['id']}@1"})
    assert pinned.headers["content-type"] == "image/jpeg"
    assert "immutable" in pinned.headers["cache-control"]
    tag = pinned.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', tag)
    again = api.client.get(url, params={"preset": f"{saved['id']}@1"},
                           headers={**api.h(), "If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    default = api.get(url)
    assert default.status_code == 200
    assert "immutable" not in default.headers["cache-control"]
    assert default.headers["etag"] != tag
    spec = api.get(url, params={"spec": encode_spec(PRESET)})
    assert spec.headers["etag"] == tag  # the same document renders the same tile
    posted = api.post(url, PRESET)
    assert posted.status_code == 200
    assert posted.headers["etag"] == tag
    assert posted.content == pinned.content
    webp = api.get(f"/api/v1/images/{image}/tiles/0/0/0.webp")
    assert webp.headers["content-type"] == "image/webp"


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("0/9/0.png", {}, 404, ["outside level 0", "3 rows"]),
    ("7/0/0.png", {}, 404, ["levels 0-3"]),
    ("0/0/0.gif", {}, 422, []),
    ("0/0/0.png", {"size": 300}, 422, ["256 or 512"]),
    ("0/0/0.png", {"z": 2}, 422, ["z=2"]),
    ("0/0/0.png", {"spec": "%%%"}, 422, ["spec"]),
    ("0/0/0.png", {"preset": "nope@1"}, 404, ["preset"]),
    ("0/0/0.png", {"preset": "x@y"}, 422, ["preset"]),
])
def test_bad_tile_requests_are_4xx_with_a_reason(api: Api, image: str, path: str,
                                                 params: dict[str, Any], status: int,
                                                 words: list[str]) -> None:
    r = api.get(f"/api/v1/images/{image}/tiles/{path}", params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    for w in words:
        assert w in detail


def test_sponsors_only_get_tiles_of_granted_studies(api: Api, image: str) -> None:
    sponsor = api.token("sue", "sponsor", ["acme"])
    url = f"/api/v1/images/{image}/tiles/0/0/0.png"
    assert api.get(url, sponsor).status_code == 404
    gid = api.post("/api/v1/studies/S001/grants", {"principal": "user:sue"}).json()["id"]
    assert api.get(url, sponsor).status_code == 200
    api.delete(f"/api/v1/grants/{gid}")
    import time

    time.sleep(2.1)
    assert api.get(url, sponsor).status_code == 404


def test_webgateway_render_image_region(api: Api, image: str) -> None:
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    tile = api.get(f"/api/v1/images/{image}/tiles/0/0/1.png",
                   params={"preset": f"{saved['id']}@1"}).content
    c = "1|10:120$0000FF,2|5:200$00FF00,-3|0:255$FF0000"
    r = api.get(f"/webgateway/render_image_region/{image}/0/0/",
                params={"tile": "0,1,0,512,512", "c": c, "m": "c", "format": "png"})
    assert r.status_code == 200, r.text
    # OMERO strings carry no gamma: compare with the same settings at gamma 1
    doc = {**PRESET, "channels": [{**ch, "gamma": 1.0} for ch in PRESET["channels"]]}
    gamma1 = api.post(f"/api/v1/images/{image}/tiles/0/0/1.png", doc).content
    assert np.array_equal(png(r.content), png(gamma1))
    assert not np.array_equal(png(r.content), png(tile))
    region = api.get(f"/webgateway/render_image_region/{image}/0/0/",
                     params={"region": "100,200,300,50", "c": c, "format": "png"})
    assert png(region.content).shape == (50, 300, 3)
    jpeg = api.get(f"/webgateway/render_image_region/{image}/0/0/",
                   params={"tile": "1,0,0,256,256", "q": 0.5})
    assert jpeg.headers["content-type"] == "image/jpeg"
    for bad in ({"tile": "a,b"}, {"region": "1,2,3"}, {}, {"tile": "0,99,0,512,512"}):
        r = api.get(f"/webgateway/render_image_region/{image}/0/0/", params=bad)
        assert 400 <= r.status_code < 500, bad


def test_deepzoom_description_and_tiles(api: Api, image: str) -> None:
    r = api.get(f"/api/v1/images/{image}/image.dzi")
    assert r.status_code == 200
    assert 'Width="1920"' in r.text
    assert 'Height="1440"' in r.text
    assert 'TileSize="512"' in r.text
    # 1920 px: the top DeepZoom level is ceil(log2(1920)) = 11
    top = png(api.get(f"/api/v1/images/{image}/image_files/11/1_0.png").content)
    ours = png(api.get(f"/api/v1/images/{image}/tiles/0/0/1.png").content)
    assert np.array_equal(top, ours)
    lvl10 = png(api.get(f"/api/v1/images/{image}/image_files/10/0_0.png").content)
    assert lvl10.shape == (512, 512, 3)
    tiny = png(api.get(f"/api/v1/images/{image}/image_files/0/0_0.png").content)
    assert tiny.shape == (1, 1, 3)
    assert api.get(f"/api/v1/images/{image}/image_files/12/0_0.png").status_code == 404


def test_cached_permissions_never_outlive_a_revocation_or_an_expiry(api: Api,
                                                                    image: str) -> None:
    """Tile requests keep their catalog answers for a second; a commit (the revocation) or
    the grant's expiry ends that at once."""
    import time
    from datetime import UTC, datetime, timedelta

    sponsor = api.token("sue", "sponsor", ["acme"])
    url = f"/api/v1/images/{image}/tiles/0/0/0.png"
    gid = api.post("/api/v1/studies/S001/grants", {"principal": "user:sue"}).json()["id"]
    assert api.get(url, sponsor).status_code == 200
    assert api.get(url, sponsor).status_code == 200  # now from the cache
    assert api.client.app.state.tiles.resolved._items  # type: ignore[attr-defined]
    api.delete(f"/api/v1/grants/{gid}")
    assert api.get(url, sponsor).status_code == 404  # at once, not after the cache's second

    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue",
                                             "expires_at": expires.isoformat()})
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # cached and served until just before the expiry
        assert api.get(url, sponsor).status_code == 200
        time.sleep(0.05)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    assert api.get(url, sponsor).status_code == 404
