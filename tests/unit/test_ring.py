"""The shared-memory ring between the core and a plugin process."""
import os
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pypmacct.record import RECORD_DTYPE, Batch, subset_dtype
from pypmacct.ring import BurstRing, DatagramRing, Ring

DT = subset_dtype(RECORD_DTYPE, ["packets", "bytes", "src_port", "as_path", "label"])


def make(n, start=0):
    r = np.zeros(n, DT)
    r["packets"] = np.arange(start, start + n)
    r["bytes"] = 1
    return r


def drain(ring):
    out = []
    while (b := ring.read()) is not None:
        out.append(b)
    return out


def test_round_trip_splits_batches_into_slots():
    ring = Ring(1 << 20, 4096, DT, ["as_path", "label"])
    assert ring.write(Batch(make(1000))) == 0
    got = drain(ring)
    assert len(got) > 1  # 1000 records do not fit one 4 KiB slot
    assert np.concatenate([b.records for b in got])["packets"].tolist() == list(range(1000))


def test_strings_are_localised_per_slot():
    ring = Ring(1 << 20, 4096, DT, ["as_path", "label"])
    r = make(300)
    r["as_path"] = np.arange(300) % 3
    r["label"] = 3
    strings = ["", "65000 65001", "65002", "blue"]
    ring.write(Batch(r, strings))
    for b in drain(ring):
        for rec in b.records:
            i = int(rec["packets"])
            assert b.strings[rec["as_path"]] == strings[i % 3]
            assert b.strings[rec["label"]] == "blue"


def test_full_ring_drops_and_counts_without_blocking():
    ring = Ring(8192, 4096, DT)  # two slots
    per_slot = ring.max_records
    dropped = ring.write(Batch(make(per_slot * 5)))
    assert dropped == per_slot * 3
    assert ring.dropped_records == per_slot * 3 and ring.dropped_chunks == 3
    assert sum(len(b) for b in drain(ring)) == per_slot * 2


def test_oversized_strings_split_then_drop_single_records():
    ring = Ring(1 << 16, 256, DT, ["label"])
    r = make(2)
    r["label"] = [1, 2]
    dropped = ring.write(Batch(r, ["", "x" * 100, "y" * 1000]))
    assert dropped == 1  # the record whose string cannot fit any slot
    got = drain(ring)
    assert [b.strings[b.records["label"][0]] for b in got] == ["x" * 100]


def test_across_fork_with_end_of_stream():
    ring = Ring(1 << 16, 1024, DT)
    pid = os.fork()
    if pid == 0:  # reader
        ring.reader_side()
        total = 0
        while True:
            alive = ring.wait(5.0)
            while (b := ring.read()) is not None:
                total += int(b.records["packets"].sum())
            if not alive:
                break
        os._exit(0 if total == sum(range(20000)) else 1)
    ring.writer_side()
    for i in range(0, 20000, 500):
        assert ring.write(Batch(make(500, i)), wait=True) == 0
    ring.close()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_a_writer_waiting_for_room_is_woken_by_the_reader():
    # savefile replay: the writer waits on a full ring (no drops) and the reader, in its
    # own process, tells it when it has freed room; every record arrives, in order
    ring = Ring(8 * 4096, 4096, DT)
    per = ring.max_records
    total = 40 * per
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ring.reader_side()
            got = []
            while len(got) < total:
                ring.wait(0.05)
                while (b := ring.read()) is not None:
                    got.extend(b.records["packets"].tolist())
                    time.sleep(0.002)           # slower than the writer
            os.write(wfd, b"1" if got == list(range(total)) else b"0")
        finally:
            os._exit(0)
    os.close(wfd)
    ring.writer_side()
    sleeps = 0
    real = ring._sleep_for_room

    def counted():
        nonlocal sleeps
        sleeps += 1
        real()
    ring._sleep_for_room = counted
    dropped = sum(ring.write(Batch(make(per, i * per)), wait=True) for i in range(40))
    ok = os.read(rfd, 1)
    os.waitpid(pid, 0)
    os.close(rfd)
    assert dropped == 0 and ring.dropped_records == 0
    assert ok == b"1"
    # woken once a quarter of the ring (2 slots) is free, not once per poll
    assert 0 < sleeps <= 40


def test_a_waiting_writer_drops_once_the_reader_is_gone():
    ring = Ring(4 * 4096, 4096, DT)
    per = ring.max_records
    for i in range(ring.nslots):
        assert ring.write(Batch(make(per)), wait=False) == 0
    assert ring.write(Batch(make(per)), wait=lambda: False) == per


def test_a_reader_that_keeps_up_gets_slot_0_again_and_the_rest_stays_untouched():
    ring = Ring(16 * 4096, 4096, DT)
    per = ring.max_records
    for i in range(3 * ring.nslots):
        assert ring.write(Batch(make(per // 2 + 1, i * 1000))) == 0
        (b,) = drain(ring)
        assert b.records["packets"][0] == i * 1000
        assert np.frombuffer(ring._mem, "<I", 1, 0)[0] == i   # the header's sequence
    assert not ring.buf[ring.slot_size:].any()


def test_writing_goes_on_after_a_lagging_reader_and_back_to_0_once_it_caught_up():
    ring = Ring(8 * 4096, 4096, DT)
    per = ring.max_records
    for i in range(3):
        ring.write(Batch(make(per, i * per)))
    assert ring.read().records["packets"][0] == 0          # one read, two slots behind
    ring.write(Batch(make(per, 3 * per)))                  # goes after them, in slot 3
    assert np.frombuffer(ring._mem, "<I", 1, 3 * ring.slot_size)[0] == 3
    assert [int(b.records["packets"][0]) for b in drain(ring)] == [per, 2 * per, 3 * per]
    ring.write(Batch(make(per, 4 * per)))                  # caught up: slot 0
    assert np.frombuffer(ring._mem, "<I", 1, 0)[0] == 4
    assert ring.read().records["packets"][0] == 4 * per


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=40))
def test_any_interleaving_of_writes_and_reads_keeps_order_and_counts_drops(steps):
    """Against a plain FIFO of at most ``nslots`` chunks: every read returns the oldest
    chunk left, and a chunk finding the ring full is dropped and counted."""
    ring = Ring(5 * 512, 512, DT)
    per = ring.max_records
    fifo, dropped, n = [], 0, 0
    for writes, reads in steps:
        for _ in range(writes):
            full = len(fifo) == ring.nslots
            assert ring.write(Batch(make(per, n * per))) == (per if full else 0)
            if full:
                dropped += per
            else:
                fifo.append(n)
            n += 1
        for _ in range(reads):
            b = ring.read()
            if not fifo:
                assert b is None
                continue
            want = fifo.pop(0)
            assert b.records["packets"].tolist() == list(range(want * per, (want + 1) * per))
    assert ring.dropped_records == dropped
    assert ring.backlog() == len(fifo)


def test_the_udp_burst_ring_also_starts_again_at_slot_0():
    ring = BurstRing(1 << 20, burst_max=4)
    for i in range(3):
        view = ring.free_slot()
        view[:3] = b"abc"
        ring.publish([3], [0], [2055], [i], ["192.0.2.1"], 3)
        buf, lengths, exps, ports, tss, names = ring.read_burst()
        assert (bytes(buf), lengths.tolist(), tss.tolist(), names) == (b"abc", [3], [i], ["192.0.2.1"])
    assert ring.read_burst() is None
    assert not ring.buf[ring.slot_size:].any()


def test_a_burst_slot_filled_over_several_calls_stays_put_when_the_reader_catches_up():
    """The UDP reader keeps filling an unpublished slot while the core is busy; the core
    catching up in between must not send the rest of it to slot 0."""
    ring = BurstRing(1 << 20, burst_max=4)
    ring.free_slot()[:1] = b"a"
    ring.publish([1], [0], [1], [0], ["192.0.2.1"], 1)      # slot 0, not read yet
    view = ring.free_slot()                                  # slot 1, filled in two goes
    view[:2] = b"bc"
    assert bytes(ring.read_burst()[0]) == b"a"               # the reader catches up
    ring.free_slot()[2:4] = b"de"
    ring.publish([2, 2], [0, 0], [1, 1], [1, 2], ["192.0.2.1"], 4)
    buf, lengths, *_ = ring.read_burst()
    assert (bytes(buf), lengths.tolist()) == (b"bcde", [2, 2])


def test_the_tee_datagram_ring_also_starts_again_at_slot_0():
    ring = DatagramRing(8 * 2048, 2048)
    addr = bytes([192, 0, 2, 1]) + bytes(12)
    for i in range(3 * ring.nslots):
        payload = bytes([i % 251 + 1]) * 300
        assert ring.write_messages([payload], [4], [addr], [2055], [i], [0]) == 0
        m = ring.read()
        assert (m.payloads, m.tags.tolist()) == ([payload], [i])
        assert ring.read() is None
    assert not ring.buf[ring.slot_size:].any()
