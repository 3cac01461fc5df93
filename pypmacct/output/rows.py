"""Assembling output lines from per-column texts.

A line template is a list of parts: literal ``bytes`` (the same on every line: a
separator, a JSON key, a newline) or text matrices (see :mod:`pypmacct.output.values`).
All parts are laid side by side into one ``(n, width)`` byte matrix and the NUL
padding is deleted in a single pass over the buffer, which yields the lines joined.
"""
from __future__ import annotations

import numpy as np

_NUL = b"\0"


def join_lines(parts, n: int) -> bytes:
    """Concatenate ``parts`` row-wise for ``n`` rows and return the text, NULs removed."""
    if n == 0:
        return b""
    widths = [len(p) if isinstance(p, (bytes, bytearray)) else p.shape[1] for p in parts]
    total = sum(widths)
    buf = np.empty((n, total), dtype=np.uint8)
    off = 0
    for p, w in zip(parts, widths):
        if w == 0:
            continue
        if isinstance(p, (bytes, bytearray)):
            buf[:, off:off + w] = np.frombuffer(p, dtype=np.uint8)
        else:
            buf[:, off:off + w] = p
        off += w
    return buf.tobytes().translate(None, _NUL)


def chunks(n: int, size: int):
    """Row ranges of at most ``size`` rows."""
    for start in range(0, n, size):
        yield start, min(n, start + size)
