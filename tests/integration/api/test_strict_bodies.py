"""Every request body refuses a field it does not know (a 422 naming it) instead of dropping
it silently: a misspelt option must not look as if it had been applied. The study and image
exist: a route checks its resource before it validates the body (an unknown one is a 404)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic

PRESET = {"name": "p", "channels": [{"index": 0, "color": "FFFFFF",
                                     "window": {"start": 0, "end": 1}}]}
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/presets", {"scope": "panel", "target": "IO-panel", "document": PRESET}),
    ("/api/v1/images/some-image/presets:apply", {"document": PRESET}),
    ("/api/v1/images/some-image/presets:import",
     {"format": "ngff-omero", "content": {}, "name": "p"}),
    ("/api/v1/studies/S001/notebooks", {"name": "nb", "notebook": {}}),
    ("/api/v1/images/some-image/retire", {"reason": "duplicate scan"}),
    ("/api/v1/images/some-image/unretire", {"reason": "not a duplicate"}),
    ("/api/v1/images/some-image/tier", {"tier": "archive", "reason": "study closed"}),
    ("/api/v1/images/some-image/restore", {"reason": "sponsor asked"}),
]
# the image-lifecycle writes (retire, tier moves): an oversized or malformed body is a 422
LIFECYCLE = [(p, b) for p, b in BODIES if p.rsplit("/", 1)[1] in
             ("retire", "unretire", "tier", "restore")]


@pytest.mark.parametrize(("path", "body"), BODIES, ids=[p for p, _ in BODIES])
def test_an_unknown_field_is_a_422_naming_it(api: Api, path: str, body: dict[str, Any]) -> None:
    if "S001" in path or "some-image" in path:
        api.study("S001")
    if "some-image" in path:
        image, _ = ingest_synthetic(api, "S001", "strict.ome.tif", 1)
        path = path.replace("some-image", image)
    r = api.post(path, {**body, "visiblity": "public"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert "\n" not in detail
    assert "visiblity" in detail


@pytest.mark.parametrize(("path", "body"), LIFECYCLE, ids=[p for p, _ in LIFECYCLE])
def test_an_oversized_or_malformed_lifecycle_body_is_a_422(api: Api, path: str,
                                                          body: dict[str, Any]) -> None:
    api.study("S001")
    image, _ = ingest_synthetic(api, "S001", "strict.ome.tif", 1)
    path = path.replace("some-image", image)
    for bad in ({**body, "reason": "x" * 2001}, {**body, "reason": ["not", "text"]},
                {**body, "tier": "glacier"} if "tier" in body else {**body, "credential": 7}):
        r = api.post(path, bad)
        assert r.status_code == 422, (bad, r.text)
        assert isinstance(r.json()["detail"], str)
    assert api.get(f"/api/v1/images/{image}").json()["tier"] == "hot"  # nothing moved
    assert api.get(f"/api/v1/images/{image}").json()["retired_at"] is None
