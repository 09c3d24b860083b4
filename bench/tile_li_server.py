"""large_image's side of the tile bench: a minimal threaded HTTP tile server.

    bench/out/venvs/large_image/bin/python bench/tile_li_server.py --port P --src X.ome.tif \
        --style '{"bands": [...]}' [--no-cache] [--quality 85]

Started by ``tiles.py`` (``tile_servers.LargeImage``) with large_image's own venv, so it imports
nothing of plexhub nor of the other bench modules. ``/health``, ``/meta`` (large_image's
metadata plus the source class and version) and ``/tile/{z}/{x}/{y}.jpg``.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any


def li_server(args: argparse.Namespace) -> None:
    """Runs inside large_image's venv: a minimal threaded HTTP tile server."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import large_image

    if not args.no_cache:
        # its default tile cache (1/32 of the memory, counted in 512 KB items) holds the 4,096^2
        # image's tiles but not the 8,192^2 one's (256 composites + 4 x 256 frame tiles, walked
        # in a cycle: an LRU then never hits); 1/4 of the memory holds them
        large_image.config.setConfig("cache_python_memory_portion", 4)
    ts = large_image.open(args.src, style=json.loads(args.style), encoding="JPEG",
                          jpegQuality=args.quality, jpegSubsampling=2)
    if args.no_cache:
        class NoCache(dict):  # type: ignore[type-arg]
            def __setitem__(self, k: Any, v: Any) -> None:
                pass

        ts.cache = NoCache()
    meta = ts.getMetadata()
    meta_b = json.dumps({**meta, "source": type(ts).__name__,
                         "version": large_image.__version__}).encode()
    rx = re.compile(r"/tile/(\d+)/(\d+)/(\d+)\.jpg")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path in ("/health", "/meta"):
                body, ctype = (b"ok", "text/plain") if self.path == "/health" else \
                    (meta_b, "application/json")
            else:
                m = rx.fullmatch(self.path.split("?")[0])
                if not m:
                    self.send_error(404)
                    return
                z, x, y = (int(v) for v in m.groups())
                body, ctype = ts.getTile(x, y, z), "image/jpeg"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            # headers and body in one write (two small writes meet delayed ACKs: +40 ms)
            self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
            self._headers_buffer.append(body)  # type: ignore[attr-defined]
            self.flush_headers()

        def log_message(self, *a: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    Server(("127.0.0.1", args.port), Handler).serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src", required=True, help="the OME-TIFF")
    ap.add_argument("--style", required=True, help="large_image style (JSON)")
    ap.add_argument("--no-cache", action="store_true", help="replace its tile cache by a no-op")
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality")
    li_server(ap.parse_args())


if __name__ == "__main__":
    main()
