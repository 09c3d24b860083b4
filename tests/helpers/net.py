"""Loopback ports for the servers tests start."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, timeout: float, why_not: Callable[[], str | None] = lambda: None,
                 interval: float = 0.05) -> None:
    """Wait until ``base``/api/v1/health answers 200; raise AssertionError when ``timeout``
    seconds pass or ``why_not()`` returns a reason to stop (e.g. the server process ended)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        reason = why_not()
        if reason is not None or time.monotonic() > deadline:
            raise AssertionError(f"the API at {base} did not start: {reason or 'timed out'}")
        time.sleep(interval)
