"""The phases of the tile bench that are not load cells: the tools it needs, the data (a
synthetic OME-TIFF ingested through the API with :mod:`plexhub.client`), the first tile of a
fresh server (and what it reads, under strace), and one tile's steps without HTTP
(``tile_parts.py``, the real :class:`plexhub.api.tiles.TileEngine`)."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from harness import log
from tile_servers import HERE, LI_PINS, LI_VENV, OUT, STUDY, TOKEN, VENVS, Plexhub, http_get

# ----------------------------------------------------------------------------- data

def ensure_tools(args: argparse.Namespace) -> None:
    """wrk, nginx, strace (apt-get when root) and large_image's venv. A missing optional one
    skips its phase, except with ``--smoke`` (``args.smoke``), where it is an error."""
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
        if args.smoke:
            sys.exit("bench/tiles.py --smoke needs nginx (Debian package nginx-light)")
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
            elif args.smoke:
                sys.exit(f"large_image venv failed (see {logf})")
            else:
                log(f"large_image venv failed (see {logf}): phase li skipped")
                args.phases.remove("li")


def prepare_data(size: int) -> dict[str, Any]:
    """The synthetic OME-TIFF, its ingest through the API (:class:`plexhub.client.ApiClient`)
    and the bench preset; kept in ``data-<size>/state.json`` for later runs."""
    from plexhub.client import ApiClient

    data = OUT / f"data-{size}"
    state_file = data / "state.json"
    if state_file.exists():
        st = json.loads(state_file.read_text())
        if Path(st["store"]).exists() and Path(st["tiff"]).exists() and "image" in st:
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
        with ApiClient(f"http://127.0.0.1:{srv.port}", TOKEN, timeout=120) as api:
            api.create_study(STUDY, "tile benchmark", "bench", "non-glp")
            t0 = time.perf_counter()
            accepted = api.ingest(STUDY, tiff.name)
            image_id = accepted["image_id"]
            job = api.wait_for_job(accepted["job_id"], timeout=3600, interval=0.5)
            if job["state"] != "done":
                raise RuntimeError(f"ingest job ended {job['state']}: {job}")
            ingest_s = time.perf_counter() - t0
            image = api.image(image_id)
            auto = dict(api.get_json(f"/images/{image_id}/autocontrast",
                                     params={"active": 4}, what="autocontrast"))
            auto["name"] = "bench-4-of-8"
            saved = api.save_preset(image_id, auto)
    finally:
        srv.stop()
    store = next(p for p in (data / "stores").rglob("*.ome.zarr") if p.is_dir())
    st = {"size": size, "tiff": str(tiff), "store": str(store), "image_id": image_id,
          "preset_ref": f"{saved['id']}@{saved['version']}", "preset": auto,
          "levels": image["levels"], "axes": image["axes"], "ingest_s": ingest_s,
          "image": {k: image.get(k) for k in ("id", "axes", "levels", "channels", "dtype",
                                               "checksum")}}
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


def phase_parts(st: dict[str, Any], n: int = 16) -> dict[str, Any]:
    """One tile's steps in a child process (``tile_parts.py``: the API's TileEngine and
    malloc settings, no HTTP); its stderr is kept in ``parts.log``."""
    r = subprocess.run([sys.executable, str(HERE / "tile_parts.py"),
                        str(Path(st["tiff"]).parent.parent / "state.json"), "-n", str(n)],
                       capture_output=True, text=True)
    (OUT / "parts.log").write_text(r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"tile_parts.py exited {r.returncode}: {r.stderr[-2000:]}")
    return {"server path": json.loads(r.stdout.strip().splitlines()[-1])}


