"""Fault injection for conversion tests: make the n-th conversion task fail."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import plexhub.ome_pipeline.execute as execute
import plexhub.ome_pipeline.writer as writer


def fail_task(monkeypatch: pytest.MonkeyPatch, at: int, message: str) -> Callable[[], None]:
    """Task number ``at`` raises OSError(message); the others run normally. Returns a
    function that puts the real task back."""
    real_run = writer.run_task  # what execute calls (it imports it from writer)
    calls = {"n": 0}

    def flaky(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == at:
            raise OSError(message)
        return real_run(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(execute, "run_task", flaky)
    return lambda: monkeypatch.setattr(execute, "run_task", real_run)
