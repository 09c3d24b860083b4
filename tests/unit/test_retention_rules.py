"""The purge rule (``policies.profiles.purge_decision``: only after the retention period
counted from the retirement, only where the profile allows hard deletes) and the removal of
a store through its location, local or fsspec (``plexhub.storage.remove_tree``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from plexhub.policies.profiles import builtin_profiles, purge_decision, retained_until
from plexhub.storage import StoreLocation, remove_tree, storage_options

pytestmark = pytest.mark.requirement("retention.purge", "profile.retention_years",
                                     "profile.hard_deletes")
RETIRED = datetime(2024, 2, 29, 12, tzinfo=UTC)


def test_purge_waits_for_the_retention_period_and_never_on_glp() -> None:
    profiles = builtin_profiles()
    non_glp, glp = profiles["non-glp"], profiles["glp"]
    end = retained_until(non_glp, RETIRED)
    assert end == datetime(2026, 2, 28, 12, tzinfo=UTC)
    early = purge_decision(non_glp, RETIRED, datetime(2026, 2, 28, 11, tzinfo=UTC))
    assert not early
    assert early.reason == "retention (2 years, profile non-glp) runs until 2026-02-28"
    assert purge_decision(non_glp, RETIRED, end)
    late = purge_decision(glp, RETIRED, datetime(2100, 1, 1, tzinfo=UTC))
    assert not late
    assert late.reason == "profile glp keeps records: no hard deletes (retention until " \
                          "2039-02-28)"


def test_remove_tree_removes_a_local_folder(tmp_path: Path) -> None:
    store = tmp_path / "s.ome.zarr"
    (store / "0").mkdir(parents=True)
    (store / "0" / "zarr.json").write_text("{}")
    (tmp_path / "other").mkdir()
    assert remove_tree(StoreLocation(str(store)))
    assert not store.exists()
    assert (tmp_path / "other").is_dir()
    assert not remove_tree(StoreLocation(str(store)))  # nothing there any more


def test_remove_tree_removes_an_fsspec_prefix() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({"/bucket/s.ome.zarr/zarr.json": b"{}", "/bucket/s.ome.zarr/0/c/0": b"x",
             "/bucket/keep/zarr.json": b"{}"})
    url = "memory://bucket/s.ome.zarr"
    assert remove_tree(StoreLocation(url, storage_options(url)))
    assert not fs.exists("/bucket/s.ome.zarr/zarr.json")
    assert fs.exists("/bucket/keep/zarr.json")
    assert not remove_tree(StoreLocation(url, storage_options(url)))
