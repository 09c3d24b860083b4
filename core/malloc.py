"""glibc malloc tuning for processes that allocate many large, short-lived buffers."""

from __future__ import annotations

import ctypes
import os

_DONE = False


def tune_malloc() -> None:
    """Keep glibc from returning (and the kernel from zeroing again) the large buffers every
    conversion task and every rendered tile allocates. Measured: the conversion's system time
    fell by about a third, a cold 512² tile's CPU by about a quarter (page faults). No-op on a
    libc that is not glibc."""
    global _DONE
    if _DONE:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    libc.mallopt(m_mmap_threshold, 256 * 2**20)
    libc.mallopt(m_trim_threshold, 1024 * 2**20)
    # every thread of a pool would otherwise get its own arena and keep its freed buffers
    libc.mallopt(m_arena_max, max(2, os.cpu_count() or 2))
    _DONE = True
