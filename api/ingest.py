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
from plexhub.storage import filesystem, is_url, parse_url

SAMPLE = 1 << 20


NAME_MAX = 255  # bytes in one path component (Linux, most filesystems)
PATH_MAX = 4096  # bytes in a whole path


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else f"{text[:80]}…")


def check_path_text(source: str, path: str) -> None:
    """Refuse, before any filesystem call, a path (``source`` as the caller gave it, ``path``
    as it would be opened) the filesystem would refuse with an error that is not about the
    caller's input: a NUL, text that is not valid Unicode, a name over ``NAME_MAX`` bytes
    (``ENAMETOOLONG``)."""
    if "\x00" in path:
        raise InputError(_shown(source), "is not a valid path", "it holds a NUL character")
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError as exc:
        raise InputError(_shown(source), "is not a valid path",
                         "it holds text that is not valid Unicode") from exc
    if len(raw) >= PATH_MAX:
        raise InputError(_shown(source), f"is a path of {len(raw)} bytes",
                         f"paths are shorter than {PATH_MAX} bytes")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise InputError(_shown(source), f"holds a name of {len(longest)} bytes",
                         f"each name in a path has at most {NAME_MAX} bytes")


def resolve_source(source: str, settings: Settings, user: str | None = None) -> str:
    """The absolute path (or URI) of ``source`` if it lies inside an ingest root (or, for
    ``user``, inside their own folder: ``ingest_user_root``)."""
    roots = settings.ingest_roots_of(user)
    if "://" in source:
        return _resolve_url(source, roots)
    check_path_text(source, source)
    local_roots = [Path(r).resolve() for r in roots if "://" not in r]
    candidate = Path(source)
    if not candidate.is_absolute():
        if not local_roots:
            raise PermissionDeniedError(source, "relative paths need a local ingest root")
        candidate = local_roots[0] / candidate
    check_path_text(source, str(candidate))
    resolved = candidate.resolve()
    if not any(resolved == r or resolved.is_relative_to(r) for r in local_roots):
        raise PermissionDeniedError(source, "is outside PLEXHUB_INGEST_ROOTS",
                                    f"allowed: {', '.join(roots)}")
    if not resolved.exists():
        raise MissingFileError(source, "does not exist in the ingest folder")
    return str(resolved)


def _resolve_url(source: str, roots: list[str]) -> str:
    """``source`` (a URL) in its clean form if it lies under a URL ingest root and exists:
    compared by scheme, bucket and whole names (``s3://incoming`` admits
    ``s3://incoming/x.ome.tif``, not ``s3://incoming2/x`` nor ``s3://incoming/../x``)."""
    parsed = parse_url(source, _shown(source))
    if not any(is_url(r) and parsed.inside(parse_url(r, f"ingest root {r}"))
               and len(parsed.parts) > len(parse_url(r).parts) for r in roots):
        raise PermissionDeniedError(_shown(source), "is outside PLEXHUB_INGEST_ROOTS",
                                    f"allowed: {', '.join(roots)}")
    url = parsed.url
    fs, inner = filesystem(url)
    try:
        there = fs.exists(inner)
    except OSError as exc:  # the object store refused or failed: say so, never a 500
        raise MissingFileError(_shown(source), f"cannot be reached ({exc})",
                               "check the URL and the object store's configuration") from exc
    if not there:
        raise MissingFileError(_shown(source), "does not exist in the ingest location")
    return url


def _remote_fingerprint(url: str) -> str:
    """:func:`fingerprint` of an object (size and the same three MiB) or of a Zarr prefix
    (every metadata object)."""
    h = hashlib.sha256()
    fs, inner = filesystem(url)
    if fs.isdir(inner):
        for name in sorted(fs.find(inner)):
            if name.endswith((".zattrs", ".zarray", ".zgroup", "zarr.json", ".xml")):
                h.update(name[len(inner) + 1:].encode())
                h.update(bytes(fs.cat_file(name)))
        return h.hexdigest()
    size = int(fs.size(inner))
    h.update(str(size).encode())
    for offset in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
        h.update(bytes(fs.cat_file(inner, start=offset, end=min(size, offset + SAMPLE))))
    return h.hexdigest()


def _remote_checksum(url: str) -> str:
    h = hashlib.sha256()
    fs, inner = filesystem(url)
    is_dir = fs.isdir(inner)
    for name in sorted(fs.find(inner)) if is_dir else [inner]:
        if is_dir:
            h.update(name[len(inner) + 1:].encode())
        with fs.open(name, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


def fingerprint(path: str) -> str:
    """A quick content identity: size plus SHA-256 of the first, middle and last MiB
    (of every metadata file for a Zarr folder). The full checksum is computed by the job."""
    if is_url(path):
        return _remote_fingerprint(path)
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
    if is_url(path):
        return _remote_checksum(path)
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


def read_manifest(path: str, name: str | None = None) -> list[dict[str, Any]]:
    """Rows of a CSV (columns: source, animal_id, tissue, dose_group, stain_panel as JSON or
    'FITC=CD8;Cy3=PanCK') or a JSON list of {"source", "metadata"} objects, each as
    ``{"source", "metadata", "where"}`` (``where``: "line 3", "entry 2" for messages).
    ``name``: the manifest as the caller named it (messages never show the server's path)."""
    shown = f"manifest {name or path}"
    try:
        if is_url(path):
            fs, inner = filesystem(path)
            text = bytes(fs.cat_file(inner)).decode("utf-8-sig")
        else:
            text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(shown, f"is not UTF-8 text (byte {exc.start} cannot be decoded)",
                         "save it as UTF-8 CSV or JSON") from exc
    except IsADirectoryError as exc:
        raise InputError(shown, "is a folder", "give a CSV or JSON file, or use folder=") \
            from exc
    if path.lower().endswith(".json"):
        return _json_rows(shown, text)
    return _csv_rows(shown, text)


def _json_rows(shown: str, text: str) -> list[dict[str, Any]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(shown, f"is not valid JSON ({exc})") from exc
    shape = 'a JSON list of {"source": ..., "metadata": {...}} objects'
    if not isinstance(rows, list):
        raise InputError(shown, f"holds a JSON {_kind(rows)}", f"it must hold {shape}")
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InputError(shown, f"entry {i} is a JSON {_kind(row)}", f"it must hold {shape}")
        out.append({"source": row.get("source"), "metadata": row.get("metadata") or {},
                    "where": f"entry {i}"})
    return out


def _csv_rows(shown: str, text: str) -> list[dict[str, Any]]:
    out = []
    reader = csv.DictReader(io.StringIO(text))
    try:
        if "source" not in (reader.fieldnames or []):
            raise InputError(shown, "has no 'source' column",
                             "the first line names the columns: source, tissue, ...")
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row:
                raise InputError(f"{shown} {where}", "has more values than there are columns")
            if not row.get("source"):
                raise InputError(f"{shown} {where}", "has no 'source' column value")
            meta: dict[str, Any] = {k: v for k, v in row.items()
                                    if k not in ("source", "stain_panel") and v not in (None, "")}
            panel = (row.get("stain_panel") or "").strip()
            if panel:
                meta["stain_panel"] = _panel(f"{shown} {where}", panel)
            out.append({"source": row["source"], "metadata": meta, "where": where})
    except csv.Error as exc:
        raise InputError(shown, f"is not a valid CSV file ({exc})") from exc
    return out


def _panel(where: str, text: str) -> Any:
    if not text.startswith("{"):
        return dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(where, f"has a stain_panel that is not valid JSON ({exc})",
                         'write {"FITC": "CD8"} or FITC=CD8;Cy3=PanCK') from exc


def _kind(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def list_folder(path: str) -> list[str]:
    """Sources in a folder: files and OME-Zarr folders, not hidden, sorted."""
    if is_url(path):
        return _list_prefix(path)
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


def _list_prefix(url: str) -> list[str]:
    """:func:`list_folder` of a URL prefix: objects and OME-Zarr prefixes under it."""
    fs, inner = filesystem(url)
    if not fs.isdir(inner):
        raise InputError(url, "is not a folder (prefix)")
    scheme = url.split("://", 1)[0]
    out = []
    for info in sorted(fs.ls(inner, detail=True), key=lambda i: str(i["name"])):
        name = str(info["name"]).rstrip("/")
        if name.rsplit("/", 1)[-1].startswith("."):
            continue
        if info.get("type") == "directory" and not any(
                fs.exists(f"{name}/{m}") for m in ("zarr.json", ".zattrs", ".zgroup")):
            continue
        out.append(f"{scheme}://{name}")
    return out
