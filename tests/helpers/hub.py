"""A real JupyterHub (proxy, API service, spawner) on free loopback ports, for tests.

``running_hub(folder)`` starts ``hub/jupyterhub_config.py`` with data under ``folder`` and a
hub admin token (the ``plexhub-ops`` service), waits until ``/hub/api/`` answers 200 and the
API service is healthy, and stops everything it started on exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from plexhub.hub.config import CONFIG_FILE
from plexhub.hub.proxy import ensure_chp
from plexhub.settings import Settings
from tests.helpers.net import free_port

OPS_TOKEN = "ops-token-for-hub-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-hub-tests-0123456789"
PASSWORD = "demo-password-for-tests"
PREFIX = "/services/plexhub"


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without its PLEXHUB_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXHUB_")}
    env.update(extra)
    return env


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def assert_all_gone(procs: list[psutil.Process], timeout: float = 15) -> None:
    """Every process in ``procs`` has exited (is_running() also guards against pid reuse)."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    left = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            left.append(" ".join(p.cmdline()))
            p.kill()
    assert not left, f"left running: {left}"


@dataclass
class Hub:
    base: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    clients: list[httpx.Client] = field(default_factory=list)

    # -- REST -----------------------------------------------------------------------------
    def hub_api(self, method: str, path: str, token: str = OPS_TOKEN,
                **kw: Any) -> httpx.Response:
        """JupyterHub's REST API (``/hub/api/...``), as the plexhub-ops service by default."""
        return httpx.request(method, f"{self.base}/hub/api{path}", timeout=30,
                             headers={"Authorization": f"token {token}"}, **kw)

    def api(self, method: str, path: str, token: str = ADMIN_TOKEN,
            **kw: Any) -> httpx.Response:
        """The plexhub API through the proxy (``/services/plexhub/api/v1/...``)."""
        return httpx.request(method, f"{self.base}{PREFIX}/api/v1{path}", timeout=60,
                             headers={"Authorization": f"Bearer {token}"}, **kw)

    def user_token(self, user: str) -> str:
        r = self.hub_api("POST", f"/users/{user}/tokens", json={"expires_in": 3600})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def wait_ready(self, user: str, server: str = "", timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            model = self.hub_api("GET", f"/users/{user}").json()
            if model["servers"].get(server, {}).get("ready"):
                return
            assert time.monotonic() < deadline, f"server {user}/{server} not ready: {model}"
            time.sleep(0.25)

    # -- browser-like sessions --------------------------------------------------------------
    def login(self, user: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
        """Log in through the hub's form; returns the cookie-holding client and where the
        hub redirects after login (not followed)."""
        c = httpx.Client(base_url=self.base, timeout=60, follow_redirects=False)
        self.clients.append(c)
        form = c.get("/hub/login")
        assert form.status_code == 200, form.text
        m = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
        xsrf = m.group(1) if m else c.cookies.get("_xsrf", "")
        r = c.post("/hub/login", data={"username": user, "password": password, "_xsrf": xsrf})
        assert r.status_code == 302, f"login of {user}: {r.status_code} {r.text[:300]}"
        return c, r.headers["location"]

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def form_login(hub: Hub, user: str, password: str) -> httpx.Response:
    """One browser-like login at the hub's form: the form (for its _xsrf), then the post."""
    with httpx.Client(base_url=hub.base, timeout=60, follow_redirects=False) as c:
        form = c.get("/hub/login")
        m = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
        xsrf = m.group(1) if m else c.cookies.get("_xsrf", "")
        return c.post("/hub/login", data={"username": user, "password": password,
                                          "_xsrf": xsrf})


def wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready; log:\n" +
                               "\n".join(log.read_text(errors="replace").splitlines()[-60:]))
        time.sleep(0.2)


@contextlib.contextmanager
def running_hub(folder: Path, timeout: float = 120, **settings: str) -> Iterator[Hub]:
    """``settings``: more ``PLEXHUB_*`` variables for the hub (and so for the API service),
    e.g. ``PLEXHUB_API_WORKERS="2"``."""
    data = folder / "data"
    (data / "incoming").mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_env(
        PLEXHUB_DATA_DIR=str(data), PLEXHUB_HUB_PORT=str(port),
        PLEXHUB_HUB_INTERNAL_PORT=str(free_port()), PLEXHUB_PROXY_API_PORT=str(free_port()),
        PLEXHUB_API_PORT=str(free_port()), PLEXHUB_DEMO_PASSWORD=PASSWORD,
        PLEXHUB_ADMIN_TOKEN=ADMIN_TOKEN, PLEXHUB_HUB_API_TOKEN=OPS_TOKEN,
        PLEXHUB_CHP_COMMAND=ensure_chp(Settings(data_dir=folder / "node-cache")),
        PLEXHUB_CHUNK_SIZE="128", PLEXHUB_BLOCK_SIZE="256", **settings)
    log_path = folder / "jupyterhub.log"
    (data / "hub").mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)],
                                cwd=data / "hub", env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    hub = Hub(base=base, data_dir=data, log_path=log_path, proc=proc)
    tree: list[psutil.Process] = []
    try:
        wait_ok(f"{base}/hub/api/", proc, log_path, timeout)
        wait_ok(f"{base}{PREFIX}/api/v1/health", proc, log_path, timeout)
        yield hub
    finally:
        for c in hub.clients:
            c.close()
        tree = descendants(proc.pid)
        proc.terminate()  # the hub stops its servers, the service and the proxy
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert_all_gone(tree)
