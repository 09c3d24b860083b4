"""Rendered tiles from plexhub's API vs large_image and a static file server (nginx).

    python bench/tiles.py --quick         # 8 x 4,096^2 uint16, 6 s per cell, ~8 min
    python bench/tiles.py                 # 8 x 8,192^2 uint16, 12 s per cell, ~15 min
    python bench/tiles.py --phases first cold --conc 1 32 --profile
    python bench/tiles.py --smoke         # 8 x 1,024^2, every phase for 1 s: does it run?

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

``--smoke`` runs every phase and program above on 8 x 1,024^2 for 1 s per cell at concurrency 2
and exits non-zero when any phase fails or has no result (``make bench-smoke``; run by
``make test``): a check that the bench still works, not a measurement.

The code: this file (the command and the order of the phases), ``tile_servers.py`` (the servers),
``tile_load.py`` (wrk cells, py-spy), ``tile_phases.py`` (tools, data, first tile, strace,
parts), ``tile_parts.py`` (one tile's steps through the API's TileEngine, a child process),
``tile_li_server.py`` (large_image's server, in its venv), ``tile_report.py`` (table and goals);
``harness.py`` holds what the bench scripts share.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import log, wait_quiet
from tile_load import profile, run_matrix
from tile_phases import (
    ensure_tools,
    li_style,
    phase_first,
    phase_parts,
    phase_strace,
    prepare_data,
    tile_paths,
)
from tile_report import report, versions
from tile_servers import OUT, LargeImage, Nginx, Plexhub, fetch_all

PHASES = ["first", "parts", "cold", "warm", "static", "proxy", "li"]
SMOKE_SIZE = 1024  # --smoke: 8 x 1,024^2 (4 tiles of 512^2, 16 of 256^2)


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
    ap.add_argument("--smoke", action="store_true",
                    help="every phase and program on 8 x 1,024^2 for 1 s per cell, concurrency 2 "
                         "(a check that the bench runs, not a measurement); non-zero on any error")
    args = ap.parse_args()
    if args.smoke:
        args.size = args.size or SMOKE_SIZE
        args.seconds = args.seconds or 1.0
        if args.conc == [1, 8, 32]:
            args.conc = [2]
        args.first_repeats = 1
        args.workers = 2
        args.no_wait = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: blocks
    sys.exit(run(args))


def smoke_problems(args: argparse.Namespace, doc: dict[str, Any]) -> list[str]:
    """What a ``--smoke`` run missed: cells with errors or no request, phases with no cell."""
    res = doc["results"]
    out = [f"{r['server']} {r['size']} {r['cache']} c={r['c']}: {r['errors']} errors, "
           f"{r['requests']} requests" for r in res if r["errors"] or not r["requests"]]
    expect: dict[str, Callable[[dict[str, Any]], bool]] = {
        "cold": lambda r: r["server"].startswith("plexhub") and r["cache"] == "cold",
        "warm": lambda r: r["server"].startswith("plexhub") and r["cache"] == "warm",
        "static": lambda r: r["server"] == "nginx static",
        "proxy": lambda r: r["server"] == "nginx proxy_cache",
        "li": lambda r: r["server"] == "large_image"}
    out += [f"phase {p}: no cell" for p, ok in expect.items()
            if p in args.phases and not any(ok(r) for r in res)]
    out += [f"phase {p}: no result" for p in ("first", "parts")
            if p in args.phases and not doc.get(p)]
    return out


def run(args: argparse.Namespace) -> int:
    """The bench; 1 when a cell had errors in a ``--smoke`` run."""
    size = args.size or (4096 if args.quick else 8192)
    seconds = args.seconds or (6.0 if args.quick else 12.0)
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_tools(args)
    def wait() -> None:
        if not args.no_wait:
            wait_quiet()

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
    if args.smoke:
        problems = smoke_problems(args, doc)
        for problem in problems:
            log(f"smoke: {problem}")
        if problems:
            return 1
        log("smoke: every phase ran")
    return 0


if __name__ == "__main__":
    main()
