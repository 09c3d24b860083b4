"""The local deployment's user registry: a JSON file of users, roles and scrypt hashes.

The file (``PLEXHUB_HUB_USERS_FILE``, default ``<data_dir>/hub/users.json``, mode 0600) is
what :class:`plexhub.hub.auth.PlexhubAuthenticator` checks logins against and what the hub
config turns into groups at start::

    {"version": 1, "users": {"sponsor": {"role": "sponsor", "orgs": ["acme"],
                                         "password": "scrypt$32768$8$1$<salt>$<key>"}}}

Plain passwords are never stored. Add a user from a shell (the password is prompted)::

    python -m plexhub.hub.users add alice --role scientist
    python -m plexhub.hub.users add bob --role sponsor --org acme
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from plexhub.policies.access import ROLES, Role

# the scheme lives in policies: the API's signatures check the same hashes
from plexhub.policies.passwords import MIN_PASSWORD as MIN_PASSWORD
from plexhub.policies.passwords import SCRYPT_N as SCRYPT_N
from plexhub.policies.passwords import hash_password as hash_password
from plexhub.policies.passwords import verify_password as verify_password

DEMO_USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "scientist": ("scientist", ()),
    "analyst": ("analyst", ()),
    "sponsor": ("sponsor", ("acme",)),
}


@dataclass(frozen=True)
class LocalUser:
    """One hub user of the local deployment."""

    name: str
    role: Role
    orgs: tuple[str, ...]
    password_hash: str


def load_users(path: Path) -> dict[str, LocalUser]:
    """The registry; an absent file is an empty registry."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    out = {}
    for name, entry in (doc.get("users") or {}).items():
        role = entry.get("role")
        if role not in ROLES:
            raise ValueError(f"{path}: user {name!r} has unknown role {role!r}")
        out[name] = LocalUser(name=name, role=cast(Role, role),
                              orgs=tuple(entry.get("orgs") or ()),
                              password_hash=str(entry.get("password", "")))
    return out


def save_users(path: Path, users: Iterable[LocalUser]) -> None:
    """Write the registry atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "users": {u.name: {"role": u.role, "orgs": list(u.orgs),
                                            "password": u.password_hash}
                                   for u in sorted(users, key=lambda u: u.name)}}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def set_user(path: Path, name: str, role: Role, password: str,
             orgs: Sequence[str] = ()) -> LocalUser:
    """Add or replace one user (the password is hashed here)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    users = load_users(path)
    users[name] = LocalUser(name, role, tuple(orgs), hash_password(password))
    save_users(path, users.values())
    return users[name]


def ensure_demo_users(path: Path, password: str) -> list[str]:
    """Make ``scientist``, ``analyst`` and ``sponsor`` (org ``acme``) log in with
    ``password``; hashes are only rewritten when the password changed. Returns the names."""
    users = load_users(path)
    changed = False
    for name, (role, orgs) in DEMO_USERS.items():
        have = users.get(name)
        if have is None or have.role != role or have.orgs != orgs or \
                not verify_password(password, have.password_hash):
            users[name] = LocalUser(name, role, orgs, hash_password(password))
            changed = True
    if changed:
        save_users(path, users.values())
    return list(DEMO_USERS)


def group_members(users: Mapping[str, LocalUser], role_groups: Mapping[Role, str],
                  org_prefix: str) -> dict[str, list[str]]:
    """Hub group -> member names, for roles (``role_groups``) and organisations."""
    groups: dict[str, list[str]] = {group: [] for group in role_groups.values()}
    for user in users.values():
        groups[role_groups[user.role]].append(user.name)
        for org in user.orgs:
            groups.setdefault(f"{org_prefix}{org}", []).append(user.name)
    return {g: sorted(m) for g, m in groups.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plexhub.hub.users add NAME --role ROLE [--org ORG]...``"""
    from plexhub.settings import get_settings

    p = argparse.ArgumentParser(prog="python -m plexhub.hub.users",
                                description="manage the local hub users")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="add a user or set its password (prompted)")
    a.add_argument("name")
    a.add_argument("--role", choices=ROLES, required=True)
    a.add_argument("--org", action="append", default=[], help="organisation (repeatable)")
    sub.add_parser("list", help="list the users")
    args = p.parse_args(argv)
    path = get_settings().hub_users_path
    if args.command == "list":
        for u in load_users(path).values():
            print(f"{u.name:20} {u.role:10} {','.join(u.orgs)}")
        return 0
    password = getpass.getpass(f"password for {args.name}: ")
    if password != getpass.getpass("again: "):
        print("the passwords differ", file=sys.stderr)
        return 2
    set_user(path, args.name, args.role, password, args.org)
    print(f"{args.name} saved in {path}; restart the hub so that its groups are loaded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
