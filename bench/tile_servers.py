"""The servers of the tile bench (``tiles.py``): plexhub's API, nginx (static files and a
``proxy_cache`` in front of the API) and large_image (``tile_li_server.py`` in its own venv),
each a subprocess whose CPU and peak RSS the cells read from ``/proc``; and the small HTTP
helpers the phases use on loopback (http.client: the measurement, not an API client)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from harness import free_port, proc_cpu_s, proc_status_kb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out" / "tiles"
VENVS = HERE / "out" / "venvs"
LI_VENV = VENVS / "large_image"
LI_PINS = ["large-image==1.35.6", "large-image-source-tiff==1.35.6"]
PYSPY_VENV = VENVS / "pyspy"
TOKEN = "bench-tiles-admin-token-0123456789"
AUTH = f"Bearer {TOKEN}"
STUDY = "BENCH-TILES"
QUALITY = 85


def http_get(port: int, path: str, auth: bool = True, timeout: float = 60,
             conn: Any = None) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET on loopback (http.client; keeps ``conn`` open)."""


    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": AUTH} if auth else {}
    t0 = time.perf_counter()
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if own:
        c.close()
    return r.status, body, dt



def wait_http(port: int, path: str, timeout: float = 90, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {path}")
        try:
            if http_get(port, path, auth=False, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered http://127.0.0.1:{port}{path} in {timeout} s")


def fetch_all(port: int, paths: list[str], workers: int = 8,
              dump: dict[str, Path] | None = None) -> tuple[float, int]:
    """GET every path once with ``workers`` threads; (seconds, bytes). Non-200 is fatal."""
    todo = list(paths)
    lock = threading.Lock()
    total = [0]
    errors: list[str] = []

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not todo or errors:
                    break
                p = todo.pop()
            status, body, _ = http_get(port, p, conn=conn)
            if status != 200:
                with lock:
                    errors.append(f"{p}: {status} {body[:200]!r}")
                break
            if dump is not None:
                dst = dump[p]
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(body)
            with lock:
                total[0] += len(body)
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("fetch failed: " + errors[0])
    return time.perf_counter() - t0, total[0]




class Proc:
    """A server subprocess; ``pids`` are the processes whose CPU/RSS count."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None, log_path: Path,
                 port: int, health: str) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("w")
        self.p = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                  cwd=REPO, start_new_session=True)
        try:
            wait_http(port, health, proc=self.p)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{cmd[:4]} did not start; see {log_path}:\n"
                               + log_path.read_text()[-2000:]) from None

    @property
    def pid(self) -> int:
        return self.p.pid

    def pids(self) -> list[int]:
        return [self.p.pid]

    def cpu(self) -> float:
        return sum(proc_cpu_s(p) for p in self.pids())

    def hwm_mb(self) -> float:
        return max(proc_status_kb(p, "VmHWM") for p in self.pids()) / 1024

    def rss_mb(self) -> float:
        return sum(proc_status_kb(p, "VmRSS") for p in self.pids()) / 1024

    stop_signal = signal.SIGINT

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(self.stop_signal)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._log.close()


class Plexhub(Proc):
    def __init__(self, data_dir: Path, cache_bytes: int | None, name: str,
                 wrapper: list[str] | None = None, extra_env: dict[str, str] | None = None,
                 workers: int = 1) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXHUB_")}
        env.update(PLEXHUB_DATA_DIR=str(data_dir), PLEXHUB_ADMIN_TOKEN=TOKEN, **(extra_env or {}))
        if cache_bytes is not None:
            env["PLEXHUB_TILE_CACHE_BYTES"] = str(cache_bytes)
        port = free_port()
        # uvicorn at log level warning: no access log line per request
        cmd = [sys.executable, "-m", "plexhub.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--workers", str(workers)]
        self.wrapped = wrapper is not None
        self.workers = workers
        super().__init__((wrapper or []) + cmd, env, OUT / f"server-{name}.log", port,
                         "/api/v1/health")

    def pids(self) -> list[int]:
        if self.workers > 1:  # uvicorn's supervisor and its worker processes
            kids = psutil.Process(self.p.pid).children(recursive=True)
            return [self.p.pid, *(k.pid for k in kids)]
        if not self.wrapped:
            return [self.p.pid]

        kids = psutil.Process(self.p.pid).children(recursive=True)
        return [k.pid for k in kids if "python" in k.name()] or [self.p.pid]

    @property
    def pid(self) -> int:
        return self.pids()[0]

    def stop(self) -> None:
        if self.wrapped and self.p.poll() is None:  # strace detaches on SIGINT: stop the server
            for pid in self.pids():
                if pid != self.p.pid:
                    os.kill(pid, signal.SIGINT)
        super().stop()


class Nginx(Proc):
    def __init__(self, static_dir: Path, api_port: int | None) -> None:
        d = OUT / "nginx"
        if d.exists():
            shutil.rmtree(d)
        (d / "cache").mkdir(parents=True)
        self.static_port, self.proxy_port = free_port(), free_port()
        upstream = proxy = ""
        if api_port:
            upstream = f"upstream api {{ server 127.0.0.1:{api_port}; keepalive 64; }}"
            proxy = f"""
    server {{
        listen 127.0.0.1:{self.proxy_port};
        location = /health {{ return 200 "ok"; }}
        location /api/ {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache tiles;
            proxy_cache_key "$request_uri|$http_authorization";
            proxy_cache_valid 200 365d;
            proxy_ignore_headers Cache-Control Expires Vary Set-Cookie;
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status;
        }}
    }}"""
        conf = f"""
user root;
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    open_file_cache max=10000 inactive=60s;
    client_body_temp_path {d}/client;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=tiles:32m max_size=2g inactive=7d
                     use_temp_path=off;
    {upstream}
    server {{
        listen 127.0.0.1:{self.static_port};
        location = /health {{ return 200 "ok"; }}
        location /static/ {{ alias {static_dir}/; }}
    }}
    {proxy}
}}
"""
        (d / "nginx.conf").write_text(conf)
        super().__init__(["nginx", "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")],
                         None, d / "stdout.log", self.static_port, "/health")
        if api_port:
            wait_http(self.proxy_port, "/health", proc=self.p)

    def pids(self) -> list[int]:
        return [self.p.pid, *(k.pid for k in psutil.Process(self.p.pid).children())]

    stop_signal = signal.SIGQUIT  # nginx's graceful stop


class LargeImage(Proc):
    def __init__(self, src: Path, style: dict[str, Any], cache: bool) -> None:
        port = free_port()
        cmd = [str(LI_VENV / "bin" / "python"), str(HERE / "tile_li_server.py"),
               "--port", str(port), "--src", str(src), "--style", json.dumps(style),
               "--quality", str(QUALITY)]
        if not cache:
            cmd.append("--no-cache")
        super().__init__(cmd, None, OUT / f"large_image-{'warm' if cache else 'cold'}.log",
                         port, "/health")

    def meta(self) -> dict[str, Any]:
        return dict(json.loads(http_get(self.port, "/meta", auth=False)[1]))


