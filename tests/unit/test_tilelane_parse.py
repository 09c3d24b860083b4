"""What the tile fast lane (api/tilelane.py) takes from a request: exactly what the route
would take without complaint, nothing else (the rest goes to FastAPI)."""

from __future__ import annotations

from plexhub.api.tilelane import credentials, query
from plexhub.api.tiles import TileQuery

LANE = {"z", "t", "size", "quality", "preset"}  # what the lane takes: all but spec=


def test_query_parsing_takes_only_what_the_route_takes() -> None:
    parsed = query(b"")
    assert parsed is not None
    assert parsed == TileQuery()  # the route's own type and defaults
    assert parsed.model_dump(include=LANE) == {"z": 0, "t": 0, "size": 512, "quality": 85,
                                               "preset": None}
    parsed = query(b"preset=ab%40c&size=256&quality=90")
    assert parsed is not None
    assert parsed.model_dump(include=LANE) == {
        "z": 0, "t": 0, "size": 256, "quality": 90, "preset": "ab@c"}
    for bad in (b"z=1&z=2", b"spec=xyz", b"preset=", b"z=-1", b"z=1.0", b"quality=101",
                b"quality=0", b"size=%EF%BC%91", b"z", b"preset=" + b"x" * 81):
        assert query(bad) is None, bad
    scope = {"headers": [(b"authorization", b"Bearer abc"), (b"if-none-match", b'"t"'),
                         (b"cookie", b"plexhub-session=fromcookie")]}
    # the bearer token wins, as in the route
    assert credentials(scope) == ("abc", None, '"t"')
    assert credentials({"headers": [(b"authorization", b"Basic abc")]}) == (None, None, None)
    cookie = {"headers": [(b"cookie", b"a=1; plexhub-session=xyz; b=2")]}
    assert credentials(cookie) == (None, "xyz", None)  # a cookie is no bearer token
