"""The conversion's subcommands of ``plexhub`` (convert, info, validate, readers, synth,
demo); ``plexhub.cli`` finds :func:`register` through the ``plexhub.commands`` entry point.
Heavy modules are imported by each command, never at registration."""

from __future__ import annotations

import argparse
import os
from typing import Any

from plexhub.errors import PlexhubError


def _labels(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise PlexhubError(f"--labels {v}", "expected NAME=MASK",
                               "e.g. --labels cells=mask.tif")
        out[name] = path
    return out


def cmd_convert(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.validate_child import ValidatorProcess

    # first: the helper imports the validation's libraries while this process starts up
    with ValidatorProcess() as validator:
        from plexhub.ome_pipeline import convert
        from plexhub.settings import get_settings

        settings = get_settings()
        if args.workers:
            settings = settings.model_copy(update={"workers": args.workers})
        if args.scheduler:
            settings = settings.model_copy(update={"dask_scheduler": args.scheduler})
        result = convert(args.src, args.dst, ngff_version=args.ngff_version,
                         reader=args.reader, labels=_labels(args.labels),
                         as_labels=args.as_labels, overwrite=args.overwrite,
                         show_progress=None if not args.quiet else False,
                         settings=settings, validate=validator.validate)
    print(result.summary())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline import open_source

    doc = open_source(args.src, args.reader)
    print(f"{doc.path}: {doc.format}, {len(doc.images)} image(s)")
    for i, im in enumerate(doc.images):
        t, c, z, y, x = im.shape
        sizes = ", ".join(f"{a}={s.value:g} {s.unit}" for a, s in im.physical_sizes.items())
        print(f"  [{i}] {im.name!r}: t={t} c={c} z={z} y={y} x={x} {im.dtype} "
              f"{'(labels) ' if im.is_label else ''}{sizes}")
        print("      channels: " + ", ".join(ch.label for ch in im.channels))
        if not im.is_label and not {"x", "y"} & set(im.physical_sizes):
            print("      note: the file gives no pixel size: written without a unit "
                  "(readers show pixels)")
        for note in im.notes:
            print(f"      note: {note}")
        for name in im.labels:
            print(f"      labels: {name}")
    for name in doc.associated:
        print(f"  associated: {name}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline import validate_store

    for where in validate_store(args.store):
        print(f"valid: {where}")
    return 0


def cmd_readers(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.readers import available_readers, load_reader

    for name, target in available_readers().items():
        print(f"{name:10} {load_reader(target).description}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff

    spec = SyntheticSpec(size_y=args.size_y or args.size, size_x=args.size_x or args.size,
                         channels=args.channels,
                         dtype=args.dtype, seed=args.seed, tile=args.tile)
    path = write_ome_tiff(args.out, spec, compression=None if args.compression == "none"
                          else args.compression, pyramid_levels=args.pyramid_levels)
    print(f"{path}: {spec.channels} x {spec.size_y} x {spec.size_x} {spec.dtype}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on embedded defaults: make the sample, convert it, summarise."""
    from plexhub.ome_pipeline import convert
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
    from plexhub.settings import get_settings

    settings = get_settings()
    samples = settings.data_dir / "samples"
    stores = settings.data_dir / "stores"
    samples.mkdir(parents=True, exist_ok=True)
    stores.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(size_y=args.size, size_x=args.size, channels=8, seed=0)
    src = samples / f"synthetic-mif-{args.size}.ome.tif"
    if not src.exists():
        print(f"generating {src} ({spec.channels} channels, {args.size} x {args.size})")
        tmp = src.with_name(src.name + ".tmp")
        write_ome_tiff(tmp, spec)
        os.replace(tmp, src)
    dst = stores / (src.name.removesuffix(".ome.tif") + ".ome.zarr")
    result = convert(src, dst, overwrite=True, settings=settings)
    print(result.summary())
    print(f"\nopen it with: python -c \"import zarr; print(zarr.open_group('{dst}').tree())\"")
    return 0


def register(sub: Any) -> None:
    """Add the conversion's subcommands to ``plexhub``'s subparsers ``sub``."""
    c = sub.add_parser("convert", help="convert a scanner file or OME-Zarr to OME-Zarr")
    c.add_argument("src", help="the source: a scanner file (QPTIFF, SVS, OME-TIFF, CZI, "
                   "IMC .mcd, other TIFF) or an OME-Zarr folder")
    c.add_argument("dst", help="the OME-Zarr store to write (e.g. slide.ome.zarr); its "
                   "folder must exist; s3://bucket/path also works")
    c.add_argument("--ngff-version", choices=["0.5", "0.4"], default=None,
                   help="output NGFF version (default 0.5, Zarr v3 with shards)")
    c.add_argument("--reader", help="force a reader (see `plexhub readers`)")
    c.add_argument("--labels", action="append", default=[], metavar="NAME=MASK",
                   help="attach an integer mask as NGFF label image NAME (repeatable)")
    c.add_argument("--as-labels", action="store_true",
                   help="write SRC itself as a label image (one channel of object IDs)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    c.add_argument("--workers", type=int, default=0, help="threads (default: settings)")
    c.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the tasks on a dask.distributed scheduler (tcp://HOST:PORT; "
                   "default: PLEXHUB_DASK_SCHEDULER, else local threads)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_convert, one_shot=True)

    i = sub.add_parser("info", help="show what plexhub reads in a source")
    i.add_argument("src", help="the source file or OME-Zarr folder")
    i.add_argument("--reader")
    i.set_defaults(func=cmd_info)

    v = sub.add_parser("validate", help="validate an OME-Zarr store")
    v.add_argument("store", help="the OME-Zarr store (a folder or s3:// URL)")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("readers", help="list the available readers")
    r.set_defaults(func=cmd_readers)

    s = sub.add_parser("synth", help="write a synthetic mIF OME-TIFF")
    s.add_argument("out", help="the OME-TIFF file to write")
    s.add_argument("--size", type=int, default=2048, help="height and width")
    s.add_argument("--size-y", type=int, default=0, help="height (default: --size)")
    s.add_argument("--size-x", type=int, default=0, help="width (default: --size)")
    s.add_argument("--channels", type=int, default=8)
    s.add_argument("--dtype", default="uint16")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--compression", default="zlib")
    s.add_argument("--pyramid-levels", type=int, default=0)
    s.set_defaults(func=cmd_synth)
    d = sub.add_parser("demo", help="generate the sample, convert it and print a summary")
    d.add_argument("--size", type=int, default=4096)
    d.set_defaults(func=cmd_demo)
