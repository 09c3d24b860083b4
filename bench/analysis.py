"""Per-cell quantification vs scikit-image, and the analysis's peak memory.

    python bench/analysis.py                         # 8 channels at 4,096^2
    python bench/analysis.py --size 10000            # the issue's 8 x 10,000^2 goal
    python bench/analysis.py --labels truth          # the generator's nuclei as the labels,
                                                     # no `plexhub analyze` step

Steps, each in a fresh subprocess under ``/usr/bin/time -v`` (bench/harness.py):

1. ``setup``  -- a streaming synthetic image (bench/synth_reader.py) converted to OME-Zarr;
2. ``analyze``-- ``plexhub analyze`` on it: block-wise segmentation, quantification, phenotypes,
                 results written into the store (labels/cells, tables/cells);
   (or, with ``--labels truth``, the generator's own nuclei written as ``labels/cells``);
3. ``ours``   -- ``quantify_blocks`` over the stored labels and every channel, the way analyze
                 runs it (mean only, and mean + median + 90th percentile);
4. ``skimage``-- ``skimage.measure.regionprops_table(labels, intensity_image=...)`` with
                 label, area, centroid, eccentricity and intensity_mean, on the same labels and
                 channels, loaded into memory (what it needs); then the same plus each channel's
                 median and 90th percentile (``extra_properties``, numpy's median/percentile of
                 the cell's pixels: the same statistics as ours, bit for bit).

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
OURS_MEAN = "ours: quantify, mean"
OURS_PCT = "ours: quantify, mean + median + p90"
SK_MEAN = "skimage regionprops_table, mean"
SK_PCT = "skimage regionprops_table, mean + median + p90"


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


def child_labels(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import zarr

    from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_labels

    spec = SyntheticSpec(size_y=args.size, size_x=args.size, channels=args.channels)
    root = zarr.open_group(args.store, mode="r+")
    step = 2048
    out = root.create_array("labels/cells/0", shape=(args.size, args.size), dtype="uint32",
                            chunks=(1024, 1024), overwrite=True)
    tiles = [(y, x, min(step, args.size - y), min(step, args.size - x))
             for y in range(0, args.size, step) for x in range(0, args.size, step)]
    # the generator's ids are hashes: renumber them 1..n (as analyze does), the same in every
    # tile
    ids = np.unique(np.concatenate([np.unique(render_labels(spec, *t)) for t in tiles]))
    ids = ids[ids != 0]
    for y, x, h, w in tiles:
        tile = render_labels(spec, y, x, h, w)
        new = np.searchsorted(ids, tile).astype(np.uint32) + 1
        new[tile == 0] = 0
        out[y:y + h, x:x + w] = new
    return {"cells": len(ids)}


def _median(mask: object, pixels: object) -> float:
    import numpy as np

    return float(np.median(pixels[mask]))  # type: ignore[index]


def _p90(mask: object, pixels: object) -> float:
    import numpy as np

    return float(np.percentile(pixels[mask], 90))  # type: ignore[index]


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
    extra = (_median, _p90) if args.percentiles else ()
    t0 = time.perf_counter()
    table = regionprops_table(labels, intensity_image=pixels,  # type: ignore[no-untyped-call]
                              properties=["label", "area", "centroid", "eccentricity",
                                          "intensity_mean"], extra_properties=extra)
    return {"seconds": time.perf_counter() - t0, "cells": len(table["label"])}


def main() -> int:
    ap = argparse.ArgumentParser(description="plexhub analysis bench")
    ap.add_argument("--size", type=int, default=4096, help="image edge (Y = X)")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--skip-skimage", action="store_true",
                    help="leave out regionprops (it needs the whole image in memory)")
    ap.add_argument("--labels", choices=["analyze", "truth"], default="analyze",
                    help="labels to quantify: `plexhub analyze`'s cells (default), or the "
                    "synthetic generator's nuclei (fast; no analyze step)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", choices=["setup", "labels", "ours", "skimage"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--percentiles", type=float, nargs="*", default=[],
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"setup": child_setup, "labels": child_labels, "ours": child_ours,
              "skimage": child_skimage}[args.child]
        print("RESULT " + json.dumps(fn(args)))
        return 0

    from harness import code_version, machine_note, run_measured

    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / f"synthetic-{args.channels}x{args.size}.ome.zarr"
    print(f"# plexhub analysis bench, {time.strftime('%Y-%m-%d %H:%M')}, plexhub "
          f"{code_version(HERE.parent)}; {machine_note()}")
    print(f"# command: python bench/analysis.py {' '.join(sys.argv[1:])}")
    me = [sys.executable, str(Path(__file__).resolve())]
    size = ["--size", str(args.size), "--channels", str(args.channels), "--store", str(store)]
    steps = [("setup (convert)", [*me, "--child", "setup", *size])]
    if args.labels == "truth":
        steps.append(("labels (the generator's nuclei)", [*me, "--child", "labels", *size]))
    else:
        steps.append(("analyze (segment + quantify + write)",
                      [sys.executable, "-m", "plexhub", "analyze", str(store), "--nuclear",
                       "DAPI", "--expand", "3", "--phenotype", "T: CD3+", "--phenotype",
                       "cytotoxic T: CD3+ CD8+", "-q"]))
    pct = ["--percentiles", "50", "90"]
    steps += [(OURS_MEAN, [*me, "--child", "ours", "--store", str(store)]),
              (OURS_PCT, [*me, "--child", "ours", "--store", str(store), *pct])]
    if not args.skip_skimage:
        steps += [(SK_MEAN, [*me, "--child", "skimage", "--store", str(store)]),
                  (SK_PCT, [*me, "--child", "skimage", "--store", str(store), *pct])]
    rows: dict[str, dict[str, object]] = {}
    for name, cmd in steps:
        log = OUT / f"log-{len(rows)}.txt"
        m = run_measured(cmd, env=dict(os.environ), log=log, timeout=7200, sync=False)
        text = log.read_text(errors="replace")
        found = [json.loads(line[7:]) for line in text.splitlines()
                 if line.startswith("RESULT ")]
        rows[name] = {**m.as_dict(), **(found[-1] if found else {})}
        work = found[-1].get("seconds") if found else None
        print(f"{name:48} {'ok' if m.ok else 'FAILED'} wall {m.wall_s:7.1f} s"
              f"{f' (work {work:.1f} s)' if isinstance(work, float) else ''}  "
              f"peak RSS {max(m.rss_tree_mb, m.rss_max1_mb):7.0f} MB"
              f"{'  ' + m.error[-300:] if not m.ok else ''}", flush=True)
    for what, ours_name, theirs_name in (("mean", OURS_MEAN, SK_MEAN),
                                         ("mean + median + p90", OURS_PCT, SK_PCT)):
        ours = rows.get(ours_name, {}).get("seconds")
        theirs = rows.get(theirs_name, {}).get("seconds")
        if isinstance(ours, float) and isinstance(theirs, float):
            print(f"quantification speed-up vs regionprops_table, {what}: {theirs / ours:.1f}x "
                  f"(goal >= {GOAL_SPEEDUP:.0f}x; compute only, both after their imports and "
                  "reads: ours includes reading the store, regionprops' reading is not "
                  "counted)")
    for name in ("analyze (segment + quantify + write)", OURS_MEAN, OURS_PCT):
        if name not in rows:
            continue
        r = rows.get(name, {})
        peak = max(float(str(r.get("rss_tree_mb", 0.0))), float(str(r.get("rss_max1_mb", 0.0))))
        print(f"{name}: peak RSS {peak:.0f} MB (goal <= {GOAL_RSS_MB:.0f} MB at 8 x 10,000^2)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
