"""Conversion jobs and tier moves (``Job.kind`` "tier", ``api/tiermove.py``): queued in the
catalog, run in a small thread pool (each conversion fans out on Dask itself), with progress,
cancellation and retry (a tier move is asked for again instead).

Several processes (``plexhub serve --workers N``, replicas on several hosts sharing one
PostgreSQL, ``plexhub worker``) may run job runners side by side. A job is *leased*: a runner
claims a queued job with one conditional UPDATE (only one claim can succeed; on PostgreSQL
under an advisory lock, so the service-wide limit holds for simultaneous claims), renews the
lease every ``HEARTBEAT`` seconds (``PLEXHUB_JOB_HEARTBEAT_SECONDS``) while it converts, and
gives the job back to the queue when it stops. A job whose owner stopped heartbeating (killed,
host lost) is queued again within ``LEASE`` seconds (``PLEXHUB_JOB_LEASE_SECONDS``) of its
last renewal, one whose owner on this host is no longer running at once, and any runner picks
it up; the conversion resumes from its checkpoint. A cancel is stored on the job, so the
process that runs it sees it whichever process received the request."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from plexhub.api import audit, tiermove
from plexhub.api.db import Database, aware, utcnow
from plexhub.api.ingest import full_checksum
from plexhub.api.models import FINISHED, Image, Job, JobState, Study
from plexhub.errors import ConflictError, NotFoundError, PlexhubError
from plexhub.ome_pipeline.conversion import ConversionResult, Progress
from plexhub.policies.access import Principal
from plexhub.settings import Settings
from plexhub.storage import DEFAULT_ROOT, StoreRoots, is_url

log = logging.getLogger("plexhub.api.jobs")
ImageHook = Callable[[Session, Image], None]
HOST = socket.gethostname()
CLAIM_LOCK_KEY = int.from_bytes(b"plexjob", "big")  # PostgreSQL advisory lock of job claims


class JobCancelled(Exception):
    """Raised inside a conversion's progress callback to stop it (its checkpoint stays)."""


def store_key(study_code: str, fingerprint: str) -> str:
    """Where a conversion writes an image's store, relative to the default storage root
    (``PLEXHUB_STORE_ROOT``): the same key for every attempt, so a job taken over resumes
    from the checkpoint its earlier owner left there."""
    return f"{study_code}/{fingerprint[:24]}.ome.zarr"


def store_path(settings: Settings, study_code: str, fingerprint: str) -> str:
    """The absolute folder or URL of :func:`store_key` under the default root."""
    return StoreRoots.from_settings(settings).resolve(
        DEFAULT_ROOT, store_key(study_code, fingerprint)).url


def _owner_gone(owner: str | None) -> bool:
    """True when ``owner`` (``host:pid:nonce``) names a process of this host that has exited."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False  # another host: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobRunner:
    # defaults of PLEXHUB_JOB_HEARTBEAT_SECONDS and PLEXHUB_JOB_LEASE_SECONDS
    HEARTBEAT = 2.0  # seconds between lease renewals (and queue polls)
    LEASE = 30.0  # a running job whose owner was silent this long has been queued again

    def __init__(self, db: Database, settings: Settings,
                 image_hooks: Iterable[ImageHook] = ()) -> None:
        """``image_hooks``: called with the session and each image a conversion made ready,
        before the commit (the app factory adds the default preset's)."""
        self.db = db
        self.settings = settings
        self.HEARTBEAT = settings.job_heartbeat_seconds
        self.LEASE = settings.job_lease_seconds
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pool = ThreadPoolExecutor(settings.max_concurrent_jobs,
                                       thread_name_prefix="plexhub-job")
        self.cancel_events: dict[str, threading.Event] = {}
        self.image_hooks: list[ImageHook] = list(image_hooks)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._mine: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start claiming queued jobs (also those a stopped process left running)."""
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # after a fork, too
        self._stopping.clear()
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="plexhub-jobs", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop: running conversions stop at their next step and go back to the queue."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            for job_id in self._mine:
                self.cancel_events.setdefault(job_id, threading.Event()).set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def submit(self, job_id: str) -> None:
        """A job was queued: claim it now if there is room (any runner may take it)."""
        self._wake.set()

    # ------------------------------------------------------------------ leases

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.HEARTBEAT)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.tick()
            except Exception:  # the database may be briefly unreachable: try again later
                log.exception("job runner tick failed")

    def tick(self) -> None:
        """Renew our leases, requeue orphaned jobs, claim queued ones while there is room."""
        now = utcnow()
        with self._lock:
            mine = set(self._mine)
        with self.db.session() as s:
            if mine:
                s.execute(update(Job).where(Job.id.in_(mine), Job.owner == self.owner,
                                            Job.state == JobState.RUNNING).values(heartbeat_at=now))
                for job_id, wanted, owner in s.execute(
                        select(Job.id, Job.cancel_requested, Job.owner)
                        .where(Job.id.in_(mine))).all():
                    if wanted or owner != self.owner:  # cancelled, or the lease was lost
                        self.cancel_events.setdefault(job_id, threading.Event()).set()
            # the next tick comes at most a heartbeat later: a job silent for a full lease
            # has been queued again by then (and claimed by a runner with room)
            stale = now - timedelta(seconds=self.LEASE - self.HEARTBEAT)
            for job in s.scalars(select(Job).where(Job.state == JobState.RUNNING)):
                if job.owner == self.owner:
                    if job.id in mine:
                        continue
                    # ours but no longer running here (its thread ended without finishing it,
                    # e.g. the catalog was unreachable at that moment): queue it again
                    log.warning("job %s: left running by this process; queued again", job.id)
                    job.state, job.owner = JobState.QUEUED, None
                    continue
                if job.heartbeat_at is None or aware(job.heartbeat_at) < stale \
                        or _owner_gone(job.owner):
                    log.warning("job %s: owner %s stopped; queued again", job.id, job.owner)
                    job.state, job.owner = JobState.QUEUED, None
            if mine or s.dirty:  # an idle tick commits nothing: every commit of this process
                s.commit()       # drops the tile routes' cached lookups (api/tiles.Resolved)
            room = self.settings.max_concurrent_jobs - len(mine)
            if room <= 0 or self._stopping.is_set():
                return
            queued = s.scalars(select(Job.id).where(Job.state == JobState.QUEUED)
                               .order_by(Job.created_at, Job.id).limit(room * 4)).all()
        for job_id in queued:
            if room <= 0:
                break
            if self._claim(job_id):
                room -= 1
                with self._lock:
                    self._mine.add(job_id)
                    self.cancel_events[job_id] = threading.Event()
                self.pool.submit(self._run_safely, job_id)

    def _claim(self, job_id: str) -> bool:
        """One conditional UPDATE: queued -> running by us, while fewer than the allowed
        number of jobs run service-wide.

        On PostgreSQL (READ COMMITTED) two such UPDATEs of different jobs would each count
        the running jobs before the other commits, and both win; claims therefore take a
        transaction-level advisory lock first, so the count is taken after the previous
        claim committed. SQLite runs one writer at a time anyway."""
        running = select(func.count()).select_from(Job).where(Job.state == JobState.RUNNING) \
            .scalar_subquery()
        now = utcnow()
        with self.db.session() as s:
            if self.db.engine.dialect.name == "postgresql":  # released at the commit
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
            res = s.execute(update(Job).where(
                Job.id == job_id, Job.state == JobState.QUEUED,
                running < self.settings.max_concurrent_jobs).values(
                state=JobState.RUNNING, owner=self.owner, heartbeat_at=now, started_at=now,
                progress=0.0, cancel_requested=False).execution_options(
                synchronize_session=False))
            s.commit()
            return bool(getattr(res, "rowcount", 0) == 1)

    def _release(self, job_id: str) -> None:
        """Give a job we were running back to the queue (service stopping)."""
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.owner == self.owner,
                                        Job.state == JobState.RUNNING)
                      .values(state=JobState.QUEUED, owner=None).execution_options(
                          synchronize_session=False))
            s.commit()

    # ------------------------------------------------------------------ requests

    def cancel(self, job_id: str, actor: Principal | str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            if job.state in FINISHED:
                raise ConflictError(f"job {job_id}", f"is already {job.state}")
            code = _study_code(s, job)
            before = {"state": job.state}
            if job.state == JobState.QUEUED:
                job.state, job.finished_at = JobState.CANCELLED, utcnow()
                if job.kind == tiermove.KIND:  # its images go back to their tier
                    tiermove.revert_images(s, job, code, "cancelled")
            else:
                job.cancel_requested = True  # the owner stops it, whichever process that is
            audit.record(s, actor, "job.cancel", "job", job_id, study_code=code, before=before,
                         after={"state": "cancelling" if job.state == JobState.RUNNING
                                else JobState.CANCELLED})
            s.commit()
        ev = self.cancel_events.get(job_id)
        if ev is not None:
            ev.set()
        return self.wait_state(job_id, FINISHED,
                               timeout=self.HEARTBEAT * 5)

    def retry(self, job_id: str, actor: Principal | str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            if job.state not in (JobState.FAILED, JobState.CANCELLED):
                raise ConflictError(f"job {job_id}", f"is {job.state}; only failed or cancelled "
                                    "jobs can be retried")
            if job.kind == tiermove.KIND:
                raise ConflictError(f"job {job_id}", "is a tier move",
                                    "ask for the move again: POST /api/v1/images/{id}/tier "
                                    "or /restore")
            audit.record(s, actor, "job.retry", "job", job_id, study_code=_study_code(s, job),
                         before={"state": job.state}, after={"state": JobState.QUEUED})
            job.state, job.error, job.progress = JobState.QUEUED, None, 0.0
            job.started_at = job.finished_at = None
            job.owner, job.cancel_requested = None, False
            s.commit()
        self.submit(job_id)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            return job

    def wait_state(self, job_id: str, states: Collection[str], timeout: float) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.state in states or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    # ------------------------------------------------------------------ the work

    def _run_safely(self, job_id: str) -> None:
        try:
            self._run(job_id)
        except Exception:  # never lose a job silently
            log.exception("job %s crashed", job_id)
            self._finish(job_id, JobState.FAILED, "internal error while converting; see the logs")
        finally:
            with self._lock:
                self._mine.discard(job_id)
                self.cancel_events.pop(job_id, None)
            self._wake.set()  # room for the next queued job

    def progress_reporter(self, job_id: str) -> Callable[[float], None]:
        """A progress callback for job ``job_id``: :class:`JobCancelled` once the job is
        cancelled; otherwise the fraction (below 1 until the job ends) and the lease's
        heartbeat, written at most every 0.5 s and at the end."""
        cancel = self.cancel_events.setdefault(job_id, threading.Event())
        last = [0.0]

        def report(fraction: float) -> None:
            if cancel.is_set():
                raise JobCancelled(job_id)
            now = time.monotonic()
            if now - last[0] >= 0.5 or fraction >= 1.0:
                last[0] = now
                with self.db.session() as s:
                    s.execute(update(Job).where(Job.id == job_id, Job.owner == self.owner)
                              .values(progress=round(min(fraction, 0.99), 4),
                                      heartbeat_at=utcnow())
                              .execution_options(synchronize_session=False))
                    s.commit()

        return report

    def _run(self, job_id: str) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != JobState.RUNNING or job.owner != self.owner:
                return
            kind = job.kind
            study = s.get(Study, job.study_id)
            assert study is not None
            src, fp, params, code = job.source_uri, job.fingerprint, dict(job.params), study.code
        if kind == tiermove.KIND:  # a store moving between storage roots (api/tiermove.py)
            tiermove.run(self, job_id)
            return
        report = self.progress_reporter(job_id)

        def progress(p: Progress) -> None:
            report(p.fraction)

        from plexhub.ome_pipeline import convert

        # a URL root: written in place, straight to the object store (nothing on local disk);
        # the store is published by _register (the catalog is the commit point)
        dst = store_path(self.settings, code, fp)
        if not is_url(dst):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
        try:
            result = convert(src, dst, ngff_version=params.get("ngff_version"),
                             overwrite=True, progress=progress, show_progress=False,
                             settings=self.settings)
        except JobCancelled:
            if self._stopping.is_set():
                self._release(job_id)  # another runner (or this service, restarted) resumes
            else:
                self._finish(job_id, JobState.CANCELLED, None)
            return
        except PlexhubError as exc:  # bad input; the destination not writable (named)
            self._finish(job_id, JobState.FAILED, str(exc))
            return
        except OSError as exc:  # reading the source failed: say what, not "internal error"
            log.warning("job %s: %s", job_id, exc)
            cause = (exc.strerror or str(exc) or type(exc).__name__).lower()
            self._finish(job_id, JobState.FAILED, f"{src}: could not be converted: {cause}")
            return
        checksum = full_checksum(src)
        self._register(job_id, result, checksum, code, store_key(code, fp))
        self._finish(job_id, JobState.DONE, None)

    def _register(self, job_id: str, result: ConversionResult, checksum: str,
                  study_code: str, key: str) -> None:
        with self.db.session() as s:
            images = s.scalars(select(Image).where(Image.job_id == job_id)
                               .order_by(Image.series_index)).all()
            for image, summary in zip(images, result.images, strict=False):
                panel: dict[str, str] = (image.metadata_ or {}).get("stain_panel") or {}
                image.name = summary.name
                image.storage_root, image.store_uri = DEFAULT_ROOT, key  # relative
                image.store_key = summary.path
                image.source_format = result.format
                image.ngff_version = result.ngff_version
                image.axes = summary.axes
                image.levels = [list(lv.shape) for lv in summary.levels]
                image.dtype = summary.dtype
                image.physical_sizes = {a: {"value": p.value, "unit": p.unit}
                                        for a, p in summary.physical_sizes.items()}
                image.channels = [{"index": c.index, "label": c.label,
                                   "marker": panel.get(c.label), "color": c.color}
                                  for c in summary.channels]
                image.checksum = checksum
                image.status = "ready"
                for hook in self.image_hooks:
                    hook(s, image)
                audit.record(s, "system", "image.ready", "image", image.id,
                             study_code=study_code,
                             after={"store": image.store_uri, "key": image.store_key,
                                    "checksum": checksum})
            s.commit()

    def _finish(self, job_id: str, state: JobState, error: str | None) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.owner != self.owner:
                return  # the lease was lost: the job's new owner finishes it
            job.state, job.error, job.finished_at = state, error, utcnow()
            job.owner, job.heartbeat_at = None, None
            if state == JobState.DONE:
                job.progress = 1.0
            if state == JobState.FAILED:
                for image in s.scalars(select(Image).where(Image.job_id == job_id)):
                    image.status = "failed"
            s.commit()


def _study_code(session: Session, job: Job) -> str | None:
    """The code of the study ``job`` belongs to (its audit events are filed under it)."""
    study = session.get(Study, job.study_id)
    return study.code if study is not None else None


def image_ids(session: Session, job_id: str) -> list[str]:
    job = session.get(Job, job_id)
    if job is not None and job.kind == tiermove.KIND:  # the images it moves
        return list(job.params.get("images", []))
    return list(session.scalars(select(Image.id).where(Image.job_id == job_id)
                                .order_by(Image.series_index)).all())


def job_public(session: Session, job: Job) -> dict[str, Any]:
    study = session.get(Study, job.study_id)
    return {"id": job.id, "state": job.state, "progress": job.progress, "error": job.error,
            "study": study.code if study else "", "source": job.source_uri,
            "image_ids": image_ids(session, job.id), "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at}
