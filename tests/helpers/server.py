"""A real uvicorn server on 127.0.0.1 and a free port, stopped by the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from plexhub.api.main import create_app
from plexhub.client import wait_healthy
from plexhub.settings import Settings
from tests.helpers.net import free_port


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings, migrate=True), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, 30)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
