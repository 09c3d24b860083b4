"""``plexhub up`` on a fresh data folder: starts, serves the demo, stops cleanly; a restart
reuses what exists. Slow (two hub starts and three conversions), but part of every run."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.hub import PREFIX, assert_all_gone, clean_env, descendants
from tests.helpers.net import free_port

pytestmark = pytest.mark.slow


def up_command(port: int) -> list[str]:
    return [sys.executable, "-m", "plexhub", "up", "--port", str(port)]


class Up:
    """``plexhub up`` as a subprocess, its output collected line by line."""

    def __init__(self, data: Path, port: int, api_port: int) -> None:
        env = clean_env(PLEXHUB_DATA_DIR=str(data), PLEXHUB_API_PORT=str(api_port),
                        PLEXHUB_CHUNK_SIZE="128", PLEXHUB_BLOCK_SIZE="256")
        self.proc = subprocess.Popen(up_command(port), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text, re.MULTILINE)
            if m:
                return m
            assert self.proc.poll() is None, f"plexhub up exited:\n{self.text}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.text}"
            time.sleep(0.2)

    def stop(self, sig: int) -> int:
        tree = descendants(self.proc.pid)
        assert any("jupyterhub" in " ".join(p.cmdline()) for p in tree)
        self.proc.send_signal(sig)
        rc = self.proc.wait(90)
        self._reader.join(10)
        assert_all_gone(tree, timeout=5)
        return rc

    def close(self) -> None:
        """After a failure: stop it the normal way, then make sure nothing is left."""
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()


def oauth_client(base: str, user: str, password: str) -> httpx.Client:
    """Log in through the hub's form, then into the API through the hub's OAuth."""
    c = httpx.Client(base_url=base, timeout=60)
    form = c.get("/hub/login")
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
    r = c.post("/hub/login", data={"username": user, "password": password,
                                   "_xsrf": xsrf.group(1) if xsrf else ""},
               follow_redirects=False)
    assert r.status_code == 302, r.text
    r = c.get(f"{PREFIX}/hub-login", params={"next": f"{PREFIX}/api/v1/me"},
              follow_redirects=True)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == user
    return c


def codes(c: httpx.Client) -> list[str]:
    return sorted(s["code"] for s in c.get(f"{PREFIX}/api/v1/studies").json())


def check_sponsor_view(base: str, password: str, demo: list[str], other: str) -> None:
    """The sponsor sees DEMO (list, tiles, raw store through the proxy), never DEMO-2."""
    with contextlib.closing(oauth_client(base, "sponsor", password)) as c:
        assert codes(c) == ["DEMO"]
        assert c.get(f"{PREFIX}/api/v1/studies/DEMO-2").status_code == 404
        for image in demo:
            tile = c.get(f"{PREFIX}/api/v1/images/{image}/tiles/0/0/0.png")
            assert tile.status_code == 200, tile.text
            assert tile.headers["content-type"] == "image/png"
            assert c.get(f"{PREFIX}/api/v1/images/{image}/zarr/zarr.json").status_code == 200
        assert c.get(f"{PREFIX}/api/v1/images/{other}/tiles/0/0/0.png").status_code == 404


def demo_images(base: str, admin: str) -> tuple[list[str], str]:
    h = {"Authorization": f"Bearer {admin}"}
    images = httpx.get(f"{base}{PREFIX}/api/v1/studies/DEMO/images", headers=h).json()
    assert [i["status"] for i in images] == ["ready", "ready"], images
    (other,) = httpx.get(f"{base}{PREFIX}/api/v1/studies/DEMO-2/images", headers=h).json()
    return [i["id"] for i in images], str(other["id"])


def test_up_starts_serves_and_stops(tmp_path: Path) -> None:
    data, port, api_port = tmp_path / "data", free_port(), free_port()
    base = f"http://127.0.0.1:{port}"

    up = Up(data, port, api_port)
    try:
        up.wait_for(rf"^plexhub is up: {re.escape(base)}/hub/$", timeout=300)
        password = up.wait_for(r"^\s+sponsor\s+/ (\S+)\s", 5).group(1)
        admin = up.wait_for(r"admin token[^:]*: (\S+)$", 5).group(1)
        assert "password generated" in up.text  # no PLEXHUB_DEMO_PASSWORD: made and printed
        assert httpx.get(f"{base}/hub/api/").status_code == 200
        demo, other = demo_images(base, admin)
        check_sponsor_view(base, password, demo, other)
        with contextlib.closing(oauth_client(base, "scientist", password)) as c:
            assert codes(c) == ["DEMO", "DEMO-2"]
        assert up.stop(signal.SIGINT) == 0, up.text
    finally:
        up.close()
    assert "plexhub: stopped" in up.text
    assert "left behind" not in up.text  # the hub itself stopped everything it started
    assert not [p for p in psutil.process_iter(["cmdline"])
                if f"--port {api_port}" in " ".join(p.info["cmdline"] or [])]

    again = Up(data, port, api_port)  # restart: studies, images and grant are reused
    try:
        again.wait_for(rf"^plexhub is up: {re.escape(base)}/hub/$", timeout=180)
        assert "generating sample" not in again.text
        assert "converting" not in again.text
        password = again.wait_for(r"^\s+sponsor\s+/ (\S+)\s", 5).group(1)
        admin = again.wait_for(r"admin token[^:]*: (\S+)$", 5).group(1)
        assert demo_images(base, admin) == (demo, other)
        check_sponsor_view(base, password, demo, other)
        assert again.stop(signal.SIGTERM) == 0, again.text
    finally:
        again.close()
