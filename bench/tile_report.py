"""The report of the tile bench: the table of cells, the single-request figures, and the goals
of issue 3 checked on ratios of cells of the same run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from tile_servers import QUALITY

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


