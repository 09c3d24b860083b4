"""Fixtures for the napari plugin tests.

Tests marked ``gl`` put layers into a real Qt viewer and read its pixels: they need an X
display with OpenGL (Xvfb + Mesa llvmpipe, started by pytest-xvfb). Qt's ``offscreen``
platform has no GL, so it does not count. The check runs at test time (pytest-xvfb sets
DISPLAY in pytest_configure, after conftests are imported) and *fails*: CI has Xvfb, so a
missing display is a broken setup, never a reason to skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.napari import LiveApi, make_store
from tests.helpers.server import running_server

HERE = Path(__file__).parent

# Warnings napari, npe2, vispy and Qt raise on their own (pydantic v1 shims, vispy/numpy
# deprecations); the suite turns warnings into errors, so ignore these here only.
NAPARI_WARNINGS = (
    "ignore::DeprecationWarning",
    "ignore::PendingDeprecationWarning",
    "ignore::FutureWarning",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gl: renders in a real Qt viewer (needs Xvfb + OpenGL)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            for spec in NAPARI_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gl") and (
            not os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen"):
        pytest.fail("needs an X display with OpenGL: pytest-xvfb starts Xvfb (pip install "
                    "pytest-xvfb; apt install xvfb); QT_QPA_PLATFORM=offscreen has no GL")


@pytest.fixture(autouse=True)
def _no_stray_ipython_shell() -> None:
    """napari asks a running IPython shell to start Qt's event loop; a plain InteractiveShell
    left by another test (it has no GUI support) would make every Qt viewer fail."""
    from IPython.core.interactiveshell import InteractiveShell

    if InteractiveShell.initialized():
        InteractiveShell.clear_instance()


@pytest.fixture(autouse=True)
def _discover_plugins() -> None:
    # napari.Viewer() discovers plugins itself; a bare ViewerModel does not.
    import npe2

    npe2.PluginManager.instance().discover()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), "sample")


@pytest.fixture
def odd_store(store: Path, tmp_path: Path) -> Path:
    """``store`` with a real-world ``omero`` block: no colours, end <= start windows."""
    dst = tmp_path / "odd.zarr"
    shutil.copytree(store, dst)
    meta = json.loads((dst / "zarr.json").read_text())
    omero = meta["attributes"]["ome"]["omero"]
    for i, ch in enumerate(omero["channels"]):
        ch.pop("color", None)
        ch["window"] = {"start": 500.0, "end": 500.0 - i}  # end <= start
    (dst / "zarr.json").write_text(json.dumps(meta))
    shutil.rmtree(dst / "histograms", ignore_errors=True)
    return dst


@pytest.fixture(scope="session")
def label_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("labels"), "labels", size=128, channels=1,
                      as_labels=True)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApi, str]]:
    data = tmp_path_factory.mktemp("api") / "data"
    settings = Settings(data_dir=data, admin_token=SecretStr(ADMIN), chunk_size=64, block_size=128)
    with running_server(settings) as base:
        api = LiveApi(base, settings)
        api.post("/api/v1/studies", {"code": "NAP1", "title": "napari", "sponsor": "acme",
                                     "profile": "non-glp"})
        image_id = api.ingest("NAP1", "napari.ome.tif")
        yield api, image_id
        api.http.close()


@pytest.fixture
def api_env(live_api: tuple[LiveApi, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLEXHUB_API_URL", live_api[0].base)
    monkeypatch.setenv("PLEXHUB_API_TOKEN", ADMIN)
