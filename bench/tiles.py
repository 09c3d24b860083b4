"""Rendered tiles from plexhub's API vs large_image and a static file server (nginx).

    python bench/tiles.py --quick         # 8 x 4,096^2 uint16, 6 s per cell, ~8 min
    python bench/tiles.py                 # 8 x 8,192^2 uint16, 12 s per cell, ~15 min
    python bench/tiles.py --phases first cold --conc 1 32 --profile

What it does (everything under ``bench/out/tiles/``, loopback only):

1. data      ``plexhub synth`` writes an 8-channel uint16 OME-TIFF (512^2 zlib tiles) into
             ``data-N/incoming/``; a plexhub server ingests it through the API (POST study,
             POST image, poll the job) into NGFF 0.5 (plexhub's defaults: 512^2 chunks in 2048^2
             shards, Blosc lz4), and saves a preset: the image's autocontrast windows with 4 of
             the 8 channels active. Kept between runs (``state.json``).
2. first     first-tile latency: a fresh server per repeat, ``/health`` until up, ``/me`` (auth
             and catalog warm), then the first tile of the image (never opened in that process,
             so lazy imports and opening the level array are included), a second tile of the same
             level, and the first tile of another level (an array never opened, imports done).
             One more fresh server runs under ``strace -ff`` to list what the first tile reads.
   parts     no server: the steps of one tile (zarr reads, composite, JPEG) in a child process,
             process CPU per step, at numpy's default BLAS threads and with one.
3. cold      a server with ``PLEXHUB_TILE_CACHE_BYTES=0``: every request renders (read 4 chunks,
             composite, JPEG-encode). The chunks themselves come from the OS page cache. Run as
             shipped and again with ``OPENBLAS_NUM_THREADS=1`` in the server's environment.
4. warm      a server with the default 256 MB tile cache, pre-warmed with every tile (this pass,
             each tile rendered for the first time, is timed too, and its JPEGs are dumped for
             the static server): every request is a cache hit.
5. static    nginx (Debian's ``nginx-light``) configured by this script on a free loopback port,
             serving the dumped JPEGs (the same bytes) as files.
6. proxy     the same nginx as a ``proxy_cache`` in front of the warm API (key: URI +
             Authorization), pre-warmed: what a cache in front of the immutable URLs gives.
7. li        large_image 1.35 (``large-image-source-tiff``, libtiff) on the same OME-TIFF, 512^2
             tiles, composited with a style of the same 4 bands/windows/colours, JPEG q85 4:2:0,
             served by a minimal ``ThreadingHTTPServer`` of this script in large_image's own venv
             (``bench/out/venvs/large_image``; large_image's zarr source needs zarr<3); cold = its
             tile cache replaced by a no-op, warm = its in-process cache sized to 1/4 of the
             memory (``cache_python_memory_portion=4``; the default 1/32 does not hold the
             8,192^2 image's tiles), pre-warmed.

Load: ``wrk -t1 -cC -dD --timeout 30s`` with a Lua script that walks a shuffled list of every
level-0 tile of the size (a 1 s unmeasured warm-up first). Per cell: tiles/s (wrk's requests /
duration), p50 / p99 latency (wrk), server CPU ms per tile (utime + stime from
``/proc/<pid>/stat`` of the server process(es) before/after, / requests), server peak RSS
(``VmHWM`` of ``/proc/<pid>/status``, cumulative for that server process). ``--profile``
records py-spy (raw collapsed stacks) on the server during extra, unmeasured cells.

The machine is shared: before every phase the script waits (polling every 30 s) until no
``bench/convert.py`` or ``bench/memory.py`` runs, and each cell records the 1-min load average.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

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
OTHER_BENCH = r"bench/(convert|memory)\.py"

GOALS = {
    "cpu_ms_512": 4.0,        # server CPU per rendered 512^2 tile
    "tps_c32": 280.0,         # rendered 512^2 tiles/s at c=32
    "x_large_image": 4.0,     # ... and >= 4x large_image
    "p99_c32_ms": 300.0,
    "cached_vs_static": 0.15,  # cached tiles from the API itself vs the static server
    "proxy_vs_static": 0.80,  # with a proxy cache in front
    "first_tile_ms": 100.0,
    "rss_mb": 300.0,           # flat, plus caches
}


# ----------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """utime + stime of one process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def others_running() -> list[str]:
    r = subprocess.run(["pgrep", "-af", OTHER_BENCH], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if ln.strip() and str(os.getpid()) != ln.split()[0]]


def wait_quiet(poll: float = 30.0) -> None:
    """Wait until no other bench script runs (they would disturb each other)."""
    waited = 0.0
    while others := others_running():
        if waited == 0:
            log(f"waiting for another benchmark to finish: {others[0][:100]}")
        time.sleep(poll)
        waited += poll
    if waited:
        log(f"... waited {waited:.0f} s")


def http_get(port: int, path: str, auth: bool = True, timeout: float = 60,
             conn: Any = None) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET on loopback (http.client; keeps ``conn`` open)."""
    import http.client

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


def http_json(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Authorization": AUTH,
                                                "Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        return r.status, json.loads(raw)
    except json.JSONDecodeError:
        return r.status, raw.decode(errors="replace")


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
    import http.client

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


# ----------------------------------------------------------------------------- servers

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
        return sum(cpu_s(p) for p in self.pids())

    def hwm_mb(self) -> float:
        return max(status_kb(p, "VmHWM") for p in self.pids()) / 1024

    def rss_mb(self) -> float:
        return sum(status_kb(p, "VmRSS") for p in self.pids()) / 1024

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
        import psutil

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
        import psutil

        return [self.p.pid, *(k.pid for k in psutil.Process(self.p.pid).children())]

    stop_signal = signal.SIGQUIT  # nginx's graceful stop


class LargeImage(Proc):
    def __init__(self, src: Path, style: dict[str, Any], cache: bool) -> None:
        port = free_port()
        cmd = [str(LI_VENV / "bin" / "python"), str(Path(__file__).resolve()), "--li-server",
               "--port", str(port), "--src", str(src), "--style", json.dumps(style)]
        if not cache:
            cmd.append("--no-cache")
        super().__init__(cmd, None, OUT / f"large_image-{'warm' if cache else 'cold'}.log",
                         port, "/health")

    def meta(self) -> dict[str, Any]:
        return dict(json.loads(http_get(self.port, "/meta", auth=False)[1]))


# ----------------------------------------------------------------------------- load (wrk)

WRK_LUA = r"""
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("BENCH_AUTH") or ""
local i = tonumber(os.getenv("BENCH_START") or "0") % #paths
local headers = {}
if auth ~= "" then headers["Authorization"] = auth end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def wrk(port: int, paths: list[str], conns: int, seconds: float, auth: bool) -> dict[str, Any]:
    lua = OUT / "wrk.lua"
    lua.write_text(WRK_LUA)
    plist = OUT / "wrk-paths.txt"
    plist.write_text("\n".join(paths) + "\n")
    env = dict(os.environ, BENCH_PATHS=str(plist), BENCH_AUTH=AUTH if auth else "",
               BENCH_START=str(random.randrange(len(paths))))
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
           "-s", str(lua), f"http://127.0.0.1:{port}"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line[len("BENCH_JSON "):]))
    raise RuntimeError(f"wrk failed ({r.returncode}): {r.stdout[-1000:]} {r.stderr[-1000:]}")


def cell(server: Proc, port: int, paths: list[str], conns: int, seconds: float,
         auth: bool = True, warmup: float = 1.0) -> dict[str, Any]:
    """One measured run: wrk for ``seconds`` after an unmeasured warm-up."""
    if warmup:
        wrk(port, paths, conns, warmup, auth)
    load = os.getloadavg()[0]
    c0 = server.cpu()
    res = wrk(port, paths, conns, seconds, auth)
    c1 = server.cpu()
    n = max(1, res["requests"])
    dur = res["duration_us"] / 1e6
    errors = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"tps": res["requests"] / dur, "p50_ms": res["p50_us"] / 1e3,
            "p90_ms": res["p90_us"] / 1e3, "p99_ms": res["p99_us"] / 1e3,
            "max_ms": res["max_us"] / 1e3, "cpu_ms": (c1 - c0) * 1e3 / n,
            "server_cores": (c1 - c0) / dur, "hwm_mb": server.hwm_mb(),
            "rss_mb": server.rss_mb(), "requests": res["requests"], "errors": errors,
            "kb_per_tile": res["bytes"] / n / 1024, "load1": load,
            "others": bool(others_running())}


# ----------------------------------------------------------------------------- data

def ensure_tools(args: argparse.Namespace) -> None:
    missing = [t for t in ("wrk", "nginx", "strace") if shutil.which(t) is None]
    pkgs = {"wrk": "wrk", "nginx": "nginx-light", "strace": "strace"}
    if missing and os.geteuid() == 0:
        log(f"apt-get install {' '.join(pkgs[m] for m in missing)}")
        subprocess.run(["apt-get", "install", "-y", "-q", *(pkgs[m] for m in missing)],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL, check=False)
    if shutil.which("wrk") is None:
        sys.exit("bench/tiles.py needs wrk (Debian package wrk)")
    if shutil.which("nginx") is None:
        log("no nginx (Debian package nginx-light): static and proxy phases skipped")
        args.phases = [p for p in args.phases if p not in ("static", "proxy")]
    if "li" in args.phases:
        marker = LI_VENV / "bench-pins.txt"
        if not marker.exists() or marker.read_text().split() != LI_PINS:
            log(f"building {LI_VENV} ({' '.join(LI_PINS)})")
            shutil.rmtree(LI_VENV, ignore_errors=True)
            logf = VENVS / "large_image-install.log"
            VENVS.mkdir(parents=True, exist_ok=True)
            ok = subprocess.run(
                f"python3 -m venv {LI_VENV} && {LI_VENV}/bin/pip install -q {' '.join(LI_PINS)}",
                shell=True, stdout=logf.open("w"), stderr=subprocess.STDOUT).returncode == 0
            if ok:
                marker.write_text("\n".join(LI_PINS) + "\n")
            else:
                log(f"large_image venv failed (see {logf}): phase li skipped")
                args.phases.remove("li")


def pyspy_bin() -> str | None:
    for cand in (shutil.which("py-spy"), VENVS / "tools" / "bin" / "py-spy",
                 PYSPY_VENV / "bin" / "py-spy"):
        if cand and Path(cand).exists():
            return str(cand)
    log(f"installing py-spy into {PYSPY_VENV}")
    r = subprocess.run(f"python3 -m venv {PYSPY_VENV} && {PYSPY_VENV}/bin/pip install -q py-spy",
                       shell=True, capture_output=True, text=True)
    return str(PYSPY_VENV / "bin" / "py-spy") if r.returncode == 0 else None


def prepare_data(size: int) -> dict[str, Any]:
    """The synthetic OME-TIFF, its ingest through the API and the bench preset."""
    data = OUT / f"data-{size}"
    state_file = data / "state.json"
    if state_file.exists():
        st = json.loads(state_file.read_text())
        if Path(st["store"]).exists() and Path(st["tiff"]).exists():
            return dict(st)
    shutil.rmtree(data, ignore_errors=True)
    incoming = data / "incoming"
    incoming.mkdir(parents=True)
    tiff = incoming / f"mif-{size}-c8.ome.tif"
    log(f"plexhub synth {tiff.name} (8 x {size}^2 uint16)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "plexhub.cli", "synth", str(tiff), "--size", str(size),
                    "--channels", "8"], check=True, stdout=subprocess.DEVNULL)
    log(f"... {time.perf_counter() - t0:.0f} s; ingesting through the API")
    srv = Plexhub(data, None, "ingest")
    try:
        port = srv.port
        code, body = http_json(port, "POST", "/api/v1/studies", {
            "code": STUDY, "title": "tile benchmark", "sponsor": "bench", "profile": "non-glp"})
        assert code == 201, body
        t0 = time.perf_counter()
        code, body = http_json(port, "POST", f"/api/v1/studies/{STUDY}/images",
                               {"source": tiff.name})
        assert code == 202, body
        image_id = body["image_id"]
        while True:
            code, job = http_json(port, "GET", f"/api/v1/jobs/{body['job_id']}")
            if job["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.5)
        if job["state"] != "done":
            raise RuntimeError(f"ingest job ended {job['state']}: {job}")
        ingest_s = time.perf_counter() - t0
        code, image = http_json(port, "GET", f"/api/v1/images/{image_id}")
        code, auto = http_json(port, "GET",
                               f"/api/v1/images/{image_id}/autocontrast?active=4")
        assert code == 200, auto
        auto["name"] = "bench-4-of-8"
        code, saved = http_json(port, "POST", f"/api/v1/images/{image_id}/presets", auto)
        assert code == 201, saved
    finally:
        srv.stop()
    store = next(p for p in (data / "stores").rglob("*.ome.zarr") if p.is_dir())
    st = {"size": size, "tiff": str(tiff), "store": str(store), "image_id": image_id,
          "preset_ref": f"{saved['id']}@{saved['version']}", "preset": auto,
          "levels": image["levels"], "axes": image["axes"], "ingest_s": ingest_s}
    state_file.write_text(json.dumps(st, indent=1))
    log(f"ingested in {ingest_s:.0f} s: image {image_id}, levels {image['levels']}")
    return st


def tile_paths(st: dict[str, Any], tile: int, level: int = 0) -> list[tuple[str, int, int]]:
    h, w = st["levels"][level][-2:]
    out = [(f"/api/v1/images/{st['image_id']}/tiles/{level}/{r}/{c}.jpg"
            f"?preset={st['preset_ref']}&size={tile}", r, c)
           for r in range(-(-h // tile)) for c in range(-(-w // tile))]
    random.Random(tile).shuffle(out)
    return out


def li_style(preset: dict[str, Any]) -> dict[str, Any]:
    bands = [{"frame": i, "palette": "#" + ch["color"], "min": ch["window"]["start"],
              "max": ch["window"]["end"]}
             for i, ch in enumerate(preset["channels"]) if ch.get("active", True)]
    return {"bands": bands}


# ----------------------------------------------------------------------------- phases

def phase_first(st: dict[str, Any], repeats: int) -> dict[str, Any]:
    data = Path(st["tiff"]).parent.parent
    paths = tile_paths(st, 512)
    other_level = min(2, len(st["levels"]) - 1)
    lvl = tile_paths(st, 512, other_level)
    # the other level is rendered with settings never seen (inline spec, windows + 1), so
    # that request pays for opening an array and building new transfer tables, as a new
    # image would; only the imports are already done
    from plexhub.api.tiles import encode_spec

    doc = json.loads(json.dumps(st["preset"]))
    for ch in doc["channels"]:
        ch["window"]["start"] += 1
    spec = encode_spec(doc)
    rows = []
    for i in range(repeats):
        t0 = time.perf_counter()
        srv = Plexhub(data, None, f"first-{i}")
        up = time.perf_counter() - t0
        try:
            _, _, me = http_get(srv.port, "/api/v1/me")
            rss0 = srv.rss_mb()
            s1, _, first = http_get(srv.port, paths[i][0])
            s2, _, second = http_get(srv.port, paths[i + 1][0])
            s3, _, level = http_get(srv.port, lvl[0][0].split("?")[0] + f"?spec={spec}")
            assert (s1, s2, s3) == (200, 200, 200), (s1, s2, s3)
            rows.append({"startup_s": up, "me_ms": me * 1e3, "first_ms": first * 1e3,
                         "second_ms": second * 1e3, "other_level_ms": level * 1e3,
                         "rss_idle_mb": rss0, "rss_after_mb": srv.rss_mb()})
        finally:
            srv.stop()
    return {"rows": rows, "other_level": other_level,
            "median": {k: statistics.median(r[k] for r in rows) for k in rows[0]}}


def phase_strace(st: dict[str, Any]) -> dict[str, Any]:
    """What the first tile reads: strace -ff -ttt on a fresh server, lines after the request."""
    data = Path(st["tiff"]).parent.parent
    tdir = OUT / "strace"
    shutil.rmtree(tdir, ignore_errors=True)
    tdir.mkdir(parents=True)
    wrapper = ["strace", "-ff", "-ttt", "-qq", "-s", "0", "-e",
               "trace=openat,read,pread64,lseek,close,fstat,newfstatat",
               "-o", str(tdir / "t")]
    srv = Plexhub(data, None, "strace", wrapper=wrapper)
    path, row, col = tile_paths(st, 512)[0]
    try:
        http_get(srv.port, "/api/v1/me")
        time.sleep(0.5)
        mark = time.time()
        _, _, dt = http_get(srv.port, path)
        time.sleep(0.5)
        mark2 = time.time()
        path2 = tile_paths(st, 512)[1][0]
        http_get(srv.port, path2)
        time.sleep(0.5)
        end = time.time()
    finally:
        srv.stop()
    store = st["store"]
    first = _trace_reads(tdir, store, mark, mark2)
    second = _trace_reads(tdir, store, mark2, end)
    needed = _needed_chunks(st, row, col)
    return {"first": first, "second": second, "needed": needed, "tile": [row, col],
            "strace_latency_ms": dt * 1e3}


_LINE = re.compile(r"^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)")


def _trace_reads(tdir: Path, store: str, t0: float, t1: float) -> dict[str, Any]:
    events = []
    for f in tdir.glob("t.*"):
        for line in f.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m:
                events.append((float(m[1]), m[2], m[3], int(m[4])))
    events.sort()
    fds: dict[int, str] = {}
    pos: dict[int, int] = {}
    opens: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    reads: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ts, call, argstr, ret in events:
        args = [a.strip() for a in argstr.split(",")]
        if call == "openat":
            m = re.search(r'"([^"]*)"', argstr)
            p = m[1] if m else ""
            if ret >= 0:
                fds[ret] = p
                pos[ret] = 0
            if t0 <= ts < t1 and p.startswith(store):
                (opens if ret >= 0 else failed)[p[len(store):] or "/"] += 1
            continue
        try:
            fd = int(args[0])
        except ValueError:
            continue
        p = fds.get(fd, "")
        if call == "close":
            fds.pop(fd, None)
        elif call == "lseek" and ret >= 0:
            pos[fd] = ret
        elif call in ("read", "pread64") and ret >= 0:
            off = int(args[-1]) if call == "pread64" else pos.get(fd, 0)
            if call == "read":
                pos[fd] = off + ret
            if t0 <= ts < t1 and p.startswith(store):
                reads[p[len(store):]].append((off, ret))
    return {"opens": dict(opens), "failed_opens": dict(failed),
            "reads": dict(reads),
            "read_calls": sum(len(v) for v in reads.values()),
            "read_bytes": sum(n for v in reads.values() for _, n in v)}


def _needed_chunks(st: dict[str, Any], row: int, col: int) -> dict[str, Any]:
    """The shard files, index and chunk byte ranges a 512^2 level-0 tile needs."""
    import numpy as np

    store = Path(st["store"])
    meta = json.loads((store / "0" / "zarr.json").read_text())
    active = [i for i, ch in enumerate(st["preset"]["channels"]) if ch.get("active", True)]
    out: dict[str, Any] = {"chunks": [], "chunk_bytes": 0, "index_bytes": 0}
    codecs = meta["codecs"]
    shard = next((c for c in codecs if c["name"] == "sharding_indexed"), None)
    shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
    axes = st["axes"]
    for c in active:
        y, x = row * 512, col * 512
        if shard is None:
            key = [0] * len(axes)
            for k, a in enumerate(axes):
                key[k] = {"c": c // shape[k], "y": y // shape[k], "x": x // shape[k]}.get(a, 0)
            f = store / "0" / "c" / sep.join(map(str, key))
            out["chunks"].append({"file": str(f)[len(str(store)):], "bytes": f.stat().st_size})
            out["chunk_bytes"] += f.stat().st_size
            continue
        inner = shard["configuration"]["chunk_shape"]
        key = [{"c": c // shape[k], "y": y // shape[k], "x": x // shape[k]}.get(a, 0)
               for k, a in enumerate(axes)]
        f = store / "0" / "c" / sep.join(map(str, key))
        per = [s // i for s, i in zip(shape, inner, strict=True)]
        n = int(np.prod(per))
        idx_bytes = 16 * n + 4
        raw = f.read_bytes()
        index = np.frombuffer(raw[-idx_bytes:-4], "<u8").reshape(-1, 2)
        local = [{"c": c % shape[k], "y": y % shape[k], "x": x % shape[k]}.get(a, 0) // inner[k]
                 for k, a in enumerate(axes)]
        flat = int(np.ravel_multi_index(local, per))
        off, nb = (int(v) for v in index[flat])
        out["chunks"].append({"file": str(f)[len(str(store)):], "offset": off, "bytes": nb,
                              "shard_bytes": len(raw)})
        out["chunk_bytes"] += nb
        out["index_bytes"] += idx_bytes
    return out


def phase_parts(st: dict[str, Any]) -> dict[str, Any]:
    """One tile's steps in a child process (the server's read path and malloc settings)."""
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--parts-child",
                        str(Path(st["tiff"]).parent.parent / "state.json")],
                       capture_output=True, text=True, check=True)
    return {"server path": json.loads(r.stdout.strip().splitlines()[-1])}


def parts_child(state_file: str) -> None:
    """Run :func:`parts_steps` on a worker thread, as the server does (Blosc decodes with
    its own threads when called from the main thread, and only then)."""
    t = threading.Thread(target=parts_steps, args=(state_file,))
    t.start()
    t.join()


def parts_steps(state_file: str, n: int = 16, settle: float = 0.05) -> None:
    """No HTTP, one request at a time: the steps of one rendered tile done the way
    ``plexhub.api.tiles.TileEngine`` does them (its direct chunk reader, one read per active
    channel, then ``ome_pipeline.render.render`` and ``encode``, with the API process's malloc
    settings). Each step is followed by a ``settle`` s sleep inside its window and charged the
    CPU time of the whole process over that window (``time.process_time``), so work on other
    threads counts too."""
    import numpy as np

    from plexhub.malloc import tune_malloc
    from plexhub.model import Channel
    from plexhub.ome_pipeline.chunkread import open_direct
    from plexhub.ome_pipeline.render import encode, render
    from plexhub.presets import bind, parse_preset

    tune_malloc()
    st = json.loads(Path(state_file).read_text())
    chans = [Channel(index=i, label=c["label"], color=c.get("color") or "FFFFFF")
             for i, c in enumerate(st["preset"]["channels"])]
    bound = bind(parse_preset(st["preset"]), chans)
    active = [i for i, _ in bound.active()]
    arr = open_direct(Path(st["store"]) / "0")
    assert arr is not None, "not a store plexhub wrote"
    out: dict[str, Any] = {}
    for size in (512, 256):
        acc: dict[str, list[float]] = defaultdict(list)
        for k, (_, r, c) in enumerate(tile_paths(st, size)[:n + 1]):
            ys, xs = slice(r * size, (r + 1) * size), slice(c * size, (c + 1) * size)
            t0 = time.process_time()
            planes = {ch: np.asarray(arr[ch, ys, xs]) for ch in active}
            time.sleep(settle)
            t1 = time.process_time()
            rgb = render(planes, bound)
            time.sleep(settle)
            t2 = time.process_time()
            encode(rgb, "jpeg", QUALITY)
            time.sleep(settle)
            t3 = time.process_time()
            if k:  # the first one builds the transfer tables
                acc["read_ms"].append((t1 - t0) * 1e3)
                acc["render_ms"].append((t2 - t1) * 1e3)
                acc["encode_ms"].append((t3 - t2) * 1e3)
        out[str(size)] = {key: statistics.median(v) for key, v in acc.items()}
        out[str(size)]["total_ms"] = sum(out[str(size)].values())
    print(json.dumps(out))


def run_matrix(label: str, server: Proc, port: int, paths_by_size: dict[int, list[str]],
               conns: list[int], seconds: float, auth: bool, cache: str,
               results: list[dict[str, Any]]) -> None:
    for size, paths in paths_by_size.items():
        for c in conns:
            r = cell(server, port, paths, c, seconds, auth)
            r.update(server=label, size=size, cache=cache, c=c)
            results.append(r)
            log(f"{label:14} {size} {cache:4} c={c:<3} {r['tps']:8.1f} tiles/s  "
                f"p50 {r['p50_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  "
                f"cpu {r['cpu_ms']:6.2f} ms/tile  hwm {r['hwm_mb']:.0f} MB  err {r['errors']}")


def profile(server: Proc, port: int, paths: list[str], conns: int, seconds: float,
            name: str, native: bool = False) -> dict[str, Any] | None:
    spy = pyspy_bin()
    if spy is None:
        log("py-spy unavailable: no profile")
        return None
    out = OUT / f"profile-{name}.txt"
    cmd = [spy, "record", "--pid", str(server.pid), "--duration", str(int(seconds) + 1),
           "--rate", "250", "--format", "raw", "-o", str(out)]
    if native:
        cmd.append("--native")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    res = wrk(port, paths, conns, seconds, True)
    p.wait()
    if not out.exists():
        log(f"py-spy failed: {p.stderr.read() if p.stderr else ''}")
        return None
    return {"file": str(out), "requests": res["requests"], "rate": 250,
            **summarise_profile(out)}


# leaf frames of a thread that waits (py-spy counts a thread blocked in C as active)
IDLE_LEAVES = {"Condition.wait", "_worker", "EpollSelector.select", "Runner.run",
               "BaseEventLoop.run_forever", "Thread._wait_for_tstate_lock", "Event.wait",
               "SimpleQueue.get", "Queue.get"}


def _frame(f: str) -> str:
    # py-spy raw frames look like "func (path/to/file.py:123)"
    m = re.match(r"(.*) \((.*?):(\d+)\)$", f)
    if not m:
        return f
    fn, path = m[1], m[2]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{fn} ({path})"


def summarise_profile(path: Path) -> dict[str, Any]:
    """Self and inclusive sample shares from py-spy's raw (collapsed) output."""
    total = idle = 0
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        k = int(n)
        frames = [_frame(f) for f in stack.split(";")[1:]]  # first is the thread
        if not frames:
            continue
        if frames[-1].split(" (")[0] in IDLE_LEAVES:
            idle += k  # a thread blocked (idle pool worker, lock, event loop in epoll)
            continue
        total += k
        self_c[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
        buckets[_bucket(frames)] += k
    top = lambda c: [(f, round(100 * v / total, 1)) for f, v in c.most_common(25)]  # noqa: E731
    return {"samples": total, "idle_samples": idle, "self": top(self_c), "inclusive": top(incl),
            "buckets": [(b, round(100 * v / total, 1)) for b, v in buckets.most_common()]}


BUCKETS = (  # (name, substrings of a stack); the first that matches wins
    ("JPEG encode", ("encode (ome_pipeline/render.py", "PIL/")),
    ("composite (render)", ("render (ome_pipeline/render.py",)),
    ("zarr open", ("TileEngine.array (",)),
    ("zarr read + decode", ("TileEngine.planes (", "zarr/", "numcodecs/")),
    ("preset bind / etag", ("presets.py", "etag (api/tiles.py", "content_hash")),
    ("auth + catalog (SQLAlchemy)", ("sqlalchemy/", "api/deps.py", "api/auth.py",
                                     "preset_store.py", "policies/")),
    ("tile cache", ("ByteLRU",)),
    ("fastapi / starlette / pydantic", ("fastapi/", "starlette/", "pydantic")),
    ("uvicorn / asyncio / anyio", ("uvicorn/", "asyncio/", "anyio/", "httptools")),
    ("threads", ("threading.py", "concurrent/")),
)


def _bucket(frames: list[str]) -> str:
    """Coarse attribution of one stack."""
    text = ";".join(frames)
    for name, keys in BUCKETS:
        if any(k in text for k in keys):
            return name
    return "other"


# ----------------------------------------------------------------------------- large_image

def li_server(args: argparse.Namespace) -> None:
    """Runs inside large_image's venv: a minimal threaded HTTP tile server."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import large_image

    if not args.no_cache:
        # its default tile cache (1/32 of the memory, counted in 512 KB items) holds the 4,096^2
        # image's tiles but not the 8,192^2 one's (256 composites + 4 x 256 frame tiles, walked
        # in a cycle: an LRU then never hits); 1/4 of the memory holds them
        large_image.config.setConfig("cache_python_memory_portion", 4)
    ts = large_image.open(args.src, style=json.loads(args.style), encoding="JPEG",
                          jpegQuality=QUALITY, jpegSubsampling=2)
    if args.no_cache:
        class NoCache(dict):  # type: ignore[type-arg]
            def __setitem__(self, k: Any, v: Any) -> None:
                pass

        ts.cache = NoCache()
    meta = ts.getMetadata()
    meta_b = json.dumps({**meta, "source": type(ts).__name__,
                         "version": large_image.__version__}).encode()
    rx = re.compile(r"/tile/(\d+)/(\d+)/(\d+)\.jpg")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path in ("/health", "/meta"):
                body, ctype = (b"ok", "text/plain") if self.path == "/health" else \
                    (meta_b, "application/json")
            else:
                m = rx.fullmatch(self.path.split("?")[0])
                if not m:
                    self.send_error(404)
                    return
                z, x, y = (int(v) for v in m.groups())
                body, ctype = ts.getTile(x, y, z), "image/jpeg"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            # headers and body in one write (two small writes meet delayed ACKs: +40 ms)
            self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
            self._headers_buffer.append(body)  # type: ignore[attr-defined]
            self.flush_headers()

        def log_message(self, *a: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    Server(("127.0.0.1", args.port), Handler).serve_forever()


# ----------------------------------------------------------------------------- report

def fmt_table(results: list[dict[str, Any]]) -> str:
    head = (f"| {'server':24} | tile | cache | c  | tiles/s | p50 ms | p99 ms | CPU ms/tile "
            "| server cores | peak RSS MB | KB/tile | load1 |")
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in results:
        flag = " *" if r["errors"] else ""
        flag += " †" if r["others"] else ""
        lines.append(
            f"| {r['server'] + flag:24} | {r['size']:4} | {r['cache']:5} | {r['c']:<2} "
            f"| {r['tps']:7.1f} | {r['p50_ms']:6.1f} | {r['p99_ms']:6.1f} | {r['cpu_ms']:11.2f} "
            f"| {r['server_cores']:12.2f} | {r['hwm_mb']:11.0f} | {r['kb_per_tile']:7.1f} "
            f"| {r['load1']:5.1f} |")
    return "\n".join(lines)


def find(results: list[dict[str, Any]], server: str, size: int, cache: str,
         c: int) -> dict[str, Any] | None:
    for r in results:
        if (r["server"], r["size"], r["cache"], r["c"]) == (server, size, cache, c):
            return r
    return None


def report(doc: dict[str, Any]) -> str:
    res = doc["results"]
    out = [f"# bench/tiles.py {' '.join(doc['argv'])}  ({doc['date']})",
           f"image: 8 x {doc['size']}^2 uint16, NGFF {doc.get('ngff', '0.5')} "
           f"(level 0: {doc['tiles'][512]} tiles of 512^2, {doc['tiles'][256]} of 256^2), "
           f"preset: 4 of 8 channels active, JPEG q{QUALITY}; {doc['seconds']:.0f} s per cell "
           f"after a 1 s warm-up; wrk -t1; machine: {os.cpu_count()} cores, "
           f"load1 at start {doc['load_start']:.1f}",
           f"versions: {doc['versions']}", ""]
    if res:
        out += [fmt_table(res),
                "(* = errors in the cell, † = another bench script was running during it)", ""]
    lines: list[str] = []
    first = doc.get("first")
    if first:
        m = first["median"]
        lines.append(
            f"first tile, fresh server (median of {len(first['rows'])}): first request /me "
            f"{m['me_ms']:.1f} ms; first 512^2 tile of the never-opened image "
            f"{m['first_ms']:.1f} ms; a second tile {m['second_ms']:.1f} ms; then the first tile "
            f"of level {first['other_level']} with render settings never seen (array never "
            f"opened, new transfer tables; imports done) {m['other_level_ms']:.1f} ms; "
            f"server start {m['startup_s']:.1f} s; RSS idle {m['rss_idle_mb']:.0f} MB")
    stc = doc.get("strace")
    if stc:
        need = stc["needed"]
        f1 = stc["first"]
        lines.append(
            f"first tile's file access (strace): opened {sum(f1['opens'].values())} store files "
            f"{dict(sorted(f1['opens'].items()))}, failed opens {f1['failed_opens'] or 'none'}; "
            f"{f1['read_calls']} reads, {f1['read_bytes'] / 1024:.1f} KiB; needed: "
            f"{len(need['chunks'])} chunks, {need['chunk_bytes'] / 1024:.1f} KiB "
            f"+ {need['index_bytes']} B of shard indexes")
        f2 = stc["second"]
        lines.append(
            f"second tile: opened {sum(f2['opens'].values())} files, {f2['read_calls']} reads, "
            f"{f2['read_bytes'] / 1024:.1f} KiB")
    for variant, sizes in (doc.get("parts") or {}).items():
        for size, p in sizes.items():
            lines.append(f"one {size}^2 tile without HTTP, {variant} (process CPU "
                         f"ms, median): read 4 chunks {p['read_ms']:.2f}, composite "
                         f"{p['render_ms']:.2f}, JPEG {p['encode_ms']:.2f}, total "
                         f"{p['total_ms']:.2f}")
    if doc.get("first_pass"):
        for size, fp in doc["first_pass"].items():
            lines.append(f"pre-warm pass (every {size}^2 tile rendered once, fresh server, "
                         f"8 client threads): {fp['tiles'] / fp['s']:.1f} tiles/s, "
                         f"{fp['cpu_ms']:.2f} CPU ms/tile")
    mem = doc.get("memory")
    if mem:
        lines.append(f"server RSS: idle {mem.get('idle', 0):.0f} MB; peak without tile cache "
                     f"(cold phase) {mem.get('cold_hwm', 0):.0f} MB; peak with the cache full of "
                     f"{mem.get('cached_mb', 0):.0f} MB of tiles {mem.get('warm_hwm', 0):.0f} MB")
    out += [*lines, ""]

    # ratios and goals
    g: list[str] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("MET" if ok else "MISSED")

    c_max = max(doc["conc"])
    li32 = find(res, "large_image", 512, "cold", c_max)
    for label in ("plexhub", f"plexhub x{doc.get('workers', 2)}"):
        cold1 = find(res, label, 512, "cold", 1)
        cold32 = find(res, label, 512, "cold", c_max)
        tag = f" [{label}]"
        if cold1 and cold32:
            cpu = min(cold1["cpu_ms"], cold32["cpu_ms"])
            g.append(f"- CPU per rendered 512^2 tile{tag}: {cold1['cpu_ms']:.2f} ms (c=1), "
                     f"{cold32['cpu_ms']:.2f} ms (c={c_max}); goal <= {GOALS['cpu_ms_512']} ms:"
                     f" {verdict(cpu <= GOALS['cpu_ms_512'])}")
        if cold32:
            g.append(f"- rendered 512^2 tiles/s at c={c_max}{tag}: {cold32['tps']:.1f}; goal >= "
                     f"{GOALS['tps_c32']:.0f}: {verdict(cold32['tps'] >= GOALS['tps_c32'])}")
            p99_ok = cold32["p99_ms"] <= GOALS["p99_c32_ms"]
            g.append(f"- p99 at c={c_max}{tag}: {cold32['p99_ms']:.0f} ms; goal <= "
                     f"{GOALS['p99_c32_ms']:.0f} ms: {verdict(p99_ok)}")
        if cold32 and li32:
            x = cold32["tps"] / li32["tps"]
            cpu_x = li32["cpu_ms"] / cold32["cpu_ms"]
            g.append(f"- vs large_image (rendered 512^2, c={c_max}){tag}: {x:.2f}x the tiles/s, "
                     f"large_image uses {cpu_x:.2f}x its CPU per tile; goal >= "
                     f"{GOALS['x_large_image']:.0f}x: {verdict(x >= GOALS['x_large_image'])}")
    for size in (512, 256):
        warms = [w for w in (find(res, "plexhub", size, "warm", c_max),
                             find(res, f"plexhub x{doc.get('workers', 2)}", size, "warm", c_max))
                 if w]
        warm = max(warms, key=lambda w: w["tps"]) if warms else None
        stat = find(res, "nginx static", size, "file", c_max)
        prox = find(res, "nginx proxy_cache", size, "hit", c_max)
        if warm and stat:
            r = warm["tps"] / stat["tps"]
            g.append(f"- cached {size}^2 tiles from the API ({warm['server']}) / static nginx at "
                     f"c={c_max}: "
                     f"{warm['tps']:.0f} / {stat['tps']:.0f} = {100 * r:.1f} %; goal >= "
                     f"{100 * GOALS['cached_vs_static']:.0f} %: "
                     f"{verdict(r >= GOALS['cached_vs_static'])}")
        if prox and stat:
            r = prox["tps"] / stat["tps"]
            g.append(f"- nginx proxy_cache in front of the API / static nginx, {size}^2, "
                     f"c={c_max}: {prox['tps']:.0f} / {stat['tps']:.0f} = {100 * r:.1f} %; goal >= "
                     f"{100 * GOALS['proxy_vs_static']:.0f} %: "
                     f"{verdict(r >= GOALS['proxy_vs_static'])}")
    if first:
        m = first["median"]["first_ms"]
        g.append(f"- first tile of a never-opened image (fresh server): {m:.0f} ms; goal <= "
                 f"{GOALS['first_tile_ms']:.0f} ms: {verdict(m <= GOALS['first_tile_ms'])}")
    if mem and mem.get("cold_hwm"):
        base = mem["cold_hwm"]
        extra = mem.get("warm_hwm", 0) - mem.get("cached_mb", 0)
        g.append(f"- RSS without caches {base:.0f} MB (peak over the cold phase); with the tile "
                 f"cache, peak minus cached bytes {extra:.0f} MB; goal < {GOALS['rss_mb']:.0f} MB"
                 f" plus caches: {verdict(max(base, extra) < GOALS['rss_mb'])}")
    out += ["Goals (issue 3):", *g, ""]
    for name, p in (doc.get("profiles") or {}).items():
        if not p:
            continue
        per = p["samples"] / p["rate"] / max(1, p["requests"]) * 1e3
        out.append(f"py-spy {name} ({p['samples']} busy samples at {p['rate']} Hz = {per:.1f} "
                   f"busy thread-ms per tile; {p['idle_samples']} idle samples left out): "
                   + ", ".join(f"{b} {v}%" for b, v in p["buckets"]))
        out.append("  top self: " + "; ".join(f"{f} {v}%" for f, v in p["self"][:10]))
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def versions() -> str:
    from importlib.metadata import version

    parts = [f"plexhub {version('plexhub')}", f"zarr {version('zarr')}",
             f"numpy {version('numpy')}", f"Pillow {version('pillow')}",
             f"uvicorn {version('uvicorn')}", f"fastapi {version('fastapi')}"]
    for cmd, rx in ((["nginx", "-v"], r"nginx/(\S+)"), (["wrk", "-v"], r"wrk (\S+)")):
        if shutil.which(cmd[0]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            m = re.search(rx, r.stdout + r.stderr)
            if m:
                parts.append(f"{cmd[0]} {m[1]}")
    return ", ".join(parts)


PHASES = ["first", "parts", "cold", "warm", "static", "proxy", "li"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 x 4,096^2, 6 s per cell")
    ap.add_argument("--size", type=int, help="image edge (default 8192, --quick 4096)")
    ap.add_argument("--seconds", type=float, help="per cell (default 12, --quick 6)")
    ap.add_argument("--conc", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--tiles", type=int, nargs="+", default=[512, 256], choices=[512, 256])
    ap.add_argument("--phases", nargs="+", default=PHASES, choices=PHASES)
    ap.add_argument("--first-repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="py-spy the server (extra cells)")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="API worker processes of the multi-process cells (default: cores)")
    # large_image's server mode (runs in its venv)
    ap.add_argument("--li-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--parts-child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--style", help=argparse.SUPPRESS)
    ap.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.li_server:
        li_server(args)
        return
    if args.parts_child:
        parts_child(args.parts_child)
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: blocks
    size = args.size or (4096 if args.quick else 8192)
    seconds = args.seconds or (6.0 if args.quick else 12.0)
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_tools(args)
    wait = (lambda: None) if args.no_wait else wait_quiet
    wait()
    st = prepare_data(size)
    wait()
    doc: dict[str, Any] = {
        "argv": sys.argv[1:], "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "size": size, "seconds": seconds, "conc": args.conc, "load_start": os.getloadavg()[0],
        "versions": versions(), "results": [], "profiles": {}, "memory": {},
        "tiles": {t: len(tile_paths(st, t)) for t in (512, 256)}, "ingest_s": st["ingest_s"],
    }
    res: list[dict[str, Any]] = doc["results"]
    data = Path(st["tiff"]).parent.parent
    paths = {t: [p for p, _, _ in tile_paths(st, t)] for t in args.tiles}
    multi = f"plexhub x{args.workers}"
    doc["workers"] = args.workers

    if "first" in args.phases:
        log("phase first: fresh servers, first tile")
        doc["first"] = phase_first(st, args.first_repeats)
        log(f"... {doc['first']['median']}")
        if shutil.which("strace"):
            doc["strace"] = phase_strace(st)
            log(f"... strace: {doc['strace']['first']['opens']}")

    if "parts" in args.phases:
        wait()
        log("phase parts: one tile's steps in-process")
        doc["parts"] = phase_parts(st)
        log(f"... {doc['parts']}")

    if "cold" in args.phases:
        # one worker process, then one per core (``plexhub serve --workers N``)
        for label, workers in (("plexhub", 1), (multi, args.workers)):
            if workers == 1 and label != "plexhub":
                continue
            wait()
            log(f"phase cold ({label}): PLEXHUB_TILE_CACHE_BYTES=0")
            srv = Plexhub(data, 0, "cold", workers=workers)
            extra = workers > 1
            try:
                key = "" if not extra else "_workers"
                doc["memory"]["idle" + key] = srv.rss_mb()
                run_matrix(label, srv, srv.port, paths, args.conc, seconds, True, "cold", res)
                doc["memory"]["cold_hwm" + key] = srv.hwm_mb()
                if args.profile:
                    p512 = paths.get(512) or next(iter(paths.values()))
                    for c in ((1,) if not extra else (1, max(args.conc))):
                        name = f"cold{key}-512-c{c}"
                        doc["profiles"][name] = profile(srv, srv.port, p512, c, seconds, name)
            finally:
                srv.stop()

    static_dir = OUT / f"static-{size}"
    need_warm = {"warm", "static", "proxy"} & set(args.phases)
    if need_warm:
        wait()
        log("phase warm: default tile cache, pre-warm pass dumps the JPEGs")
        srv = Plexhub(data, None, "warm")
        nginx = None
        try:
            doc["first_pass"] = {}
            cached = 0
            for t, plist in paths.items():
                dump = {p: static_dir / str(t) / str(r) / f"{c}.jpg"
                        for p, r, c in tile_paths(st, t)}
                c0 = srv.cpu()
                s, nbytes = fetch_all(srv.port, plist, 8, dump)
                cached += nbytes
                doc["first_pass"][t] = {"s": s, "tiles": len(plist), "bytes": nbytes,
                                        "cpu_ms": (srv.cpu() - c0) * 1e3 / len(plist)}
            doc["memory"]["cached_mb"] = cached / 2**20
            if "warm" in args.phases:
                run_matrix("plexhub", srv, srv.port, paths, args.conc, seconds, True, "warm", res)
                doc["memory"]["warm_hwm"] = srv.hwm_mb()
                if args.profile:
                    doc["profiles"]["warm-512-c8"] = profile(
                        srv, srv.port, paths.get(512) or next(iter(paths.values())), 8, seconds,
                        "warm-512-c8")
            if {"static", "proxy"} & set(args.phases):
                nginx = Nginx(static_dir, srv.port if "proxy" in args.phases else None)
                if "static" in args.phases:
                    spaths = {t: [f"/static/{t}/{r}/{c}.jpg" for _, r, c in tile_paths(st, t)]
                              for t in paths}
                    run_matrix("nginx static", nginx, nginx.static_port, spaths, args.conc,
                               seconds, False, "file", res)
                if "proxy" in args.phases:
                    for plist in paths.values():
                        fetch_all(nginx.proxy_port, plist, 8)
                    run_matrix("nginx proxy_cache", nginx, nginx.proxy_port, paths, args.conc,
                               seconds, True, "hit", res)
                    hits = [f for f in (OUT / "nginx" / "cache").rglob("*") if f.is_file()]
                    doc["proxy_cache_files"] = len(hits)
        finally:
            if nginx:
                nginx.stop()
            srv.stop()

    if "warm" in args.phases and args.workers > 1:
        wait()
        log(f"phase warm ({multi}): each worker's own cache, pre-warmed by repeated passes")
        srv = Plexhub(data, None, "warm-workers", workers=args.workers)
        try:
            for plist in paths.values():
                for _ in range(3 * args.workers):  # connections land on any worker
                    fetch_all(srv.port, plist, 8)
            run_matrix(multi, srv, srv.port, paths, args.conc, seconds, True, "warm", res)
        finally:
            srv.stop()

    if "li" in args.phases and 512 in paths:
        style = li_style(st["preset"])
        for cache in (False, True):
            wait()
            log(f"phase li: large_image, cache {'on' if cache else 'off'}")
            li = LargeImage(Path(st["tiff"]), style, cache)
            try:
                meta = li.meta()
                doc["large_image"] = {k: meta.get(k) for k in ("source", "version", "levels",
                                                                "tileWidth", "sizeX")}
                z = meta["levels"] - 1
                lpaths = [f"/tile/{z}/{c}/{r}.jpg" for _, r, c in tile_paths(st, 512)]
                if cache:
                    fetch_all(li.port, lpaths, 8)
                run_matrix("large_image", li, li.port, {512: lpaths}, args.conc, seconds, False,
                           "warm" if cache else "cold", res)
            finally:
                li.stop()

    text = report(doc)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (OUT / f"tiles-{size}-{stamp}.json").write_text(json.dumps(doc, indent=1, default=str))
    (OUT / f"tiles-{size}-{stamp}.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
