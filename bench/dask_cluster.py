"""Conversion on a Dask cluster vs local threads, side by side in one run (issue 15), and a
paper estimate of throughput on more workers from the measured per-task costs.

    python bench/dask_cluster.py                       # 4 x 4,096^2 uint16, 3 rounds
    python bench/dask_cluster.py --size 2048 --rounds 2

Started here as separate processes on loopback: ``dask scheduler`` and 2 ``dask worker``
processes of 1 thread each (no nanny, no dashboard), the same CPU as local threads
(``PLEXHUB_WORKERS=2``). Measured, alternating in every round: wall seconds of
``plexhub.ome_pipeline.convert`` from a synthetic OME-TIFF to a local folder. The scheduler's
task stream gives each task's compute time; the estimate is ``T(N) = serial + work / N`` with
``work`` the summed task time and ``serial`` what the 2-worker run spent beyond ``work / 2``
(the driver's metadata, scheduling, the commit), for one image; for many images converted at
once (several job workers) the serial parts overlap and throughput is ``N * pixels / work``.
Both ignore what more workers add: storage
bandwidth (each task reads its source block and writes its shards), the scheduler's per-task
cost growing with the cluster, and stragglers. Goal (issue 15): cluster within 1.2x of local.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "dask"
GOAL = 1.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster() -> tuple[str, list[subprocess.Popen[bytes]]]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                               "--no-show"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                                "--no-dashboard"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for _ in range(2)]
    from distributed import Client

    with Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(2, timeout=60)
    return address, procs


def run(size: int, channels: int, rounds: int) -> dict[str, Any]:
    from distributed import Client

    from plexhub.ome_pipeline import convert
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
    from plexhub.settings import Settings

    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"src-{channels}x{size}.ome.tif"
    if not src.exists():
        write_ome_tiff(src, SyntheticSpec(size_y=size, size_x=size, channels=channels,
                                          tile=512, seed=1))
    address, procs = _cluster()
    wall: dict[str, list[float]] = {"threads": [], "cluster": []}
    work: list[float] = []
    tasks = 0
    try:
        with Client(address) as watcher:  # type: ignore[no-untyped-call]
            for k in range(rounds):
                for where in ("threads", "cluster") if k % 2 == 0 else ("cluster", "threads"):
                    dst = OUT / f"{where}.ome.zarr"
                    shutil.rmtree(dst, ignore_errors=True)
                    settings = Settings(workers=2, dask_scheduler=address
                                        if where == "cluster" else None)
                    start = time.time()
                    t0 = time.perf_counter()
                    result = convert(src, dst, settings=settings, show_progress=False)
                    wall[where].append(time.perf_counter() - t0)
                    if where == "cluster":
                        stream = watcher.get_task_stream(start=start)
                        work.append(sum(sum(s["stop"] - s["start"] for s in t["startstops"]
                                            if s["action"] == "compute") for t in stream))
                        tasks = len(stream)
                    print(f"round {k + 1} {where:8}: {wall[where][-1]:.2f} s "
                          f"({result.tasks_total} tasks)", file=sys.stderr, flush=True)
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(30)
        shutil.rmtree(OUT / "threads.ome.zarr", ignore_errors=True)
        shutil.rmtree(OUT / "cluster.ome.zarr", ignore_errors=True)
    return {"wall": wall, "work": statistics.median(work), "tasks": tasks,
            "pixels": size * size * channels}


def report(got: dict[str, Any]) -> None:
    threads = statistics.median(got["wall"]["threads"])
    cluster = statistics.median(got["wall"]["cluster"])
    ratio = cluster / threads
    print("| measure | local threads (2) | Dask, 2 workers | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| convert | {threads:.2f} s | {cluster:.2f} s | {ratio:.2f}x | <= {GOAL}x "
          f"{'met' if ratio <= GOAL else 'MISSED'} |")
    work, tasks = got["work"], got["tasks"]
    serial = max(cluster - work / 2, 0.0)
    print(f"\nper task: {tasks} tasks, {work / max(tasks, 1) * 1e3:.0f} ms compute each "
          f"({work:.2f} s in all); serial part {serial:.2f} s")
    print("| workers | one image: estimated wall | one image: Mpx/s | "
          "many images at once: Mpx/s |")
    print("| --- | --- | --- | --- |")
    for n in (2, 8, 32):
        t = serial + work / n
        # several job workers converting at once overlap their serial parts: the cluster's
        # throughput is then its workers over the per-image task work
        print(f"| {n} | {t:.2f} s | {got['pixels'] / t / 1e6:.0f} | "
              f"{n * got['pixels'] / work / 1e6:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="image edge in pixels")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for name in [k for k in os.environ if k.startswith("PLEXHUB_")]:
        del os.environ[name]  # plexhub at its defaults
    report(run(args.size, args.channels, args.rounds))


if __name__ == "__main__":
    main()
