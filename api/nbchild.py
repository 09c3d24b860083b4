"""The notebook sandbox: ``python -I -m plexhub.api.nbchild``, started as root by
:mod:`plexhub.api.nbsandbox` with an empty environment.

It reads one JSON request on stdin (the notebook and the limits), fences itself in
(:mod:`plexhub.isolation`: namespaces where the host allows them, resource limits, the
unprivileged user), and only then starts the ``python3`` kernel that runs the notebook's cells:
the kernel inherits all of it. The answer goes to the stdout it was given: one JSON line
(``{"ok": true, "isolation": ...}`` or ``{"ok": false, "kind": ..., "message": ...}``), then
the executed notebook. The kernel gets ``/dev/null`` as stdin and stdout; it needs no file of
the service's, and the service hands it none.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from plexhub import isolation
from plexhub.limits import NOTEBOOK_BYTES

KERNEL = "python3"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def interpreter_paths() -> list[Path]:
    """What the notebook user must be able to read: this Python, its libraries, the kernel
    specs, and the source tree of an editable plexhub."""
    import jupyter_core.paths

    import plexhub

    paths = {Path(sys.executable), Path(os.path.realpath(sys.executable)), Path(sys.prefix),
             Path(sys.base_prefix), Path(sysconfig.get_paths()["stdlib"]),
             Path(plexhub.__file__).resolve().parents[1]}
    paths |= {Path(p) for p in sys.path if p}
    paths |= {Path(p) for p in jupyter_core.paths.jupyter_path("kernels")}
    return sorted({p.absolute() for p in paths if p.absolute() != Path("/") and p.exists()})


def _readable(path: Path) -> bool:
    try:
        folder = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # a folder above it may not be traversed
        return False
    return os.access(path, os.R_OK | (os.X_OK if folder else 0))


def _fence(request: dict[str, Any]) -> tuple[Path, str]:
    """Everything before user code: namespaces, mounts, folder, limits, user. Returns the
    working folder and the isolation reached."""
    uid, gid = int(request["uid"]), int(request["gid"])
    needed = interpreter_paths()
    level = "user"
    if request["namespaces"] and isolation.enter_namespaces():
        isolation.become_init()
        isolation.private_mounts(needed, [Path(p) for p in request["hide"]],
                                 int(request["file_bytes"]), uid, gid)
        isolation.loopback_up()
        level = "namespaces"
    workdir = Path(tempfile.mkdtemp(prefix="plexhub-nb-", dir="/tmp"))
    os.chown(workdir, uid, gid)
    isolation.limit_resources(int(request["memory"]), int(request["cpu_seconds"]),
                              int(request["processes"]), int(request["file_bytes"]))
    isolation.drop_privileges(uid, gid)
    if level == "namespaces":
        isolation.die_with_parent()  # a uid change clears it
    missing = [p for p in needed if not _readable(p)]
    if missing:
        raise SandboxFailure("setup", f"the notebook user cannot read {missing[0]}, which the "
                             "kernel needs: install plexhub's Python where that user may "
                             "read it")
    os.environ.clear()
    os.environ.update({"PATH": f"{Path(sys.executable).parent}:{BASE_PATH}",
                       "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8",
                       "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    os.chdir(workdir)
    return workdir, level


def run(request: dict[str, Any]) -> tuple[str, str]:
    """Execute the request's notebook; (the executed notebook, the isolation reached)."""
    # imported while still root: nothing later needs to read the service's files
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    workdir, level = _fence(request)
    nb = nbformat.reads(request["notebook"], as_version=4)  # type: ignore[no-untyped-call]
    timeout = max(1, math.ceil(float(request["timeout"])))
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(cwd=str(workdir), env=dict(os.environ))
    except CellTimeoutError as exc:
        raise SandboxFailure("timeout", f"a cell ran longer than {timeout} s") from exc
    except CellExecutionError as exc:
        raise SandboxFailure("cell", f"{exc.ename}: {str(exc.evalue)[:300]}") from exc
    except DeadKernelError as exc:
        raise SandboxFailure("dead", "the kernel died") from exc
    except NoSuchKernel as exc:
        raise SandboxFailure("nokernel", f"no {KERNEL} kernel") from exc
    except RuntimeError as exc:  # "Kernel died before replying to kernel_info"
        raise SandboxFailure("dead", str(exc)[:300]) from exc
    text = str(nbformat.writes(nb))  # type: ignore[no-untyped-call]
    if len(text.encode()) > NOTEBOOK_BYTES:
        raise SandboxFailure("size", f"larger than {NOTEBOOK_BYTES // 2**20} MiB")
    return text, level


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    result = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    body = b""
    try:
        text, level = run(request)
        header: dict[str, Any] = {"ok": True, "isolation": level}
        body = text.encode()
    except SandboxFailure as exc:
        header = {"ok": False, "kind": exc.kind, "message": exc.message}
    except Exception as exc:  # reported to the service, which logs it
        header = {"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(result, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n" + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
