"""The OME-Zarr store of an image, read-only over HTTP and permission-checked, so zarr-python,
ome-zarr-py and napari-ome-zarr open ``…/images/{id}/zarr/`` with a bearer token header.

The path in the URL never reaches the filesystem unchecked: the image's folder comes from the
catalog, the path is split into plain names (no '..', no absolute parts, no hidden files) and
the resolved file must stay inside that folder (a symlink out of it is refused).

The bytes are the source file's (the original OME-XML is kept verbatim) and are served inert:
JSON metadata as ``application/json``, everything else (chunks, ``OME/METADATA.ome.xml``) as
an ``application/octet-stream`` attachment, so no browser renders them as a document of the
API's origin; ``api.headers`` adds ``nosniff`` and a sandboxing CSP to every response.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from plexhub.api.deidentify import store_path_hidden
from plexhub.api.deps import CurrentUser, DbSession, VisibleImage
from plexhub.api.ingest import NAME_MAX, PATH_MAX
from plexhub.errors import InputError, NotFoundError
from plexhub.storage import StoreLocation

router = APIRouter(prefix="/api/v1")
_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")
# Sponsors never read OME/ (the original OME-XML); associated/ (slide label and macro
# images, which show barcodes and slide IDs) only with the view_labels capability.
# See plexhub.api.deidentify.


ZARR_DOTFILES = frozenset({".zattrs", ".zarray", ".zgroup", ".zmetadata"})


def safe_parts(root: str, path: str) -> list[str]:
    """The plain names of ``path`` (a key inside the store at ``root``), or an error."""
    parts = [p for p in path.split("/") if p]
    shown = repr(path if len(path) <= 80 else f"{path[:80]}…")
    if len(root) + 1 + len(path) >= PATH_MAX:  # the filesystem: ENAMETOOLONG
        raise InputError(f"zarr path {shown}", f"is {len(path)} characters long",
                         "no file of a store has a path that long")
    for p in parts:
        if not _PART.match(p) or p in (".", ".."):
            raise InputError(f"zarr path {shown}", "is not a plain relative path")
        if len(p) > NAME_MAX:
            raise InputError(f"zarr path {shown}", f"holds a name of {len(p)} characters",
                             f"no name in a store is longer than {NAME_MAX}")
        if p.startswith(".") and p not in ZARR_DOTFILES:
            raise NotFoundError(f"zarr path {path!r}", "not found")
    return parts


def safe_file(root: Path, path: str) -> Path:
    parts = safe_parts(str(root), path)
    target = root.joinpath(*parts)
    resolved_root = root.resolve()
    resolved = target.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise InputError(f"zarr path {path!r}", "leaves the image store")
    return resolved  # what is served is the file checked, not a path a link could redirect


@router.get("/images/{image_id}/zarr/{path:path}", tags=["data"],
            responses={200: {"content": {"application/octet-stream": {}}}})
def zarr_file(path: str, found: VisibleImage, user: CurrentUser, session: DbSession,
              request: Request) -> Response:
    """One file of the image's OME-Zarr (metadata documents and chunks); 404 when absent."""
    image, study = found
    location = image.store_root()
    if store_path_hidden(session, user, study, path):
        raise NotFoundError(f"zarr path {path!r}", "not found")
    if location.remote:
        return _remote_object(location, path, request.headers.get("range"))
    target = safe_file(location.path, path)
    if not target.is_file():
        raise NotFoundError(f"zarr path {path!r}", "not found")
    if target.suffix == ".json":  # zarr.json and friends: JSON, inert under nosniff + CSP
        return FileResponse(target, media_type="application/json",
                            headers={"Cache-Control": "private, max-age=60"})
    return FileResponse(target, media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=60"},
                        content_disposition_type="attachment", filename=target.name)



_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _remote_object(location: StoreLocation, path: str, ranged: str | None = None) -> Response:
    """One object of a store on object storage, its bytes unmodified (same checks and
    headers as a local file; no links exist there to leave the store by). A single byte
    range (``Range: bytes=a-b``, ``a-`` or ``-n``) is answered 206 with just those bytes, as
    a local file is: zarr-python reads a shard's index as the last bytes of the shard."""
    parts = safe_parts(location.url, path)
    if not parts:
        raise NotFoundError(f"zarr path {path!r}", "not found")
    fs, base = location.filesystem()
    key = f"{base}/{'/'.join(parts)}"
    name = parts[-1]
    headers = {"Cache-Control": "private, max-age=60", "Accept-Ranges": "bytes"}
    if not name.endswith(".json"):
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    media = "application/json" if name.endswith(".json") else "application/octet-stream"
    wanted = _RANGE.match(ranged.strip()) if ranged else None
    try:
        if wanted is None or wanted.groups() == ("", ""):  # none, or several: the whole
            return Response(bytes(fs.cat_file(key)), media_type=media, headers=headers)
        size = int(fs.size(key))
        first, last = wanted.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
        if start > end or start >= size:
            return Response(status_code=416, headers={**headers,
                                                      "Content-Range": f"bytes */{size}"})
        data = bytes(fs.cat_file(key, start=start, end=end + 1))
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NotFoundError(f"zarr path {path!r}", "not found") from exc
    return Response(data, status_code=206, media_type=media,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{size}"})
