"""The deployment's subcommands of ``plexhub`` (up, hub unlock, hub lockouts);
``plexhub.cli`` finds :func:`register` through the ``plexhub.commands`` entry point."""

from __future__ import annotations

import argparse
from typing import Any


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


def register(sub: Any) -> None:
    """Add the deployment's subcommands to ``plexhub``'s subparsers ``sub``."""
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
