"""bench/live_udp.py: the kernel's drop count of a UDP socket, read from /proc/net/udp."""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import live_udp  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/net/udp").exists(), reason="needs /proc/net/udp")


def test_socket_drops_counts_what_did_not_fit_the_receive_buffer():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # the kernel's minimum
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert live_udp.socket_drops(port) == 0
        sent = 200
        for i in range(sent):                   # loopback: each one queued or dropped at once
            tx.sendto(bytes(1000), ("127.0.0.1", port))
        rx.setblocking(False)
        got = 0
        while True:
            try:
                rx.recv(2000)
            except BlockingIOError:
                break
            got += 1
        assert 0 < got < sent
        assert live_udp.socket_drops(port) == sent - got
    finally:
        rx.close()
        tx.close()


def test_socket_drops_of_a_port_nobody_has_is_none():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert live_udp.socket_drops(port) is None


def test_a_trial_line_names_socket_drops_and_a_sender_burst_beyond_four_chunks():
    assert live_udp._drops_word({"socket_drops": 0, "max_burst": 8, "chunk": 8}) == ""
    assert live_udp._drops_word({"socket_drops": None}) == ""
    assert live_udp._drops_word({"socket_drops": 1234, "max_burst": 32, "chunk": 8}) == \
        "  socket drops 1,234"
    assert live_udp._drops_word({"socket_drops": 5, "max_burst": 33, "chunk": 8}) == \
        "  socket drops 5  (sender burst 33 datagrams)"


@pytest.fixture
def sender():
    """A sender of a small v9 pool (> 300 datagrams) to a bound socket nobody reads."""
    import udp_sender
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    s = udp_sender.Sender(udp_sender.build_pool(6000), rx.getsockname()[1])
    yield s
    s.close()
    rx.close()


def _watch_calls(s, record):
    """Wrap ``s._sendmmsg`` so that ``record(count)`` sees each call first."""
    real = s._sendmmsg
    s._sendmmsg = lambda start, k: (record(k), real(start, k))[1]


def test_the_sender_reports_its_largest_burst(sender):
    import udp_sender
    calls = []
    _watch_calls(sender, calls.append)
    r = sender.send(0, datagrams=300)           # unpaced: BATCH at a time
    assert r["datagrams"] == 300 and sum(calls) == 300
    assert r["max_burst"] == max(calls) == udp_sender.BATCH
    assert r["chunk"] == udp_sender.BATCH


def _can_be_realtime() -> bool:
    """Probed apart from udp_sender.realtime, so that a realtime() that never switches
    fails the test below instead of skipping it."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


@pytest.mark.skipif(not _can_be_realtime(), reason="SCHED_FIFO not permitted here")
def test_a_paced_send_runs_real_time_and_the_thread_is_normal_again_after(sender):
    seen = []
    _watch_calls(sender, lambda k: seen.append(os.sched_getscheduler(0)))
    r = sender.send(20000, datagrams=40)
    assert r["realtime"] is True and r["datagrams"] == 40
    assert seen and set(seen) == {os.SCHED_FIFO}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    seen.clear()
    r = sender.send(0, datagrams=40)            # unpaced (the ceiling): never real-time
    assert r["realtime"] is False and set(seen) == {os.SCHED_OTHER}


def test_realtime_is_refused_quietly_where_not_permitted(monkeypatch):
    import udp_sender

    def refuse(*a):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(udp_sender.os, "sched_setscheduler", refuse)
    with udp_sender.realtime() as rt:
        assert rt is False
    with udp_sender.realtime(False) as rt:
        assert rt is False


def test_a_send_that_gets_nothing_out_sleeps_instead_of_spinning(sender, monkeypatch):
    import udp_sender
    refusals = [0, 0, 0]                        # three calls that send nothing (EAGAIN...)
    real = sender._sendmmsg
    sender._sendmmsg = lambda start, k: refusals.pop() if refusals else real(start, k)
    naps = []
    real_sleep = time.sleep
    monkeypatch.setattr(udp_sender.time, "sleep", lambda t: (naps.append(t), real_sleep(t)))
    r = sender.send(0, datagrams=10)            # unpaced: only a failed call sleeps
    assert r["datagrams"] == 10
    assert naps == [udp_sender.STALLED_NAP] * 3
