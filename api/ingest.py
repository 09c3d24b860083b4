"""Ingest: check a source against PLEXHUB_INGEST_ROOTS, identify it, register its images.

No path from a request reaches the filesystem unchecked: the source must resolve (symlinks
followed) inside one of the configured roots, or start with one of the configured URI prefixes.
A folder (OME-Zarr) is read only when no symlink in it resolves outside it: a "chunk" linked
to a file elsewhere would otherwise be converted into the store and served.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from plexhub.errors import InputError, MissingFileError, PermissionDeniedError
from plexhub.ome_pipeline.confine import check_tree
from plexhub.settings import Settings

SAMPLE = 1 << 20


def resolve_source(source: str, settings: Settings) -> str:
    """The absolute path (or URI) of ``source`` if it lies inside an ingest root."""
    roots = settings.ingest_root_list
    if "://" in source:
        if ".." in source.split("://", 1)[1].split("/"):
            raise PermissionDeniedError(source, "URIs with '..' are refused")
        for root in roots:
            if "://" in root and source.startswith(root.rstrip("/") + "/"):
                return source
        raise PermissionDeniedError(source, "is outside PLEXHUB_INGEST_ROOTS",
                                    f"allowed: {', '.join(roots)}")
    if "\x00" in source:
        raise InputError(repr(source), "is not a valid path")
    local_roots = [Path(r).resolve() for r in roots if "://" not in r]
    candidate = Path(source)
    if not candidate.is_absolute():
        if not local_roots:
            raise PermissionDeniedError(source, "relative paths need a local ingest root")
        candidate = local_roots[0] / candidate
    resolved = candidate.resolve()
    if not any(resolved == r or resolved.is_relative_to(r) for r in local_roots):
        raise PermissionDeniedError(source, "is outside PLEXHUB_INGEST_ROOTS",
                                    f"allowed: {', '.join(roots)}")
    if not resolved.exists():
        raise MissingFileError(source, "does not exist in the ingest folder")
    return str(resolved)


def fingerprint(path: str) -> str:
    """A quick content identity: size plus SHA-256 of the first, middle and last MiB
    (of every metadata file for a Zarr folder). The full checksum is computed by the job."""
    h = hashlib.sha256()
    p = Path(path)
    if p.is_dir():
        check_tree(p)
        for f in sorted(p.rglob("*")):
            if f.is_file() and f.name.endswith((".zattrs", ".zarray", ".zgroup", "zarr.json",
                                                ".xml")):
                h.update(str(f.relative_to(p)).encode())
                h.update(f.read_bytes())
        return h.hexdigest()
    size = p.stat().st_size
    h.update(str(size).encode())
    with p.open("rb") as fh:
        for offset in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
            fh.seek(offset)
            h.update(fh.read(SAMPLE))
    return h.hexdigest()


def full_checksum(path: str) -> str:
    """SHA-256 of the whole file (of every file, in order, for a folder)."""
    h = hashlib.sha256()
    p = Path(path)
    if p.is_dir():
        check_tree(p)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with f.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


def read_manifest(path: str) -> list[dict[str, Any]]:
    """Rows of a CSV (columns: source, animal_id, tissue, dose_group, stain_panel as JSON or
    'FITC=CD8;Cy3=PanCK') or a JSON list of {"source", "metadata"} objects."""
    text = Path(path).read_text(encoding="utf-8-sig")
    if path.lower().endswith(".json"):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"is not valid JSON ({exc})") from exc
        if not isinstance(rows, list):
            raise InputError(path, "must hold a JSON list of {source, metadata} objects")
        return [dict(r) for r in rows]
    out = []
    for i, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        if not row.get("source"):
            raise InputError(f"{path}:{i}", "has no 'source' column value")
        meta: dict[str, Any] = {k: v for k, v in row.items()
                                if k not in ("source", "stain_panel") and v not in (None, "")}
        panel = (row.get("stain_panel") or "").strip()
        if panel:
            meta["stain_panel"] = (json.loads(panel) if panel.startswith("{") else
                                   dict(p.split("=", 1) for p in panel.split(";") if "=" in p))
        out.append({"source": row["source"], "metadata": meta})
    return out


def list_folder(path: str) -> list[str]:
    """Sources in a folder: files and OME-Zarr folders, not hidden, sorted."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(path, "is not a folder")
    out = []
    for f in sorted(p.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_file() or (f.is_dir() and any((f / m).exists()
                                             for m in ("zarr.json", ".zattrs", ".zgroup"))):
            out.append(os.fspath(f))
    return out
