"""``plexhub analyze``: segment, quantify and phenotype an OME-Zarr store in place;
``plexhub export spatialdata``: the store and its results as a SpatialData store.
``plexhub.cli`` finds :func:`register` and :func:`register_export` through the
``plexhub.commands`` entry point; the analysis modules are imported only when a command runs."""

from __future__ import annotations

import argparse
from typing import Any

from plexhub.errors import InputError


def _thresholds(values: list[str]) -> dict[str, float]:
    out = {}
    for v in values:
        name, sep, num = v.partition("=")
        try:
            out[name] = float(num)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--threshold {v}", "expected MARKER=VALUE",
                             "e.g. --threshold CD3=850")
    return out


def cmd_analyze(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.analysis.run import analyze

    options: dict[str, Any] = {k: v for k, v in (
        ("sigma", args.sigma), ("min_distance", args.min_distance),
        ("min_size", args.min_size), ("expand", args.expand),
        ("threshold", args.nuclear_threshold)) if v is not None}
    result = analyze(args.store, nuclear=args.nuclear, membrane=args.membrane,
                     method=args.method, segmenter_options=options,
                     phenotypes=args.phenotype, threshold_method=args.threshold_method,
                     thresholds=_thresholds(args.threshold), scheduler=args.scheduler,
                     block=args.block, show_progress=None if not args.quiet else False)
    print(result.summary())
    return 0


def register(sub: Any) -> None:
    """Add ``analyze`` to ``plexhub``'s subparsers ``sub``."""
    a = sub.add_parser("analyze", help="segment cells, measure every channel and count "
                       "phenotypes; results go into the store (labels/cells, tables/cells)")
    a.add_argument("store", help="an OME-Zarr store written by `plexhub convert`")
    a.add_argument("--nuclear", required=True, help="the nuclear channel's name (e.g. DAPI)")
    a.add_argument("--membrane", help="a membrane channel: cells grow to it from the nuclei")
    a.add_argument("--method", default="watershed",
                   help="segmenter (built-in: watershed; others by entry point)")
    a.add_argument("--expand", type=int, default=None,
                   help="grow nuclei by this many pixels into cells (default 0; 6 with "
                   "--membrane)")
    a.add_argument("--sigma", type=float, default=None, help="smoothing, pixels (1.0)")
    a.add_argument("--min-distance", type=int, default=None,
                   help="pixels between two nuclei's seeds (3)")
    a.add_argument("--min-size", type=int, default=None, help="smallest nucleus, pixels (10)")
    a.add_argument("--nuclear-threshold", type=float, default=None,
                   help="foreground threshold of the nuclear channel (default: Otsu)")
    a.add_argument("--phenotype", action="append", default=[], metavar="'NAME: M+ M-'",
                   help="a phenotype rule, e.g. 'cytotoxic T: CD3+ CD8+' (repeatable)")
    a.add_argument("--threshold-method", choices=["otsu", "gmm"], default="otsu",
                   help="per-marker positivity threshold from the per-cell means")
    a.add_argument("--threshold", action="append", default=[], metavar="MARKER=VALUE",
                   help="fix one marker's positivity threshold (repeatable)")
    a.add_argument("--scheduler", default=None,
                   help="dask scheduler: threads (default), processes, synchronous, or a "
                   "distributed scheduler address (tcp://host:8786)")
    a.add_argument("--block", type=int, default=1024, help="block edge, pixels (a multiple "
                   "of 512)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress")
    a.set_defaults(func=cmd_analyze, one_shot=True)


def cmd_export_spatialdata(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.analysis.sdexport import export_spatialdata

    result = export_spatialdata(args.store, args.out, name=args.name, overwrite=args.overwrite)
    print(result.summary())
    return 0


def register_export(sub: Any) -> None:
    """Add ``export`` (kinds: ``spatialdata``) to ``plexhub``'s subparsers ``sub``."""
    e = sub.add_parser("export", help="write a store in another tool's format")
    kinds = e.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("spatialdata", help="the image, its label images and tables as a "
                         "SpatialData store (spatialdata.read_zarr); pixels are copied")
    s.add_argument("store", help="an OME-Zarr store written by `plexhub convert` (and "
                   "`plexhub analyze`)")
    s.add_argument("out", help="the SpatialData store to write (e.g. slide.sdata.zarr)")
    s.add_argument("--name", default="image", help="the image's element name (image)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors")
    s.set_defaults(func=cmd_export_spatialdata, one_shot=True)
