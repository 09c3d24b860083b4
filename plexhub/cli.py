"""The ``plexhub`` command line: one entry point, subcommands.

Errors plexhub expects (bad input, an existing destination...) end with one line on stderr
and a non-zero exit code, never a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from plexhub import __version__
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
    from plexhub.ome_pipeline.readers import _load, available_readers

    for name, target in available_readers().items():
        print(f"{name:10} {_load(target).description}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff

    spec = SyntheticSpec(size_y=args.size, size_x=args.size, channels=args.channels,
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


def cmd_serve(args: argparse.Namespace) -> int:
    """The API service under uvicorn (standalone mode, bearer tokens)."""
    import uvicorn

    from plexhub.api.main import create_app
    from plexhub.settings import get_settings

    os.umask(0o077)  # whatever the service writes (catalog, stores, hub state) is its own
    settings = get_settings()
    if settings.admin_token is None:
        print("plexhub: warning: PLEXHUB_ADMIN_TOKEN is not set; only existing tokens work",
              file=sys.stderr)
    workers = args.workers or settings.api_workers
    common: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": args.log_level,
                              "proxy_headers": True, "forwarded_allow_ips": "127.0.0.1",
                              "root_path": args.root_path}
    if workers == 1:
        uvicorn.run(create_app(settings), **common)
    else:  # uvicorn's supervisor forks workers that each build the app from the environment
        uvicorn.run("plexhub.api.main:create_app", factory=True, workers=workers, **common)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish a notebook to a study over the API (see plexhub.api.publish_cli)."""
    from plexhub.api.publish_cli import cmd_publish as publish

    return publish(args)


def cmd_up(args: argparse.Namespace) -> int:
    """The local deployment: hub, proxy, API service, demo study; Ctrl-C stops it."""
    from plexhub.hub.up import run_up

    return run_up(args)


def cmd_hub_unlock(args: argparse.Namespace) -> int:
    """Clear a hub login lock (a user name or a client address), audited."""
    import getpass

    from plexhub.hub.lockout import LoginGuard
    from plexhub.settings import get_settings

    guard = LoginGuard.from_settings(get_settings())
    cleared = guard.unlock(args.subject, actor=f"cli:{getpass.getuser()}")
    print(f"{args.subject}: {cleared} failed login(s) cleared; it may log in again")
    return 0


def cmd_hub_lockouts(args: argparse.Namespace) -> int:
    """List the hub's login locks."""
    from plexhub.hub.lockout import LoginGuard
    from plexhub.settings import get_settings

    locks = LoginGuard.from_settings(get_settings()).lockouts()
    for lock in locks:
        print(f"{lock['kind']:8} {lock['subject']:30} until {lock['until']} "
              f"(lock {lock['locks']})")
    if not locks:
        print("no login is locked")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plexhub", description="plexhub: multiplex imaging hub")
    p.add_argument("--version", action="version", version=f"plexhub {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a scanner file or OME-Zarr to OME-Zarr")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--ngff-version", choices=["0.5", "0.4"], default=None,
                   help="output NGFF version (default 0.5, Zarr v3 with shards)")
    c.add_argument("--reader", help="force a reader (see `plexhub readers`)")
    c.add_argument("--labels", action="append", default=[], metavar="NAME=MASK",
                   help="attach an integer mask as NGFF label image NAME (repeatable)")
    c.add_argument("--as-labels", action="store_true", help="write SRC itself as a label image")
    c.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    c.add_argument("--workers", type=int, default=0, help="threads (default: settings)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_convert, one_shot=True)

    i = sub.add_parser("info", help="show what plexhub reads in a source")
    i.add_argument("src")
    i.add_argument("--reader")
    i.set_defaults(func=cmd_info)

    v = sub.add_parser("validate", help="validate an OME-Zarr store")
    v.add_argument("store")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("readers", help="list the available readers")
    r.set_defaults(func=cmd_readers)

    s = sub.add_parser("synth", help="write a synthetic mIF OME-TIFF")
    s.add_argument("out")
    s.add_argument("--size", type=int, default=2048)
    s.add_argument("--channels", type=int, default=8)
    s.add_argument("--dtype", default="uint16")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--compression", default="zlib")
    s.add_argument("--pyramid-levels", type=int, default=0)
    s.set_defaults(func=cmd_synth)

    sv = sub.add_parser("serve", help="run the API service (uvicorn)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8765)
    sv.add_argument("--log-level", default="info")
    sv.add_argument("--workers", type=int, default=0,
                    help="worker processes (default: PLEXHUB_API_WORKERS, 1)")
    sv.add_argument("--root-path", default="",
                    help="URL prefix the proxy forwards, e.g. /services/plexhub")
    sv.set_defaults(func=cmd_serve)

    up = sub.add_parser("up", help="start the local deployment (hub, proxy, API, demo study)")
    up.add_argument("--port", type=int, default=None,
                    help="port of the hub on 127.0.0.1 (default: PLEXHUB_HUB_PORT, 8000)")
    up.set_defaults(func=cmd_up)

    hub = sub.add_parser("hub", help="administer the local hub's login locks")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    unlock = hub_sub.add_parser("unlock", help="clear the login lock of a user or an address")
    unlock.add_argument("subject", metavar="USER|ADDRESS")
    unlock.set_defaults(func=cmd_hub_unlock)
    hub_sub.add_parser("lockouts", help="list the locked users and addresses"
                       ).set_defaults(func=cmd_hub_lockouts)

    from plexhub.api.publish_cli import add_arguments as publish_arguments

    pb = sub.add_parser("publish", help="publish a notebook to a study (read-only for sponsors)")
    publish_arguments(pb)
    pb.set_defaults(func=cmd_publish)

    d = sub.add_parser("demo", help="generate the sample, convert it and print a summary")
    d.add_argument("--size", type=int, default=4096)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None, *, fast_exit: bool = False) -> int:
    """Run one command; with ``fast_exit`` (the console script) a one-shot command such as
    ``convert`` leaves the process without the interpreter's teardown (measured: 0.2-0.3 s
    of freeing modules and objects after a conversion; every file is closed and renamed by
    then, and the streams and log handlers are flushed first)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    rc = _run(args)
    if fast_exit and getattr(args, "one_shot", False):
        sys.stdout.flush()
        sys.stderr.flush()
        if "logging" in sys.modules:
            import logging

            logging.shutdown()
        os._exit(rc)
    return rc


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("plexhub: interrupted", file=sys.stderr)
        return 130
    except PlexhubError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"plexhub: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a bug, but still one line by default
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, OSError) and exc.filename is not None:  # the file it is about
            print(f"plexhub: error: {os.fsdecode(exc.filename)}: "
                  f"{(exc.strerror or type(exc).__name__).lower()} "
                  "(rerun with --debug for details)", file=sys.stderr)
            return 1
        where = getattr(args, "src", None) or getattr(args, "store", None) or ""
        print(f"plexhub: error: {where + ': ' if where else ''}{type(exc).__name__}: {exc} "
              "(rerun with --debug for details)", file=sys.stderr)
        return 1


def entry() -> None:
    """The ``plexhub`` console script."""
    raise SystemExit(main(fast_exit=True))


if __name__ == "__main__":
    entry()
