"""Migration 0008: store locations become relative to a named storage root, so the root can
move; rows outside every root keep their absolute location. On both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from plexhub.api.db import Database
from plexhub.api.models import Image
from plexhub.storage import StoreRoots


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0008_makes_locations_under_a_root_relative(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    from alembic import command

    from plexhub.api.schema import _config, head
    from tests.helpers.postgres import fresh_database

    url = fresh_database(request.getfixturevalue("pg_server")) if kind == "postgresql" \
        else f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    old_root = tmp_path / "data" / "stores"
    rows = {"under": str(old_root / "S1" / "abc.ome.zarr"),
            "s3": "s3://bucket/stores/S1/def.ome.zarr",
            "outside": "/mnt/elsewhere/ghi.ome.zarr"}
    roots = StoreRoots({"stores": str(old_root), "archive": "s3://bucket/stores/"})
    engine = create_engine(url)
    try:
        cfg = _config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["store_roots"] = roots
            command.upgrade(cfg, "0007")
            conn.execute(text("INSERT INTO studies (code, title, sponsor, profile, state, "
                              "created_by, created_at, internal_fields) VALUES ('S1', 't', 's', "
                              "'non-glp', 'open', 'a', CURRENT_TIMESTAMP, '[]')"))
            for i, (name, uri) in enumerate(rows.items()):
                conn.execute(text(
                    "INSERT INTO images (id, study_id, name, series_index, source_uri, "
                    "fingerprint, store_uri, store_key, levels, physical_sizes, channels, tier, "
                    "status, metadata, created_at) VALUES (:id, 1, '', 0, 'x', :fp, :uri, '0', "
                    "'[]', '{}', '[]', 'hot', 'ready', '{}', CURRENT_TIMESTAMP)"),
                    {"id": name, "fp": f"fp{i}", "uri": uri})
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            got: dict[str, str | None] = dict(conn.execute(text(
                "SELECT id, storage_root || ':' || store_uri FROM images")).all())
            plain: dict[str, str] = dict(
                conn.execute(text("SELECT id, store_uri FROM images")).all())
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                == head()
        assert got["under"] == "stores:S1/abc.ome.zarr"
        assert got["s3"] == "archive:S1/def.ome.zarr"
        assert got["outside"] is None
        assert plain["outside"] == rows["outside"]
        # the root moved: the same rows resolve under the new folder
        moved = tmp_path / "new" / "stores"
        db = Database(url, store_roots=StoreRoots({"stores": str(moved),
                                                   "archive": "s3://other/archive"}))
        try:
            with db.session() as s:
                found = {i.id: i.store_root().url for i in s.query(Image)}
        finally:
            db.dispose()
        assert found == {"under": str(moved / "S1" / "abc.ome.zarr" / "0"),
                         "s3": "s3://other/archive/S1/def.ome.zarr/0",
                         "outside": "/mnt/elsewhere/ghi.ome.zarr/0"}
        with engine.begin() as conn:  # and back: absolute locations again
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
            back: dict[str, str] = dict(
                conn.execute(text("SELECT id, store_uri FROM images")).all())
        assert back == rows
    finally:
        engine.dispose()


def test_store_roots_refuse_keys_that_leave_them() -> None:
    from plexhub.errors import NotFoundError, PermissionDeniedError

    roots = StoreRoots({"stores": "s3://b/p"})
    assert roots.resolve("stores", "S1/x.ome.zarr/0").url == "s3://b/p/S1/x.ome.zarr/0"
    assert roots.relative("s3://b/p/S1/x") == ("stores", "S1/x")
    assert roots.relative("s3://b/px/S1/x") is None
    with pytest.raises(PermissionDeniedError):
        roots.resolve("stores", "../q")
    with pytest.raises(NotFoundError, match="PLEXHUB_STORE_ROOT"):
        roots.resolve("archive", "x")
