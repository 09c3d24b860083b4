"""Render-ahead: the viewer page starts rendering the tiles its viewer will draw first while
the page itself is still being built and sent, so that the first tile requests (the page's
``<link rel="preload">``, then OpenSeadragon's) find them rendered or on the way.

It is not a cache of what someone viewed before: an entry is made only by a page request
(``plexhub.api.portal.pages``, for a caller the page route found allowed to see the image),
answers the first tile request for exactly that rendered image (same ETag: image checksum,
preset digest, level, position, size, format, quality) and is then dropped; one that nobody
asks for is dropped after :data:`TTL` seconds. With the tile cache off (``tile_cache_bytes=0``,
as ``bench/portal.py`` runs) the first tile is still rendered once per page view, only
earlier. The tile request that takes it passes every check a tile request passes (the route's
grant and preset lookup) before it is answered: the bytes are the same as a render then would
make, so nothing is shown that the request could not have had.

A tile rendered for a request shortly before (:data:`RECENT` seconds; e.g. the next slide's
first tiles, which the slide before prefetches into the browser's cache) is not rendered
ahead: its page will most likely not ask for it.

Bounded: at most :data:`MAX_PENDING` renders wait or run at once (more page views meanwhile
render nothing ahead) and :data:`MAX_ENTRIES` results are kept; renders run in one thread,
through the engine's render slots and pixel budget like any other.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

TTL = 10.0  # seconds a result waits for its tile request
MAX_PENDING = 4  # renders queued or running
MAX_ENTRIES = 16  # results kept (the oldest is dropped first)
RECENT = 120.0  # seconds a tile rendered for a request counts as in its browser's cache
MAX_RECENT = 1024  # such tiles remembered


class RenderAhead:
    """Rendered images by ETag, each made once and answered once (see the module)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, Future[bytes]]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._recent: OrderedDict[str, float] = OrderedDict()  # tag -> when rendered

    def start(self, tag: str, render: Callable[[], bytes]) -> bool:
        """Render ``tag`` now in the background unless it is there already or too many
        renders are pending; whether it was started."""
        with self._lock:
            self._expire()
            seen = self._recent.get(tag)
            if tag in self._items or self._pending >= MAX_PENDING or \
                    (seen is not None and seen > time.monotonic() - RECENT):
                return False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="render-ahead")
            self._pending += 1
            future = self._pool.submit(self._run, render)
            self._items[tag] = (time.monotonic() + TTL, future)
            while len(self._items) > MAX_ENTRIES:
                self._items.popitem(last=False)
        return True

    def _run(self, render: Callable[[], bytes]) -> bytes:
        try:
            return render()
        finally:
            with self._lock:
                self._pending -= 1

    def take(self, tag: str, *, wait: bool) -> bytes | None:
        """The bytes rendered ahead for ``tag`` (dropped from here), or None: none was
        started, it expired or failed, or (``wait`` False) it is not finished yet (then it
        stays for a request that may wait)."""
        with self._lock:
            hit = self._items.get(tag)
            if hit is None:
                return None
            if hit[0] < time.monotonic() or not (wait or hit[1].done()):
                if hit[0] < time.monotonic():
                    del self._items[tag]
                return None
            del self._items[tag]
        try:
            data = hit[1].result(timeout=TTL)
        except Exception:  # the request renders itself and reports what fails
            return None
        self.rendered(tag)
        return data

    def rendered(self, tag: str) -> None:
        """Note that ``tag`` was rendered for a request (and so sent to a browser)."""
        with self._lock:
            self._recent[tag] = time.monotonic()
            self._recent.move_to_end(tag)
            while len(self._recent) > MAX_RECENT:
                self._recent.popitem(last=False)

    def _expire(self) -> None:
        now = time.monotonic()
        for tag in [t for t, (until, _) in self._items.items() if until < now]:
            del self._items[tag]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
