"""Operating-system fences around code a user wrote, used while still root, before any of it
runs: by the notebook sandbox (:mod:`plexhub.api.nbchild`, notebooks executed at publication)
and by the hub's spawner (:mod:`plexhub.hub.spawner`, each user's JupyterLab and kernels).

- :func:`enter_namespaces` then :func:`become_init`: new mount, PID, network, IPC and UTS
  namespaces where the host allows them (root with CAP_SYS_ADMIN; many containers do not);
- :func:`private_mounts`: a fresh ``/proc`` that shows only the sandbox's processes, a private
  ``/tmp``, the service's data folders under empty mounts nobody may read, and the Python
  installation reachable for the unprivileged user (a folder above it that user may not
  traverse, such as a 0700 ``/root``, is replaced by an empty one holding only what is needed);
- :func:`loopback_up`: the only network interface left is the sandbox's own loopback;
- :func:`limit_resources` and :func:`drop_privileges` (no supplementary groups, the user's
  uid/gid, ``no_new_privs``), which hold with or without namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import resource
import signal
import socket
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_UNAVAILABLE = {errno.EPERM, errno.EINVAL, errno.ENOSYS, errno.ENOSPC, errno.EUSERS}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: Path | str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(int(_libc.mount(_b(source), _b(str(target)), _b(fstype), flags, _b(data))),
           f"mount {target}")


def _prctl(option: int, value: int) -> None:
    _check(int(_libc.prctl(option, value, 0, 0, 0)), f"prctl {option}")


def enter_namespaces(mount_only: bool = False) -> bool:
    """Unshare mount, PID, network, IPC and UTS namespaces (with ``mount_only``: mount and
    IPC, for a server that must keep the host's network and its own pid); False where the
    host refuses."""
    flags = CLONE_NEWNS | CLONE_NEWIPC
    if not mount_only:
        flags |= CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS
    try:
        _check(int(_libc.unshare(flags)), "unshare")
    except OSError as exc:
        if exc.errno in _UNAVAILABLE:
            return False
        raise
    return True


def become_init() -> None:
    """Fork into the new PID namespace: the caller continues as its PID 1, the original
    process waits and leaves with its exit status (it never returns). When the original is
    killed (the service's wall clock), PID 1 gets SIGKILL, and with it every process of
    the namespace: nothing a notebook started outlives it."""
    pid = os.fork()
    if pid:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    die_with_parent()


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (again after every uid change, which
    clears it). A parent killed before this ran is covered by the service, which kills the
    sandbox's whole process group."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _traversable(st: os.stat_result, uid: int, gid: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _under(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def _overlay(folder: Path, keep: Iterable[Path], options: str) -> None:
    """Mount an empty tmpfs over ``folder`` and bind back the entries of ``folder`` that lead
    to ``keep`` (each bound from the original through an O_PATH descriptor)."""
    entries = sorted({folder / p.relative_to(folder).parts[0] for p in keep
                      if _under(p, folder)})
    fds = [(entry, os.open(entry, os.O_PATH | os.O_CLOEXEC)) for entry in entries]
    _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for entry, fd in fds:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            entry.mkdir()
        else:
            entry.touch()
        _mount(f"/proc/self/fd/{fd}", entry, None, MS_BIND | MS_REC)
        os.close(fd)


def _first_blocked(needed: Iterable[Path], uid: int, gid: int) -> Path | None:
    """The outermost folder above a needed path that ``uid`` may not traverse."""
    for path in needed:
        for folder in reversed(path.parents):
            try:
                if not _traversable(os.stat(folder), uid, gid):
                    return folder
            except OSError:
                break
    return None


def _mount_proc(options: str | None) -> None:
    """A fresh ``/proc``; with ``options`` (``hidepid=invisible``: only the user's own
    processes) where the kernel supports them per mount, without them where it does not."""
    if options is not None:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def private_mounts(needed: list[Path], hidden: list[Path], tmp_bytes: int, uid: int,
                   gid: int, proc_options: str | None = None) -> None:
    """The sandbox's view of the file system (see the module's docstring). A hidden folder
    that holds a needed path (a user's home in the hub's state folder) is replaced by an empty
    one that holds only the way to it."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount_proc(proc_options)
    _overlay(Path("/tmp"), needed, f"mode=1777,size={tmp_bytes}")
    with contextlib.suppress(OSError):  # no /dev/shm: nothing shared to hide either
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    for _ in range(16):
        blocked = _first_blocked(needed, uid, gid)
        if blocked is None:
            break
        _overlay(blocked, needed, "mode=0755,size=1m")
    for folder in hidden:
        if not folder.is_dir() or any(p == folder for p in needed):
            continue
        if any(_under(p, folder) for p in needed):
            _overlay(folder, needed, "mode=0755,size=1m")
        else:
            _mount("tmpfs", folder, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   "mode=000,size=4k")


def loopback_up() -> None:
    """Bring up ``lo`` in the new network namespace (the kernel's sockets need it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def limit_resources(memory: int, cpu_seconds: int, processes: int, file_bytes: int) -> None:
    """Hard limits (the notebook cannot raise them again) for this process and its
    children; RLIMIT_NPROC counts every process of the notebook user."""
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_NPROC, processes),
                         (resource.RLIMIT_FSIZE, file_bytes), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good: no supplementary groups, no way back to root, no
    privileges from setuid programs or file capabilities."""
    if uid == 0 or gid == 0:
        raise PermissionError("the sandbox never runs code as root")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise PermissionError("could not switch to the sandbox user")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PermissionError("the sandbox user could become root again")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
