"""Peak memory of plexhub while converting a STREAMING synthetic image of growing size.

    python bench/memory.py                       # 4 channels at 10,000^2, 14,142^2, 20,000^2
    python bench/memory.py --sizes 10000 20000 --channels 4

Each size runs in a fresh subprocess (``python bench/memory.py --child ...``) under
``/usr/bin/time -v``; plexhub converts with its default settings (env ``PLEXHUB_*`` is passed
through) into ``bench/out/memory/``. The source is ``synthetic_image(SyntheticSpec(...))``:
pixels are rendered region by region while plexhub reads them, so the image never exists in
memory or on disk as a whole. It reaches the *public* ``convert()`` through a tiny reader
registered in the ``plexhub.readers`` entry-point group at run time (``bench/synth_reader.py``);
``convert`` takes a path, not a SourceDocument, and this is the only route that patches no
plexhub internals.

Goal (conversion anchors G4): peak RSS <= 300 MB at 2 workers, and <= +10 % when the image
doubles (10,000^2 -> 14,142^2 is 2x the pixels, 10,000^2 -> 20,000^2 is 4x).

Rendering is the slow part (the generator hashes every pixel, ~3 Mpx/s per core): 20,000^2 x 4
takes about 5 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "memory"
GOAL_RSS_MB = 300.0
GOAL_GROWTH = 0.10


def child(args: argparse.Namespace) -> int:
    import psutil

    sys.path.insert(0, str(HERE))
    import synth_reader

    import plexhub.ome_pipeline.conversion  # noqa: F401 - the import floor is measured
    from plexhub.ome_pipeline import convert
    from plexhub.ome_pipeline.synthetic import SyntheticSpec
    from plexhub.settings import get_settings

    synth_reader.register()
    import dask.threaded  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import zarr  # noqa: F401

    proc = psutil.Process()
    rss_imports = proc.memory_info().rss
    work = Path(args.dst).parent
    work.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(size_y=args.child, size_x=args.child, channels=args.channels)
    src = synth_reader.write_spec(work / f"spec-{args.child}.json", spec, args.render_tile)
    # Which pass is running: pass 0 has channels x ceil(N / block)^2 tasks, and the progress
    # callback counts finished tasks. A sampler thread records the RSS seen in each phase.
    pass0 = args.channels * math.ceil(args.child / get_settings().block_size) ** 2
    state = {"done": 0}
    peaks = {"pass 0": 0, "passes >= 1": 0}
    stop = threading.Event()

    def on_progress(p: object) -> None:
        state["done"] = p.tasks_done  # type: ignore[attr-defined]

    def sample() -> None:
        while not stop.is_set():
            phase = "pass 0" if state["done"] < pass0 else "passes >= 1"
            peaks[phase] = max(peaks[phase], proc.memory_info().rss)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = convert(src, args.dst, reader=synth_reader.READER_NAME, overwrite=True,
                     show_progress=False, progress=on_progress)
    stop.set()
    sampler.join()
    print(json.dumps({"rss_imports_mb": rss_imports / 1e6,
                      "rss_pass0_mb": peaks["pass 0"] / 1e6,
                      "rss_later_mb": peaks["passes >= 1"] / 1e6,
                      "seconds": time.perf_counter() - t0,
                      "levels": len(result.images[0].levels),
                      "shape": list(result.images[0].levels[0].shape)}))
    return 0


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.rjust(w) if i else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt_row(header, widths), sep, *(fmt_row(r, widths) for r in rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description="plexhub peak RSS vs image size (streaming "
                                 "synthetic source)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 14142, 20000],
                    help="image edges (Y = X) to convert, smallest first")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--render-tile", type=int, default=512,
                    help="edge of the pieces the synthetic source renders (0 = whole "
                    "requested region at once, which adds the generator's float64 "
                    "temporaries to the peak)")
    ap.add_argument("--keep", action="store_true", help="keep the converted stores")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dst", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    from harness import code_version, machine_note, run_measured

    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# plexhub memory bench, {time.strftime('%Y-%m-%d %H:%M')}, plexhub "
          f"{code_version(HERE.parent)}; {machine_note()}")
    print(f"# command: python bench/memory.py {' '.join(sys.argv[1:])}")
    env = dict(os.environ)
    print("# settings: " + (", ".join(f"{k}={v}" for k, v in sorted(env.items())
                                      if k.startswith("PLEXHUB_")) or "defaults"))
    results = []
    for size in args.sizes:
        dst = OUT / f"synthetic-{size}.ome.zarr"
        shutil.rmtree(dst, ignore_errors=True)
        log = OUT / f"log-{size}.txt"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(size),
               "--channels", str(args.channels), "--render-tile", str(args.render_tile),
               "--dst", str(dst)]
        print(f"# converting {args.channels} x {size} x {size} ...", flush=True)
        m = run_measured(cmd, env=env, log=log, out=dst, timeout=7200)
        info: dict[str, object] = {}
        if m.ok:
            for line in log.read_text().splitlines():
                if line.startswith("{"):
                    info = json.loads(line)
        else:
            print(f"#   FAILED: {m.error}")
        raw_gb = args.channels * size * size * 2 / 1e9
        results.append({"size": size, "raw_gb": raw_gb, **m.as_dict(), **info})
        if not args.keep:
            shutil.rmtree(dst, ignore_errors=True)

    base = results[0]
    rows = []
    for r in results:
        growth = (r["rss_max1_mb"] / base["rss_max1_mb"] - 1) * 100 if r["ok"] else float("nan")
        rows.append([f"{args.channels} x {r['size']:,}²", f"{r['raw_gb']:.2f}",
                     f"{r['size'] ** 2 / base['size'] ** 2:.1f}×",
                     f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}",
                     f"{r.get('rss_imports_mb', float('nan')):.0f}",
                     f"{r.get('rss_pass0_mb', float('nan')):.0f}",
                     f"{r.get('rss_later_mb', float('nan')):.0f}",
                     f"{r['rss_max1_mb']:.0f}", f"{growth:+.1f} %",
                     f"{r['out_mb']:.0f}" if args.keep else "-",
                     "ok" if r["ok"] else "FAILED"])
    print()
    print(table(["image (c × y × x, uint16)", "raw GB", "pixels vs first", "wall s", "CPU s",
                 "RSS after imports MB", "sampled peak, pass 0 MB", "sampled peak, passes ≥ 1 MB",
                 "peak RSS MB", "growth vs first", "out MB", "status"],
                rows))
    ok = [r for r in results if r["ok"]]
    if ok:
        worst = max(r["rss_max1_mb"] for r in ok)
        growth = max((r["rss_max1_mb"] / base["rss_max1_mb"] - 1) for r in ok)
        print()
        print(f"goal peak RSS <= {GOAL_RSS_MB:.0f} MB: "
              f"{'met' if worst <= GOAL_RSS_MB else 'MISSED'} (worst {worst:.0f} MB)")
        print(f"goal growth <= +{GOAL_GROWTH:.0%} as the image grows: "
              f"{'met' if growth <= GOAL_GROWTH else 'MISSED'} (worst {growth:+.1%})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
