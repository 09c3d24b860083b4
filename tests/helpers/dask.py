"""Dask clusters for tests: worker processes on loopback, with no dashboard and no fixed port.

``LocalCluster(dashboard_address=None)`` turns the Bokeh dashboard off but the scheduler still
starts its HTTP server (health, metrics) on 8787 and, when that port is taken, warns "Port 8787
is already in use", an error under ``filterwarnings = error``. Every cluster a test starts
comes from here, with the HTTP server on a free loopback port.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

DASHBOARD_PORT = 8787  # distributed's default; what a developer's own cluster holds


def local_cluster(n_workers: int = 2, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1, dashboard off."""
    from distributed import LocalCluster

    scheduler_kwargs = {"dashboard": False, "dashboard_address": "127.0.0.1:0",
                        **kwargs.pop("scheduler_kwargs", {})}
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None,
                        worker_dashboard_address=None, scheduler_kwargs=scheduler_kwargs,
                        **kwargs)


@contextlib.contextmanager
def port_held(port: int = DASHBOARD_PORT) -> Iterator[None]:
    """Keep 127.0.0.1:``port`` busy (bound and listening) for the block.

    When something else already holds it, the port is busy anyway and the block just runs.
    """
    s = socket.socket()
    try:
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        yield
    finally:
        s.close()
