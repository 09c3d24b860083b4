"""Tier moves: an image's store copied between the hot root (``PLEXHUB_STORE_ROOT``) and the
archive root (``PLEXHUB_ARCHIVE_ROOT``), as a job of the job runner (``api/jobs.py``: leases,
progress, cancellation as for conversions).

The order is what keeps an image readable whatever fails:

1. queued (:func:`queue_move`): the images sharing the store go ``hot -> archiving`` (still read
   from the hot copy) or ``archived -> restoring`` (409 until it is back), audited as
   ``image.tier`` by whoever asked, with the reason the study's profile asks for;
2. the job copies every object of the store to the target root (a local folder or any fsspec
   URL), then reads each copy back and compares its size and SHA-256 with the source's
   (object for object; no object more, none less);
3. one transaction moves the catalog rows (storage root and tier) and records their audited
   ``image.tier`` event (old and new root and tier): before it the image is read at the old
   location, after it at the new one;
4. only then is the old copy removed.

A failure before 3 (an injected fault, a full disk, a verification mismatch) removes the partial
copy and puts the images back in their old tier (audited); a process that dies before 3 leaves
them ``archiving``/``restoring`` at the old location, and the job is taken over and starts its
copy again. A process that dies between 3 and 4 leaves an old copy that the job, taken over,
removes.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.db import Database
from plexhub.api.models import Image, Job, JobState, Study
from plexhub.errors import ConflictError, PermissionDeniedError, PlexhubError
from plexhub.policies.access import Principal
from plexhub.policies.profiles import profile_of
from plexhub.policies.tiers import archive_allowed
from plexhub.settings import Settings
from plexhub.storage import DEFAULT_ROOT, StoreLocation, StoreRoots, remove_tree

if TYPE_CHECKING:
    from plexhub.api.jobs import JobRunner

log = logging.getLogger("plexhub.api.tiermove")
KIND = "tier"  # Job.kind of a tier move
BLOCK = 8 << 20  # bytes copied (and hashed) at a time
Target = Literal["archive", "hot"]
MOVING = {"archive": "archiving", "hot": "restoring"}  # the images' tier while the job runs
BEFORE = {"archive": "hot", "hot": "archived"}  # ... and before it (back to it on failure)
AFTER = {"archive": "archived", "hot": "hot"}  # ... and once it is done


class VerificationError(PlexhubError, OSError):
    """A copied object differs from its source (or is missing, or one is left over)."""


def archive_root(settings: Settings) -> str:
    """The archive root's name, or a ConflictError saying how to configure one."""
    if settings.archive_root is None:
        raise ConflictError("storage tiers", "no archive root is configured",
                            "set PLEXHUB_ARCHIVE_ROOT to one of PLEXHUB_STORE_ROOTS")
    return settings.archive_root


def store_images(session: Session, image: Image) -> list[Image]:
    """``image`` and the other images in the same store (the series of one source file):
    they move together."""
    return list(session.scalars(select(Image).where(image.same_store())
                                .order_by(Image.series_index)).all())


def active_job(session: Session, image: Image) -> Job | None:
    """The unfinished tier move of ``image``'s store, if any."""
    for job in session.scalars(select(Job).where(
            Job.kind == KIND, Job.study_id == image.study_id,
            Job.state.in_((JobState.QUEUED, JobState.RUNNING)))):
        if image.id in (job.params or {}).get("images", []):
            return job
    return None


def queue_move(session: Session, settings: Settings, image: Image, study: Study, to: Target,
               actor: Principal | str, reason: str, action: str = "image.tier") -> Job:
    """Queue the move of ``image``'s store ``to`` the archive or back to hot, audited as
    ``action`` by ``actor`` (refused per the study's profile: its lock, its reason, whether
    an open study's images may be archived). The caller commits, then submits the job."""
    if image.purged_at is not None:
        raise ConflictError(f"image {image.id}", "was purged after its retention period",
                            "a purged image has no store to move")
    if image.status != "ready" or not image.store_uri:
        raise ConflictError(f"image {image.id}", f"is {image.status}, not ready",
                            "only a converted image has a store to move")
    if image.tier != BEFORE[to]:
        raise ConflictError(f"image {image.id}", f"is {image.tier}, not {BEFORE[to]}",
                            "GET /api/v1/images/{id} shows its tier; a move under way shows "
                            "in GET /api/v1/jobs")
    if image.storage_root is None:
        raise ConflictError(f"image {image.id}", "has a store outside every named storage "
                            "root", "only stores the catalog records under a root can move")
    target = archive_root(settings) if to == "archive" else DEFAULT_ROOT
    if to == "archive":
        allowed = archive_allowed(profile_of(audit.profiles(session), study.profile),
                                  study.state)
        if not allowed:
            raise PermissionDeniedError(f"study {study.code}", allowed.reason)
    images = store_images(session, image)
    job = Job(id=uuid.uuid4().hex, kind=KIND, study_id=study.id,
              source_uri=f"{image.storage_root}:{image.store_uri}",
              fingerprint=image.fingerprint, created_by=_name(actor),
              params={"to": to, "images": [i.id for i in images], "key": image.store_uri,
                      "from_root": image.storage_root, "to_root": target,
                      "reason": reason, "requested_by": _name(actor)})
    for im in images:  # each event checks the study's profile before anything changes
        audit.record(session, actor, action, "image", im.id, study_code=study.code,
                     before={"tier": im.tier, "root": im.storage_root},
                     after={"tier": MOVING[to], "job": job.id}, reason=reason)
        im.tier = MOVING[to]
    session.add(job)
    return job


def _name(actor: Principal | str) -> str:
    return actor.user if isinstance(actor, Principal) else actor


# ------------------------------------------------------------------------------ the job

@dataclass(frozen=True)
class Move:
    job_id: str
    study_code: str
    to: Target
    images: list[str]
    key: str
    from_root: str
    to_root: str
    reason: str
    requested_by: str


def _load(runner: JobRunner, job_id: str) -> Move | None:
    with runner.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state != JobState.RUNNING or job.owner != runner.owner:
            return None
        study = s.get(Study, job.study_id)
        assert study is not None
        p = dict(job.params)
        return Move(job_id, study.code, p["to"], list(p["images"]), p["key"], p["from_root"],
                    p["to_root"], p.get("reason", ""), p.get("requested_by", ""))


def run(runner: JobRunner, job_id: str) -> None:
    """Run tier move ``job_id`` (claimed by ``runner``) to its end."""
    from plexhub.api.jobs import JobCancelled

    move = _load(runner, job_id)
    if move is None:
        return
    roots = StoreRoots.from_settings(runner.settings)
    dst: StoreLocation | None = None
    try:
        src = roots.resolve(move.from_root, move.key)
        dst = roots.resolve(move.to_root, move.key)
        if _committed(runner, move):  # an earlier owner died after the commit
            remove_tree(src)
            runner._finish(job_id, JobState.DONE, None)
            return
        copy_store(src, dst, runner.progress_reporter(job_id))
        if not _commit(runner, move):
            return  # the lease was lost: the job's new owner finishes it
    except JobCancelled:
        if runner._stopping.is_set():
            runner._release(job_id)  # the images stay at the old location; the copy restarts
            return
        _undo(runner, move, dst, "cancelled")
        runner._finish(job_id, JobState.CANCELLED, None)
        return
    except (PlexhubError, OSError) as exc:
        log.warning("tier move %s failed: %s", job_id, exc)
        _undo(runner, move, dst, str(exc))
        runner._finish(job_id, JobState.FAILED, f"tier move failed: {exc}")
        return
    try:
        remove_tree(src)
    except OSError as exc:  # the move is done; the old copy is only space
        log.warning("tier move %s: the old copy %s was not removed: %s", job_id,
                    src.url, exc)
    runner._finish(job_id, JobState.DONE, None)


def _committed(runner: JobRunner, move: Move) -> bool:
    with runner.db.session() as s:
        rows = s.execute(select(Image.storage_root, Image.tier)
                         .where(Image.id.in_(move.images))).all()
    return bool(rows) and all(r.storage_root == move.to_root and r.tier == AFTER[move.to]
                              for r in rows)


def _commit(runner: JobRunner, move: Move) -> bool:
    """The catalog's commit point: the rows' root and tier and their audited events in one
    transaction, while the job is still ours."""
    with runner.db.session() as s:
        job = s.get(Job, move.job_id)
        if job is None or job.owner != runner.owner or job.state != JobState.RUNNING:
            return False
        for image in s.scalars(select(Image).where(Image.id.in_(move.images))
                               .order_by(Image.series_index)):
            before = {"tier": image.tier, "root": move.from_root}
            image.storage_root, image.tier = move.to_root, AFTER[move.to]
            audit.record(s, audit.SYSTEM, "image.tier", "image", image.id,
                         study_code=move.study_code, before=before,
                         after={"tier": image.tier, "root": move.to_root, "job": move.job_id,
                                "requested_by": move.requested_by}, reason=move.reason)
        s.commit()
    return True


def _undo(runner: JobRunner, move: Move, dst: StoreLocation | None, why: str) -> None:
    """Back to the old tier after a failed or cancelled copy (audited); the partial copy
    removed."""
    if dst is not None:
        try:
            remove_tree(dst)
        except OSError as exc:
            log.warning("tier move %s: the partial copy %s was not removed: %s",
                        move.job_id, dst.url, exc)
    revert(runner.db, move.job_id, why)


def revert(db: Database, job_id: str, why: str) -> None:
    """Put the images of tier move ``job_id`` back in the tier they had before it."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        study = s.get(Study, job.study_id)
        revert_images(s, job, study.code if study else None, why)
        s.commit()


def revert_images(s: Session, job: Job, study_code: str | None, why: str) -> None:
    to = job.params["to"]
    for image in s.scalars(select(Image).where(Image.id.in_(job.params["images"]))):
        if image.tier != MOVING[to]:
            continue
        image.tier = BEFORE[to]
        audit.record(s, audit.SYSTEM, "image.tier", "image", image.id, study_code=study_code,
                     before={"tier": MOVING[to]}, after={"tier": BEFORE[to], "job": job.id,
                                                         "outcome": why[:500]},
                     reason=job.params.get("reason", ""))


# ------------------------------------------------------------------------------ copying

def _objects(loc: StoreLocation) -> tuple[Any, str, dict[str, int]]:
    """(filesystem, base path, {relative key: size}) of every object under ``loc``."""
    fs, base = loc.filesystem()
    base = base.rstrip("/")
    if not fs.exists(base):
        return fs, base, {}
    found = fs.find(base, detail=True)
    return fs, base, {name[len(base) + 1:]: int(info.get("size") or 0)
                      for name, info in found.items() if info.get("type") != "directory"}


def _hash(fs: Any, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def copy_object(src_fs: Any, src: str, dst_fs: Any, dst: str, local: bool) -> str:
    """Copy one object in blocks; returns the SHA-256 of what was read."""
    if local:
        dst_fs.makedirs(posixpath.dirname(dst), exist_ok=True)
    h = hashlib.sha256()
    with src_fs.open(src, "rb") as fin, dst_fs.open(dst, "wb") as fout:
        while block := fin.read(BLOCK):
            h.update(block)
            fout.write(block)
    return h.hexdigest()


def copy_store(src: StoreLocation, dst: StoreLocation,
               progress: Callable[[float], None] = lambda f: None) -> int:
    """Copy every object of the store at ``src`` to ``dst`` (emptied first), then verify the
    copy object for object (size and SHA-256, read back; the same set of keys). Returns the
    number of objects."""
    src_fs, src_base, sizes = _objects(src)
    if not sizes:
        raise VerificationError(src.url, "holds no objects", "the store is missing")
    remove_tree(dst)
    dst_fs, dst_base = dst.filesystem()
    dst_base = dst_base.rstrip("/")
    total = sum(sizes.values()) * 2 or 1  # copying, then reading back
    done = 0
    digests: dict[str, str] = {}
    for key in sorted(sizes):
        progress(done / total)
        digests[key] = copy_object(src_fs, f"{src_base}/{key}", dst_fs, f"{dst_base}/{key}",
                                   not dst.remote)
        done += sizes[key]
    invalidate = getattr(dst_fs, "invalidate_cache", None)
    if callable(invalidate):
        invalidate(dst_base)
    _, _, copied = _objects(dst)
    if set(copied) != set(sizes):
        missing = sorted(set(sizes) - set(copied))[:3]
        extra = sorted(set(copied) - set(sizes))[:3]
        raise VerificationError(dst.url, f"does not hold the same objects as {src.url} "
                                f"(missing {missing}, extra {extra})")
    for key in sorted(sizes):
        progress(done / total)
        if copied[key] != sizes[key] or _hash(dst_fs, f"{dst_base}/{key}") != digests[key]:
            raise VerificationError(f"{dst.url}/{key}", "differs from its source after "
                                    "the copy", "the move was undone; try it again")
        done += sizes[key]
    return len(sizes)
