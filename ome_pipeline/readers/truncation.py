"""Is a TIFF file shorter than its own structure says? A cheap walk of the IFD chain.

A scanner file copied only in part fails deep inside tifffile with messages that name no
cause (``IndexError: index 0 out of range(0)`` when the directories were at the end,
``corrupted strip cannot be reshaped`` when the pixels were). This walk reads only the
directories and their strip/tile offset and byte-count tables, so detection can say the one
thing that helps: the file is truncated, it has N bytes and its structure needs M.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from plexhub.errors import CorruptFileError

_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 6: 1, 7: 1, 8: 2, 9: 4, 13: 4, 16: 8, 17: 8, 18: 8}
_INT = {1: "u1", 3: "u2", 4: "u4", 13: "u4", 16: "u8", 18: "u8"}
_OFFSETS, _COUNTS = (273, 324), (279, 325)  # StripOffsets/TileOffsets, their byte counts
MAX_DIRECTORIES = 100_000


def needed_bytes(path: str) -> tuple[int, int] | None:
    """(file size, bytes the TIFF structure refers to), or None when ``path`` is not a TIFF
    this walk understands. Only the directories and the offset tables are read."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head[:2] not in (b"II", b"MM"):
            return None
        bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(bo + "H", head[2:4])[0]
        if magic == 42 and len(head) >= 8:
            big, first = False, struct.unpack(bo + "I", head[4:8])[0]
        elif magic == 43 and len(head) >= 16:
            big, first = True, struct.unpack(bo + "Q", head[8:16])[0]
        else:
            return None
        count_fmt, entry_size, ptr_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        count_size, ptr_size = struct.calcsize(count_fmt), struct.calcsize(ptr_fmt)
        needed, offset = 0, first
        seen: set[int] = set()
        while offset and offset not in seen and len(seen) < MAX_DIRECTORIES:
            seen.add(offset)
            if offset + count_size > size:
                return size, max(needed, offset + count_size)
            fh.seek(offset)
            n = struct.unpack(bo + count_fmt, fh.read(count_size))[0]
            end = offset + count_size + n * entry_size + ptr_size
            needed = max(needed, end)
            if end > size:
                return size, needed
            table = fh.read(n * entry_size + ptr_size)
            tags: dict[int, np.ndarray] = {}
            for k in range(n):
                e = table[k * entry_size:(k + 1) * entry_size]
                code, typ = struct.unpack(bo + "HH", e[:4])
                if code not in _OFFSETS + _COUNTS or typ not in _INT:
                    continue
                count = struct.unpack(bo + ptr_fmt, e[4:4 + ptr_size])[0]
                nbytes = count * _TYPES[typ]
                inline = e[4 + ptr_size:]
                if nbytes <= len(inline):
                    raw = inline[:nbytes]
                else:
                    where = struct.unpack(bo + ptr_fmt, inline[:ptr_size])[0]
                    needed = max(needed, where + nbytes)
                    if where + nbytes > size:
                        return size, needed
                    fh.seek(where)
                    raw = fh.read(nbytes)
                tags[code] = np.frombuffer(raw, bo + _INT[typ]).astype(np.uint64)
            for off_tag, cnt_tag in zip(_OFFSETS, _COUNTS, strict=True):
                offs, cnts = tags.get(off_tag), tags.get(cnt_tag)
                if offs is not None and cnts is not None and len(offs) == len(cnts) and \
                        len(offs):
                    used = cnts > 0
                    if used.any():
                        needed = max(needed, int((offs[used] + cnts[used]).max()))
            offset = struct.unpack(bo + ptr_fmt, table[n * entry_size:])[0]
    return size, needed


def check_tiff_complete(path: str) -> None:
    """Raise :class:`CorruptFileError` naming ``path`` when it ends before the data its own
    TIFF structure refers to (a partial copy or download)."""
    try:
        found = needed_bytes(path)
    except (OSError, struct.error, ValueError):  # the readers report what they find
        return
    if found is None:
        return
    size, needed = found
    if needed > size:
        raise CorruptFileError(
            path, f"is truncated: the file has {size:,} bytes but its TIFF structure needs "
            f"at least {needed:,}", "copy the complete file again and compare its size with "
            "the original")
