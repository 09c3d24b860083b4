"""Shared measuring code of the bench scripts: run one command, report what it cost.

Each command runs as ``/usr/bin/time -v sh -c '<command> && sync'`` in its own process group:

* wall s   -- ``perf_counter`` around the whole thing, including the final ``sync`` (so data
              still in the page cache is flushed and paid for);
* CPU s    -- user + sys of the whole process tree, from ``time -v`` (the kernel adds the
              rusage of every reaped descendant, so multi-process tools are fully counted);
* peak RSS -- two figures: ``rss_tree``, the highest *sum* of RSS over the process tree,
              sampled every 50 ms with psutil (what a multi-process tool really occupies;
              shared pages are counted in each process), and ``rss_max1``, the kernel's
              high-water mark of the single largest process (``time -v``, exact, no sampling);
* out MB   -- the output's allocated size on disk (``st_blocks``), all files.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

TIME = "/usr/bin/time"


@dataclass
class Measurement:
    ok: bool
    rc: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    rss_tree_mb: float
    rss_max1_mb: float
    out_mb: float = 0.0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def disk_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    if path.is_file():
        return path.stat().st_blocks * 512 / 1e6
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total / 1e6


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _parse_time(text: str) -> dict[str, float]:
    def grab(label: str) -> float:
        m = re.search(rf"^\s*{re.escape(label)}:\s*([0-9.]+)\s*$", text, re.M)
        return float(m.group(1)) if m else float("nan")

    return {"user": grab("User time (seconds)"), "sys": grab("System time (seconds)"),
            "maxrss_kb": grab("Maximum resident set size (kbytes)")}


def run_measured(cmd: list[str] | str, *, env: dict[str, str] | None = None,
                 cwd: str | None = None, timeout: float = 3600.0, log: Path | None = None,
                 out: Path | None = None, sync: bool = True) -> Measurement:
    """Run ``cmd`` under ``time -v`` (+ ``sync``), sampling the tree's RSS meanwhile."""
    shell_cmd = cmd if isinstance(cmd, str) else shlex.join(cmd)
    if sync:
        shell_cmd = f"{shell_cmd} && sync"
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = tf.name
    full = [TIME, "-v", "-o", time_file, "sh", "-c", shell_cmd]
    log_fh = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    peak = 0
    t0 = time.perf_counter()
    proc = psutil.Popen(full, env=env, cwd=cwd, stdout=log_fh, stderr=subprocess.STDOUT,
                        start_new_session=True)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rc = proc.wait(timeout=timeout)
        error = ""
    except psutil.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
        rc = proc.wait()
        error = f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if log:
        log_fh.close()  # type: ignore[union-attr]
    text = Path(time_file).read_text(errors="replace")
    os.unlink(time_file)
    t = _parse_time(text)
    if rc != 0 and not error:
        tail = Path(log).read_text(errors="replace")[-800:] if log and Path(log).exists() else ""
        error = f"exit status {rc}: {tail.strip()}"
    return Measurement(ok=rc == 0, rc=rc, wall_s=wall, cpu_s=t["user"] + t["sys"],
                       user_s=t["user"], sys_s=t["sys"], rss_tree_mb=peak / 1e6,
                       rss_max1_mb=t["maxrss_kb"] * 1024 / 1e6,
                       out_mb=disk_mb(out) if out else 0.0, error=error)


def code_version(repo: Path) -> str:
    """plexhub's commit, and whether the library folders differ from it (read-only git)."""
    try:
        head = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                       text=True, stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.check_output(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "ome_pipeline", "core"],
            text=True, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    files = [line[3:] for line in dirty.splitlines() if line.strip()]
    more = f" (+{len(files) - 4})" if len(files) > 4 else ""
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(files[:4])}{more}"
                               if files else "")


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")


# ------------------------------------------------------------------ servers and the machine
# (the tile bench measures long-running servers rather than one command)

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``); 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


OTHER_BENCH = r"bench/(convert|memory)\.py"


def others_running(pattern: str = OTHER_BENCH) -> list[str]:
    """Command lines of other bench scripts running now (they would disturb each other)."""
    r = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if ln.strip() and str(os.getpid()) != ln.split()[0]]


def wait_quiet(poll: float = 30.0) -> None:
    """Wait until no other bench script runs."""
    waited = 0.0
    while others := others_running():
        if waited == 0:
            log(f"waiting for another benchmark to finish: {others[0][:100]}")
        time.sleep(poll)
        waited += poll
    if waited:
        log(f"... waited {waited:.0f} s")
