"""The one tile service (api/tiles.py, api/conditional.py): tiles, DeepZoom, the webgateway
region and thumbnails share the ETag/304 headers, the cache, the render path and the
caller's render limit; the tile route and the fast lane share one request type."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from plexhub import limits
from plexhub.api.tilelane import TileLane, query
from plexhub.api.tiles import TileEngine, TileQuery
from plexhub.policies.access import Principal
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_qptiff
from tests.helpers.tiles import PRESET, png

pytestmark = pytest.mark.parametrize("api", ["sqlite"], indirect=True)

# the image is 1920 x 1440 in four levels: DeepZoom levels 8-11 are ours, 0-7 scaled down
RENDERED = {
    "tile": ("/api/v1/images/{image}/tiles/0/1/1.png", {}),
    "deepzoom": ("/api/v1/images/{image}/image_files/11/1_1.png", {}),
    "deepzoom scaled": ("/api/v1/images/{image}/image_files/6/0_0.png", {}),
    "webgateway": ("/webgateway/render_image_region/{image}/0/0/",
                   {"tile": "1,0,0,256,256", "format": "png"}),
    "thumbnail": ("/api/v1/images/{image}/thumbnail.png", {"max": "64"}),
}


@pytest.fixture
def image(api: Api, real: Path) -> str:
    return ingest_qptiff(api, real)


def engine(api: Api) -> TileEngine:
    return api.client.app.state.tiles  # type: ignore[attr-defined]


class Renders:
    """Counts the engine's renders (every route renders through TileEngine.render)."""

    def __init__(self, tiles: TileEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = tiles.render

        def counted(job: Any) -> bytes:
            self.count += 1
            return real(job)

        monkeypatch.setattr(tiles, "render", counted)


def url_of(name: str, image: str) -> tuple[str, dict[str, str]]:
    path, params = RENDERED[name]
    return path.format(image=image), params


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_rendered_image_is_cached_and_revalidated_the_same_way(
        api: Api, image: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = Renders(engine(api), monkeypatch)
    url, params = url_of(name, image)
    first = api.get(url, params=params)
    assert first.status_code == 200, first.text
    assert renders.count == 1
    again = api.get(url, params=params)  # a cache hit: the same bytes, no render
    assert again.status_code == 200
    assert renders.count == 1
    assert again.content == first.content
    tag = first.headers["etag"]
    assert again.headers["etag"] == tag
    assert first.headers["vary"] == "Authorization, Cookie"
    assert first.headers["cache-control"].startswith("private, max-age=")
    for inm in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        r = api.client.get(url, params=params, headers={**api.h(), "If-None-Match": inm})
        assert r.status_code == 304, (inm, r.status_code)
        assert r.content == b""
        for h in ("etag", "vary", "cache-control"):  # the 304 says what the 200 said
            assert r.headers[h] == first.headers[h], h
    other = api.client.get(url, params=params, headers={**api.h(), "If-None-Match": '"x"'})
    assert other.status_code == 200
    assert renders.count == 1


def test_webgateway_304_has_vary(api: Api, image: str) -> None:
    url = f"/webgateway/render_image_region/{image}/0/0/"
    params = {"region": "100,200,300,50", "format": "png"}
    first = api.get(url, params=params)
    assert first.status_code == 200, first.text
    r = api.client.get(url, params=params,
                       headers={**api.h(), "If-None-Match": first.headers["etag"]})
    assert r.status_code == 304
    assert r.headers["vary"] == "Authorization, Cookie"
    assert r.headers["etag"] == first.headers["etag"]
    assert r.headers["cache-control"] == first.headers["cache-control"]


def test_deepzoom_and_thumbnails_render_through_the_engine(
        api: Api, image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = Renders(engine(api), monkeypatch)
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    ref = f"{saved['id']}@1"
    tile = api.get(f"/api/v1/images/{image}/tiles/0/0/1.png", params={"preset": ref})
    assert renders.count == 1
    # DeepZoom's level 11 is our level 0: the tile route's tile, from its cache entry
    dz = api.get(f"/api/v1/images/{image}/image_files/11/1_0.png", params={"preset": ref})
    assert renders.count == 1
    assert dz.content == tile.content
    assert dz.headers["etag"] == tile.headers["etag"]
    assert "immutable" in dz.headers["cache-control"]  # the URL pins the preset
    # below the pyramid: the smallest level (240 x 180) box-filtered, pinned too
    scaled = api.get(f"/api/v1/images/{image}/image_files/6/0_0.png", params={"preset": ref})
    assert scaled.status_code == 200
    assert png(scaled.content).shape == (45, 60, 3)  # 240 / 4 by 180 / 4
    assert "immutable" in scaled.headers["cache-control"]
    thumb = api.get(f"/api/v1/images/{image}/thumbnail.png", params={"max": 100})
    assert png(thumb.content).shape == (75, 100, 3)
    assert "immutable" not in thumb.headers["cache-control"]  # the default preset
    assert renders.count == 3


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_render_counts_against_the_callers_limit(api: Api, image: str,
                                                       name: str) -> None:
    """With all of a caller's tile-sized render slots taken, one more render of any kind
    (a DeepZoom tile too) is a 429 with Retry-After, as for tiles. DeepZoom, regions and
    thumbnails take a slot only to render: what is cached is served."""
    ann = api.token("ann", "analyst")
    url, params = url_of(name, image)
    tiles = engine(api)
    with ExitStack() as held:
        for _ in range(limits.CALLER_TILE_RENDERS):
            held.enter_context(tiles.tile_renders.hold(Principal("ann", "analyst")))
        busy = api.get(url, token=ann, params=params)
        assert busy.status_code == 429, busy.text
        assert int(busy.headers["Retry-After"]) >= 1
        assert "in flight" in busy.json()["detail"]
        assert api.get(url, params=params).status_code == 200  # another caller renders it
        if name != "tile":  # (the tile route holds the slot for its lookup too)
            assert api.get(url, token=ann, params=params).status_code == 200
    assert api.get(url, token=ann, params=params).status_code == 200


# ------------------------------------------------------------------ the tile request type

class Passed:
    """Between the lane and FastAPI: counts the requests the lane passed on."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
def lane(api: Api, image: str) -> Iterator[tuple[TileLane, Passed]]:
    api.get("/api/v1/health")  # the middleware stack is built on the first request
    node: Any = api.client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(node, TileLane):
        node = node.app
    passed = Passed(node.app)
    node.app = passed
    yield node, passed
    node.app = passed.app


def test_the_lane_and_the_route_share_defaults_and_limits(api: Api, image: str) -> None:
    doc = api.get("/api/v1/openapi.json").json()
    op = doc["paths"]["/api/v1/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}"]["get"]
    params = {p["name"]: p["schema"] for p in op["parameters"] if p["in"] == "query"}
    defaults = TileQuery()
    assert query(b"") == defaults
    for name in ("z", "t", "size", "quality"):
        assert params[name]["default"] == getattr(defaults, name), name
    assert params["quality"]["minimum"] == 1
    assert params["quality"]["maximum"] == 100
    preset_max = [s.get("maxLength") for s in params["preset"]["anyOf"]]
    assert limits.PRESET_REF_CHARS in preset_max
    spec_max = [s.get("maxLength") for s in params["spec"]["anyOf"]]
    assert limits.SPEC_CHARS in spec_max


OVER = [
    {"preset": "x" * (limits.PRESET_REF_CHARS - 1) + "@1"},  # one character over
    {"quality": "0"},
    {"quality": "101"},
    {"z": "-1"},
    {"size": "300"},
    {"spec": "A" * (limits.SPEC_CHARS + 1)},
]


@pytest.mark.parametrize("over", OVER, ids=lambda p: next(iter(p)))
def test_a_request_over_a_limit_is_refused_the_same_way_by_lane_and_route(
        api: Api, image: str, lane: tuple[TileLane, Passed], over: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    node, passed = lane
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    ref = f"{saved['id']}@1"
    url = f"/api/v1/images/{image}/tiles/0/0/0.png"
    assert api.get(url, params={"preset": ref}).status_code == 200
    params = {"preset": ref, **over}
    before = passed.calls
    with_lane = api.get(url, params=params)  # the lookup is cached: the lane could answer
    assert passed.calls == before + 1, "the lane took a request over a limit"
    monkeypatch.setattr(type(node), "_answer", _no_lane)
    by_route = api.get(url, params=params)
    assert (with_lane.status_code, with_lane.json()) == (by_route.status_code, by_route.json())
    assert 400 <= by_route.status_code < 500
    assert next(iter(over)) in by_route.json()["detail"]


async def _no_lane(self: TileLane, scope: Any) -> None:
    return None
