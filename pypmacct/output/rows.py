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
    """Concatenate ``parts`` row-wise for ``n`` rows and return the text, NULs removed.

    Literal parts (and matrices that repeat one row) are laid into a template row that
    is copied to every line at once; only the per-row texts are copied, a column of
    cells at a time.
    """
    if n == 0:
        return b""
    template = []
    varying = []
    off = 0
    for p in parts:
        if isinstance(p, (bytes, bytearray)):
            row = np.frombuffer(p, dtype=np.uint8)
        elif p.shape[0] == 0 or p.strides[0] == 0 or n == 1:
            row = np.asarray(p[0] if p.shape[0] else p.reshape(-1)[:0], dtype=np.uint8)
        else:
            row = np.zeros(p.shape[1], dtype=np.uint8)
            varying.append((off, p))
        template.append(row)
        off += len(row)
    buf = np.empty((n, off), dtype=np.uint8)
    buf[:] = np.concatenate(template) if template else b""
    for o, p in varying:
        # one cell of ``w`` bytes per row, copied as a single void item: numpy copies a
        # 2-D slice byte-row by byte-row, which is several times slower for such narrow
        # columns
        w = p.shape[1]
        if w:
            cell = np.dtype((np.void, w))
            src = np.ascontiguousarray(p, dtype=np.uint8).view(cell).reshape(n)
            np.ndarray((n,), dtype=cell, buffer=buf, offset=o, strides=(off,))[...] = src
    return buf.tobytes().translate(None, _NUL)


def chunks(n: int, size: int):
    """Row ranges of at most ``size`` rows."""
    for start in range(0, n, size):
        yield start, min(n, start + size)
