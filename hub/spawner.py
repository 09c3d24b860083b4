"""The local single-user servers: each hub user's JupyterLab (and its kernels) as its own
unprivileged OS account when the hub runs as root.

:class:`PlexhubSpawner` is JupyterHub's ``SimpleLocalProcessSpawner`` (home
``<hub dir>/homes/<user>``, JupyterHub's clean environment: ``JUPYTERHUB_*`` of that user,
``PLEXHUB_API_URL`` and the ``env_keep`` names, never the hub's or the API's secrets) plus, as
root:

- an OS account per hub user (:func:`account_name`: ``plexhub-<name>``, created on demand with
  ``useradd --system``, no login shell, never uid or gid 0), owning its home (0700);
- before the server's program starts, in the forked child while still root: a mount namespace
  of its own (:mod:`plexhub.isolation`) where the data folder, the catalog's folder, the hub's
  state and the other users' homes are empty folders, ``/tmp`` and ``/dev/shm`` are private,
  ``/proc`` shows only the account's own processes (where the kernel allows), and the Python
  installation stays reachable even under a 0700 ``/root``; then the account's uid/gid with no
  supplementary groups and ``no_new_privs``.

The first start of a user's server (:func:`prepare_home`) copies the project's notebooks into
``plexhub/`` of the home (only files that are not there yet: a user's edits are never
overwritten), turns JupyterLab's news pop-up off in the user's settings (unless the user chose),
and opens JupyterLab on the quick start. The environment's ``bin`` leads the server's (and so
the kernels') ``PATH``, so ``!plexhub publish`` works in a notebook.

Where the host refuses namespaces, the server still runs as its account (the hub's files are
0700/0600 root anyway) and needs a Python installation and a home that account can reach.
When the hub is not root it cannot switch users: servers run as the hub's own OS user (the
operator's account), as before.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, List, Unicode, default

from plexhub import isolation
from plexhub.errors import ConfigurationError

ACCOUNT_PREFIX = "plexhub-"
HASHED_PREFIX = "plexhub_"  # never the start of a plain mapping: no collisions between the two
_PLAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,22}")
NOLOGIN = "/usr/sbin/nologin"
TMP_BYTES = 1 << 30  # the private /tmp's cap
PROC_OPTIONS = "hidepid=invisible"
USERADD_EXISTS = 9


def account_name(user: str) -> str:
    """The OS account of hub user ``user``: ``plexhub-<user>`` for short lower-case names of
    letters, digits and dashes, ``plexhub_<hash>`` for any other (a valid, unique, 32-char
    or shorter system user name whatever the hub name holds)."""
    if _PLAIN.fullmatch(user):
        return ACCOUNT_PREFIX + user
    return HASHED_PREFIX + hashlib.sha256(user.encode()).hexdigest()[:20]


def ensure_account(name: str, home: Path) -> tuple[int, int]:
    """uid and gid of the system account ``name``, created (with a group of its own, no
    login shell, no home created) when missing; never root's uid or gid."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--user-group", "--home-dir",
               str(home), "--shell", NOLOGIN, name]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except OSError as exc:
            raise ConfigurationError(f"the OS account {name!r}", f"could not be created ({exc})",
                                     "install useradd (passwd package) or create the account "
                                     "yourself") from None
        if done.returncode not in (0, USERADD_EXISTS):  # 9: created meanwhile by another hub
            raise ConfigurationError(f"the OS account {name!r}", "could not be created: "
                                     f"{done.stderr.strip()[:200]}",
                                     "create it yourself with useradd --system") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0 or entry.pw_uid == os.geteuid():
        raise ConfigurationError(f"the OS account {name!r}", f"has uid {entry.pw_uid} and gid "
                                 f"{entry.pw_gid}, which are root's or the hub's",
                                 "remove it so that plexhub creates an unprivileged one")
    return entry.pw_uid, entry.pw_gid


def interpreter_paths(cmd: list[str]) -> list[Path]:
    """What the server's account must reach: this Python, its libraries, the Jupyter data
    folders (kernel specs, lab extensions), the plexhub sources, and the programs of ``cmd``
    with the interpreters of their ``#!`` lines."""
    import sysconfig

    import jupyter_core.paths

    import plexhub

    paths = {Path(sys.executable), Path(os.path.realpath(sys.executable)), Path(sys.prefix),
             Path(sys.base_prefix), Path(sysconfig.get_paths()["stdlib"]),
             Path(plexhub.__file__).resolve().parents[1]}
    paths |= {Path(p) for p in sys.path if p}
    paths |= {Path(p) for p in jupyter_core.paths.jupyter_path()}
    for program in cmd[:1]:
        paths |= {Path(program), Path(os.path.realpath(program))}
        try:
            with open(program, "rb") as f:
                first = f.readline(512)
        except OSError:
            continue
        if first.startswith(b"#!") and first[2:].split():
            interpreter = os.fsdecode(first[2:].split()[0])
            paths |= {Path(interpreter), Path(os.path.realpath(interpreter))}
    return sorted({p.absolute() for p in paths if p.absolute() != Path("/") and p.exists()})


NOTEBOOKS_DIR = "plexhub"  # the project's notebooks in each home
QUICKSTART = "viewer-quickstart.ipynb"
NEWS_SETTINGS = Path(".jupyter", "lab", "user-settings", "@jupyterlab", "apputils-extension",
                     "notification.jupyterlab-settings")


def project_notebooks() -> Path | None:
    """The project's notebooks: ``notebooks/`` of a checkout, else the copy a wheel installs
    under ``<prefix>/share/plexhub/notebooks``; None when neither exists."""
    for folder in (Path(__file__).resolve().parents[1] / "notebooks",
                   Path(sys.prefix) / "share" / "plexhub" / "notebooks"):
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            return folder
    return None


def prepare_home(home: Path, notebooks: Path | None,
                 owner: tuple[int, int] | None = None) -> list[Path]:
    """Copy ``notebooks/*.ipynb`` into ``home/plexhub/`` where missing and switch JupyterLab's
    news off where the user has no notification settings; returns what was created (chowned
    to ``owner`` (uid, gid) when given). Existing files are never touched."""
    created: list[Path] = []

    def made(path: Path) -> None:
        created.append(path)
        if owner is not None:
            os.chown(path, *owner)

    def folder(path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not p.exists() and home in p.parents]
        for p in reversed(missing):
            p.mkdir(mode=0o700)
            made(p)

    if notebooks is not None:
        target = home / NOTEBOOKS_DIR
        folder(target)
        for src in sorted(notebooks.glob("*.ipynb")):
            dst = target / src.name
            if not dst.exists():
                shutil.copyfile(src, dst)
                dst.chmod(0o600)
                made(dst)
    news = home / NEWS_SETTINGS
    if not news.exists():
        folder(news.parent)
        news.write_text('{"fetchNews": "false"}\n')
        news.chmod(0o600)
        made(news)
    return created


def fence(uid: int, gid: int, home: Path, needed: list[Path],
          hidden: list[Path]) -> Callable[[], None]:
    """The ``preexec_fn`` of a user's server: runs in the forked child, as root, before the
    server's program (see the module's docstring). Everything it needs is computed before."""

    def preexec() -> None:
        if isolation.enter_namespaces(mount_only=True):
            isolation.private_mounts(needed, hidden, TMP_BYTES, uid, gid, PROC_OPTIONS)
        isolation.drop_privileges(uid, gid)
        os.umask(0o077)
        os.chdir(home)

    return preexec


class PlexhubSpawner(SimpleLocalProcessSpawner):  # type: ignore[misc]
    """See the module's docstring."""

    isolate = Bool(help="Run each user's server as its own unprivileged OS account "
                        "(needs a hub running as root; default: whether it does).").tag(
        config=True)
    hidden_paths = List(Unicode(), help="Folders the servers see as empty: the data folder, "
                        "the catalog's folder, the hub's state.").tag(config=True)

    @default("isolate")
    def _default_isolate(self) -> bool:
        return os.geteuid() == 0

    @property
    def account(self) -> str:
        return account_name(str(self.user.name))

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        if not self.isolate:
            return super().make_preexec_fn(name)  # type: ignore[no-any-return]
        home = Path(self.home_dir)
        uid, gid = ensure_account(self.account, home)
        home.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, uid, gid)
        home.chmod(0o700)
        needed = [*interpreter_paths(list(self.cmd)), home]
        homes = home.parent
        hidden = sorted({Path(p).absolute() for p in self.hidden_paths} | {homes})
        return fence(uid, gid, home, needed, hidden)

    def _first_start(self, home: Path, owner: tuple[int, int] | None) -> None:
        created = prepare_home(home, project_notebooks(), owner)
        quickstart = home / NOTEBOOKS_DIR / QUICKSTART
        if quickstart in created:  # the first start: JupyterLab opens on the quick start
            self.default_url = f"/lab/tree/{NOTEBOOKS_DIR}/{QUICKSTART}"

    async def start(self) -> Any:
        # before the server's command line and environment are made (default_url)
        home = Path(self.home_dir)
        owner = None
        if self.isolate:
            owner = ensure_account(self.account, home)
            home.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if owner is not None:
            os.chown(home, *owner)
        self._first_start(home, owner)
        return await super().start()

    def user_env(self, env: dict[str, Any]) -> dict[str, Any]:
        env = super().user_env(env)
        if self.isolate:
            env["USER"] = env["LOGNAME"] = self.account
        return env

    def get_env(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_env()
        env["PATH"] = with_bin_first(env.get("PATH") or os.defpath)
        return env


def with_bin_first(path: str) -> str:
    """``path`` with this environment's ``bin`` (plexhub, jupyter) first, once."""
    bin_dir = str(Path(sys.executable).parent)
    return os.pathsep.join([bin_dir, *(p for p in path.split(os.pathsep) if p != bin_dir)])
