"""The tile fast lane (api/tilelane.py): it answers repeated tile requests before FastAPI,
with the same bytes and headers as the route, and passes everything else on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plexhub.api.tilelane import TileLane
from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_qptiff
from tests.helpers.tiles import PRESET, png

pytestmark = pytest.mark.parametrize("api", ["sqlite"], indirect=True)


class Counter:
    """Stands between the lane and FastAPI and counts what the lane passed on."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


def count_behind_lane(app: Any) -> tuple[TileLane, Counter]:
    """Put a Counter between the app's tile lane and FastAPI (the app has served once)."""
    node: Any = app.middleware_stack
    while not isinstance(node, TileLane):
        node = node.app
    counter = Counter(node.app)
    node.app = counter
    return node, counter


@pytest.fixture
def setup(api: Api, real: Path) -> Iterator[tuple[Api, str, str, Counter]]:
    image = ingest_qptiff(api, real)
    saved = api.post(f"/api/v1/images/{image}/presets", PRESET).json()
    lane, counter = count_behind_lane(api.client.app)
    yield api, image, f"{saved['id']}@{saved['version']}", counter
    lane.app = counter.app


def test_repeated_tiles_skip_fastapi_with_identical_answers(
        setup: tuple[Api, str, str, Counter]) -> None:
    api, image, ref, counter = setup
    url = f"/api/v1/images/{image}/tiles/0/1/2.png"
    first = api.get(url, params={"preset": ref})  # the route: it looks the preset up
    assert first.status_code == 200
    assert counter.calls == 1
    again = api.get(url, params={"preset": ref})
    assert counter.calls == 1, "the lane should have answered the cached tile"
    assert again.content == first.content
    for h in ("etag", "cache-control", "vary", "content-type"):
        assert again.headers[h] == first.headers[h]
    # not cached yet: the lane renders it, and the route renders the very same pixels
    other = api.get(f"/api/v1/images/{image}/tiles/0/0/1.png", params={"preset": ref})
    assert other.status_code == 200
    assert counter.calls == 1
    tiles = api.client.app.state.tiles  # type: ignore[attr-defined]
    tiles.cache = type(tiles.cache)(1 << 20)  # empty: the route must render it again
    by_route = api.get(f"/api/v1/images/{image}/tiles/0/0/1.png",
                       params={"preset": ref, "unknown": "1"})
    assert counter.calls == 2  # an unknown parameter goes to FastAPI
    assert (png(by_route.content) == png(other.content)).all()
    assert by_route.headers["etag"] == other.headers["etag"]
    # a revalidation: 304 from the lane
    r = api.client.get(url, params={"preset": ref},
                       headers={**api.h(), "If-None-Match": first.headers["etag"]})
    assert r.status_code == 304
    assert counter.calls == 2


@pytest.mark.parametrize(("path", "params", "status"), [
    ("0/9/9.png", {}, 404),            # outside the image
    ("0/0/0.png", {"size": "300"}, 422),  # not a tile size
    ("0/0/0.png", {"quality": "0"}, 422),
    ("0/0/0.png", {"z": "x"}, 422),
    ("0/0/0.png", {"z": "5"}, 422),    # the image has one z plane
    ("7/0/0.png", {}, 404),            # no such level
])
def test_errors_are_the_routes_answers(setup: tuple[Api, str, str, Counter], path: str,
                                       params: dict[str, str], status: int) -> None:
    api, image, ref, counter = setup
    assert api.get(f"/api/v1/images/{image}/tiles/0/0/0.png",
                   params={"preset": ref}).status_code == 200  # the lookup is now cached
    before = counter.calls
    r = api.get(f"/api/v1/images/{image}/tiles/{path}", params={"preset": ref, **params})
    assert r.status_code == status
    assert set(r.json()) == {"detail"}
    assert "Traceback" not in r.text
    assert counter.calls == before + 1


def test_other_callers_and_methods_go_to_fastapi(setup: tuple[Api, str, str, Counter]) -> None:
    api, image, ref, counter = setup
    url = f"/api/v1/images/{image}/tiles/0/0/0.png"
    assert api.get(url, params={"preset": ref}).status_code == 200
    sponsor = api.token("eve", "sponsor", ["other-org"])
    before = counter.calls
    # a sponsor without a grant: its own lookup is not cached, FastAPI answers 404
    assert api.get(url, params={"preset": ref}, token=sponsor).status_code == 404
    assert api.get(url, params={"preset": ref}, token="nonsense").status_code == 401
    r = api.client.get(url, params={"preset": ref})  # no token at all
    assert r.status_code == 401
    assert counter.calls == before + 3
    posted = api.post(url, PRESET)  # an inline preset in a body: the route
    assert posted.status_code == 200
    assert counter.calls == before + 4


def test_the_portals_session_cookie_is_taken_as_the_route_takes_it(
        setup: tuple[Api, str, str, Counter]) -> None:
    api, image, ref, counter = setup
    analyst = api.token("ann", "analyst")
    login = api.client.post("/portal/login", data={"token": analyst}, follow_redirects=False)
    assert login.status_code == 303
    session = api.client.cookies.get("plexhub-session")
    api.client.cookies.clear()
    assert session
    assert session != analyst
    url = f"/api/v1/images/{image}/tiles/0/0/0.jpg?preset={ref}"
    jar = {"Cookie": f"plexhub-session={session}"}
    before = counter.calls
    first = api.client.get(url, headers=jar)
    assert first.status_code == 200
    assert counter.calls == before + 1
    again = api.client.get(url, headers=jar)
    assert again.status_code == 200
    assert counter.calls == before + 1
    assert again.content == first.content
    wrong = api.client.get(url, headers={"Cookie": "plexhub-session=nonsense"})
    assert wrong.status_code == 401
    assert counter.calls == before + 2
    # the token itself is no session: neither the lane nor the route take it from a cookie
    raw = api.client.get(url, headers={"Cookie": f"plexhub-session={analyst}"})
    assert raw.status_code == 401
    assert counter.calls == before + 3


def test_the_lane_works_under_a_proxy_prefix(setup: tuple[Api, str, str, Counter]) -> None:
    from starlette.testclient import TestClient

    from plexhub.api.main import create_app

    api, image, ref, _ = setup
    prefix = "/services/plexhub"  # JupyterHub's proxy forwards the full path
    with TestClient(create_app(api.settings), root_path=prefix) as client:
        url = f"{prefix}/api/v1/images/{image}/tiles/0/0/0.png?preset={ref}"
        first = client.get(url, headers=api.h())
        assert first.status_code == 200
        _, counter = count_behind_lane(client.app)
        again = client.get(url, headers=api.h())
        assert again.status_code == 200
        assert again.content == first.content
        assert counter.calls == 0
