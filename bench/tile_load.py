"""The load of the tile bench: ``wrk`` over a path list (one cell = one server, tile size and
concurrency), the server's CPU and RSS around it, and py-spy profiles of extra cells."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import log, others_running
from tile_servers import AUTH, OUT, PYSPY_VENV, VENVS, Proc

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



def pyspy_bin() -> str | None:
    for cand in (shutil.which("py-spy"), VENVS / "tools" / "bin" / "py-spy",
                 PYSPY_VENV / "bin" / "py-spy"):
        if cand and Path(cand).exists():
            return str(cand)
    log(f"installing py-spy into {PYSPY_VENV}")
    r = subprocess.run(f"python3 -m venv {PYSPY_VENV} && {PYSPY_VENV}/bin/pip install -q py-spy",
                       shell=True, capture_output=True, text=True)
    return str(PYSPY_VENV / "bin" / "py-spy") if r.returncode == 0 else None




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

    def top(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * v / total, 1)) for f, v in c.most_common(25)]

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


