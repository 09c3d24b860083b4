"""A real JupyterLab server (``python -m jupyterlab``) on 127.0.0.1 and a free port, with a
token, isolated settings (news pop-up off) and the given environment; stopped by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.hub import wait_ok
from tests.helpers.net import free_port


@dataclass
class Lab:
    base: str
    token: str
    root: Path
    log: Path

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(f"{self.base}/{path}", timeout=60,
                         headers={"Authorization": f"token {self.token}"}, **kw)  # type: ignore[arg-type]

    def post(self, path: str, body: object) -> httpx.Response:
        return httpx.post(f"{self.base}/{path}", json=body, timeout=120,
                          headers={"Authorization": f"token {self.token}"})

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path}{sep}token={self.token}"


@contextmanager
def running_lab(tmp: Path, env: dict[str, str]) -> Iterator[Lab]:
    root, settings = tmp / "notebooks", tmp / "settings"
    root.mkdir(parents=True, exist_ok=True)
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token = uuid.uuid4().hex
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("PLEXHUB_", "JUPYTERHUB_"))} | {
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")} | env
    log = tmp / "lab.log"
    for attempt in range(3):
        # port_retries=0: a port another process took since free_port() is an exit, not a
        # silent move to a port this test would not know; then start again on a new one
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                 f"--port={port}", "--ServerApp.port_retries=0",
                 f"--IdentityProvider.token={token}",
                 f"--ServerApp.root_dir={root}", "--allow-root",
                 "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
                 "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                env=full, stdout=subprocess.DEVNULL, stderr=out)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ok(f"{base}/api/status?token={token}", proc, log, timeout=90)
            break
        except RuntimeError:
            taken = proc.poll() is not None and "already in use" in log.read_text(
                errors="replace")
            if not taken or attempt == 2:
                proc.kill()
                raise
    try:
        yield Lab(base, token, root, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
