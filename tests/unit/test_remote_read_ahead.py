"""RemoteDirectArray reads ranges of an object through aligned read-ahead blocks: the bytes
are those of the object for every offset and length, across block edges and at its end, and
neighbouring ranges cost no further request."""

from __future__ import annotations

from typing import Any

import fsspec
import numpy as np
import pytest

from plexhub.ome_pipeline import chunkread
from plexhub.ome_pipeline.chunkread import RemoteDirectArray


class Counting:
    def __init__(self, fs: Any) -> None:
        self.fs, self.calls = fs, 0

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        self.calls += 1
        return bytes(self.fs.cat_file(path, start=start, end=end))


def test_ranges_through_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunkread, "READ_AHEAD", 64)
    fs = fsspec.filesystem("memory")
    data = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    fs.pipe_file("/bucket/arr/c/0", data)
    counting = Counting(fs)
    arr = RemoteDirectArray(counting, "/bucket/arr", (1,), np.dtype("u1"), (1,), None, False,
                            0, 3)
    for offset, length in [(0, 10), (10, 20), (60, 10), (100, 64), (127, 130), (990, 10),
                           (0, 1000), (500, 1)]:
        assert arr._range("/bucket/arr/c/0", "c/0", offset, length) == \
            data[offset:offset + length]
    calls = counting.calls
    assert arr._range("/bucket/arr/c/0", "c/0", 20, 5) == data[20:25]
    assert counting.calls == calls  # a block already fetched
    with pytest.raises(OSError, match="short read"):
        arr._range("/bucket/arr/c/0", "c/0", 995, 10)
