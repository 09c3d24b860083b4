"""Notebooks executed at publication (``execute=true``) run in a sandbox, never as the API
service.

The service starts :mod:`plexhub.api.nbchild` in a new session with an empty environment
(no ``PLEXHUB_*``, no ``JUPYTERHUB_*``, no database URL), hands it the notebook on stdin
and gets the executed notebook back in an unlinked file, capped; the child switches to the
unprivileged ``PLEXHUB_NOTEBOOK_USER`` (``nobody``) with hard resource limits before the
kernel starts, and where the host allows it also gets namespaces of its own (no network, a
``/proc`` without the service, the data folder hidden). The service kills the whole sandbox
past ``PLEXHUB_NOTEBOOK_TIMEOUT``.

Switching users needs root. A service that is not root (or has no notebook user) never runs
the notebook as itself: ``execute=true`` is refused with a 422 that says how to publish an
executed notebook instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pwd
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import psutil
from sqlalchemy.engine import make_url

from plexhub.errors import ConfigurationError, InputError, PlexhubError
from plexhub.limits import NOTEBOOK_BYTES
from plexhub.settings import Settings

log = logging.getLogger("plexhub.api.notebooks")
HINT = ("run the notebook in your own JupyterLab, save it with its outputs, and publish it "
        "with execute=false")
GRACE = 30.0  # seconds for the sandbox's interpreter and kernel to start and stop
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"}
_HEADER_BYTES = 64 * 1024


def running_as_root() -> bool:
    return os.geteuid() == 0


def sandbox_account(settings: Settings) -> tuple[int, int]:
    """uid and gid of the notebook user, or the reason why notebooks cannot be executed."""
    name = settings.notebook_user
    if not name:
        raise InputError("execute=true", "is turned off on this server "
                         "(PLEXHUB_NOTEBOOK_USER is empty)", HINT)
    if not running_as_root():
        raise InputError("execute=true", "is not available: notebooks only run as the "
                         f"unprivileged user {name!r}, and switching to it needs an API "
                         "service started as root; this one is not, and never runs "
                         "notebook code as itself", HINT)
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise ConfigurationError(f"PLEXHUB_NOTEBOOK_USER {name!r}", "is not a user of this "
                                 "system", "create it, or name an unprivileged user such as "
                                 "nobody") from None
    if account.pw_uid == 0 or account.pw_gid == 0:
        raise ConfigurationError(f"PLEXHUB_NOTEBOOK_USER {name!r}", "has root's uid or gid",
                                 "name an unprivileged user such as nobody")
    return account.pw_uid, account.pw_gid


def hidden_folders(settings: Settings) -> list[str]:
    """Folders the sandbox replaces by empty ones (where it has namespaces): the data
    folder, and the folders of a SQLite catalog and of the hub's users file elsewhere."""
    folders = {settings.data_dir.absolute(), settings.hub_users_path.absolute().parent}
    url = make_url(settings.catalog_url)
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        folders.add(Path(str(url.database)).absolute().parent)
    return sorted(str(f) for f in folders if f != Path("/"))


def _request(nb_text: str, settings: Settings, uid: int, gid: int) -> bytes:
    return json.dumps({
        "notebook": nb_text, "uid": uid, "gid": gid, "timeout": settings.notebook_timeout,
        "cpu_seconds": math.ceil(settings.notebook_timeout) + 5,
        "memory": settings.notebook_memory_bytes,
        "processes": settings.notebook_max_processes,
        "file_bytes": settings.notebook_file_bytes, "hide": hidden_folders(settings),
        "namespaces": settings.notebook_namespaces,
    }).encode()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The sandbox (not yet reaped, so its pid is still its own), its process group and
    whatever it started (its PID namespace dies with it; without one, the descendants are
    killed one by one)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait()


def _tail(f: IO[bytes]) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - 2000))
    return f.read().decode(errors="replace").strip()


def _failure(header: dict[str, Any], settings: Settings) -> PlexhubError:
    kind, message = header.get("kind"), str(header.get("message", ""))[:400]
    if kind == "timeout":
        return InputError("notebook", f"has a cell that ran longer than "
                          f"{settings.notebook_timeout:g} s", "make it faster, or " + HINT)
    if kind == "cell":
        return InputError("notebook", f"failed when executed: {message}",
                          "fix the cell and publish again")
    if kind == "dead":
        return InputError("notebook", "killed its kernel when executed",
                          "it may have passed the sandbox's limits: "
                          f"{settings.notebook_memory_bytes // 2**20} MiB of memory, "
                          f"{settings.notebook_max_processes} processes, "
                          f"{settings.notebook_file_bytes // 2**20} MiB per file")
    if kind == "size":
        return InputError("notebook", f"is {message} once executed",
                          "clear or shrink large outputs")
    if kind == "nokernel":
        return PlexhubError("kernel python3", "is not installed on the server",
                            "install ipykernel next to plexhub")
    if kind == "setup":
        return ConfigurationError("the notebook sandbox", message, HINT)
    log.warning("notebook sandbox failed: %s", message)
    return PlexhubError("the notebook sandbox", "failed", "see the API service's log")


def execute(nb: Any, settings: Settings) -> Any:
    """Run every cell of ``nb`` in the sandbox; the executed notebook, or a
    :class:`PlexhubError` (422) that says what went wrong."""
    import nbformat

    uid, gid = sandbox_account(settings)
    text = str(nbformat.writes(nb))  # type: ignore[no-untyped-call]
    request = _request(text, settings, uid, gid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "plexhub.api.nbchild"],
                                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd="/",
                                env=CHILD_ENV, start_new_session=True)
        try:
            proc.communicate(request, timeout=settings.notebook_timeout + GRACE)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise InputError("notebook", f"ran longer than {settings.notebook_timeout:g} s "
                             "when executed", "make it faster, or " + HINT) from None
        except BaseException:
            _kill(proc)
            raise
        out.seek(0)
        line = out.readline(_HEADER_BYTES)
        try:
            header = json.loads(line)
        except ValueError:
            log.warning("notebook sandbox exited with %s and no answer: %s",
                        proc.returncode, _tail(err))
            raise PlexhubError("the notebook sandbox", "stopped without an answer",
                               "see the API service's log") from None
        if not header.get("ok"):
            raise _failure(header, settings)
        executed = out.read(NOTEBOOK_BYTES + 1)
    if len(executed) > NOTEBOOK_BYTES:
        raise InputError("notebook", f"is larger than {NOTEBOOK_BYTES // 2**20} MiB once "
                         "executed", "clear or shrink large outputs")
    log.info("notebook executed as %s (%s)", settings.notebook_user, header.get("isolation"))
    return nbformat.reads(executed.decode(), as_version=4)  # type: ignore[no-untyped-call]
