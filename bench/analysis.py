"""Per-cell quantification vs scikit-image, and the analysis's peak memory.

    python bench/analysis.py                         # 8 channels at 4,096^2
    python bench/analysis.py --size 10000            # the issue's 8 x 10,000^2 goal

Steps, each in a fresh subprocess under ``/usr/bin/time -v`` (bench/harness.py):

1. ``setup``  -- a streaming synthetic image (bench/synth_reader.py) converted to OME-Zarr;
2. ``analyze``-- ``plexhub analyze`` on it: block-wise segmentation, quantification, phenotypes,
                 results written into the store (labels/cells, tables/cells);
3. ``ours``   -- ``quantify_blocks`` over the stored labels and every channel, the way analyze
                 runs it (mean only, and mean + median + 90th percentile);
4. ``skimage``-- ``skimage.measure.regionprops_table(labels, intensity_image=...)`` with
                 label, area, centroid, eccentricity and intensity_mean, on the same labels and
                 channels, loaded into memory (what it needs).

Goals (issue 16): quantification >= 5x faster than regionprops_table; peak RSS <= 1 GB on an
8 x 10,000^2 image, for the quantification and for the block-wise segmentation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "analysis"
GOAL_SPEEDUP = 5.0
GOAL_RSS_MB = 1000.0


def child_setup(args: argparse.Namespace) -> dict[str, object]:
    sys.path.insert(0, str(HERE))
    import synth_reader

    from plexhub.ome_pipeline import convert
    from plexhub.ome_pipeline.synthetic import SyntheticSpec

    synth_reader.register()
    spec = SyntheticSpec(size_y=args.size, size_x=args.size, channels=args.channels)
    src = synth_reader.write_spec(OUT / f"spec-{args.size}.json", spec)
    convert(src, args.store, reader=synth_reader.READER_NAME, overwrite=True,
            show_progress=False)
    return {}


def child_ours(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import zarr

    from plexhub.ome_pipeline.analysis.quantify import quantify_blocks

    root = zarr.open_group(args.store, mode="r")
    image, labels = root["0"], root["labels/cells/0"]
    assert isinstance(image, zarr.Array)
    assert isinstance(labels, zarr.Array)
    t0 = time.perf_counter()
    m = quantify_blocks(labels, None, lambda c, ys, xs: np.asarray(image[c, ys, xs]),
                        image.shape[0],
                        percentiles=tuple(args.percentiles))
    return {"seconds": time.perf_counter() - t0, "cells": m.n}


def child_skimage(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import zarr
    from skimage.measure import regionprops_table

    root = zarr.open_group(args.store, mode="r")
    labels_arr, image_arr = root["labels/cells/0"], root["0"]
    assert isinstance(labels_arr, zarr.Array)
    assert isinstance(image_arr, zarr.Array)
    labels = np.asarray(labels_arr[:])
    pixels = np.moveaxis(np.asarray(image_arr[:]), 0, -1)
    t0 = time.perf_counter()
    table = regionprops_table(labels, intensity_image=pixels,  # type: ignore[no-untyped-call]
                              properties=["label", "area", "centroid", "eccentricity",
                                          "intensity_mean"])
    return {"seconds": time.perf_counter() - t0, "cells": len(table["label"])}


def main() -> int:
    ap = argparse.ArgumentParser(description="plexhub analysis bench")
    ap.add_argument("--size", type=int, default=4096, help="image edge (Y = X)")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--skip-skimage", action="store_true",
                    help="leave out regionprops (it needs the whole image in memory)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", choices=["setup", "ours", "skimage"], help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--percentiles", type=float, nargs="*", default=[],
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"setup": child_setup, "ours": child_ours, "skimage": child_skimage}[args.child]
        print("RESULT " + json.dumps(fn(args)))
        return 0

    from harness import code_version, machine_note, run_measured

    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / f"synthetic-{args.channels}x{args.size}.ome.zarr"
    print(f"# plexhub analysis bench, {time.strftime('%Y-%m-%d %H:%M')}, plexhub "
          f"{code_version(HERE.parent)}; {machine_note()}")
    print(f"# command: python bench/analysis.py {' '.join(sys.argv[1:])}")
    me = [sys.executable, str(Path(__file__).resolve())]
    steps = [("setup (convert)", [*me, "--child", "setup", "--size", str(args.size),
                                  "--channels", str(args.channels), "--store", str(store)]),
             ("analyze (segment + quantify + write)",
              [sys.executable, "-m", "plexhub", "analyze", str(store), "--nuclear", "DAPI",
               "--expand", "3", "--phenotype", "T: CD3+", "--phenotype",
               "cytotoxic T: CD3+ CD8+", "-q"]),
             ("ours: quantify, mean", [*me, "--child", "ours", "--store", str(store)]),
             ("ours: quantify, mean + median + p90",
              [*me, "--child", "ours", "--store", str(store), "--percentiles", "50", "90"])]
    if not args.skip_skimage:
        steps.append(("skimage regionprops_table", [*me, "--child", "skimage", "--store",
                                                    str(store)]))
    rows: dict[str, dict[str, object]] = {}
    for name, cmd in steps:
        log = OUT / f"log-{len(rows)}.txt"
        m = run_measured(cmd, env=dict(os.environ), log=log, timeout=7200, sync=False)
        text = log.read_text(errors="replace")
        found = [json.loads(line[7:]) for line in text.splitlines()
                 if line.startswith("RESULT ")]
        rows[name] = {**m.as_dict(), **(found[-1] if found else {})}
        work = found[-1].get("seconds") if found else None
        print(f"{name:40} {'ok' if m.ok else 'FAILED'} wall {m.wall_s:7.1f} s"
              f"{f' (work {work:.1f} s)' if isinstance(work, float) else ''}  "
              f"peak RSS {max(m.rss_tree_mb, m.rss_max1_mb):7.0f} MB"
              f"{'  ' + m.error[-300:] if not m.ok else ''}", flush=True)
    ours = rows.get("ours: quantify, mean", {}).get("seconds")
    theirs = rows.get("skimage regionprops_table", {}).get("seconds")
    if isinstance(ours, float) and isinstance(theirs, float):
        print(f"quantification speed-up vs regionprops_table: {theirs / ours:.1f}x "
              f"(goal >= {GOAL_SPEEDUP:.0f}x; compute only, both after their imports and "
              "reads: ours includes reading the store, regionprops' reading is not counted)")
    for name in ("analyze (segment + quantify + write)", "ours: quantify, mean"):
        r = rows.get(name, {})
        peak = max(float(str(r.get("rss_tree_mb", 0.0))), float(str(r.get("rss_max1_mb", 0.0))))
        print(f"{name}: peak RSS {peak:.0f} MB (goal <= {GOAL_RSS_MB:.0f} MB at 8 x 10,000^2)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
