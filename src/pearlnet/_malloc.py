"""Keep freed array memory for reuse (glibc only), so that temporaries are not faulted in anew.

A training step or a curvature product allocates and frees the same few-megabyte arrays again
and again. glibc serves such sizes with mmap and gives them back to the kernel on free, so every
new array costs a page fault per 4 KiB page (about a quarter of a gradient's time on the
issue-5 autoencoder). Raising the mmap threshold to its maximum (32 MiB) and the trim threshold
to 256 MiB makes freed blocks stay in the heap for the next array of that size. The setting is
process-wide, so it is opt-in: importing pearlnet no longer changes the host process's
allocator (an application that embeds the library keeps its own settings). The compiled steps
of ``pearlnet.jit`` (Model.fit's default, Hessian-free's product) keep their buffers between
calls, which does the same work without touching the allocator (docs/jit.md has the figures).
Call ``pearlnet.keep_freed_memory()``, or set ``PEARLNET_MALLOC=keep`` before importing
pearlnet, for uncompiled code that allocates large temporaries in a loop;
``PEARLNET_MALLOC=system`` makes the call a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Set glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (bytes); True when both were set.

    Does nothing (False) off Linux/glibc or when ``PEARLNET_MALLOC=system``.
    """
    if os.environ.get("PEARLNET_MALLOC", "").lower() == "system" or not sys.platform.startswith(
            "linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
