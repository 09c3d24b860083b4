"""Conversion jobs: queued in the catalog, run in a small thread pool (each conversion fans
out on Dask itself), with progress, cancellation and retry; unfinished jobs are picked up
again when the service restarts (the conversion resumes from its checkpoint)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.db import Database, utcnow
from plexhub.api.ingest import full_checksum
from plexhub.api.models import Image, Job, Study
from plexhub.errors import ConflictError, NotFoundError, PlexhubError
from plexhub.ome_pipeline.conversion import ConversionResult, Progress
from plexhub.settings import Settings

log = logging.getLogger("plexhub.api.jobs")
ImageHook = Callable[[Session, Image], None]


class JobCancelled(Exception):
    """Raised inside a conversion's progress callback to stop it (its checkpoint stays)."""


def store_path(settings: Settings, study_code: str, fingerprint: str) -> Path:
    return settings.stores_dir / study_code / f"{fingerprint[:24]}.ome.zarr"


class JobRunner:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.pool = ThreadPoolExecutor(settings.max_concurrent_jobs,
                                       thread_name_prefix="plexhub-job")
        self.cancel_events: dict[str, threading.Event] = {}
        self.image_hooks: list[ImageHook] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Requeue jobs a previous process left queued or running."""
        with self.db.session() as s:
            ids = s.scalars(select(Job.id).where(Job.state.in_(("queued", "running")))).all()
            for job in s.scalars(select(Job).where(Job.state == "running")):
                job.state = "queued"
            s.commit()
        for job_id in ids:
            self.submit(job_id)

    def shutdown(self) -> None:
        for ev in self.cancel_events.values():
            ev.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, job_id: str) -> None:
        with self._lock:
            self.cancel_events[job_id] = threading.Event()
        self.pool.submit(self._run_safely, job_id)

    def cancel(self, job_id: str, actor: str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            if job.state in ("done", "failed", "cancelled"):
                raise ConflictError(f"job {job_id}", f"is already {job.state}")
            before = {"state": job.state}
            if job.state == "queued":
                job.state, job.finished_at = "cancelled", utcnow()
            audit.record(s, actor, "job.cancel", "job", job_id, before=before,
                         after={"state": "cancelling" if job.state == "running" else "cancelled"})
            s.commit()
        ev = self.cancel_events.get(job_id)
        if ev is not None:
            ev.set()
        return self.wait_state(job_id, {"cancelled", "done", "failed"}, timeout=10.0)

    def retry(self, job_id: str, actor: str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            if job.state not in ("failed", "cancelled"):
                raise ConflictError(f"job {job_id}", f"is {job.state}; only failed or cancelled "
                                    "jobs can be retried")
            audit.record(s, actor, "job.retry", "job", job_id, before={"state": job.state},
                         after={"state": "queued"})
            job.state, job.error, job.progress = "queued", None, 0.0
            job.started_at = job.finished_at = None
            s.commit()
        self.submit(job_id)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id}", "not found")
            return job

    def wait_state(self, job_id: str, states: set[str], timeout: float) -> Job:
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
            self._finish(job_id, "failed", "internal error while converting; see the logs")

    def _run(self, job_id: str) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued":
                return
            study = s.get(Study, job.study_id)
            assert study is not None
            job.state, job.started_at, job.progress = "running", utcnow(), 0.0
            s.commit()
            src, fp, params, code = job.source_uri, job.fingerprint, dict(job.params), study.code
        cancel = self.cancel_events.setdefault(job_id, threading.Event())
        last = [0.0]

        def progress(p: Progress) -> None:
            if cancel.is_set():
                raise JobCancelled(job_id)
            now = time.monotonic()
            if now - last[0] >= 0.5 or p.fraction >= 1.0:
                last[0] = now
                with self.db.session() as s2:
                    j = s2.get(Job, job_id)
                    if j is not None:
                        j.progress = round(min(p.fraction, 0.99), 4)
                        s2.commit()

        from plexhub.ome_pipeline import convert

        dst = store_path(self.settings, code, fp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = convert(src, dst, ngff_version=params.get("ngff_version"),
                             overwrite=True, progress=progress, show_progress=False,
                             settings=self.settings)
        except JobCancelled:
            self._finish(job_id, "cancelled", None)
            return
        except PlexhubError as exc:
            self._finish(job_id, "failed", str(exc))
            return
        checksum = full_checksum(src)
        self._register(job_id, result, checksum)
        self._finish(job_id, "done", None)

    def _register(self, job_id: str, result: ConversionResult, checksum: str) -> None:
        with self.db.session() as s:
            images = s.scalars(select(Image).where(Image.job_id == job_id)
                               .order_by(Image.series_index)).all()
            for image, summary in zip(images, result.images, strict=False):
                panel: dict[str, str] = (image.metadata_ or {}).get("stain_panel") or {}
                image.name = summary.name
                image.store_uri = result.destination
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
                             after={"store": image.store_uri, "key": image.store_key,
                                    "checksum": checksum})
            s.commit()

    def _finish(self, job_id: str, state: str, error: str | None) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            job.state, job.error, job.finished_at = state, error, utcnow()
            if state == "done":
                job.progress = 1.0
            if state == "failed":
                for image in s.scalars(select(Image).where(Image.job_id == job_id)):
                    image.status = "failed"
            s.commit()


def image_ids(session: Session, job_id: str) -> list[str]:
    return list(session.scalars(select(Image.id).where(Image.job_id == job_id)
                                .order_by(Image.series_index)).all())


def job_public(session: Session, job: Job) -> dict[str, Any]:
    study = session.get(Study, job.study_id)
    return {"id": job.id, "state": job.state, "progress": job.progress, "error": job.error,
            "study": study.code if study else "", "source": job.source_uri,
            "image_ids": image_ids(session, job.id), "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at}
