"""The API's subcommands of ``plexhub`` (serve, worker, migrate, publish, profiles, audit verify);
``plexhub.cli`` finds :func:`register` through the ``plexhub.commands`` entry point."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plexhub.settings import Settings


def migrate_catalog(settings: Settings) -> str:
    """Bring the catalog to the newest schema, once, under the lock; say what was done."""
    from plexhub.api.schema import migrate_catalog as migrate
    from plexhub.private import private_dir
    from plexhub.storage import StoreRoots

    os.umask(0o077)  # the catalog (and its lock file) are the service's alone
    private_dir(settings.data_dir)
    before, after = migrate(settings.catalog_url, StoreRoots.from_settings(settings))
    if before == after:
        return f"catalog schema already at revision {after}"
    return f"catalog schema migrated from revision {before or 'none (empty)'} to {after}"


def cmd_migrate(args: argparse.Namespace) -> int:
    """Migrate the catalog (PLEXHUB_DATA_DIR or PLEXHUB_DATABASE_URL) to the newest schema."""
    from plexhub.settings import get_settings

    print(f"plexhub: {migrate_catalog(get_settings())}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The API service under uvicorn (standalone mode, bearer tokens)."""
    import uvicorn

    from plexhub.api.main import create_app
    from plexhub.settings import get_settings

    os.umask(0o077)  # whatever the service writes (catalog, stores, hub state) is its own
    if args.no_jobs:  # in the environment too: `--workers N` builds each app from it
        os.environ["PLEXHUB_RUN_JOBS"] = "false"
    settings = get_settings()
    # once, before any worker builds the app (workers only check the schema is current)
    print(f"plexhub: {migrate_catalog(settings)}", file=sys.stderr)
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


def cmd_worker(args: argparse.Namespace) -> int:
    """Run conversion jobs from the catalog, serving no HTTP, until SIGTERM or SIGINT (a job
    still running then goes back to the queue, and resumes from its checkpoint wherever it
    is claimed next). It also delivers queued findings webhook calls when one is set."""
    import signal
    import threading

    from plexhub.api import preset_store, sysconfig
    from plexhub.api.db import Database
    from plexhub.api.jobs import JobRunner
    from plexhub.api.webhooks import WebhookSender
    from plexhub.policies.profiles import load_profiles
    from plexhub.settings import get_settings
    from plexhub.storage import StoreRoots

    os.umask(0o077)
    settings = get_settings()
    if args.scheduler:
        settings = settings.model_copy(update={"dask_scheduler": args.scheduler})
    print(f"plexhub: {migrate_catalog(settings)}", file=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db = Database(settings.catalog_url, profiles=load_profiles(settings.profiles_dir),
                  store_roots=StoreRoots.from_settings(settings))
    runner = JobRunner(db, settings, image_hooks=[preset_store.create_default])
    sender = WebhookSender(db, settings)  # the findings webhook's outbox, when one is set
    try:
        with db.session() as session:  # the version and configuration it converts with
            sysconfig.record(session, settings, process="worker")
        runner.start()
        sender.start()
        print(f"plexhub: worker {runner.owner} runs up to {settings.max_concurrent_jobs} "
              "job(s) at once; SIGTERM stops it", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
        print("plexhub: worker stopping; a running job goes back to the queue",
              file=sys.stderr, flush=True)
    finally:
        runner.shutdown()
        sender.shutdown()
        db.dispose()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish a notebook to a study over the API (see plexhub.api.publish_cli)."""
    from plexhub.api.publish_cli import cmd_publish as publish

    return publish(args)


def cmd_profiles(args: argparse.Namespace) -> int:
    """Print the compliance profiles (built-in and PLEXHUB_PROFILES_DIR) as Markdown."""
    from plexhub.policies.profiles import load_profiles, markdown
    from plexhub.settings import get_settings

    print(markdown(load_profiles(args.dir or get_settings().profiles_dir)), end="")
    return 0


def verify_audit(url: str, study: str | None = None) -> tuple[bool, str]:
    """Walk the catalog's audit chains (or one study's); (intact, what to say)."""
    from plexhub.api import audit
    from plexhub.api.auditchain import verify
    from plexhub.api.db import Database
    from plexhub.errors import NotFoundError

    db = Database(url)
    try:
        db.check()
        with db.session() as session:
            checked, broken = verify(audit.rows(session, study), study)
    finally:
        db.dispose()
    scope = f"study {study}'s audit chain" if study else "the audit chains"
    if study is not None and checked == 0:
        raise NotFoundError(f"study {study}", "has no audit events in this catalog",
                            "check the study code; codes are case-sensitive")
    if broken is not None:
        return False, f"{scope} BROKEN at {broken} ({checked - 1} events before it hold)"
    return True, f"{scope} intact: {checked} events"


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit trail's hash chains: 0 when they hold, 1 naming the first break."""
    from plexhub.settings import get_settings

    intact, said = verify_audit(get_settings().catalog_url, args.study)
    print(f"plexhub: {said}", file=sys.stdout if intact else sys.stderr)
    return 0 if intact else 1


def register(sub: Any) -> None:
    """Add the API's subcommands to ``plexhub``'s subparsers ``sub``."""
    sv = sub.add_parser("serve", help="run the API service (uvicorn)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8765)
    sv.add_argument("--log-level", default="info")
    sv.add_argument("--workers", type=int, default=0,
                    help="worker processes (default: PLEXHUB_API_WORKERS, 1)")
    sv.add_argument("--root-path", default="",
                    help="URL prefix the proxy forwards, e.g. /services/plexhub")
    sv.add_argument("--no-jobs", action="store_true",
                    help="serve only, run no conversion jobs (PLEXHUB_RUN_JOBS=false); "
                    "`plexhub worker` processes sharing the catalog run them")
    sv.set_defaults(func=cmd_serve)
    wk = sub.add_parser("worker", help="run conversion jobs from the catalog (no HTTP) until "
                        "SIGTERM")
    wk.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="a dask.distributed scheduler (tcp://HOST:PORT) the conversions run "
                    "on (default: PLEXHUB_DASK_SCHEDULER, else local threads)")
    wk.set_defaults(func=cmd_worker)
    mg = sub.add_parser("migrate", help="migrate the catalog to the newest schema (once, locked)")
    mg.set_defaults(func=cmd_migrate)
    from plexhub.api.publish_cli import add_arguments as publish_arguments

    pb = sub.add_parser("publish", help="publish a notebook to a study (read-only for sponsors)")
    publish_arguments(pb)
    pb.set_defaults(func=cmd_publish)
    pr = sub.add_parser("profiles", help="document the compliance profiles (Markdown)")
    pr.add_argument("--dir", type=Path, default=None,
                    help="a folder of extra profiles (default: PLEXHUB_PROFILES_DIR)")
    pr.set_defaults(func=cmd_profiles)
    from plexhub.api.validationpack import add_arguments as pack_arguments
    from plexhub.api.validationpack import cmd_validation_pack

    vp = sub.add_parser("validation-pack", help="map each compliance requirement to the tests "
                        "that prove it and their last result (Markdown or HTML)")
    pack_arguments(vp)
    vp.set_defaults(func=cmd_validation_pack)
    au = sub.add_parser("audit", help="the audit trail")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    av = au_sub.add_parser("verify", help="check the audit trail's hash chains (exit 0: intact)")
    av.add_argument("--study", default=None, help="only this study's chain (its code)")
    av.set_defaults(func=cmd_audit_verify)
