"""Shared fixtures: the real sample files beside the repository and small settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexhub.settings import Settings

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
