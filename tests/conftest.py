"""Fixtures every test folder may use: the real sample files beside the repository, small
settings, the API app on SQLite and on PostgreSQL, and a headless browser.

Heavy imports (the API app, Playwright) happen inside the fixtures, so that collecting the
unit tests does not pay for them. What tests share besides fixtures is in tests/helpers.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from plexhub.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.helpers.api import Api

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real() -> Path:
    """The third-party sample files (see shared/data/real/MANIFEST.md)."""
    assert (REAL / "MANIFEST.md").exists(), f"sample data missing at {REAL}"
    return REAL


@pytest.fixture
def small_settings() -> Settings:
    """Small chunks and blocks so that tiny images still exercise several tasks and passes."""
    return Settings(chunk_size=64, block_size=128, workers=2, checkpoint_seconds=0.0)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session; yields its SQLAlchemy URL."""
    from tests.helpers.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """An API app per test in a TestClient, on SQLite and on a fresh PostgreSQL database."""
    from fastapi.testclient import TestClient

    from plexhub.api.main import create_app
    from tests.helpers.api import ADMIN, Api
    from tests.helpers.postgres import fresh_database

    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN), database_url=url,
                        chunk_size=64, block_size=128)
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with TestClient(create_app(settings, migrate=True)) as client:
        yield Api(client, settings, incoming)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (never ``playwright install``). Per module:
    Playwright's sync API keeps an event loop running in the main thread while it is
    started, which would break later tests that call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.browsing import ARGS, CHROMIUM

    assert shutil.which(CHROMIUM), \
        f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        context.close()
