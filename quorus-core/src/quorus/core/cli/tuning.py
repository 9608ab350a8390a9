"""Process-wide tuning for bulk data movement, applied by the command-line entry points.

glibc serves each 1 MiB chunk buffer with a fresh ``mmap`` and returns it with ``munmap``
once freed, so every chunk costs 256 page faults; on virtual machines that hand freed memory
back to the host, touching fresh pages is dearer still. Raising the mmap and trim thresholds
lets freed chunk buffers be reused from the heap instead. Measured on a 1 GiB loopback HTTP
download: receiving alone went from 0.95 s to 0.71 s (system time 0.44 s to 0.27 s). The
engine still bounds how many chunks are alive at once, so memory stays bounded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations above this still get their own mapping (a stray huge buffer is given back).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free heap memory kept for reuse before any is returned to the system.
TRIM_THRESHOLD = 128 * 1024 * 1024


def tune_allocator() -> bool:
    """Apply the allocator settings; ``False`` where glibc's ``mallopt`` is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


__all__ = ["tune_allocator"]
