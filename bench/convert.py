"""plexhub vs its peers (and the floor) on one OME-TIFF -> OME-Zarr conversion.

    python bench/convert.py --quick              # 8 x 6,144^2 uint16, 3 rounds
    python bench/convert.py                      # 8 x 10,000^2 uint16, 3 rounds
    python bench/convert.py --rounds 1 --tools plexhub floor

The source is a synthetic 8-channel mIF OME-TIFF (512^2 deflate tiles, names/colours/pixel
size; ``plexhub.ome_pipeline.synthetic.write_ome_tiff``), generated once into
``bench/out/data/``. Every round runs every tool in turn, first at each tool's DEFAULT settings,
then at one SHARED codec (Blosc zstd level 1 + byte shuffle, which every tool can write); each
run is a subprocess under ``/usr/bin/time -v`` followed by ``sync`` (see ``bench/harness.py``
for what each figure means). Tools:

* plexhub      ``python -m plexhub.cli convert SRC DST -q`` (defaults: NGFF 0.5, Blosc lz4 5,
               2 workers; shared codec via PLEXHUB_COMPRESSION=zstd, _LEVEL=1)
* eubi         EuBI-Bridge-lite ``eubi to_zarr SRC --output_path DST`` (its defaults: NGFF 0.4 /
               Zarr v2, Blosc lz4 5, decimation pyramid; shared codec via --compressor_params)
* ome-zarr-py  ``bench/peer_omezarr.py``: ``write_image`` over tifffile's aszarr view through
               dask, chunks 512^2, NGFF 0.5 (default codec: zarr's zstd-0)
* ngff-zarr    ``ngff-zarr -i SRC -o DST -m dask_bin_shrink -q`` (default codec: zarr's zstd-0;
               shared via --codec blosc:zstd --compression-level 1)
* floor        ``bench/floor.py``: decode each tile once, Blosc-encode, write level 0 only

The peers run from their own venvs under ``bench/out/venvs/`` (created on first use with
``python3 -m venv`` + pip), so their pins never touch plexhub's environment. Each output is then
opened with zarr-python (plexhub's venv) and a 256^2 window of level 0 is compared with the
TIFF; a tool that fails or writes something unreadable is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
VENVS = OUT / "venvs"

# The peers' pins (the versions measured in shared/recipes/conversion-anchors.md).
PEER_VENVS: dict[str, list[str]] = {
    "eubi": ["eubi-bridge-lite==0.3.2"],
    "ngff": ["ome-zarr==0.18.0", "ngff-zarr[cli]==0.50.0", "tifffile", "imagecodecs",
             "zarr>=3.1,<4", "dask[array]"],
}
TOOLS = ["plexhub", "eubi", "ome-zarr-py", "ngff-zarr", "floor"]
TOOL_VENV = {"eubi": "eubi", "ome-zarr-py": "ngff", "ngff-zarr": "ngff"}
SHARED = ("zstd", 1)  # Blosc cname, clevel, byte shuffle: the codec every tool can write
MODES = ["default", "shared"]

GOAL_EUBI_SPEEDUP = 2.0
GOAL_EUBI_RSS_FRACTION = 0.25
GOAL_FLOOR_RATIO = 1.3


# --------------------------------------------------------------------------- setup

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_source(size: int, channels: int) -> Path:
    data = OUT / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"mif-{size}-c{channels}.ome.tif"
    if path.exists():
        return path
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff

    cpu = size * size * channels / 2.5e6
    log(f"generating {path} ({channels} x {size} x {size} uint16; ~{cpu:.0f} s of CPU, held "
        "in memory by tifffile while it compresses)")
    tmp = data / f"mif-{size}-c{channels}.tmp.ome.tif"
    write_ome_tiff(tmp, SyntheticSpec(size_y=size, size_x=size, channels=channels))
    os.replace(tmp, path)
    return path


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str) -> str | None:
    """Create ``bench/out/venvs/NAME`` with the peer's pins; an error text on failure."""
    reqs = PEER_VENVS[name]
    root = VENVS / name
    marker = root / ".bench-requirements"
    if marker.exists() and marker.read_text() == "\n".join(reqs):
        return None
    log(f"creating venv {root} ({' '.join(reqs)}) ...")
    shutil.rmtree(root, ignore_errors=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    logfile = VENVS / f"{name}-install.log"
    with open(logfile, "w") as fh:
        for cmd in (["python3", "-m", "venv", str(root)],
                    [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *reqs]):
            rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
            if rc:
                return f"`{' '.join(cmd)}` failed (exit {rc}), see {logfile}"
    marker.write_text("\n".join(reqs))
    return None


def peer_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    probes = {"eubi": ["eubi-bridge-lite", "tensorstore", "zarr", "tifffile"],
              "ngff": ["ome-zarr", "ngff-zarr", "zarr", "dask", "tifffile"]}
    for venv, names in probes.items():
        py = venv_python(venv)
        if not py.exists():
            continue
        code = ("import importlib.metadata as m, json, sys; "
                "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
        try:
            got = json.loads(subprocess.check_output([str(py), "-c", code, *names], text=True))
            out.update({f"{k} ({venv} venv)" if k in ("zarr", "tifffile", "dask") else k: v
                        for k, v in got.items()})
        except (subprocess.CalledProcessError, ValueError):
            pass
    import importlib.metadata as m

    for n in ("plexhub", "zarr", "tifffile", "numcodecs", "imagecodecs"):
        out[f"{n} (plexhub venv)" if n != "plexhub" else n] = m.version(n)
    return out


# --------------------------------------------------------------------------- tools

def command(tool: str, mode: str, src: Path, dst: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXHUB_")}
    cname, clevel = SHARED
    if tool == "plexhub":
        if mode == "shared":
            env |= {"PLEXHUB_COMPRESSION": cname, "PLEXHUB_COMPRESSION_LEVEL": str(clevel)}
        return [sys.executable, "-m", "plexhub.cli", "convert", str(src), str(dst), "-q"], env
    if tool == "floor":
        c = ["--cname", cname, "--clevel", str(clevel)] if mode == "shared" else []
        return [sys.executable, str(HERE / "floor.py"), str(src), str(dst), *c], env
    if tool == "eubi":
        c = ["--compressor_params",
             json.dumps({"cname": cname, "clevel": clevel, "shuffle": 1})] if mode == "shared" \
            else []
        return [str(VENVS / "eubi" / "bin" / "eubi"), "to_zarr", str(src),
                "--output_path", str(dst), *c], env
    if tool == "ome-zarr-py":
        c = ["--cname", cname, "--clevel", str(clevel)] if mode == "shared" else []
        return [str(venv_python("ngff")), str(HERE / "peer_omezarr.py"), str(src), str(dst),
                *c], env
    if tool == "ngff-zarr":
        c = ["--codec", f"blosc:{cname}", "--compression-level", str(clevel)] \
            if mode == "shared" else []
        return [str(VENVS / "ngff" / "bin" / "ngff-zarr"), "-i", str(src), "-o", str(dst),
                "-m", "dask_bin_shrink", "-q", *c], env
    raise ValueError(tool)


# --------------------------------------------------------------------------- checking

def _codec_text(arr: Any) -> str:
    parts = []
    for c in arr.compressors or ():
        d = c.to_dict() if hasattr(c, "to_dict") else c.get_config()
        cfg = d.get("configuration", d)
        name = d.get("name", d.get("id", type(c).__name__))
        if "cname" in cfg:
            shuf = cfg.get("shuffle")
            shuf = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}.get(shuf, shuf)
            parts.append(f"{name}-{cfg['cname']}-{cfg.get('clevel')}"
                         f"{'' if shuf in (None, 'shuffle') else '/' + str(shuf)}")
        else:
            parts.append(f"{name}-{cfg.get('level', '')}".rstrip("-"))
    return "+".join(parts) or "none"


def _find_image(root: Path) -> tuple[Any, dict[str, Any] | None, str]:
    """(zarr group or array, multiscales dict or None, ngff version) of the output."""
    import zarr

    candidates = [root, *sorted(p for p in root.glob("*") if p.is_dir()),
                  *sorted(p for p in root.glob("*/*") if p.is_dir())]
    for p in candidates:
        if not ((p / "zarr.json").exists() or (p / ".zattrs").exists()
                or (p / ".zarray").exists() or (p / ".zgroup").exists()):
            continue
        node = zarr.open(str(p), mode="r")
        if isinstance(node, zarr.Array):
            return node, None, "-"
        attrs: dict[str, Any] = dict(node.attrs)
        ome: dict[str, Any] = attrs.get("ome", attrs)
        if "multiscales" in ome:
            ms = ome["multiscales"][0]
            return node, ms, str(ome.get("version", ms.get("version", "?")))
    raise RuntimeError(f"no Zarr array or multiscales group under {root}")


def verify(dst: Path, src: Path) -> dict[str, Any]:
    import numpy as np
    import tifffile
    import zarr

    node, ms, version = _find_image(dst)
    if ms is None:
        level0, nlevels, path0 = node, 1, "(array)"
    else:
        path0 = ms["datasets"][0]["path"]
        level0, nlevels = node[path0], len(ms["datasets"])
    with tifffile.imread(src, aszarr=True) as store:
        tif = zarr.open_array(store, mode="r")
        c, h, w = tif.shape
        if level0.shape[-2:] != (h, w) or c not in level0.shape:
            raise RuntimeError(f"level 0 is {level0.shape}, the source is {tif.shape}")
        y0, x0 = h // 2 - 128, w // 3 - 128
        ch = min(3, c - 1)
        want = tif[ch, y0:y0 + 256, x0:x0 + 256]
    sel = (0,) * (level0.ndim - 3) + (ch, slice(y0, y0 + 256), slice(x0, x0 + 256))
    got = level0[sel]
    if not np.array_equal(np.asarray(got), want):
        raise RuntimeError("level 0 differs from the TIFF in the checked window")
    fmt = level0.metadata.zarr_format
    shards = getattr(level0, "shards", None)
    return {"ngff": version, "levels": nlevels, "zarr": f"v{fmt}",
            "chunks": "x".join(map(str, level0.chunks[-2:])),
            "shards": "x".join(map(str, shards[-2:])) if shards else "-",
            "codec": _codec_text(level0)}


# --------------------------------------------------------------------------- running

@dataclass
class Run:
    tool: str
    mode: str
    round: int
    data: dict[str, Any]


def warm(src: Path) -> None:
    with open(src, "rb") as fh:
        while fh.read(1 << 24):
            pass


def run_one(tool: str, mode: str, rnd: int, src: Path, broken: dict[str, str],
            check: bool) -> Run:
    from harness import run_measured

    if tool in TOOL_VENV and TOOL_VENV[tool] in broken:
        return Run(tool, mode, rnd, {"ok": False, "error": broken[TOOL_VENV[tool]]})
    runs = OUT / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    dst = runs / f"{tool}-{mode}.ome.zarr"
    shutil.rmtree(dst, ignore_errors=True)
    if tool == "eubi":
        dst.mkdir()
    cmd, env = command(tool, mode, src, dst)
    logfile = runs / f"{tool}-{mode}-r{rnd}.log"
    m = run_measured(cmd, env=env, cwd=str(REPO), log=logfile, out=dst, timeout=3600)
    data = m.as_dict()
    if m.ok and check:
        try:
            data["check"] = verify(dst, src)
        except Exception as exc:  # a peer writing junk is a result, not a crash
            data["ok"] = False
            data["error"] = f"output check failed: {type(exc).__name__}: {exc}"
    state = "ok" if data["ok"] else f"FAILED ({data['error'][:300]})"
    log(f"round {rnd} {mode:7} {tool:11} wall {m.wall_s:6.1f} s  CPU {m.cpu_s:6.1f} s  "
        f"RSS {m.rss_tree_mb:6.0f} MB  out {m.out_mb:6.0f} MB  {state}")
    return Run(tool, mode, rnd, data)


# --------------------------------------------------------------------------- reporting

def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def report(runs: list[Run], tools: list[str], modes: list[str], raw_gb: float) -> str:
    out: list[str] = []
    cname, clevel = SHARED
    for mode in modes:
        title = ("each tool's DEFAULT settings" if mode == "default"
                 else f"SHARED codec: Blosc {cname} level {clevel}, byte shuffle")
        out.append(f"#### {title}\n")
        by_tool = {t: [r for r in runs if r.tool == t and r.mode == mode] for t in tools}
        ref = {r.round: r.data for r in by_tool.get("plexhub", []) if r.data["ok"]}
        rows = []
        for t in tools:
            good = [r for r in by_tool[t] if r.data["ok"]]
            if not good:
                errs = {r.data.get("error", "?")[:120] for r in by_tool[t]}
                rows.append([t, "FAILED: " + "; ".join(sorted(errs)), *[""] * 9])
                continue
            wall = [r.data["wall_s"] for r in good]
            cpu = [r.data["cpu_s"] for r in good]
            rss = [r.data["rss_tree_mb"] for r in good]
            rss1 = [r.data["rss_max1_mb"] for r in good]
            chk: dict[str, Any] = next((r.data["check"] for r in good if "check" in r.data), {})
            what = (f"{chk.get('ngff', '?')} / {chk.get('zarr', '?')} / {chk.get('levels', '?')} / "
                    f"{chk.get('chunks', '?')}:{chk.get('shards', '-')} / {chk.get('codec', '?')}"
                    if chk else "?")

            def ratio(key: str, t: str = t, good: list[Run] = good,
                      ref: dict[int, dict[str, Any]] = ref) -> str:
                if t == "plexhub" or not ref:
                    return "1" if t == "plexhub" else "-"
                rs = [r.data[key] / ref[r.round][key] for r in good if r.round in ref
                      and ref[r.round][key] > 0]
                if not rs:
                    return "-"
                return (f"{_med(rs):.2f}" if len(rs) == 1
                        else f"{_med(rs):.2f} [{min(rs):.2f}–{max(rs):.2f}]")

            fails = len(by_tool[t]) - len(good)
            rows.append([t + (f" ({fails} failed)" if fails else ""), what,
                         f"{_med(wall):.1f} [{min(wall):.1f}–{max(wall):.1f}]",
                         f"{_med(cpu):.1f}", f"{raw_gb * 1e3 / _med(wall):.0f}",
                         f"{_med(rss):.0f}", f"{_med(rss1):.0f}",
                         f"{_med([r.data['out_mb'] for r in good]):.0f}",
                         ratio("wall_s"), ratio("cpu_s"), ratio("rss_tree_mb")])
        out.append(_table(["tool", "NGFF / zarr / levels / chunk:shard / codec", "wall s [range]",
                           "CPU s", "raw MB/s", "RSS tree MB", "RSS 1-proc MB", "out MB",
                           "wall ×plexhub", "CPU ×plexhub", "RSS ×plexhub"], rows))
        out.append("")
        out.extend(goal_lines(by_tool, mode))
        out.append("")
    return "\n".join(out)


def goal_lines(by_tool: dict[str, list[Run]], mode: str) -> list[str]:
    def med(tool: str, key: str) -> float | None:
        xs = [r.data[key] for r in by_tool.get(tool, []) if r.data["ok"]]
        return _med(xs) if xs else None

    lines = []
    p_wall, p_cpu, p_rss = med("plexhub", "wall_s"), med("plexhub", "cpu_s"), \
        med("plexhub", "rss_tree_mb")
    f_wall, f_cpu = med("floor", "wall_s"), med("floor", "cpu_s")
    if p_wall and f_wall and p_cpu and f_cpu:
        def verdict(r: float) -> str:
            return "met" if r <= GOAL_FLOOR_RATIO else "MISSED"

        lines.append(f"- plexhub vs floor (ratios of medians): wall {p_wall / f_wall:.2f}× "
                     f"({verdict(p_wall / f_wall)}), CPU {p_cpu / f_cpu:.2f}× "
                     f"({verdict(p_cpu / f_cpu)}); goal ≤ {GOAL_FLOOR_RATIO}× (the floor "
                     "writes level 0 only, no pyramid)")
    e_wall, e_rss, e_cpu = med("eubi", "wall_s"), med("eubi", "rss_tree_mb"), med("eubi", "cpu_s")
    if p_wall and e_wall and p_rss and e_rss and p_cpu and e_cpu:
        fast = e_wall / p_wall >= GOAL_EUBI_SPEEDUP
        lean = p_rss <= e_rss * GOAL_EUBI_RSS_FRACTION
        lines.append(f"- plexhub vs EuBI-Bridge ({mode}, ratios of medians): EuBI wall / plexhub "
                     f"wall = {e_wall / p_wall:.2f}, EuBI CPU / plexhub CPU = {e_cpu / p_cpu:.2f}, "
                     f"RSS {p_rss:.0f} vs {e_rss:.0f} MB (1/{e_rss / p_rss:.1f}); goal ≥ "
                     f"{GOAL_EUBI_SPEEDUP:.0f}× faster wall: {'met' if fast else 'MISSED'}, "
                     f"RSS ≤ 1/4: {'met' if lean else 'MISSED'}")
    return lines


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description="benchmark plexhub convert against peers")
    ap.add_argument("--quick", action="store_true", help="8 x 6,144^2 instead of 8 x 10,000^2")
    ap.add_argument("--size", type=int, help="override the image edge")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    ap.add_argument("--modes", nargs="+", default=MODES, choices=MODES,
                    help="default settings, the shared codec, or both")
    ap.add_argument("--no-check", action="store_true", help="skip opening each output")
    ap.add_argument("--keep", action="store_true", help="keep the outputs of the last round")
    ap.add_argument("--json", type=Path, help="write every measurement here "
                    "(default bench/out/convert-<size>-<time>.json)")
    ap.add_argument("--smoke", action="store_true",
                    help="every tool and mode once on 8 x 1,024^2 (a check that the bench runs, "
                         "not a measurement); exits 1 when any run failed")
    ap.add_argument("--report", type=Path, metavar="JSON",
                    help="measure nothing: print the tables of an earlier run's JSON file")
    args = ap.parse_args()
    if args.smoke:
        args.size = args.size or 1024
        args.rounds = 1
    sys.path.insert(0, str(HERE))
    from harness import code_version, machine_note

    if args.report:
        saved = json.loads(args.report.read_text())
        saved_runs = [Run(**r) for r in saved["runs"]]
        tools = [t for t in TOOLS if any(r.tool == t for r in saved_runs)]
        modes = [m for m in MODES if any(r.mode == m for r in saved_runs)]
        raw_gb = saved["channels"] * saved["size"] ** 2 * 2 / 1e9
        head = re.sub(r"^#+ ", "### ", saved["report"].split("\n#")[0])
        print(head + "\n" + report(saved_runs, tools, modes, raw_gb))
        return 0

    size = args.size or (6144 if args.quick else 10000)
    src = ensure_source(size, args.channels)
    raw_gb = args.channels * size * size * 2 / 1e9
    broken: dict[str, str] = {}
    for name in sorted({TOOL_VENV[t] for t in args.tools if t in TOOL_VENV}):
        err = ensure_venv(name)
        if err:
            log(f"venv {name}: {err}")
            broken[name] = err
    started = time.strftime("%Y-%m-%d %H:%M")
    machine = machine_note()
    code = code_version(REPO)
    runs: list[Run] = []
    for rnd in range(1, args.rounds + 1):
        warm(src)
        for mode in args.modes:
            runs.extend(run_one(tool, mode, rnd, src, broken, check=not args.no_check)
                        for tool in args.tools)
    if not args.keep:
        shutil.rmtree(OUT / "runs", ignore_errors=True)
    versions = peer_versions()
    header = (f"### convert bench {started}: {args.channels} × {size:,}² uint16 "
              f"({raw_gb:.2f} GB raw, source {src.stat().st_size / 1e9:.2f} GB deflate "
              f"OME-TIFF), {args.rounds} interleaved round(s), medians\n\n"
              f"command: `python bench/convert.py {' '.join(sys.argv[1:])}`; plexhub {code}; "
              f"machine: {machine} at start\n\nversions: "
              + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n")
    text = header + "\n" + report(runs, args.tools, args.modes, raw_gb)
    print(text)
    dest = args.json or OUT / f"convert-{size}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dest.write_text(json.dumps({"size": size, "channels": args.channels, "rounds": args.rounds,
                                "started": started, "machine": machine, "code": code,
                                "versions": versions,
                                "runs": [r.__dict__ for r in runs], "report": text}, indent=2))
    log(f"measurements written to {dest}")
    failed = [f"{r.tool} {r.mode}: {r.data.get('error', '')[:300]}" for r in runs
              if not r.data.get("ok")]
    if args.smoke:
        for f in failed:
            log(f"smoke: FAILED {f}")
        log("smoke: every tool ran" if not failed else f"smoke: {len(failed)} run(s) failed")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
