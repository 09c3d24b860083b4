"""Where an image's store is: one method on the catalog's Image (issue 13), which tiles, the
zarr route, thumbnails, DeepZoom, the webgateway and histograms all read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plexhub.api.models import Image
from plexhub.errors import NotFoundError

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("plexhub", "api", "ome_pipeline", "widgets", "hub", "policies", "extensions", "bench")


def test_the_store_root_is_the_store_and_the_images_group() -> None:
    assert Image(id="a", store_uri="/data/S1/abc", store_key="0",
                 status="ready").store_root().path == Path("/data/S1/abc/0")
    assert Image(id="a", store_uri="/data/S1/abc", store_key="",
                 status="ready").store_root().path == Path("/data/S1/abc")
    s3 = Image(id="a", store_uri="s3://bucket/S1/abc", store_key="0",
               status="ready").store_root()
    assert (s3.remote, s3.url) == (True, "s3://bucket/S1/abc/0")
    local = Image(id="a", store_uri="/data/S1/abc", store_key="", status="ready").store_root()
    assert local / "tables" == Path("/data/S1/abc/tables")  # a local store reads as a path
    with pytest.raises(ValueError, match="not a local folder"):
        s3 / "tables"
    for unready in (Image(id="a", store_uri=None, store_key="", status="ready"),
                    Image(id="a", store_uri="/data/S1/abc", store_key="", status="pending")):
        with pytest.raises(NotFoundError, match="no converted store yet"):
            unready.store_root()


def test_only_the_model_reads_the_store_location() -> None:
    """No other module joins ``store_uri`` and ``store_key`` itself (the conversion job
    writes them, a tier move moves them to another root; the migration declares them)."""
    readers = []
    paths = [p for folder in SOURCE for p in sorted((REPO / folder).rglob("*.py"))]
    assert len(paths) > 100
    for path in paths:
        rel = path.relative_to(REPO).as_posix()
        # bench/out/: the benches' own output and peer venvs (make bench-smoke writes them)
        if rel.startswith(("api/migrations/", "api/portal/node_modules/", "bench/out/")) \
                or rel in ("api/models.py", "api/jobs.py", "api/tiermove.py"):
            continue
        if re.search(r"\.store_(uri|key)\b", path.read_text(encoding="utf-8")):
            readers.append(rel)
    assert readers == []
