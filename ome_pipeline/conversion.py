"""``convert(src, dst)``: any supported source to OME-Zarr, atomically and resumably.

On a local disk the store is built in ``.<name>.partial`` beside DST and renamed into place
when complete and validated; on an object store (``s3://...``) it is written in place and the
root metadata, written last, is the commit marker. Either way a conversion that is killed
resumes from the tasks already finished (``.plexhub/state.npz``); the temporary files a killed
run left are removed first, so the result is byte for byte what an uninterrupted run writes.

A destination that cannot be written (disk full, quota, read-only, a name too long) fails
with a :class:`~plexhub.errors.DestinationWriteError` that names DST and the cause; nothing
appears at DST, and a rerun resumes once the cause is fixed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import json
import math
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from plexhub import __version__
from plexhub.colors import default_colors
from plexhub.errors import (
    DestinationExistsError,
    DestinationWriteError,
    InputError,
    MissingFileError,
    PlexhubError,
)
from plexhub.malloc import tune_malloc
from plexhub.model import Channel, ImageSummary, LevelInfo
from plexhub.ome_pipeline.chunkio import (
    Codec,
    OutputStore,
    is_remote,
    remove_stale_temporaries,
)
from plexhub.ome_pipeline.execute import (
    STATE_KEY,
    Accumulator,
    Checkpointer,
    distributed_client,
    run_tasks,
)
from plexhub.ome_pipeline.histogram import HISTOGRAMS_GROUP, finalize, percentile
from plexhub.ome_pipeline.ngff import (
    READERS,
    collection_root,
    multiscales_json,
    omero_json,
    root_metadata_key,
    wrap,
    write_group,
    zarr_format,
)
from plexhub.ome_pipeline.omexml import build_ome_xml, detach_tiff_references
from plexhub.ome_pipeline.readers import open_source
from plexhub.ome_pipeline.source import ChannelMeta, ChannelPixels, SourceDocument, SourceImage
from plexhub.ome_pipeline.writer import ImagePlan, Task
from plexhub.settings import Settings, get_settings
from plexhub.storage import filesystem


@dataclass(frozen=True)
class Progress:
    fraction: float
    tasks_done: int
    tasks_total: int
    stage: str


ProgressCallback = Callable[[Progress], None]


@dataclass
class ConversionResult:
    source: str
    destination: str
    format: str
    ngff_version: str
    images: list[ImageSummary]
    associated: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    tasks_total: int = 0
    tasks_resumed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{self.source} ({self.format}) -> {self.destination} "
                 f"[OME-NGFF {self.ngff_version}] in {self.seconds:.1f} s"]
        if self.tasks_resumed:
            lines.append(f"  resumed: {self.tasks_resumed} of {self.tasks_total} tasks "
                         "were already done")
        for im in self.images:
            shape = "x".join(str(n) for n in im.levels[0].shape)
            chans = ", ".join(ch.label for ch in im.channels[:12])
            more = f" (+{len(im.channels) - 12})" if len(im.channels) > 12 else ""
            lines.append(f"  {im.path or '.'}: {im.name!r} {im.axes} {shape} {im.dtype}, "
                         f"{len(im.levels)} levels; channels: {chans}{more}")
        if self.labels:
            lines.append(f"  labels: {', '.join(self.labels)}")
        if self.associated:
            lines.append(f"  associated: {', '.join(self.associated)}")
        if self.ngff_version in READERS:
            lines.append(f"  opens in: {READERS[self.ngff_version]}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers

def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"


def _fingerprint(src: str, options: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    meta = (".zattrs", ".zarray", ".zgroup", "zarr.json", ".xml")
    if is_remote(src):  # an object (or a Zarr prefix): its size and ETag per object
        fs, inner = filesystem(src)
        found = fs.find(inner, detail=True) if fs.isdir(inner) else {inner: fs.info(inner)}
        for name in sorted(found):
            info = found[name]
            if name == inner or name.endswith(meta):
                h.update(f"{name}:{info.get('size')}:{info.get('ETag') or info.get('mtime')}"
                         .encode())
        return h.hexdigest()
    p = Path(src)
    if p.is_dir():  # a Zarr source: its metadata documents identify it well enough
        for f in sorted(p.rglob("*")):
            if f.name.endswith(meta):
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


@contextlib.contextmanager
def _lock(work: Path) -> Iterator[None]:
    (work / ".plexhub").mkdir(parents=True, exist_ok=True)
    with open(work / ".plexhub" / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DestinationExistsError(
                str(work), "another conversion is writing this destination right now",
                "wait for it to finish") from exc
        yield


def _windows(image: SourceImage, stored: list[dict[str, Any]]) -> list[dict[str, float]]:
    dtype = np.dtype(image.dtype)
    out = []
    for h in stored:
        if h["count"] == 0:
            lo = hi = 0.0
        else:
            lo, hi = percentile(h, 0.1), percentile(h, 99.9)
        if dtype.kind in "ui" and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            vmin, vmax = float(info.min), float(info.max)
        else:
            vmin = float(h["min"]) if h["count"] else 0.0
            vmax = float(h["max"]) if h["count"] else 1.0
        if hi <= lo:
            hi = min(vmax, lo + 1.0) if dtype.kind in "ui" else lo + 1.0
            lo = min(lo, hi - (1.0 if dtype.kind in "ui" else 0.0))
            vmax = max(vmax, hi)
        if image.rgb and dtype == np.uint8:  # brightfield colour: shown as it is, not stretched
            lo, hi = vmin, vmax
        if dtype.kind in "uib":  # integer pixels: integer windows that still hold the range
            lo, hi = float(math.floor(lo)), float(math.ceil(hi))
            hi = hi if hi > lo else lo + 1.0
        out.append({"min": _tidy(vmin), "max": _tidy(vmax), "start": _tidy(lo),
                    "end": _tidy(hi)})
    return out


def _tidy(value: float) -> float:
    """A window value as a person reads it: no denormals (0.0, not 5.2e-43; a histogram bin
    edge next to zero interpolates into them) and float32's 7 significant digits."""
    if abs(value) < float(np.finfo(np.float32).tiny):
        return 0.0
    return float(f"{value:.7g}")


def _colors(image: SourceImage) -> list[str]:
    defaults = default_colors(len(image.channels))
    return [ch.color or d for ch, d in zip(image.channels, defaults, strict=True)]


# --------------------------------------------------------------------------- convert

def _prefetch_imports() -> None:
    """Import Dask (~0.2 s of Python, needed when the tasks start) in a background thread
    while the source is opened. The NGFF schema models are NOT prefetched: importing them
    while the tasks run takes the GIL from the tasks' Python parts (measured: 0.2-0.4 s
    slower over 5 interleaved runs of the quick bench file)."""
    if "dask.threaded" in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the real import reports any problem
            importlib.import_module("dask.threaded")

    threading.Thread(target=load, name="plexhub-prefetch", daemon=True).start()


def _prefetch_client(url: str) -> threading.Thread:
    """Make the client of ``url``'s filesystem (and its first request) in a background
    thread, joined before the store's first request: the store's filesystem is the same
    cached instance, so it finds its client made. Errors surface at that request."""
    from plexhub.storage import connect

    thread = threading.Thread(target=connect, args=(url,), name="plexhub-connect",
                              daemon=True)
    thread.start()
    return thread


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
            ngff_version: str | None = None, reader: str | None = None,
            labels: dict[str, str] | None = None, as_labels: bool = False,
            overwrite: bool = False, progress: ProgressCallback | None = None,
            show_progress: bool | None = None,
            settings: Settings | None = None,
            validate: Callable[..., object] | None = None) -> ConversionResult:
    """Convert ``src`` into an OME-Zarr store at ``dst``; see the module docstring.

    ``validate(path, expect_version=...)`` checks the written store before it is committed
    (default: :func:`~plexhub.ome_pipeline.validate.validate_store` in this process)."""
    t0 = time.perf_counter()
    settings = settings or get_settings()
    tune_malloc()
    _prefetch_imports()
    version = ngff_version or settings.ngff_version
    if version not in ("0.4", "0.5"):
        raise InputError(f"--ngff-version {version}", "is not supported", "use 0.5 or 0.4")
    src, dst = os.fspath(src), os.fspath(dst)
    remote = is_remote(dst)
    # the store's S3 client (~0.3 s to make) is made while the source opens
    connecting = _prefetch_client(dst) if remote else None
    labels = dict(labels or {})
    if not remote:
        dst = str(Path(dst).absolute())
        with _writing(dst, dst):
            if Path(dst).exists() and not overwrite:
                raise DestinationExistsError(dst, "already exists",
                                             "pass --overwrite to replace it")
            same = Path(src).exists() and Path(dst).resolve() == Path(src).resolve()
            folder = Path(dst).parent
            if not folder.is_dir():  # a typo in the folder is refused, not created
                raise MissingFileError(
                    dst, f"its folder {folder} does not exist" if not folder.exists() else
                    f"{folder} is not a folder",
                    f"create it first with mkdir -p {folder}, or choose another destination")
        if same:
            raise InputError(dst, "is the source itself", "choose another destination")
    # Dask workers reopen the source by its path, from their own working folder
    distributed = bool(settings.dask_scheduler)
    doc = open_source(_absolute(src) if distributed else src, reader)
    for name, path in labels.items():
        doc.images[0].labels.update(
            _open_masks(name, _absolute(path) if distributed else path, doc))
    if as_labels:
        for image in doc.images:
            _require_integer(src, image)
            _require_one_channel(src, image)
            _as_label_pair(src, image)
    codec = Codec("none" if settings.compression == "none" else settings.compression,
                  settings.compression_level)
    options = {"version": version, "chunk": settings.chunk_size, "block": settings.block_size,
               "codec": [codec.cname, codec.clevel], "labels": labels, "as_labels": as_labels,
               "reader": doc.format, "plexhub": __version__}
    fingerprint = _fingerprint(src, options)

    if remote:
        if connecting is not None:  # one client: wait for the one being made
            connecting.join()
        final = OutputStore(dst)
        top: list[str] | None = final.top_level_keys()  # one listing answers both questions
        if root_metadata_key(version) in (top or []):
            if not overwrite:
                raise DestinationExistsError(dst, "already exists",
                                             "pass --overwrite to replace it")
            final.remove("")
            top = []
        work_root = dst
    else:
        top = None
        work_root = str(Path(dst).with_name(f".{Path(dst).name}.partial"))
    with _writing(dst, work_root):
        store = OutputStore(work_root, direct=settings.direct_writes)
        with contextlib.nullcontext() if remote else _lock(Path(work_root)):
            if not remote:  # what a killed earlier run was writing: never part of the result
                remove_stale_temporaries(work_root)
            acc = _load_state(store, fingerprint, top)
            try:
                with distributed_client(settings.dask_scheduler):  # one for every pass
                    result = _write_all(doc, store, acc, version, codec, settings, progress,
                                        show_progress)
            except PlexhubError:
                if not remote:
                    shutil.rmtree(work_root, ignore_errors=True)
                raise
            from plexhub.ome_pipeline.validate import validate_store

            if remote:  # from the documents as written (each PUT checked), not read back
                (validate or validate_store)(work_root, expect_version=version,
                                             documents=store.documents)
            else:
                (validate or validate_store)(work_root, expect_version=version)
            store.remove(".plexhub")
        if not remote:
            _commit(Path(work_root), Path(dst))
    result.source, result.destination = src, dst
    result.ngff_version = version
    result.seconds = time.perf_counter() - t0
    return result


# errors of the destination's filesystem, whatever file they name: what they mean
_WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "a file is larger than the filesystem or a limit allows",
                 errno.EROFS: "the filesystem is read-only"}
_HINTS = {errno.ENOSPC: "free space there or choose another destination; a rerun resumes",
          errno.EDQUOT: "free space there or choose another destination; a rerun resumes",
          errno.ENAMETOOLONG: "choose a shorter destination path, at most 255 bytes a name"}


@contextlib.contextmanager
def _writing(dst: str, work_root: str) -> Iterator[None]:
    """Turn an OSError of the destination (``dst`` or its work folder) into a
    :class:`DestinationWriteError` naming ``dst`` and the cause. Errors of the source pass
    through unchanged: they name a path elsewhere (or none, with an errno that is not about
    writing)."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, PlexhubError):
            raise
        if exc.errno not in _WRITE_ERRORS and not _names_destination(exc, dst, work_root):
            raise
        cause = _WRITE_ERRORS.get(exc.errno or 0) or \
            (exc.strerror or type(exc).__name__).lower()
        raise DestinationWriteError(
            dst, f"could not be written: {cause}",
            _HINTS.get(exc.errno or 0, "check the destination folder and try again")) from exc


def _names_destination(exc: OSError, dst: str, work_root: str) -> bool:
    """Whether ``exc`` is about a path inside DST or its work folder, or a folder above DST
    (one that could not be made or entered)."""
    if exc.filename is None or is_remote(dst):
        return False
    name = Path(os.fsdecode(exc.filename)).absolute()
    return any(name == Path(p) or name.is_relative_to(p) for p in (dst, work_root)) or \
        Path(dst).is_relative_to(name)


def _commit(work: Path, dst: Path) -> None:
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    os.replace(work, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _load_state(store: OutputStore, fingerprint: str,
                top: list[str] | None = None) -> Accumulator:
    """The state an earlier attempt left (``top``: the store's top-level names when they
    are known already; no .plexhub there, no state to read)."""
    data = store.get(STATE_KEY) if top is None or ".plexhub" in top else None
    if data is not None:
        try:
            acc = Accumulator.from_bytes(data)
            if acc.fingerprint == fingerprint:
                return acc
        except (OSError, ValueError, KeyError):
            pass
    # a different (or unreadable) earlier attempt: start clean
    for key in store.top_level_keys() if top is None else top:
        if key != ".plexhub":
            store.remove(key)
    return Accumulator(fingerprint)


def _require_integer(src: str, image: SourceImage) -> None:
    if np.dtype(image.dtype).kind not in "uib":
        raise InputError(src, f"holds {image.dtype} pixels, a label image needs integers",
                         "pass an integer mask (e.g. uint16 or uint32)")


def _as_label_pair(src: str, image: SourceImage) -> None:
    """``--as-labels``: an image + labels pair, the NGFF shape every reader shows. The root
    is a grey display image of the IDs (visible by default in napari-ome-zarr, which opens
    every label image hidden), ``labels/<name>`` the label image itself (2x2 mode pyramid,
    ``image-label`` with its source); the root's ``plexhub.label_image`` names it."""
    name = _safe_name(Path(src.rstrip("/")).name.split(".")[0]) or "labels"
    keep = "".join(a for a in "tz" if a in image.axes)
    image.labels[name] = replace(image, channels=[ChannelMeta(label=name)], is_label=True,
                                 keep_axes=keep, labels={})
    image.channels = [ChannelMeta(label=name, color="FFFFFF")]


def _require_one_channel(src: str, image: SourceImage) -> None:
    """A label image holds one integer object ID per pixel: several channels (an RGB or a
    fluorescence image of 8-bit counts) are not labels."""
    if image.shape[1] != 1:
        names = ", ".join(ch.label for ch in image.channels[:6])
        raise InputError(src, f"has {image.shape[1]} channels ({names}) of {image.dtype}; "
                         "--as-labels needs a mask with one channel of object IDs",
                         "convert it without --as-labels, or pass its segmentation mask")


# inForm's binary_seg_maps.tif: one page per compartment, in this order
INFORM_SEGMENTATION_PAGES = ("tissue", "nucleus", "cytoplasm", "membrane")


def _absolute(path: str) -> str:
    """A local ``path`` made absolute (a URL unchanged)."""
    return path if is_remote(path) else str(Path(path).absolute())


def _open_masks(name: str, path: str, doc: SourceDocument) -> dict[str, SourceImage]:
    """``--labels NAME=MASK``: one label image, or one per channel (page) of a multi-page
    mask, named ``NAME-<channel>`` from the channel names the file gives (inForm's
    binary_seg_maps.tif: tissue, nucleus, cytoplasm, membrane)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise InputError(f"--labels {name}={path}", "the label name may only use letters, "
                         "digits, '.', '_' and '-'")
    if len(doc.images) != 1:
        raise InputError(f"--labels {name}={path}", f"the source holds {len(doc.images)} "
                         "images; labels can only be attached to a single image")
    mask = open_source(path).images[0]
    _require_integer(path, mask)
    image = doc.images[0]
    if mask.shape[3:] != image.shape[3:] or mask.shape[2] not in (1, image.shape[2]):
        raise InputError(path, f"is {mask.shape[3]}x{mask.shape[4]} (y x) but the image is "
                         f"{image.shape[3]}x{image.shape[4]}", "the mask must match the image")
    keep = "".join(a for a in "tz" if a in image.axes)
    if mask.shape[1] == 1:
        return {name: replace(mask, name=name, is_label=True, keep_axes=keep)}
    names = [ch.label for ch in mask.channels]
    generic = all(n == f"Channel {i}" for i, n in enumerate(names))
    if generic and len(names) == len(INFORM_SEGMENTATION_PAGES) and \
            "binary_seg_maps" in Path(path).name.lower():
        names = list(INFORM_SEGMENTATION_PAGES)
    named = not generic or names == list(INFORM_SEGMENTATION_PAGES)
    keys = [f"{name}-{_safe_name(n).lower() if named else i}" for i, n in enumerate(names)]
    if len(set(keys)) != len(keys):
        keys = [f"{name}-{i}" for i in range(len(names))]
    t, _, z, y, x = mask.shape
    return {key: replace(mask, name=key, shape=(t, 1, z, y, x), channels=[ChannelMeta(label=n)],
                         pixels=ChannelPixels(mask.pixels, k), channel_groups=None,
                         is_label=True, keep_axes=keep, labels={})
            for k, (key, n) in enumerate(zip(keys, names, strict=True))}


# --------------------------------------------------------------------------- the work

def _write_all(doc: SourceDocument, store: OutputStore, acc: Accumulator, version: str,
               codec: Codec, settings: Settings,
               progress: ProgressCallback | None,
               show_progress: bool | None) -> ConversionResult:
    fmt = zarr_format(version)
    collection = len(doc.images) > 1
    entries: list[tuple[ImagePlan, SourceImage]] = []

    def plan(key: str, image: SourceImage) -> ImagePlan:
        return ImagePlan.build(key, image, chunk=settings.chunk_size, block=settings.block_size,
                               zarr_format=fmt, codec=codec)

    label_names: list[str] = []
    for i, image in enumerate(doc.images):
        key = str(i) if collection else ""
        entries.append((plan(key, image), image))
        for name, label in image.labels.items():
            entries.append((plan(f"{key}/labels/{name}" if key else f"labels/{name}", label),
                            label))
            label_names.append(f"{key}/labels/{name}" if key else name)
    for name, image in doc.associated.items():
        entries.append((plan(f"associated/{_safe_name(name)}", image), image))
    for p, _ in entries:
        p.create_arrays(store)

    all_tasks = [(p, t) for p, _ in entries for k in range(p.npasses) for t in p.tasks(k)]
    total_weight = sum(t.weight(p) for p, t in all_tasks) or 1
    resumed = sum(1 for _, t in all_tasks if t.id in acc.done)
    done_weight = sum(t.weight(p) for p, t in all_tasks if t.id in acc.done)
    counter = {"done": resumed, "weight": done_weight}
    bar = _progress_bar(show_progress, total_weight, done_weight)
    checkpoint = Checkpointer(store, acc, settings.checkpoint_seconds)

    def on_done(p: ImagePlan, t: Task) -> None:
        counter["done"] += 1
        w = t.weight(p)
        counter["weight"] += w
        if bar is not None:
            bar.update(w)
        if progress is not None:
            progress(Progress(counter["weight"] / total_weight, counter["done"],
                              len(all_tasks), "writing"))
        checkpoint.maybe()

    try:
        npasses = max(p.npasses for p, _ in entries)
        for k in range(npasses):
            jobs = [(p, t, image if k == 0 else None) for p, image in entries
                    for t in p.tasks(k) if t.id not in acc.done]
            try:
                run_tasks(jobs, store, acc, settings, on_done)
            finally:  # keep what finished, also when a task failed or we were interrupted
                checkpoint.maybe(force=True)
    finally:
        if bar is not None:
            bar.close()
    # the root group is written last: on object stores it is the commit marker (the other
    # documents go out together before it)
    order = sorted(range(len(entries)), key=lambda i: entries[i][0].key == "")
    summaries: list[ImageSummary | None] = [None] * len(entries)
    with store.batch(last=root_metadata_key(version)):
        for i in order:
            if entries[i][0].key == "":
                _write_containers(store, doc, version, collection)
            summaries[i] = _write_image_metadata(store, *entries[i], acc, version)
        if collection:
            _write_containers(store, doc, version, collection)
    if progress is not None:
        progress(Progress(1.0, len(all_tasks), len(all_tasks), "done"))
    main = [s for s, (p, _) in zip(summaries, entries, strict=True)
            if s is not None and not p.key.startswith("associated/")
            and "/labels/" not in f"/{p.key}"]
    return ConversionResult(source=doc.path, destination=store.root, format=doc.format,
                            ngff_version=version, images=main,
                            associated=[_safe_name(n) for n in doc.associated],
                            labels=label_names, tasks_total=len(all_tasks),
                            tasks_resumed=resumed)


def _progress_bar(show: bool | None, total: int, initial: int) -> Any:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="px", unit_scale=True, desc="converting",
                file=sys.stderr, leave=False)


def _write_image_metadata(store: OutputStore, plan: ImagePlan, image: SourceImage,
                          acc: Accumulator, version: str) -> ImageSummary:
    method = "mode" if plan.is_label else "mean"
    ms = multiscales_json(image.name, plan.axes, len(plan.levels), image.physical_sizes,
                          version, method, origin=image.position)
    attrs: dict[str, Any] = {"multiscales": [ms]}
    colors = _colors(image)
    extra: dict[str, Any] = {"plexhub": {"version": __version__, "source_name": image.name}}
    if plan.is_label:
        label_meta: dict[str, Any] = {}
        if "/labels/" in f"/{plan.key}":
            label_meta["source"] = {"image": "../../"}
        if version == "0.4":
            label_meta["version"] = "0.4"
        attrs["image-label"] = label_meta
    else:
        stored = [finalize(acc.histogram(plan.key, c), np.dtype(image.dtype))
                  for c in range(image.shape[1])]
        windows = _windows(image, stored)
        many = len(image.channels) > 8
        channels = [{"label": ch.label, "color": col,
                     "active": (not many or i < 4) and not (image.rgb and i == 3),
                     "coefficient": 1.0, "family": "linear", "inverted": False, "window": win}
                    for i, (ch, col, win) in enumerate(zip(image.channels, colors, windows,
                                                           strict=True))]
        attrs["omero"] = omero_json(channels, image.shape[2] // 2, version)
        hist_doc = {"version": 1, "dtype": np.dtype(image.dtype).name,
                    "method": "per-channel, level 0, gathered while writing",
                    "channels": [{"index": i, "label": ch.label, **h} for i, (ch, h) in
                                 enumerate(zip(image.channels, stored, strict=True))]}
        label_names = [n for n, lab in image.labels.items() if lab.pixels is image.pixels]
        if label_names:  # --as-labels: readers that know plexhub open the label image
            extra["plexhub"]["label_image"] = f"labels/{label_names[0]}"
        if image.rgb:  # autocontrast keeps true colour (windows over the whole 8-bit range)
            hist_doc["photometric"] = "RGB"
            extra["plexhub"]["photometric"] = "RGB"
        hist_key = f"{plan.key}/{HISTOGRAMS_GROUP}" if plan.key else HISTOGRAMS_GROUP
        write_group(store, hist_key, {"plexhub": {"histograms": hist_doc}}, version)
        extra["plexhub"]["histograms"] = HISTOGRAMS_GROUP
    write_group(store, plan.key, {**wrap(version, attrs), **extra}, version)
    levels = tuple(LevelInfo(path=str(k), shape=plan.array_shape(k), chunks=plan.chunk_shape(k),
                             shards=plan.shard_shape(k)) for k in range(len(plan.levels)))
    channels_out = tuple(Channel(index=i, label=ch.label, color=col)
                         for i, (ch, col) in enumerate(zip(image.channels, colors, strict=True)))
    return ImageSummary(name=image.name, path=plan.key, axes=plan.axes,
                        dtype=np.dtype(image.dtype).name, levels=levels, channels=channels_out,
                        physical_sizes=dict(image.physical_sizes), is_label=plan.is_label)


def _write_containers(store: OutputStore, doc: SourceDocument, version: str,
                      collection: bool) -> None:
    """Groups that hold images (labels/, associated/, OME/, the collection root)."""
    for i, image in enumerate(doc.images):
        if image.labels:
            key = f"{i}/labels" if collection else "labels"
            write_group(store, key, wrap(version, {"labels": list(image.labels)}), version)
    if doc.associated:
        write_group(store, "associated", {"plexhub": {"associated": [
            _safe_name(n) for n in doc.associated]}}, version)
    xml = detach_tiff_references(doc.ome_xml) if doc.ome_xml else \
        build_ome_xml(doc.images, [_colors(im) for im in doc.images])
    store.put("OME/METADATA.ome.xml", xml.encode())  # the bioformats2raw convention
    if doc.original_metadata:  # attributes of a group, not files: zarr lists them silently
        write_group(store, "OME/original", {"plexhub": {"original_metadata": {
            _safe_name(name): text for name, text in doc.original_metadata.items()}}},
            version)
    series = [str(i) for i in range(len(doc.images))] if collection else []
    write_group(store, "OME", wrap(version, {"series": series}) if collection else {}, version)
    if collection:
        written = [(key, _ngff_attrs(store, key, version)) for key in series]
        write_group(store, "", wrap(version, {"bioformats2raw.layout": 3,
                                              **collection_root(written)}), version)


def _ngff_attrs(store: OutputStore, key: str, version: str) -> dict[str, Any]:
    """The NGFF keys a group was written with (``ome`` in 0.5, top-level in 0.4)."""
    doc = store.get_json(f"{key}/{root_metadata_key(version)}") or {}
    if version == "0.5":
        return dict(doc.get("attributes", {}).get("ome", {}))
    return doc
