"""Allocator settings for the daemons' batch-sized arrays.

Every batch allocates arrays of a few MB (decoded records, the projection for a
plugin, the copy read from a ring, key rows...) and frees them a moment later. With
glibc's defaults such blocks are mmap()ed and munmap()ed each time (its adaptive
threshold stops adapting at the first block it has to give back), so every batch
faults its pages in afresh: tens of thousands of page faults per million records, a
tenth of a CPU-second in the kernel. Keeping blocks up to 32 MB in the heap and not
trimming it below 256 MB of free top lets the next batch reuse the same pages. The
peak resident size does not change (it is the working set either way); memory freed
after a peak stays mapped to the process until it exits or the heap shrinks below
the threshold.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20      # glibc's maximum on 64-bit
TRIM_THRESHOLD = 256 << 20

_done = False


def tune_malloc() -> bool:
    """Apply the settings once per process (forked children inherit them). Returns
    whether they took effect (False on a libc without mallopt, e.g. musl)."""
    global _done
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt    # the interpreter's own libc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done = ok
    return ok
