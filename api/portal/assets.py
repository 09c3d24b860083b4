"""The portal's static files (``static/``): compressed, cacheable, versioned.

Pages link each asset as ``/portal/static/<path>?v=<hash>`` (:func:`url`, the templates'
``asset()``): the hash of the file's content, so a URL names one version of the file and
its answer may be cached for a year (``immutable``); a new file is a new URL. An answer
without the right ``v`` is cacheable for a short while only.

Text assets (JavaScript, CSS, SVG, JSON) are gzip-compressed once, in memory, and served
compressed to every client that accepts gzip (OpenSeadragon's 353 KB script is ~100 KB on
the wire). ETags and If-None-Match work on both variants. Only files under ``static/`` are
served; a path that leaves it, or a link, is a 404.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".txt", ".map", ".html")


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    digest: str  # of the content: the ``v`` of its URL and its ETag
    mtime_ns: int


class StaticAssets:
    """An ASGI app serving ``root`` (mounted at ``/portal/static``)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def load(self, rel: str) -> Asset | None:
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root) or path.is_symlink() or not path.is_file():
            return None
        stat = path.stat()
        with self._lock:
            hit = self._cache.get(rel)
        if hit is not None and hit.mtime_ns == stat.st_mtime_ns:
            return hit
        body = path.read_bytes()
        gz = gzip.compress(body, 9, mtime=0) if path.suffix in COMPRESSIBLE else None
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if media.startswith("text/") or path.suffix == ".js":
            media = ("text/javascript" if path.suffix == ".js" else media) + "; charset=utf-8"
        asset = Asset(body, gz if gz is not None and len(gz) < len(body) else None, media,
                      hashlib.sha256(body).hexdigest()[:16], stat.st_mtime_ns)
        with self._lock:
            self._cache[rel] = asset
        return asset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path, root = scope["path"], scope.get("root_path", "")
        rel = path[len(root):] if root and path.startswith(root + "/") else path
        response = self.answer(scope, rel)
        await response(scope, receive, send)

    def answer(self, scope: Scope, rel: str) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return Response("method not allowed", 405, headers={"Allow": "GET, HEAD"})
        rel = rel.lstrip("/")
        asset = self.load(rel) if rel and "\\" not in rel and "\0" not in rel else None
        if asset is None:
            return Response("not found", 404, media_type="text/plain")
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        pinned = f"v={asset.digest}" in query.split("&")
        gz = asset.gzipped is not None and "gzip" in headers.get("accept-encoding", "")
        tag = f'"{asset.digest}{"-gz" if gz else ""}"'
        out = {"ETag": tag, "Cache-Control": IMMUTABLE if pinned else SHORT,
               "Vary": "Accept-Encoding"}
        if headers.get("if-none-match") in (tag, f"W/{tag}"):
            return Response(status_code=304, headers=out)
        if gz:
            out["Content-Encoding"] = "gzip"
        body = asset.gzipped if gz and asset.gzipped is not None else asset.body
        return Response(b"" if scope["method"] == "HEAD" else body, media_type=asset.media_type,
                        headers={**out, "Content-Length": str(len(body))})

    def url(self, base: str, rel: str) -> str:
        asset = self.load(rel)
        version = f"?v={asset.digest}" if asset is not None else ""
        return f"{base}/portal/static/{rel}{version}"
