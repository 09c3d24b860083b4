"""How many renders run at once: per caller (more are refused with a 429) and per process (a
pixel budget that more wait for). The numbers are in ``plexhub.limits``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from plexhub.errors import BusyError
from plexhub.policies.access import Principal


class CallerLimit:
    """At most ``limit`` requests of one kind in flight per caller (by user name); one more
    raises :class:`BusyError` at once (HTTP 429 with Retry-After) instead of queueing, so
    that one caller cannot hold the renderer or the memory its requests need."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, caller: Principal) -> Iterator[None]:
        key = caller.user
        with self._lock:
            held = self._counts.get(key, 0)
            if held >= self.limit:
                raise BusyError(f"caller {caller.user}", f"already has {held} {self.what} in "
                                f"flight, the limit", "wait for them to finish, then retry",
                                retry_after=1)
            self._counts[key] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts[key] - 1
                if left:
                    self._counts[key] = left
                else:
                    del self._counts[key]

    def held(self, caller: Principal) -> int:
        with self._lock:
            return self._counts.get(caller.user, 0)


class PixelBudget:
    """The pixels all renders of the process may hold at once; a render waits until its
    pixels fit (one larger than the whole budget waits until it is alone)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._cond = threading.Condition()

    @contextmanager
    def take(self, pixels: int) -> Iterator[None]:
        need = max(0, min(pixels, self.total))
        with self._cond:
            self._cond.wait_for(lambda: self._free >= need)
            self._free -= need
        try:
            yield
        finally:
            with self._cond:
                self._free += need
                self._cond.notify_all()

    @property
    def free(self) -> int:
        with self._cond:
            return self._free
