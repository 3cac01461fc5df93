"""The aggregation cache: sums value columns over rows with equal keys, vectorised.

Keys are rows of a packed structured dtype. Each row gets a 64-bit hash of its bytes;
grouping is a sort by hash followed by ``reduceat`` over runs of equal hashes. Equal
hashes with different keys (a collision) are detected and resolved exactly.

To avoid re-sorting the whole table for every batch, the cache is log-structured: each
batch is reduced on its own and queued; queued runs are merged into the main table only
when they outgrow it (a stable sort of already-sorted runs is cheap). ``len()`` is exact
after ``compact()``. Rows keep the sequence number of their first appearance so that
purges come out in arrival order, as pmacct's do.
"""
from __future__ import annotations

import numpy as np

_PRIME = np.uint64(0x100000001B3)
_SEED = np.uint64(0xCBF29CE484222325)

SUM, OR, LAST = "sum", "or", "last"  # LAST: the value of the most recent row (u1)


def _words(keys: np.ndarray) -> np.ndarray:
    """The key bytes as a (n, w) uint64 matrix, zero padded."""
    n = len(keys)
    size = keys.dtype.itemsize
    if size == 0:  # 'aggregate: none': every row has the same (empty) key
        return np.zeros((n, 1), dtype=np.uint64)
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(n, size)
    pad = (-size) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    return raw.view(np.uint64).reshape(n, -1)


def hash_words(w: np.ndarray) -> np.ndarray:
    h = np.full(len(w), _SEED, dtype=np.uint64)
    for j in range(w.shape[1]):
        h ^= w[:, j]
        h *= _PRIME
        h ^= h >> np.uint64(29)
    return h


def hash_keys(keys: np.ndarray) -> np.ndarray:
    return hash_words(_words(keys))


class Table:
    """Unique keys (as uint64 word rows) sorted by hash, with their value columns and
    first-seen sequence numbers."""

    __slots__ = ("words", "hashes", "values", "seq")

    def __init__(self, words, hashes, values, seq):
        self.words, self.hashes, self.values, self.seq = words, hashes, values, seq

    def __len__(self):
        return len(self.words)


def _reduce(values, seq, order, starts, ops):
    out = {}
    s = seq[order]
    for name, col in values.items():
        c = col[order]
        op = ops.get(name, SUM)
        if op == LAST:
            # the row with the highest sequence number wins: pack (seq, value), take the max
            packed = (s.astype(np.int64) << 8) | c.astype(np.int64)
            out[name] = (np.maximum.reduceat(packed, starts) & 0xFF).astype(np.uint8)
        else:
            red = np.bitwise_or if op == OR else np.add
            out[name] = red.reduceat(c, starts)
    return out, np.minimum.reduceat(s, starts)


def _group(words, hashes, values, seq, ops, presorted=False) -> Table:
    """Reduce rows with equal keys. ``presorted``: rows are runs sorted by hash."""
    n = len(words)
    if n == 0:
        return Table(words, hashes, values, seq)
    order = np.argsort(hashes, kind="stable" if presorted else "quicksort")
    h = hashes[order]
    bounds = np.flatnonzero(h[1:] != h[:-1]) + 1
    starts = np.concatenate([[0], bounds])
    w = words[order]
    if len(starts) != n:
        # collision check: every row must equal the first row of its hash run
        firsts = np.repeat(starts, np.diff(np.append(starts, n)))
        if not (w == w[firsts]).all():
            return _group_exact(words, hashes, values, seq, ops)
    vals, first = _reduce(values, seq, order, starts, ops)
    return Table(w[starts], h[starts], vals, first)


def _group_exact(words, hashes, values, seq, ops) -> Table:
    """Exact grouping by (hash, key words), for the rare case of a hash collision."""
    order = np.lexsort(tuple(words[:, j] for j in range(words.shape[1] - 1, -1, -1)) + (hashes,))
    ws = words[order]
    diff = np.any(ws[1:] != ws[:-1], axis=1)
    starts = np.concatenate([[0], np.flatnonzero(diff) + 1])
    vals, first = _reduce(values, seq, order, starts, ops)
    return Table(ws[starts], hashes[order][starts], vals, first)


class AggregationCache:
    """Accumulates (key, values) rows; ``drain()`` hands back the aggregates in
    first-seen order and empties the cache."""

    def __init__(self, key_dtype: np.dtype, value_ops: dict[str, str]):
        self.key_dtype = key_dtype
        self.ops = dict(value_ops)
        self._seq = 0
        self._clear()

    def _clear(self):
        self._main: Table | None = None
        self._runs: list[Table] = []
        self._queued = 0

    def _empty_values(self):
        return {n: np.zeros(0, dtype=np.uint64 if op == SUM else np.uint8)
                for n, op in self.ops.items()}

    def add(self, keys: np.ndarray, values: dict[str, np.ndarray],
            seq: np.ndarray | None = None) -> None:
        """Add rows. ``seq`` orders them in time (arrival order); rows added later
        count as newer when it is not given."""
        n = len(keys)
        if n == 0:
            return
        if seq is None:
            seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
            self._seq += n
        words = _words(keys)
        run = _group(words, hash_words(words), values, seq, self.ops)
        self._runs.append(run)
        self._queued += len(run)
        main = len(self._main) if self._main is not None else 0
        if self._queued > max(main, 65536):
            self.compact()

    def compact(self) -> None:
        if not self._runs:
            return
        tables = ([self._main] if self._main is not None else []) + self._runs
        if len(tables) == 1:
            self._main = tables[0]
        else:
            words = np.concatenate([t.words for t in tables])
            hashes = np.concatenate([t.hashes for t in tables])
            values = {n: np.concatenate([t.values[n] for t in tables]) for n in self.ops}
            seq = np.concatenate([t.seq for t in tables])
            self._main = _group(words, hashes, values, seq, self.ops, presorted=True)
        self._runs = []
        self._queued = 0

    def __len__(self) -> int:
        self.compact()
        return 0 if self._main is None else len(self._main)

    def upper_bound(self) -> int:
        """Number of aggregates, possibly overcounted, without compacting."""
        main = 0 if self._main is None else len(self._main)
        return main + self._queued

    def drain(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """All aggregates in first-seen order; the cache is left empty."""
        self.compact()
        t = self._main
        self._clear()
        if t is None:
            return np.zeros(0, dtype=self.key_dtype), self._empty_values()
        order = np.argsort(t.seq, kind="stable")
        return self._unwords(t.words[order]), {n: v[order] for n, v in t.values.items()}

    def _unwords(self, words: np.ndarray) -> np.ndarray:
        size = self.key_dtype.itemsize
        if size == 0:
            return np.zeros(len(words), dtype=self.key_dtype)
        raw = np.ascontiguousarray(words).view(np.uint8).reshape(len(words), -1)[:, :size]
        return np.ascontiguousarray(raw).view(self.key_dtype).reshape(-1)
