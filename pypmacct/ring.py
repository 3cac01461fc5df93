"""The core-to-plugin channel: a shared-memory circular buffer of fixed-size slots.

``plugin_pipe_size`` bytes are cut into slots of ``plugin_buffer_size`` bytes. The core
(the only writer) serialises each batch of records into as many slots as it needs; the
plugin (the only reader) turns slots back into batches. Both ends see the memory through
an anonymous shared mapping made before the plugin is forked.

Counters live in a separate shared page: slots written, slots read, and drops. The
writer never blocks on a live source: when no slot is free the chunk is dropped and
counted. A wake-up pipe lets a sleeping reader poll(); closing its write end (or the
core dying) tells the reader that no more data will come. A writer that may wait for room
(savefile replay) sleeps on a second pipe, the way back, until the reader has freed a
quarter of the ring.

Writing goes back to slot 0 whenever the reader has caught up (the ring is empty), so a
reader that keeps up sees the same few slots again and again, still in the CPU cache,
and the pages of the rest of the pipe are never touched: a short run or a live
collector that keeps up does not fault in (nor keep resident) the whole
``plugin_pipe_size``. The control page's base word is the write count that maps to
slot 0; only the writer moves it, and only while the ring is empty, so the reader (which
looks at it only once a slot is there to read) never sees it change under a slot.

Slot layout: a 16-byte header (sequence, record count, record bytes, string bytes),
the records as raw bytes, then the string table as int32 lengths + UTF-8 bytes.
"""
from __future__ import annotations

import errno
import mmap
import os
import select
import struct
import time

import numpy as np

from .record import Batch

_HDR = struct.Struct("<IIII")

# control page word indexes
W_WRITTEN, W_READ, W_DROP_RECORDS, W_DROP_CHUNKS, W_RECORDS, W_CLOSED = range(6)
W_WAITING = 7    # 0, or 1 + the slots-read count a writer waiting for room sleeps until
W_BASE = 8       # the write count that goes to slot 0 (see the module doc)
_ROOM_TIMEOUT = 0.02    # a waiting writer looks again at least this often (s)


class RingError(Exception):
    pass


def _encode_strings(strings: list[str]) -> bytes:
    if len(strings) <= 1:
        return b""
    enc = [s.encode("utf-8", "surrogateescape") for s in strings]
    lens = np.fromiter((len(e) for e in enc), dtype="<i4", count=len(enc))
    return lens.tobytes() + b"".join(enc)


def _decode_strings(buf: memoryview, count: int) -> list[str]:
    if count == 0:
        return [""]
    lens = np.frombuffer(buf, dtype="<i4", count=count)
    ends = np.cumsum(lens) + 4 * count
    out, pos = [], 4 * count
    raw = bytes(buf)
    for e in ends.tolist():
        out.append(raw[pos:e].decode("utf-8", "surrogateescape"))
        pos = e
    return out


class Ring:
    ROOM_PIPE = True    # see ``_wait_room``

    def __init__(self, pipe_size: int, buffer_size: int, dtype: np.dtype,
                 string_fields=(), name: str = ""):
        min_slot = _HDR.size + dtype.itemsize
        if buffer_size < min_slot:
            buffer_size = min_slot
        self.slot_size = int(buffer_size)
        self.nslots = max(2, int(pipe_size) // self.slot_size)
        self.dtype = dtype
        self.name = name
        self.string_fields = tuple(f for f in string_fields if f in (dtype.names or ()))
        self.max_records = (self.slot_size - _HDR.size) // dtype.itemsize
        self._mem = mmap.mmap(-1, self.slot_size * self.nslots)
        self._ctl_mem = mmap.mmap(-1, mmap.PAGESIZE)
        self.ctl = np.frombuffer(self._ctl_mem, dtype=np.uint64, count=W_BASE + 1)
        self.buf = np.frombuffer(self._mem, dtype=np.uint8)
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        # the way back: the reader tells a writer waiting for room (savefile replay) that
        # it has freed enough slots, so the writer sleeps instead of polling
        self.back_r = self.back_w = -1
        if self.ROOM_PIPE:
            self.back_r, self.back_w = os.pipe()
            os.set_blocking(self.back_w, False)
        self._last_wake = 0.0

    # ---- process plumbing -------------------------------------------------
    def writer_side(self) -> None:
        """Called in the core after forking: it keeps only the write end."""
        self._close_fds("rfd", "back_w")

    def reader_side(self) -> None:
        """Called in the plugin after forking: it keeps only the read end."""
        self._close_fds("wfd", "back_r")

    def close_fds(self) -> None:
        self._close_fds("rfd", "wfd", "back_r", "back_w")

    def _close_fds(self, *attrs) -> None:
        for attr in attrs:
            fd = getattr(self, attr)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, -1)

    # ---- stats ----------------------------------------------------------
    @property
    def dropped_records(self) -> int:
        return int(self.ctl[W_DROP_RECORDS])

    @property
    def dropped_chunks(self) -> int:
        return int(self.ctl[W_DROP_CHUNKS])

    @property
    def written_records(self) -> int:
        return int(self.ctl[W_RECORDS])

    def backlog(self) -> int:
        return int(self.ctl[W_WRITTEN] - self.ctl[W_READ])

    # ---- slots -----------------------------------------------------------
    def _slot_offset(self, count: int) -> int:
        """Where the slot of the ``count``-th write (from 0) starts."""
        return (count - int(self.ctl[W_BASE])) % self.nslots * self.slot_size

    def _next_write_offset(self) -> int:
        """Where the next write goes: slot 0 again if the reader has read everything
        (writer side only; see the module doc)."""
        written = int(self.ctl[W_WRITTEN])
        if written == int(self.ctl[W_READ]) and (written - int(self.ctl[W_BASE])) % self.nslots:
            self.ctl[W_BASE] = np.uint64(written)
        return self._slot_offset(written)

    # ---- writer -----------------------------------------------------------
    def _localise_strings(self, chunk: np.ndarray, strings: list[str]):
        """The chunk's string ids in use (ascending, 0 first) and the table of just
        those strings; the ids are renumbered into it when the chunk is written."""
        if not self.string_fields or len(strings) <= 1:
            return None, [""]
        used = np.unique(np.concatenate([chunk[f] for f in self.string_fields]
                                        + [np.zeros(1, dtype=np.int32)]))
        return used, [strings[i] for i in used.tolist()]

    def write(self, batch: Batch, wait=False) -> int:
        """Write a batch; returns the number of records dropped (0 when all made it).

        ``wait``: wait for free slots instead of dropping (savefile replay). It may be a
        callable: waiting goes on only while it returns true (the reader is alive).
        """
        recs = batch.records
        step = max(1, self.max_records)
        dropped = 0
        for i in range(0, len(recs), step):
            dropped += self._write_chunk(recs[i:i + step], batch.strings, wait)
        self.wake()
        return dropped

    def _write_chunk(self, chunk: np.ndarray, strings: list[str], wait) -> int:
        used, table = self._localise_strings(chunk, strings)
        nbytes = len(chunk) * self.dtype.itemsize
        encoded = _encode_strings(table)
        nstrings = len(table) if encoded else 0
        if _HDR.size + nbytes + len(encoded) > self.slot_size:
            if len(chunk) > 1:  # long strings: split the chunk
                half = len(chunk) // 2
                return (self._write_chunk(chunk[:half], strings, wait)
                        + self._write_chunk(chunk[half:], strings, wait))
            return self._drop(1)
        if not self._wait_room(wait):
            return self._drop(len(chunk))
        off = self._next_write_offset()
        seq = int(self.ctl[W_WRITTEN] & 0xFFFFFFFF)
        _HDR.pack_into(self._mem, off, seq, len(chunk), nbytes, nstrings)
        p = off + _HDR.size
        # one copy, straight into the slot
        self.buf[p:p + nbytes] = np.ascontiguousarray(chunk, dtype=self.dtype).view(np.uint8)
        if used is not None:
            slot = np.frombuffer(self._mem, dtype=self.dtype, count=len(chunk), offset=p)
            for f in self.string_fields:
                slot[f] = np.searchsorted(used, slot[f])
            del slot
        if encoded:
            q = p + nbytes
            self._mem[q:q + len(encoded)] = encoded
        self.ctl[W_RECORDS] += np.uint64(len(chunk))
        self.ctl[W_WRITTEN] += np.uint64(1)  # publish only once the data is in place
        return 0

    def _wait_room(self, wait) -> bool:
        """True once a slot is free; False if the chunk must be dropped (no slot and
        ``wait`` false, or its callable says the reader is gone).

        A writer that waits asks for a quarter of the ring (at least one slot) to be
        freed and sleeps on the way-back pipe until the reader says so: a few wake-ups
        per lap of the ring, where polling every 0.5 ms took ~2000 a second of waiting
        (~30 us of CPU each). It looks again every ``_ROOM_TIMEOUT`` whatever happens, so
        a notice lost to the two processes' unordered reads and writes of the counters
        only delays it."""
        if self.ctl[W_WRITTEN] - self.ctl[W_READ] < self.nslots:
            return True
        if not wait:
            return False
        want = int(self.ctl[W_WRITTEN]) - self.nslots + max(1, self.nslots // 4)
        try:
            while self.ctl[W_WRITTEN] - self.ctl[W_READ] >= self.nslots:
                if callable(wait) and not wait():
                    return False
                self.ctl[W_WAITING] = np.uint64(want + 1)
                self.wake()
                if self.ctl[W_READ] >= want:
                    continue
                self._sleep_for_room()
        finally:
            self.ctl[W_WAITING] = np.uint64(0)
        return True

    def _sleep_for_room(self) -> None:
        if self.back_r < 0:
            time.sleep(0.0005)
            return
        try:
            r, _, _ = select.select([self.back_r], [], [], _ROOM_TIMEOUT)
        except InterruptedError:
            return
        if r:
            try:
                if not os.read(self.back_r, 4096):      # the reader's end is closed
                    os.close(self.back_r)
                    self.back_r = -1
            except BlockingIOError:
                pass

    def _freed(self) -> None:
        """Reader side, after a slot is read: wake a writer waiting for this much room."""
        t = int(self.ctl[W_WAITING])
        if t and int(self.ctl[W_READ]) + 1 >= t and self.back_w >= 0:
            try:
                os.write(self.back_w, b"\x01")
            except OSError:
                pass    # full of notices already, or the writer is gone

    def _drop(self, nrecords: int) -> int:
        self.ctl[W_DROP_RECORDS] += np.uint64(nrecords)
        self.ctl[W_DROP_CHUNKS] += np.uint64(1)
        return nrecords

    def wake(self) -> None:
        if self.wfd < 0:
            return
        try:
            os.write(self.wfd, b"\x01")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already
        except OSError as e:
            if e.errno != errno.EPIPE:
                raise

    def close(self) -> None:
        """End of stream: the reader drains what is left and stops."""
        self.ctl[W_CLOSED] = np.uint64(1)
        if self.wfd >= 0:
            os.close(self.wfd)
            self.wfd = -1

    # ---- reader -----------------------------------------------------------
    def read(self) -> Batch | None:
        """The next chunk as a batch, or None if the ring is empty."""
        if self.ctl[W_READ] >= self.ctl[W_WRITTEN]:
            return None
        off = self._slot_offset(int(self.ctl[W_READ]))
        _seq, nrec, nbytes, nstr = _HDR.unpack_from(self._mem, off)
        p = off + _HDR.size
        # copied as bytes: numpy copies a structured dtype field by field, ten times slower
        recs = np.frombuffer(self._mem, dtype=np.uint8, count=nrec * self.dtype.itemsize,
                             offset=p).copy().view(self.dtype)
        strings = [""]
        if nstr:
            q = p + nbytes
            lens = np.frombuffer(self._mem, dtype="<i4", count=nstr, offset=q)
            end = q + 4 * nstr + int(lens.sum())
            strings = _decode_strings(memoryview(self._mem)[q:end], nstr)
        self.ctl[W_READ] += np.uint64(1)
        self._freed()
        return Batch(recs, strings)

    def wait(self, timeout: float | None) -> bool:
        """Sleep until data may be there or ``timeout`` passes.

        Returns False once the writer has gone away (end of stream)."""
        if self.ctl[W_READ] < self.ctl[W_WRITTEN]:
            return True
        try:
            r, _, _ = select.select([self.rfd], [], [], timeout)
        except InterruptedError:
            return True
        if r:
            try:
                data = os.read(self.rfd, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False  # write end closed: core finished or died
        return True

    @property
    def closed(self) -> bool:
        return bool(self.ctl[W_CLOSED])


# ---- whole datagrams (the tee plugin) ---------------------------------------------
_MSG = struct.Struct("<HBBHQQ16s")   # length, family (4/6), broadcast, exporter port, tag, tag2, address


class Messages:
    """Datagrams read from a DatagramRing: payloads with their exporter and tags."""
    __slots__ = ("payloads", "families", "addrs", "ports", "tags", "tag2s", "bcast")

    def __init__(self, payloads, families, addrs, ports, tags, tag2s, bcast=None):
        self.payloads, self.families, self.addrs = payloads, families, addrs
        self.ports, self.tags, self.tag2s = ports, tags, tag2s
        # broadcast: template/options sets split from a datagram go to every pool
        self.bcast = np.zeros(len(payloads), bool) if bcast is None else bcast

    def __len__(self) -> int:
        return len(self.payloads)


class DatagramRing(Ring):
    """The same shared-memory slots as ``Ring``, carrying whole export datagrams
    instead of records: each slot holds as many (header, payload) messages as fit.
    A datagram larger than a slot cannot travel and is dropped (counted)."""

    FITS_ANY = _HDR.size + _MSG.size + 65535     # a slot size that fits any datagram

    def __init__(self, pipe_size: int, buffer_size: int, name: str = ""):
        buffer_size = max(int(buffer_size), _HDR.size + _MSG.size + 1)
        super().__init__(pipe_size, buffer_size, np.dtype("u1"), (), name)
        self.max_records = 0
        self.too_big = 0          # datagrams dropped because they do not fit a slot
        self.overhead = _HDR.size + _MSG.size

    def write_messages(self, payloads, families, addrs, ports, tags, tag2s, wait=False,
                       bcast=None) -> int:
        """Write datagrams (parallel sequences); returns how many were dropped."""
        room = self.slot_size - _HDR.size
        dropped = 0
        parts: list[bytes] = []
        used = 0
        for i, p in enumerate(payloads):
            need = _MSG.size + len(p)
            if need > room:
                self.too_big += 1
                dropped += self._drop(1)
                continue
            if used + need > room:
                dropped += self._write_slot(parts, wait)
                parts, used = [], 0
            parts.append(_MSG.pack(len(p), families[i], 1 if bcast is not None and bcast[i]
                                   else 0, ports[i], int(tags[i]), int(tag2s[i]), addrs[i]))
            parts.append(p)
            used += need
        if parts:
            dropped += self._write_slot(parts, wait)
        self.wake()
        return dropped

    def _write_slot(self, parts: list[bytes], wait) -> int:
        count = len(parts) // 2
        if not self._wait_room(wait):
            return self._drop(count)
        data = b"".join(parts)
        off = self._next_write_offset()
        seq = int(self.ctl[W_WRITTEN] & 0xFFFFFFFF)
        _HDR.pack_into(self._mem, off, seq, count, len(data), 0)
        p = off + _HDR.size
        self._mem[p:p + len(data)] = data
        self.ctl[W_RECORDS] += np.uint64(count)
        self.ctl[W_WRITTEN] += np.uint64(1)
        return 0

    def read(self) -> Messages | None:
        if self.ctl[W_READ] >= self.ctl[W_WRITTEN]:
            return None
        off = self._slot_offset(int(self.ctl[W_READ]))
        _seq, count, nbytes, _ = _HDR.unpack_from(self._mem, off)
        p = off + _HDR.size
        raw = bytes(self._mem[p:p + nbytes])
        self.ctl[W_READ] += np.uint64(1)
        self._freed()
        payloads, fams, addrs, ports, tags, tag2s, bcs = [], [], [], [], [], [], []
        q = 0
        for _ in range(count):
            ln, fam, bc, port, tag, tag2, addr = _MSG.unpack_from(raw, q)
            bcs.append(bc)
            q += _MSG.size
            payloads.append(raw[q:q + ln])
            q += ln
            fams.append(fam)
            addrs.append(addr)
            ports.append(port)
            tags.append(tag)
            tag2s.append(tag2)
        return Messages(payloads, fams, addrs, ports, np.array(tags, dtype=np.uint64),
                        np.array(tag2s, dtype=np.uint64), np.array(bcs, dtype=bool))


# ---- received datagrams (a UDP collector's reader process -> its core) ---------------
BURST_PAYLOAD = 256 << 10      # payload bytes of one slot
BURST_MAX = 512                # datagrams of one slot
_MAX_DGRAM = 65535
W_STOP = 6                     # control word: the core asks the writer to stop


class BurstRing(Ring):
    """The same slots and counters as ``Ring``, written by a UDP reader process: each
    slot is one burst of received datagrams, laid out so that the reader can ``recv``
    straight into it and the core can take it as a packed ``DatagramBatch`` without a
    per-datagram loop. Slot: header (seq, count, payload bytes, names bytes), the
    payloads back to back, then fixed columns for ``BURST_MAX`` datagrams (length u4,
    exporter index u2, port u2, arrival time i8), then the exporters, '\\n'-separated."""

    ROOM_PIPE = False   # its writer never waits: it drops (and counts) instead

    def __init__(self, pipe_size: int, name: str = "", burst_max: int = BURST_MAX):
        self.burst_max = burst_max = max(1, int(burst_max))
        slot = _HDR.size + BURST_PAYLOAD + 16 * burst_max + 48 * burst_max
        super().__init__(max(int(pipe_size), 4 * slot), slot, np.dtype("u1"), (), name)
        self.max_records = 0
        self._cols = _HDR.size + BURST_PAYLOAD
        self._open = None       # offset of the slot being filled, until it is published

    def full(self) -> bool:
        return self.ctl[W_WRITTEN] - self.ctl[W_READ] >= self.nslots

    def free_slot(self) -> memoryview:
        """The payload area of the next slot (call only when not ``full()``). The
        writer may fill it over several calls before it publishes it: the slot stays
        the same until then, even if the reader catches up in between (no going back
        to slot 0 under datagrams already received)."""
        if self._open is None:
            self._open = self._next_write_offset()
        off = self._open + _HDR.size
        return memoryview(self._mem)[off:off + BURST_PAYLOAD]

    def publish(self, lengths, exps, ports, tss, names: list[str], nbytes: int) -> None:
        """Fill in the columns of the slot ``free_slot`` gave and hand it to the core."""
        n = len(lengths)
        off = self._slot_offset(int(self.ctl[W_WRITTEN]))
        self._open = None
        c = off + self._cols
        m = self._mem
        m[c:c + 4 * n] = np.array(lengths, "<u4").tobytes()
        c += 4 * self.burst_max
        m[c:c + 2 * n] = np.array(exps, "<u2").tobytes()
        c += 2 * self.burst_max
        m[c:c + 2 * n] = np.array(ports, "<u2").tobytes()
        c += 2 * self.burst_max
        m[c:c + 8 * n] = np.array(tss, "<i8").tobytes()
        c += 8 * self.burst_max
        text = "\n".join(names).encode()
        m[c:c + len(text)] = text
        _HDR.pack_into(m, off, int(self.ctl[W_WRITTEN] & 0xFFFFFFFF), n, nbytes, len(text))
        self.ctl[W_RECORDS] += np.uint64(n)
        self.ctl[W_WRITTEN] += np.uint64(1)       # publish only once the data is in place

    def read_burst(self):
        """The next slot as (payload bytes, lengths, exporter indexes, ports, times,
        exporters), or None if the ring is empty."""
        if self.ctl[W_READ] >= self.ctl[W_WRITTEN]:
            return None
        off = self._slot_offset(int(self.ctl[W_READ]))
        m = self._mem
        _seq, n, nbytes, nnames = _HDR.unpack_from(m, off)
        buf = m[off + _HDR.size:off + _HDR.size + nbytes]
        c = off + self._cols
        lengths = np.frombuffer(m, "<u4", n, c).astype(np.int64)
        c += 4 * self.burst_max
        exps = np.frombuffer(m, "<u2", n, c).astype(np.int64)
        c += 2 * self.burst_max
        ports = np.frombuffer(m, "<u2", n, c).astype(np.int64)
        c += 2 * self.burst_max
        tss = np.frombuffer(m, "<i8", n, c).copy()
        c += 8 * self.burst_max
        names = m[c:c + nnames].decode().split("\n")
        self.ctl[W_READ] += np.uint64(1)
        return buf, lengths, exps, ports, tss, names

    @property
    def stop_requested(self) -> bool:
        return bool(self.ctl[W_STOP])

    def request_stop(self) -> None:
        self.ctl[W_STOP] = np.uint64(1)
