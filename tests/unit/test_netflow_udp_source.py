"""UDP source: dual-stack listening, SO_REUSEPORT, SO_RCVBUF, batching, timeouts."""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

import pytest

from pypmacct.runtime.log import Logger
from pypmacct.sources.udp import UdpSource
from tests.unit.nfbuild import CaptureSink


def send(payloads, port, host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    for p in payloads:
        s.sendto(p, (host, port))
    sport = s.getsockname()[1]
    s.close()
    return sport


def read_all(src, n, timeout=2.0):
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        got += src.read(1024, timeout=0.2)
    return got


def test_ipv4_read_and_batch_limit():
    with UdpSource("127.0.0.1", 0) as src:
        sport = send([b"a%d" % i for i in range(10)], src.port)
        first = src.read(4, timeout=1)
        assert len(first) == 4
        rest = read_all(src, 6)
        got = first + rest
        assert [d.payload for d in got] == [b"a%d" % i for i in range(10)]
        assert all(d.src == "127.0.0.1" and d.port == sport for d in got)
        assert abs(got[0].ts_us / 1e6 - time.time()) < 5
        assert src.read(10, timeout=0.05) == []


def test_default_is_dual_stack_and_maps_ipv4_back():
    with UdpSource(None, 0) as src:
        assert src.family == socket.AF_INET6
        send([b"x"], src.port, "127.0.0.1")
        send([b"y"], src.port, "::1", socket.AF_INET6)
        got = read_all(src, 2)
        assert sorted((d.payload, d.src) for d in got) == [(b"x", "127.0.0.1"), (b"y", "::1")]


def test_ipv6_only_address():
    with UdpSource("::1", 0) as src:
        send([b"z"], src.port, "::1", socket.AF_INET6)
        (d,) = read_all(src, 1)
        assert d.src == "::1"


def test_reuseport_lets_two_collectors_share_a_port():
    a = UdpSource("127.0.0.1", 0)
    try:
        b = UdpSource("127.0.0.1", a.port)
        b.close()
    finally:
        a.close()


def test_rcvbuf_is_set_and_logged():
    sink = CaptureSink()
    with UdpSource("127.0.0.1", 0, rcvbuf=1 << 20, log=Logger("default", "core", sink)) as src:
        assert src.rcvbuf >= 1 << 16
        assert any(l.startswith("INFO ( default/core ): nfacctd_pipe_size: obtained=") and
                   "target=1048576." in l for l in sink.lines)
    # a smaller target than the default keeps the default
    with UdpSource("127.0.0.1", 0, rcvbuf=1) as src:
        assert src.rcvbuf > 1


def test_fileno_works_with_select():
    with UdpSource("127.0.0.1", 0) as src:
        send([b"q"], src.port)
        r, _, _ = select.select([src], [], [], 2)
        assert r == [src]


def test_bind_failure_raises():
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # no reuse options
    plain.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(OSError):
            UdpSource("127.0.0.1", plain.getsockname()[1])
    finally:
        plain.close()


SENDER = """
import socket, sys, time
port, n, size, burst = map(int, sys.argv[1:])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(i.to_bytes(4, "big") + b"x" * (size - 4), ("127.0.0.1", port))
    if i % burst == burst - 1:
        time.sleep(0.001)
"""


def paced_send(port, n, size, burst=20):
    """Datagrams from another process (its own interpreter), ``burst`` per millisecond or
    so: an exporter, not a flood from the reader's own process."""
    import subprocess
    return subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(n), str(size),
                             str(burst)])


def payloads_of(n, size):
    return [i.to_bytes(4, "big") + b"x" * (size - 4) for i in range(n)]


@pytest.mark.parametrize("reader", ["thread", "process"])
def test_reader_queues_in_order_and_honours_batch_limit(reader):
    with UdpSource("127.0.0.1", 0, reader=reader) as src:
        assert src.read(10, timeout=0.05) == []           # starts the thread, nothing yet
        paced_send(src.port, 300, 16).wait()
        got = []
        deadline = time.time() + 5
        while len(got) < 300 and time.time() < deadline:
            batch = src.read(64, timeout=0.2)
            assert len(batch) <= 64
            got += batch
        assert [d.payload for d in got] == payloads_of(300, 16)
        assert all(d.src == "127.0.0.1" for d in got)
        assert src.received == 300 and src.dropped == 0


@pytest.mark.parametrize("reader", ["thread", "process"])
def test_reader_keeps_up_while_the_core_is_busy(reader):
    """A core busy in Python (holding the GIL) for longer than the receive buffer lasts
    loses nothing: 3,000 datagrams of 1,000 bytes in about 0.6 s, while a 1 MB buffer
    keeps about 450 of them (90 ms' worth: slack enough for a loaded test machine), and
    the core reads none of them until the sender is done."""
    with UdpSource("127.0.0.1", 0, reader=reader, rcvbuf=1 << 20) as src:
        src.read(1, timeout=0.01)
        sender = paced_send(src.port, 3000, 1000, burst=5)
        end = time.monotonic() + 0.5
        x = 0
        while time.monotonic() < end or sender.poll() is None:   # busy, GIL held
            x += 1
        got = read_all(src, 3000, timeout=5)
        assert [d.payload for d in got] == payloads_of(3000, 1000)
        assert src.dropped == 0


def test_threaded_reader_counts_and_logs_drops_beyond_its_bound():
    sink = CaptureSink()
    with UdpSource("127.0.0.1", 0, threaded=True, max_queued_bytes=10_000,
                   log=Logger("default", "core", sink)) as src:
        src.read(1, timeout=0.01)
        paced_send(src.port, 50, 1000, burst=1).wait()
        time.sleep(0.5)
        got = read_all(src, 50, timeout=1)
        # whole read bursts are kept or dropped: at most 10 kB kept, every datagram either
        # delivered or counted
        assert 0 < len(got) <= 10 and len(got) + src.dropped == 50
        assert any(f"UDP reader queue full (10000 bytes): {src.dropped} datagrams dropped "
                   f"({src.dropped} in all)." in line for line in sink.lines)


def test_reader_process_counts_and_logs_drops_when_its_ring_is_full():
    """A ring of 4 slots of at most 2 datagrams each, never read while 50 datagrams come
    one by one: at most 8 are kept, every other one is counted as dropped and logged."""
    sink = CaptureSink()
    with UdpSource("127.0.0.1", 0, reader="process", max_queued_bytes=10_000,
                   slot_datagrams=2, log=Logger("default", "core", sink)) as src:
        src.read(1, timeout=0.01)
        assert src._ring.nslots == 4
        paced_send(src.port, 50, 100, burst=1).wait()
        deadline = time.time() + 5
        while src._ring.dropped_records + src._ring.written_records < 50 \
                and time.time() < deadline:
            time.sleep(0.05)
        got = read_all(src, 50, timeout=1)
        assert 0 < len(got) <= 8 and len(got) + src.dropped == 50
        # what was kept is the start of the stream, in order
        assert [d.payload for d in got] == payloads_of(50, 100)[:len(got)]
        ring = src._ring
        assert any(f"UDP reader ring full ({ring.nslots} slots of {ring.slot_size} bytes): "
                   f"{src.dropped} datagrams dropped ({src.dropped} in all)." in line
                   for line in sink.lines)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def test_reader_process_ignores_signals_has_its_title_and_is_reaped_on_close():
    src = UdpSource("127.0.0.1", 0, reader="process", title="nfacctd: UDP Reader [t]")
    try:
        src.read(1, timeout=0.01)
        pid = src._pid
        assert pid and pid != os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGHUP):
            os.kill(pid, sig)
        send([b"after signals"], src.port)
        got = read_all(src, 1)
        assert [d.payload for d in got] == [b"after signals"] and _alive(pid)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0].startswith(b"nfacctd: UDP Reader [t]")
    finally:
        src.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)                 # reaped by close()


def test_reader_process_dies_with_its_parent():
    """The reader of a core that is killed does not linger (PR_SET_PDEATHSIG)."""
    import subprocess
    code = ("import sys, time; from pypmacct.sources.udp import UdpSource; "
            "s = UdpSource('127.0.0.1', 0, reader='process'); s.read(1, timeout=0.01); "
            "print(s._pid, flush=True); time.sleep(60)")
    core = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(core.stdout.readline())
    assert _alive(pid)
    core.kill()
    core.wait()
    deadline = time.time() + 5
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_reader_process_gone_falls_back_to_a_thread():
    sink = CaptureSink()
    with UdpSource("127.0.0.1", 0, reader="process", log=Logger("default", "core", sink)) as src:
        src.read(1, timeout=0.01)
        os.kill(src._pid, signal.SIGKILL)
        assert src.read(1, timeout=2) == []
        assert src.reader == "thread"
        assert any("exited unexpectedly" in line for line in sink.lines)
        send([b"still here"], src.port)
        assert [d.payload for d in read_all(src, 1)] == [b"still here"]


def _sched(pid):
    with open(f"/proc/{pid}/sched") as f:
        return dict((k.strip(), v.strip()) for k, v in
                    (ln.split(":", 1) for ln in f if ":" in ln))


@pytest.mark.skipif(not os.path.exists("/proc/self/sched")
                    or "se.slice" not in open("/proc/self/sched").read(),
                    reason="the kernel shows no scheduler slice (before Linux 6.12)")
def test_reader_process_asks_for_a_short_slice_and_keeps_policy_and_nice():
    from pypmacct.sources.udp import READER_SLICE_NS
    with UdpSource("127.0.0.1", 0, reader="process") as src:
        src.read(1, timeout=0.01)
        send([b"one"], src.port)
        assert [d.payload for d in read_all(src, 1)] == [b"one"]   # past its set-up
        mine, its = _sched(os.getpid()), _sched(src._pid)
        assert int(its["se.slice"]) == READER_SLICE_NS
        assert its["policy"] == mine["policy"] == "0"              # SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, src._pid) == os.getpriority(os.PRIO_PROCESS, 0)


# ---- the core's linger on a small take ---------------------------------------------
def _publish(ring, payloads, src="192.0.2.1"):
    """Write one slot into ``ring`` as the reader process would."""
    view, off, lengths = ring.free_slot(), 0, []
    for p in payloads:
        view[off:off + len(p)] = p
        lengths.append(len(p))
        off += len(p)
    del view
    n = len(payloads)
    ring.publish(lengths, [0] * n, [2055] * n, [1_000_000] * n, [src], off)
    ring.wake()


def _ring_fed_source(linger, arrive_while_lingering, monkeypatch):
    """A UdpSource reading a ring this test writes (no reader process), whose linger
    sleep is recorded and publishes ``arrive_while_lingering`` (a slot) instead."""
    import types

    from pypmacct.ring import BurstRing
    from pypmacct.sources import udp
    src = UdpSource("127.0.0.1", 0, reader="process", linger=linger)
    src._ring = BurstRing(1 << 20, "test-linger")
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if arrive_while_lingering:
            _publish(src._ring, arrive_while_lingering.pop(0))
    monkeypatch.setattr(udp, "time", types.SimpleNamespace(
        sleep=nap, monotonic=time.monotonic, time_ns=time.time_ns))
    return src, naps


def test_a_small_take_lingers_once_and_joins_what_came_meanwhile(monkeypatch):
    from pypmacct.sources.udp import LINGER
    late = [[b"d3", b"d4"], [b"never taken by this read"]]
    src, naps = _ring_fed_source(LINGER, late, monkeypatch)
    try:
        _publish(src._ring, [b"d0", b"d1", b"d2"])
        got = src.read(1024, timeout=1)
        assert [d.payload for d in got] == [b"d0", b"d1", b"d2", b"d3", b"d4"]
        assert naps == [LINGER] and src.received == 5
        assert [d.src for d in got] == ["192.0.2.1"] * 5
    finally:
        src.close()


def test_a_take_of_linger_below_datagrams_or_more_does_not_linger(monkeypatch):
    from pypmacct.sources.udp import LINGER, LINGER_BELOW
    src, naps = _ring_fed_source(LINGER, [[b"late"]], monkeypatch)
    try:
        _publish(src._ring, [b"x%d" % i for i in range(LINGER_BELOW)])
        got = src.read(1024, timeout=1)
        assert len(got) == LINGER_BELOW and naps == []
        assert src.read(1024, timeout=0.05) == []               # nothing more came
    finally:
        src.close()


def test_no_linger_when_it_is_off(monkeypatch):
    src, naps = _ring_fed_source(0, [[b"late"]], monkeypatch)
    try:
        _publish(src._ring, [b"only"])
        assert [d.payload for d in src.read(1024, timeout=1)] == [b"only"] and naps == []
    finally:
        src.close()


def test_reader_process_trickle_is_read_in_one_take_with_a_linger():
    """Through the real reader process: a datagram, another 50 ms later; a read that
    lingers 0.5 s returns both, one that does not linger returns the first alone."""
    import threading
    for linger, want in ((0.5, [b"first", b"second"]), (0, [b"first"])):
        with UdpSource("127.0.0.1", 0, reader="process", linger=linger) as src:
            src.read(1, timeout=0.01)                   # the reader is up
            send([b"first"], src.port)
            later = threading.Timer(0.05, send, ([b"second"], src.port))
            later.start()
            try:
                assert [d.payload for d in src.read(1024, timeout=2)] == want
            finally:
                later.join()
