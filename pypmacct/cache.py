"""The aggregation cache: sums value columns over rows with equal keys, vectorised.

The cache is an open-addressing hash table (linear probing) over the key bytes, worked
a batch at a time. Aggregates live in dense columns indexed by an aggregate id: the key
as a row of uint64 words, one column per value, the sequence number of the first row
and, for ``LAST`` values, the (sequence, value) of the most recent row. A slot table of
int32 maps hash positions to ids.

Adding a batch:

1. hash every key (one integer matrix product over the key words and a mix);
2. probe the slot table for all rows at once, one linear-probing step per round: a row
   meets either an empty slot, an aggregate (compare the key words, exact), or a row of
   this same batch that claimed the slot in an earlier step. Empty slots are claimed
   with ``np.minimum.at``, so that of the rows racing for one slot the earliest wins:
   the first occurrence of a new key in the batch represents it. Rows with equal keys
   follow the same probe sequence, so they meet their representative;
3. new aggregates get ids in the order of their first occurrence in the batch;
4. the value columns are updated with unbuffered ``ufunc.at`` (sum, or, max of
   (sequence, value) for ``LAST``), which is exact with repeated ids.

A batch never needs sorting, the table is never re-sorted or merged, and the columns
grow in anonymous private mappings (``mremap``: no copy, untouched capacity costs no
memory). Ids follow first-seen order whenever rows arrive in sequence order, which is
how plugins feed the cache; otherwise ``drain()`` sorts by first sequence number. Either
way purges come out in arrival order, as pmacct's do.
"""
from __future__ import annotations

import mmap

import numpy as np

SUM, OR, LAST = "sum", "or", "last"  # LAST: the value of the most recent row (u1)

_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)


def _multipliers(n: int) -> np.ndarray:
    """``n`` fixed pseudo-random odd 64-bit multipliers (splitmix64 outputs); made with
    plain integer arithmetic because importing numpy.random costs more start-up CPU
    than the whole rest of this module."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z | np.uint64(1)


# odd multipliers for the key words (a multilinear hash), then a murmur-style mix
_MULT = _multipliers(1024)
_HASH_BLOCK = 1 << 16

_CLAIM = np.int32(2 ** 31 - 1)    # a slot claimed by batch row r holds r - _CLAIM (< 0)
_LOAD = 0.5                       # slot table load factor before it grows...
_MAX_LOAD = 0.6                  # ...or would reach while a block goes in
_MIN_SLOTS = 1024
# the slot table grows fourfold: every growth re-inserts all aggregates, and with 4 the
# table is rebuilt half as often as with 2 (a fifth less CPU in the cache with 1M new
# keys), for at most twice the slots (5 bytes each)
_GROWTH = 4
_NO_SEQ = np.iinfo(np.int64).max
BLOCK_ROWS = 1 << 15              # small batches are gathered into blocks of this size


def key_words(keys: np.ndarray) -> np.ndarray:
    """The key bytes as a (n, w) uint64 matrix, zero padded: a view when the key
    dtype's size is a multiple of 8 (``KeyBuilder`` pads its keys so), else a copy."""
    n = len(keys)
    size = keys.dtype.itemsize
    if size == 0:  # 'aggregate: none': every row has the same (empty) key
        return np.zeros((n, 1), dtype=np.uint64)
    keys = np.ascontiguousarray(keys)
    if size % 8 == 0:
        return keys.view(np.uint64).reshape(n, size // 8)
    raw = keys.view(np.uint8).reshape(n, size)
    out = np.zeros((n, (size + 7) // 8), dtype=np.uint64)
    out.view(np.uint8)[:, :size] = raw
    return out


def hash_words(w: np.ndarray) -> np.ndarray:
    """64-bit hashes of the rows of a (n, k) uint64 matrix (in blocks of rows, so that
    the temporaries stay in the CPU cache)."""
    n, k = w.shape
    if n > _HASH_BLOCK:
        out = np.empty(n, dtype=np.uint64)
        for a in range(0, n, _HASH_BLOCK):
            out[a:a + _HASH_BLOCK] = hash_words(w[a:a + _HASH_BLOCK])
        return out
    mult = _MULT[np.arange(k) % len(_MULT)]
    h = np.einsum("ij,j->i", w, mult)
    h ^= h >> np.uint64(33)
    h *= _MIX1
    h ^= h >> np.uint64(29)
    h *= _MIX2
    h ^= h >> np.uint64(32)
    return h


def hash_keys(keys: np.ndarray) -> np.ndarray:
    return hash_words(key_words(keys))


def _rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    eq = a[:, 0] == b[:, 0]
    for j in range(1, a.shape[1]):
        eq &= a[:, j] == b[:, j]
    return eq


class _Column:
    """A growable array of rows in an anonymous private mapping."""

    __slots__ = ("dtype", "shape", "cap", "_mm", "arr")

    def __init__(self, dtype, width: int | None = None):
        self.dtype = np.dtype(dtype)
        self.shape = () if width is None else (width,)
        self.cap = 0
        self._mm = None
        self.arr = np.zeros((0,) + self.shape, dtype=self.dtype)

    def reserve(self, rows: int) -> None:
        if rows <= self.cap:
            return
        cap = max(rows, 2 * self.cap, 4096)
        row_bytes = self.dtype.itemsize * (self.shape[0] if self.shape else 1)
        size = cap * row_bytes
        self.arr = None     # release the export so that the mapping can be resized
        if self._mm is None:
            self._mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        else:
            self._mm.resize(size)
        self.cap = cap
        self.arr = np.frombuffer(self._mm, dtype=self.dtype).reshape((cap,) + self.shape)


class AggregationCache:
    """Accumulates (key, values) rows; ``drain()`` hands back the aggregates in
    first-seen order and empties the cache."""

    def __init__(self, key_dtype: np.dtype, value_ops: dict[str, str]):
        self.key_dtype = np.dtype(key_dtype)
        self.ops = dict(value_ops)
        self._width = max(1, -(-self.key_dtype.itemsize // 8))
        self._seq = 0
        self._block = None
        self._clear()

    def _clear(self, expect: int = 0):
        """Empty the cache; the slot table is sized for ``expect`` aggregates (the
        last interval's count), so that a steady load does not rehash every interval."""
        self._n = 0
        self._words = _Column(np.uint64, self._width)
        self._vals = {name: _Column(np.uint64 if op == SUM else np.int64 if op == LAST
                                    else np.uint8)
                      for name, op in self.ops.items()}
        self._first = _Column(np.int64)
        size = _MIN_SLOTS
        while expect > size * _LOAD:
            size *= 2
        self._slots = np.zeros(size, dtype=np.int32)
        self._fps = np.zeros(size, dtype=np.uint8)
        self._hi = None          # the highest sequence number added so far
        self._ordered = True     # ids are in first-seen order
        self._pending = 0        # rows waiting in self._block

    def _empty_values(self):
        return {n: np.zeros(0, dtype=np.uint64 if op == SUM else np.uint8)
                for n, op in self.ops.items()}

    # ---- adding -----------------------------------------------------------------------
    def add(self, keys: np.ndarray, values: dict[str, np.ndarray],
            seq: np.ndarray | None = None) -> None:
        """Add rows. ``seq`` orders them in time (arrival order); rows added later
        count as newer when it is not given.

        Small batches are gathered into a block of ``BLOCK_ROWS`` rows before they go
        into the table (every method that reads the cache takes them in first)."""
        n = len(keys)
        if n == 0:
            return
        if seq is None:
            seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
            self._seq += n
        words = key_words(keys)
        if words.shape[1] != self._width:
            raise ValueError("keys do not match the cache's key dtype")
        missing = [name for name in self.ops if name not in values]
        if missing:
            raise KeyError(f"no value column(s) {missing} for the cache")
        if self._pending + n > BLOCK_ROWS:
            self._flush()
        if n >= BLOCK_ROWS:
            self._insert(words, values, np.asarray(seq).astype(np.int64, copy=False))
            return
        if self._block is None:
            self._block = (np.empty((BLOCK_ROWS, self._width), dtype=np.uint64),
                           {name: np.empty(BLOCK_ROWS, dtype=np.uint64 if op == SUM else np.uint8)
                            for name, op in self.ops.items()},
                           np.empty(BLOCK_ROWS, dtype=np.int64))
        bw, bv, bs = self._block
        a, b = self._pending, self._pending + n
        bw[a:b] = words
        for name in self.ops:
            bv[name][a:b] = values[name]
        bs[a:b] = seq
        self._pending = b

    def _flush(self) -> None:
        if self._pending:
            bw, bv, bs = self._block
            n, self._pending = self._pending, 0
            self._insert(bw[:n], {name: v[:n] for name, v in bv.items()}, bs[:n])

    def _insert(self, words, values, seq) -> None:
        n = len(words)
        self._reserve(self._n + n)
        ids, reps = self._ids(words, hash_words(words))
        base = self._n
        k = len(reps)
        self._n = base + k
        if k:
            np.take(words, reps, axis=0, out=self._words.arr[base:base + k])
        smin, smax = int(seq.min()), int(seq.max())
        # in order: rows sorted by sequence, all newer than what the cache holds
        in_order = ((self._hi is None or smin > self._hi)
                    and (n == 1 or bool((seq[1:] >= seq[:-1]).all())))
        self._hi = smax if self._hi is None else max(self._hi, smax)
        first = self._first.arr
        if in_order:
            np.take(seq, reps, out=first[base:base + k])
        else:
            self._ordered = False
            first[base:base + k] = _NO_SEQ
            np.minimum.at(first, ids, seq)
        for name, op in self.ops.items():
            col = self._vals[name].arr
            v = values[name]
            if op == LAST:
                col[base:base + k] = -1
                v = np.asarray(v)
                if in_order and (v == v[0]).all():
                    # one value for every row, all rows newer than the cache: each
                    # aggregate touched ends up with it, under a sequence number above
                    # every earlier one and below every later one (the block's last)
                    col[ids] = (smax << 8) | (int(v[0]) & 0xFF)
                else:
                    packed = (seq << 8) | v.astype(np.int64) & 0xFF
                    np.maximum.at(col, ids, packed)
            else:
                col[base:base + k] = 0
                (np.bitwise_or if op == OR else np.add).at(col, ids, v)

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` aggregates in the columns and the slot table."""
        self._words.reserve(rows)
        self._first.reserve(rows)
        for c in self._vals.values():
            c.reserve(rows)
        size = len(self._slots)
        while self._n > size * _LOAD or rows > size * _MAX_LOAD:
            size *= _GROWTH
        if size != len(self._slots):
            self._rehash(size)

    def _rehash(self, size: int) -> None:
        """A new slot table of ``size`` slots holding every aggregate."""
        slots = np.zeros(size, dtype=np.int32)
        fps = np.zeros(size, dtype=np.uint8)
        # a block of aggregates at a time: keys are distinct, so any order of insertion
        # makes a valid table, and the temporaries stay small
        for a in range(0, self._n, _HASH_BLOCK):
            h = hash_words(self._words.arr[a:min(a + _HASH_BLOCK, self._n)])
            fp = (h >> np.uint64(56)).astype(np.uint8)
            pos = (h & np.uint64(size - 1)).astype(np.intp)
            ids = np.arange(a + 1, a + 1 + len(h), dtype=np.int32)
            while len(ids):
                free = slots[pos] == 0
                slots[pos[free]] = ids[free]          # any one of the racers wins
                placed = slots[pos] == ids
                fps[pos[placed]] = fp[ids[placed] - 1 - a]
                left = ~placed
                ids = ids[left]
                pos = (pos[left] + 1) & (size - 1)
        self._slots, self._fps = slots, fps

    def _ids(self, words: np.ndarray, h: np.ndarray):
        """Aggregate id of every row, new aggregates included (numbered from
        ``self._n`` in order of first occurrence), and the rows that represent the new
        aggregates, ascending.

        A slot holds 0 (empty), an aggregate id + 1, or, while the batch is being
        placed, ``r - _CLAIM`` for the batch row r that claimed it; ``self._fps`` holds
        the top byte of the hash of whatever is in the slot, so that keys are compared
        only when it matches."""
        n = len(words)
        slots, fps = self._slots, self._fps
        table = self._words.arr
        mask = len(slots) - 1
        fp = (h >> np.uint64(56)).astype(np.uint8)
        out = np.empty(n, dtype=np.int64)     # id, or (representative row - n) if new
        claimed_at = np.empty(n, dtype=np.intp)
        pos = (h & np.uint64(mask)).astype(np.intp)
        rows, pos = self._first_probe(words, fp, pos, out, claimed_at)
        width = 2
        while len(rows):
            # look at `width` slots from each row's position: the first slot that is
            # empty or holds the row's key ends its search
            m = len(rows)
            cols = (pos[:, None] + np.arange(width)) & mask
            occ = slots[cols]
            stop = occ == 0
            cand = ~stop & (fps[cols] == fp[rows][:, None])
            if cand.any():
                r, c = np.nonzero(cand)
                o = occ[r, c].astype(np.intp)
                old = o > 0
                eq = np.empty(len(r), dtype=bool)
                if old.any():
                    eq[old] = _rows_equal(table.take(o[old] - 1, axis=0),
                                          words.take(rows[r[old]], axis=0))
                if not old.all():
                    b = ~old
                    eq[b] = _rows_equal(words.take(o[b] + int(_CLAIM), axis=0),
                                        words.take(rows[r[b]], axis=0))
                stop[r, c] = eq
            first = stop.argmax(axis=1)
            ar = np.arange(m)
            found = stop[ar, first]
            at = cols[ar, first]
            hit = occ[ar, first].astype(np.int64)
            done = found & (hit != 0)
            out[rows[done]] = np.where(hit[done] > 0, hit[done] - 1,
                                       hit[done] + (int(_CLAIM) - n))
            nxt = np.where(found, at + 1, pos + width) & mask
            empty = np.flatnonzero(found & (hit == 0))
            if len(empty):
                same = self._claim(words, fp, rows[empty], at[empty], out, claimed_at)
                done[empty[same]] = True
            left = ~done
            rows = rows[left]
            pos = nxt[left]
            width = min(width * 2, 64)
        new = out < 0
        if not new.any():
            return out, np.zeros(0, dtype=np.intp)
        rep_of = out[new] + n
        is_rep = np.zeros(n, dtype=bool)
        is_rep[rep_of] = True
        reps = np.flatnonzero(is_rep)
        rank = np.empty(n, dtype=np.int64)
        rank[reps] = np.arange(self._n, self._n + len(reps))
        out[new] = rank[rep_of]
        slots[claimed_at[reps]] = (rank[reps] + 1).astype(np.int32)
        return out, reps

    def _claim(self, words, fp, rows, at, out, claimed_at):
        """Rows found empty slots ``at``: claim them. Of the rows racing for one slot
        the earliest wins and represents a new key; racers with the same key join it.
        Returns which rows are settled (the others go on after the slot)."""
        slots = self._slots
        np.minimum.at(slots, at, (rows - _CLAIM).astype(np.int32))
        winner = slots[at].astype(np.intp) + int(_CLAIM)
        mine = winner == rows
        claimed_at[rows[mine]] = at[mine]
        self._fps[at[mine]] = fp[rows[mine]]
        same = mine
        if not mine.all():
            o = np.flatnonzero(~mine)
            same = mine.copy()
            same[o] = _rows_equal(words.take(winner[o], axis=0), words.take(rows[o], axis=0))
        out[rows[same]] = winner[same] - len(words)
        return same

    def _first_probe(self, words, fp, pos, out, claimed_at):
        """The first probing step of ``_ids`` (every row at its home slot, where most
        end), in one dimension. Returns the rows left and their next positions."""
        slots = self._slots
        mask = len(slots) - 1
        occ = slots[pos]
        used = occ != 0
        cand = used & (self._fps[pos] == fp)
        agg = np.where(cand, occ.astype(np.intp) - 1, 0)
        settled = cand & _rows_equal(self._words.arr.take(agg, axis=0), words)
        out[settled] = agg[settled]
        free = np.flatnonzero(~used)
        if len(free):
            settled[free] = self._claim(words, fp, free, pos[free], out, claimed_at)
        rows = np.flatnonzero(~settled)
        return rows, (pos[rows] + 1) & mask

    # ---- reading ----------------------------------------------------------------------
    def compact(self) -> None:
        """Take in the rows waiting in the block."""
        self._flush()

    def __len__(self) -> int:
        self._flush()
        return self._n

    def upper_bound(self) -> int:
        """Number of aggregates, possibly overcounted (rows still waiting in the block
        count as new), without taking them in."""
        return self._n + self._pending

    def nbytes(self) -> int:
        """Bytes held per the aggregates stored (capacity not counted)."""
        per = self._words.arr.itemsize * self._width + self._first.arr.itemsize
        per += sum(c.arr.itemsize for c in self._vals.values())
        return per * self._n + self._slots.nbytes + self._fps.nbytes

    def drain(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """All aggregates in first-seen order; the cache is left empty."""
        self._flush()
        n = self._n
        if n == 0:
            self._clear()
            return np.zeros(0, dtype=self.key_dtype), self._empty_values()
        order = self._arrival_order(n)
        words = self._words.arr[:n]
        cols = {name: c.arr[:n] for name, c in self._vals.items()}
        self._clear(n)     # the returned arrays keep the old mappings alive
        return self._handed_out(words, cols, order, copy=False)

    def snapshot(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies of all aggregates in first-seen order; the cache is left as it is
        (the memory plugin answers queries from these)."""
        self._flush()
        n = self._n
        if n == 0:
            return np.zeros(0, dtype=self.key_dtype), self._empty_values()
        cols = {name: c.arr[:n] for name, c in self._vals.items()}
        return self._handed_out(self._words.arr[:n], cols, self._arrival_order(n), copy=True)

    def _arrival_order(self, n: int):
        """The permutation that puts the ``n`` aggregates in first-seen order, or None
        when their ids already are."""
        if self._ordered:
            return None
        first = self._first.arr[:n]
        if bool((first[1:] >= first[:-1]).all()):
            return None
        return np.argsort(first, kind="stable")

    def _handed_out(self, words, cols, order, copy: bool):
        """Keys and value columns as ``drain``/``snapshot`` return them: in ``order``
        (a gather, so a copy), else copied only when ``copy``; ``LAST`` values without
        their sequence numbers."""
        if order is not None:
            words = np.take(words, order, axis=0)
            cols = {name: np.take(c, order) for name, c in cols.items()}
        elif copy:
            words = words.copy()
            cols = {name: c.copy() for name, c in cols.items()}
        values = {}
        for name, op in self.ops.items():
            c = cols[name]
            values[name] = (c & 0xFF).astype(np.uint8) if op == LAST else c
        return self._unwords(words), values

    def _unwords(self, words: np.ndarray) -> np.ndarray:
        size = self.key_dtype.itemsize
        n = len(words)
        if size == 0:
            return np.zeros(n, dtype=self.key_dtype)
        if size % 8 == 0:
            return np.ascontiguousarray(words).view(self.key_dtype).reshape(n)
        raw = np.ascontiguousarray(words).view(np.uint8).reshape(n, -1)[:, :size]
        return np.ascontiguousarray(raw).view(self.key_dtype).reshape(-1)
