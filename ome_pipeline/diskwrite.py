"""Whole-file writes to a local disk that skip the page cache, on a background I/O thread.

Why: converting the 8 x 10,000^2 bench file writes 1.3 GB. Copying that into the page cache cost
~2 s of system CPU on our ext4-on-virtio machines (perf: ``copy_folio_from_iter_atomic``, a
fifth of the conversion's CPU) and the pages then had to be written back anyway. Written with
``O_DIRECT`` from reused page-aligned buffers, the conversion's system CPU fell from 2.5-3.3 s
to 0.9-1.1 s and its wall time (convert() without validation, 3 interleaved pairs) from
5.1-5.8 s to 4.6-4.7 s: the wait for the device is spent on the I/O thread while the task goes
on computing.

A caller copies an object's parts into a pooled aligned buffer (the one copy ``b"".join``
made before), hands it to the I/O thread and collects the outcome with
:meth:`PendingWrites.wait` before it reports its task done, so a task that finished has its
files written under their final names (written to a temporary name, then renamed).
Filesystems that refuse ``O_DIRECT`` (tmpfs on older kernels, some network and FUSE mounts)
get a buffered write instead, and the store stops asking.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

ALIGN = 4096  # O_DIRECT wants offsets, lengths and memory aligned to the logical block size
# smaller objects are written at once through the page cache: the many ~0.3 MB chunk files
# of an NGFF 0.4 store gained nothing from O_DIRECT (measured), the 1-5 MB shards of 0.5 do
DIRECT_MIN_BYTES = 1 << 20
WRITEBACK_BYTES = 256 * 1024  # buffered writes from this size on start their writeback at once
# buffers filled or being written at once: one on the I/O thread, one being filled by each of
# the two default workers (measured: the workers waited 0.01 s in all for a buffer with 4)
IN_FLIGHT = 3
O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_FADVISE = hasattr(os, "posix_fadvise")

Parts = Sequence[bytes | bytearray | memoryview]


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


class _Buffers:
    """Page-aligned anonymous buffers, reused: fresh pages cost a fault and a zeroing each,
    so every buffer is made as large as the largest object seen (no churn between the large
    level-0 shards and the smaller ones of the levels below)."""

    def __init__(self, count: int) -> None:
        self._slots = threading.BoundedSemaphore(count)
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self._largest = 0

    def take(self, size: int) -> mmap.mmap:
        self._slots.acquire()  # blocks while `count` buffers wait for the disk
        with self._lock:
            self._largest = max(self._largest, size)
            for i, buf in enumerate(self._free):
                if len(buf) >= size:
                    return self._free.pop(i)
            if self._free:
                _unmap(self._free.pop())  # too small for this one: replace it
            capacity = _round_up(self._largest, 1 << 20)
        try:
            return mmap.mmap(-1, capacity)
        except BaseException:
            self._slots.release()
            raise

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            self._free.append(buf)
        self._slots.release()

    def trim(self) -> None:
        """Unmap the buffers not in use (the next write makes new ones)."""
        with self._lock:
            free, self._free, self._largest = self._free, [], 0
        for buf in free:
            _unmap(buf)


def _unmap(buf: mmap.mmap) -> None:
    # a view of it may outlive a failed write (in an exception's traceback): then the
    # garbage collector unmaps it once that is gone
    with contextlib.suppress(BufferError):
        buf.close()


_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_buffers = _Buffers(IN_FLIGHT)


def _io_thread() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="plexhub-io")
        return _executor


def _after_fork() -> None:  # a forked child has the pool object but not its thread
    global _executor, _buffers, _lock
    _executor, _buffers, _lock = None, _Buffers(IN_FLIGHT), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def release_buffers() -> None:
    """Give the idle write buffers back to the system (after a conversion pass: a long-lived
    process, e.g. the API, should not keep tens of MB for the next conversion)."""
    _buffers.trim()


class DirectFlag:
    """Whether a folder's filesystem still takes ``O_DIRECT`` (cleared on its first refusal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and O_DIRECT != 0
        self.direct_files = 0
        self.buffered_files = 0


class PendingWrites:
    """The background writes of one task; :meth:`wait` before the task reports done."""

    def __init__(self) -> None:
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self._left = 0
        self._failed = False
        self._then: Callable[[], None] | None = None
        self._then_error: BaseException | None = None
        self._idle = threading.Event()  # set while nothing (write or callback) is running
        self._idle.set()

    def add(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.append(future)
            self._left += 1
            self._idle.clear()
        future.add_done_callback(self._one_done)

    def _one_done(self, future: Future[None]) -> None:
        with self._lock:
            self._left -= 1
            self._failed = self._failed or future.cancelled() or future.exception() is not None
            if self._left:
                return
            then, self._then = (None if self._failed else self._then), None
        try:
            if then is not None:
                then()
        except BaseException as exc:  # kept for wait(): Future swallows a callback's errors
            self._then_error = exc
        finally:
            self._idle.set()

    def when_done(self, then: Callable[[], None]) -> None:
        """Call ``then`` (on the I/O thread, or here if nothing is pending) once every write
        added so far is done; never if one failed (``wait`` raises that failure)."""
        with self._lock:
            if self._left:
                self._then = then
                return
            failed = self._failed
        if not failed:
            then()

    def wait(self, *, quiet: bool = False) -> None:
        """Wait for every write and the ``when_done`` call; raise the first failure unless
        ``quiet``."""
        self._idle.wait()
        first = next((exc for fut in self._futures if (exc := fut.exception()) is not None),
                     self._then_error)
        self._futures.clear()
        if first is not None and not quiet:
            raise first


def write_now(path: str, tmp: str, parts: Parts) -> None:
    """A buffered write of ``parts`` to ``tmp``, renamed to ``path``."""
    size = sum(len(p) for p in parts)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, parts)
            if size >= WRITEBACK_BYTES and _FADVISE:
                # start writing it to disk now instead of leaving GBs of dirty pages for the end
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_soon(path: str, tmp: str, parts: Parts, flag: DirectFlag,
               pending: PendingWrites) -> None:
    """Copy ``parts`` into an aligned buffer and write it on the I/O thread."""
    size = sum(len(p) for p in parts)
    buf = _buffers.take(size + ALIGN)
    try:
        off = 0
        for p in parts:
            buf[off:off + len(p)] = p
            off += len(p)
        pending.add(_io_thread().submit(_finish, path, tmp, buf, size, flag))
    except BaseException:
        _buffers.give(buf)
        raise


def _finish(path: str, tmp: str, buf: mmap.mmap, size: int, flag: DirectFlag) -> None:
    try:
        with memoryview(buf) as view:
            if flag.enabled and _write_direct(tmp, view, size, flag):
                flag.direct_files += 1
            else:
                write_now(path, tmp, [view[:size]])
                flag.buffered_files += 1
                return
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    finally:
        _buffers.give(buf)


def _write_direct(tmp: str, view: memoryview, size: int, flag: DirectFlag) -> bool:
    """Write ``view[:size]`` to ``tmp`` with O_DIRECT; False if the filesystem refuses it."""
    padded = _round_up(size, ALIGN)
    view[size:padded] = bytes(padded - size)  # the tail past `size` is cut off below
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | O_DIRECT,
                     0o644)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        flag.enabled = False
        return False
    try:
        off = 0
        while off < padded:
            off += os.pwrite(fd, view[off:padded], off)
        os.ftruncate(fd, size)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        flag.enabled = False  # the open was taken, the write not (alignment): go buffered
        return False
    finally:
        os.close(fd)
    return True


def _write_all(fd: int, parts: Parts) -> None:
    for p in parts:
        view = memoryview(p).cast("B")
        while view:
            view = view[os.write(fd, view):]


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
