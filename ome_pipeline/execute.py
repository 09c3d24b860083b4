"""Running conversion tasks on Dask, with progress and durable checkpoints.

Local runs use Dask's threaded scheduler (``settings.workers`` threads); with
``settings.dask_scheduler`` set, tasks go to that dask.distributed cluster. Either way the
driver merges each task's histograms as it finishes and, every ``checkpoint_seconds``,
writes the set of finished tasks and the merged histograms to ``.plexhub/state.npz`` in one
atomic write, which is what a resumed conversion starts from.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from plexhub.ome_pipeline.chunkio import OutputStore
from plexhub.ome_pipeline.diskwrite import PendingWrites, release_buffers
from plexhub.ome_pipeline.histogram import NKEYS, PartialHistogram
from plexhub.ome_pipeline.source import SourceImage
from plexhub.ome_pipeline.writer import ImagePlan, Task, TaskResult, run_task
from plexhub.settings import Settings
from plexhub.storage import forwarding_credentials

STATE_KEY = ".plexhub/state.npz"
# the client of the conversion running in this thread: (scheduler address, Client)
_CLIENT: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "plexhub_dask_client", default=None)


class Accumulator:
    """Finished task ids and merged histograms, updated together under one lock."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.done: set[str] = set()
        self.hists: dict[tuple[str, int], PartialHistogram] = {}
        self.lock = threading.Lock()

    def record(self, result: TaskResult) -> None:
        with self.lock:
            if result.task_id in self.done:
                return
            for c, h in result.histograms.items():
                self.hists.setdefault((result.image_key, c), PartialHistogram.empty()).merge(h)
            self.done.add(result.task_id)

    def histogram(self, image_key: str, channel: int) -> PartialHistogram:
        return self.hists.get((image_key, channel), PartialHistogram.empty())

    def to_bytes(self) -> bytes:
        """One .npz: fingerprint, finished ids and each histogram's non-zero key range."""
        with self.lock:
            keys = sorted(self.hists)
            spans, parts = [], []
            for k in keys:
                counts = self.hists[k].counts
                nz = np.flatnonzero(counts)
                lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
                spans.append((lo, hi))
                parts.append(counts[lo:hi])
            arrays: dict[str, Any] = {
                "fingerprint": np.array(self.fingerprint),
                "done": np.array(sorted(self.done), dtype=str),
                "hist_keys": np.array([f"{k}\x00{c}" for k, c in keys], dtype=str),
                "hist_spans": np.array(spans, np.int64).reshape(-1, 2),
                "hist_counts": np.concatenate(parts) if parts else np.zeros(0, np.int64),
                "hist_range": np.array([[self.hists[k].vmin, self.hists[k].vmax]
                                        for k in keys], np.float64).reshape(-1, 2),
            }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Accumulator:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            acc = cls(str(z["fingerprint"]))
            acc.done = set(z["done"].tolist())
            flat, start = z["hist_counts"], 0
            for key, (lo, hi), (vmin, vmax) in zip(z["hist_keys"].tolist(), z["hist_spans"],
                                                   z["hist_range"], strict=True):
                image_key, _, c = key.partition("\x00")
                counts = np.zeros(NKEYS, np.int64)
                counts[lo:hi] = flat[start:start + hi - lo]
                start += hi - lo
                acc.hists[(image_key, int(c))] = PartialHistogram(counts, float(vmin),
                                                                  float(vmax))
        return acc


class Checkpointer:
    def __init__(self, store: OutputStore, acc: Accumulator, every: float) -> None:
        self.store, self.acc, self.every = store, acc, every
        self.last = time.monotonic()

    def maybe(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.store.put(STATE_KEY, self.acc.to_bytes())
            self.last = now


def _execute(plan: ImagePlan, task: Task, image: SourceImage | None, store: OutputStore,
             acc: Accumulator, *, writes: list[PendingWrites]) -> None:
    # the task's last shards may still be on their way to disk: the next task starts now and
    # the task counts as done (for the checkpoint) only once they are written
    pending = PendingWrites()
    writes.append(pending)
    result = run_task(plan, task, image, store, pending)
    pending.when_done(lambda: acc.record(result))


def run_tasks(jobs: list[tuple[ImagePlan, Task, SourceImage | None]], store: OutputStore,
              acc: Accumulator, settings: Settings,
              on_done: Callable[[ImagePlan, Task], None]) -> None:
    """Run ``jobs`` (independent tasks of one pass) and call ``on_done`` after each."""
    if not jobs:
        return
    if settings.dask_scheduler:
        _run_distributed(jobs, store, acc, settings.dask_scheduler, on_done,
                         forward=settings.dask_forward_credentials)
        return
    import dask.threaded
    from dask.callbacks import Callback

    by_key = {task.id: (plan, task) for plan, task, _ in jobs}
    writes: list[PendingWrites] = []
    # (the list goes in through partial: dask would copy a list found among a task's args)
    execute = functools.partial(_execute, writes=writes)
    dsk = {task.id: (execute, plan, task, image, store, acc) for plan, task, image in jobs}

    class _Progress(Callback):
        def _posttask(self, key: str, result: Any, dsk: Any, state: Any, wid: Any) -> None:
            on_done(*by_key[key])

    # our own pool, so that after a failure we wait for the tasks still running before the
    # caller cleans up (dask re-raises at once and leaves running tasks to finish)
    pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="plexhub-convert")
    try:
        with _Progress():  # type: ignore[no-untyped-call]
            dask.threaded.get(dsk, list(dsk), pool=pool)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for pending in writes:
            pending.wait(quiet=True)
        raise
    pool.shutdown(wait=True)
    for pending in writes:  # the next pass reads what this one wrote
        pending.wait()
    release_buffers()


@contextlib.contextmanager
def distributed_client(address: str | None) -> Iterator[None]:
    """One dask.distributed client for every pass of a conversion (nothing without an
    ``address``): connecting costs a round of handshakes and the scheduler's bookkeeping."""
    if not address:
        yield
        return
    from distributed import Client

    with Client(address) as client:  # type: ignore[no-untyped-call]
        token = _CLIENT.set((address, client))
        try:
            yield
        finally:
            _CLIENT.reset(token)


def _run_distributed(jobs: list[tuple[ImagePlan, Task, SourceImage | None]],
                     store: OutputStore, acc: Accumulator, address: str,
                     on_done: Callable[[ImagePlan, Task], None], *,
                     forward: bool = True) -> None:
    current = _CLIENT.get()
    if current is not None and current[0] == address:
        _submit_all(current[1], jobs, store, acc, on_done, forward)
        return
    with distributed_client(address):
        current = _CLIENT.get()
        assert current is not None
        _submit_all(current[1], jobs, store, acc, on_done, forward)


def in_flight(client: Any) -> int:
    """How many tasks are submitted ahead: twice the cluster's threads (at least 8), so no
    worker waits for work while each task is pickled (with fresh credentials) shortly
    before it runs, not when a long pass started."""
    try:
        threads = int(sum(client.nthreads().values()))
    except Exception:  # a scheduler that does not answer now: the next call reports it
        threads = 0
    return max(8, 2 * threads)


def _submit_all(client: Any, jobs: list[tuple[ImagePlan, Task, SourceImage | None]],
                store: OutputStore, acc: Accumulator,
                on_done: Callable[[ImagePlan, Task], None], forward: bool = True) -> None:
    """Run ``jobs`` on the cluster, submitting them a window at a time. Each submission
    pickles the task's store and source with the storage credentials this process holds
    then (``forward``; see :func:`plexhub.storage.forwarding_credentials`), so a long
    conversion picks up rotated credentials; with ``forward`` false nothing is forwarded
    and the workers use their own (IRSA, instance profiles)."""
    from distributed import as_completed

    waiting = list(reversed(jobs))
    futures: dict[Any, tuple[ImagePlan, Task]] = {}

    def submit() -> Any:
        plan, task, image = waiting.pop()
        with forwarding_credentials(forward):
            fut = client.submit(run_task, plan, task, image, store, pure=False,
                                key=f"plexhub-{task.id}-{time.time_ns()}")
        futures[fut] = (plan, task)
        return fut

    first = [submit() for _ in range(min(in_flight(client), len(waiting)))]
    running = as_completed(first)  # type: ignore[no-untyped-call]
    for fut in running:
        acc.record(fut.result())
        on_done(*futures.pop(fut))
        fut.release()
        if waiting:
            running.add(submit())  # type: ignore[no-untyped-call]
