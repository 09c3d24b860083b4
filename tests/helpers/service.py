"""``plexhub serve`` as its own process (uvicorn's access log on, secrets in its real
environment, as in a deployment), on 127.0.0.1 and a free port, stopped by the test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plexhub.client import wait_healthy
from tests.helpers.net import free_port


@dataclass
class Service:
    base: str
    pid: int
    data_dir: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def plexhub_serve(data_dir: Path, log: Path, env: dict[str, str]) -> Iterator[Service]:
    port = free_port()
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                "HOME": str(log.parent), "PLEXHUB_DATA_DIR": str(data_dir), **env}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "plexhub", "serve", "--host",
                                 "127.0.0.1", "--port", str(port), "--log-level", "info"],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=log.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, 180, lambda: None if proc.poll() is None
                     else f"plexhub serve exited:\n{log.read_text()[-3000:]}", interval=0.1)
        yield Service(base, proc.pid, data_dir, log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
