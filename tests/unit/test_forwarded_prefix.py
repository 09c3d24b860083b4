"""The API behind a proxy that forwards the full /services/plexhub/... path (uvicorn
--root-path prepends the prefix once more)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plexhub.api.prefix import ForwardedPrefix

ROOT = "/services/plexhub"


def _seen(path: str, root: str = ROOT, kind: str = "http") -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": kind, "path": path, "raw_path": path.encode(), "root_path": root}
    asyncio.run(ForwardedPrefix(app)(scope, None, None))  # type: ignore[arg-type]
    return seen


@pytest.mark.parametrize(("given", "expected"), [
    (ROOT + ROOT + "/api/v1/health", ROOT + "/api/v1/health"),  # via the hub's proxy
    (ROOT + ROOT, ROOT),
    (ROOT + "/api/v1/health", ROOT + "/api/v1/health"),  # straight to uvicorn
    (ROOT + ROOT + "x/y", ROOT + ROOT + "x/y"),  # not a doubled prefix
])
def test_doubled_prefix_is_dropped(given: str, expected: str) -> None:
    scope = _seen(given)
    assert scope["path"] == expected
    assert scope["raw_path"] == expected.encode()


def test_without_root_path_nothing_changes() -> None:
    assert _seen("/a/a/b", root="")["path"] == "/a/a/b"
    assert _seen(ROOT + ROOT, kind="lifespan")["path"] == ROOT + ROOT
