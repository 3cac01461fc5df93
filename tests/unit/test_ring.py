"""The shared-memory ring between the core and a plugin process."""
import os
import time

import numpy as np

from pypmacct.record import RECORD_DTYPE, Batch, subset_dtype
from pypmacct.ring import Ring

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
