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
from typing import Any

import httpx
import pytest

from plexhub.ome_pipeline.conversion import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.httpapi import ingest
from tests.integration.api.conftest import ADMIN
from tests.integration.api.server import running_server

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


def make_store(root: Path, name: str, size: int = 512, channels: int = 3,
               as_labels: bool = False) -> Path:
    """A converted synthetic OME-Zarr (NGFF 0.5; 512 px gives two pyramid levels)."""
    tif = root / f"{name}.ome.tif"
    write_ome_tiff(tif, SyntheticSpec(size_y=size, size_x=size, channels=channels, tile=64,
                                      seed=7))
    settings = Settings(data_dir=root / "data", chunk_size=64, block_size=128)
    dst = root / f"{name}.zarr"
    convert(tif, dst, settings=settings, as_labels=as_labels, show_progress=False)
    return dst


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
    (dst / "histograms.json").unlink(missing_ok=True)
    return dst


@pytest.fixture(scope="session")
def label_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("labels"), "labels", size=128, channels=1,
                      as_labels=True)


class LiveApi:
    """A real API server (uvicorn) with one study and one ingested synthetic image."""

    def __init__(self, base: str, settings: Settings) -> None:
        self.base, self.settings = base, settings
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=60)

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code in (200, 201, 202), r.text
        return r.json()

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def ingest(self, code: str, name: str, channels: int = 3) -> str:
        incoming = self.settings.data_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return ingest(f"{self.base}/api/v1", ADMIN, incoming, code, name,
                      SyntheticSpec(size_y=256, size_x=256, channels=channels, tile=64, seed=3))

    def image_url(self, image_id: str) -> str:
        return f"{self.base}/api/v1/images/{image_id}"

    def presets(self, image_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v1/images/{image_id}/presets"))


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApi, str]]:
    data = tmp_path_factory.mktemp("api") / "data"
    settings = Settings(data_dir=data, admin_token=ADMIN, chunk_size=64, block_size=128)
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
