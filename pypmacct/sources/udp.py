"""Datagrams from a UDP socket: ``nfacctd_ip`` / ``nfacctd_port`` (and sfacctd's).

As pmacct: without an address the socket is IPv6 "any" (dual stack, so IPv4 exporters
arrive as IPv4-mapped addresses, which are turned back into plain IPv4), falling back to
IPv4 if the host has no IPv6. SO_REUSEPORT and SO_REUSEADDR are set so several
collectors can share a port; ``rcvbuf`` (``nfacctd_pipe_size``) sets SO_RCVBUF, never
below what the system gave by default, and the obtained size is logged.

``read`` waits up to ``timeout`` for the first datagram, then drains what is queued,
without blocking, up to ``max_datagrams``.

With ``threaded=True`` (what the collectors use) a reader thread started on the first
``read`` (so after the plugins are forked) drains the socket as datagrams arrive and
queues them for ``read``. The kernel's receive buffer holds only a hundred or so export
datagrams at its default size: a core busy decoding a batch for longer than that buffer
lasts (a few ms at 10k datagrams/s) would lose datagrams, while the thread, blocked in
``recv`` with the GIL released, gets the interpreter back within the switch interval
(set to 0.5 ms while it runs). Each wake-up reads what the socket holds straight into
one buffer (``recvfrom_into``), queued as a ``DatagramBatch`` the decoder takes packed, as
it does a savefile's. The queue is bounded (``max_queued_bytes``); a burst beyond it is
dropped and counted in ``dropped``, and the next ``read`` logs the count.

With ``reader="process"`` (what nfacctd and sfacctd use; ``reader="thread"`` is the
above, ``threaded=True`` its old spelling) the reader is a forked process instead, so it
never waits for the core's GIL: started on the first ``read`` too, it ignores the
signals the core handles, dies with the core (PR_SET_PDEATHSIG, and a getppid() check),
and receives straight into the slots of a shared-memory ``BurstRing``: a slot is
published at once when the core has caught up, and filled further while the core is
busy. It asks the scheduler for a short slice (``request_short_slice``: same policy,
nice and CPU share, but it runs soon after a datagram wakes it). ``read`` takes slots
as one ``DatagramBatch``; a full ring drops (counted in the ring's shared counters,
copied to ``dropped`` and logged by ``read``). ``close`` stops
and reaps it; if it exits unexpectedly ``read`` logs it and falls back to the thread.
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import socket
import sys
import threading
import time

import numpy as np

from . import Datagram
from .savefile import DatagramBatch

MAX_DATAGRAM = 65535
MAX_QUEUED_BYTES = 64 << 20      # the reader thread's queue bound (or SO_RCVBUF if larger)
SWITCH_INTERVAL = 0.0005         # seconds: how soon a waiting reader thread gets the GIL
BURST_BYTES = 1 << 20            # the reader's burst buffer (reused; what came is copied out)
BURST_DATAGRAMS = 4096
BURST_NAP_BELOW = 16             # a burst smaller than this: nap before waiting again
BURST_NAP = 0.0005
READER_SLICE_NS = 100_000        # the reader's scheduler slice request (0: the default)
LINGER = 0.002                   # s: a take from the reader ring smaller than ...
LINGER_BELOW = 64                # ... this many datagrams waits this long once for more


def _part(b: "DatagramBatch", i: int, j: int) -> "DatagramBatch":
    """Datagrams ``i:j`` of a batch (the buffer is shared)."""
    return DatagramBatch(b.buf, b.start[i:j], b.length[i:j], b.exp[i:j], b.srcs,
                         b.port[i:j], b.ts[i:j])


def _join(bursts) -> "DatagramBatch":
    """Several bursts as one batch: buffers back to back, exporters re-indexed."""
    names: dict = {}
    starts, exps, off = [], [], 0
    for b in bursts:
        remap = np.array([names.setdefault(s, len(names)) for s in b.srcs], np.int64)
        exps.append(remap[b.exp])
        starts.append(b.start + off)
        off += len(b.buf)
    return DatagramBatch(b"".join(b.buf for b in bursts), np.concatenate(starts),
                         np.concatenate([b.length for b in bursts]), np.concatenate(exps),
                         list(names), np.concatenate([b.port for b in bursts]),
                         np.concatenate([b.ts for b in bursts]))


def _is_v6(ip: str) -> bool:
    return ":" in ip


class UdpSource:
    def __init__(self, ip: str | None = None, port: int = 2100, rcvbuf: int | None = None,
                 log=None, ipv6_only: bool = False, mcast_groups=(), reuseport: bool = True,
                 threaded: bool = False, max_queued_bytes: int = MAX_QUEUED_BYTES,
                 reader: str | None = None, title: str | None = None,
                 slot_datagrams: int | None = None, linger: float = LINGER):
        self.log = log
        self.linger = linger             # s: how long a small take waits once for more
        self.rcvbuf = None
        family = socket.AF_INET6
        if ip:
            family = socket.AF_INET6 if _is_v6(ip) else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            if ip:
                raise
            family = socket.AF_INET          # no IPv6 on this host: retry with IPv4
            sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock = sock
        self.family = family
        try:
            if reuseport and hasattr(socket, "SO_REUSEPORT"):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                except OSError:
                    self._log("warn", "setsockopt() failed for SO_REUSEPORT.")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                try:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if ipv6_only else 0)
                except OSError:
                    self._log("warn", "setsockopt() failed for IPV6_V6ONLY.")
            if rcvbuf:
                self.rcvbuf = self._set_rcvbuf(int(rcvbuf))
            for group in mcast_groups:
                self._join(group)
            bind_ip = ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
            sock.bind((bind_ip, port))
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self.address = sock.getsockname()[:2]
        self.port = self.address[1]
        self.received = 0
        self.dropped = 0                 # by the reader thread's queue bound
        self._logged_drops = 0
        if reader is None:
            reader = "thread" if threaded else None
        if reader not in (None, "thread", "process"):
            raise ValueError(f"UdpSource reader: {reader!r} (process, thread or None)")
        self.reader = reader
        self.threaded = reader is not None
        self.title = title               # the reader process's title
        self._ring = None
        self._pid = 0
        self._slot_datagrams = slot_datagrams   # per ring slot (default BURST_MAX)
        self._pending = None             # a slot's datagrams beyond the last batch limit
        self._max_queued = max(int(max_queued_bytes), int(self.rcvbuf or 0))
        self._queue: list = []
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def _log(self, level: str, msg: str) -> None:
        if self.log is not None:
            getattr(self.log, level)(msg)

    def _set_rcvbuf(self, target: int) -> int:
        s = self.sock
        saved = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, target)
        except OSError:
            pass
        obtained = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if obtained < saved:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, saved)
            obtained = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self._log("info", f"nfacctd_pipe_size: obtained={obtained} target={target}.")
        return obtained

    def _join(self, group: str) -> None:
        if _is_v6(group):
            mreq = socket.inet_pton(socket.AF_INET6, group) + (0).to_bytes(4, "little")
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, max_datagrams: int = 1024, timeout: float | None = 1.0) -> list[Datagram]:
        """Up to ``max_datagrams`` datagrams; an empty list when none came in time."""
        if self.reader == "process":
            return self._read_ring(max_datagrams, timeout)
        if self.threaded:
            return self._read_queued(max_datagrams, timeout)
        out = self._drain(max_datagrams, timeout)
        self.received += len(out)
        return out

    # ---- the reader process --------------------------------------------------------
    def _read_ring(self, max_datagrams: int, timeout: float | None):
        """Up to ``max_datagrams`` of what the reader process put in the ring, as one
        ``DatagramBatch`` (several slots are joined; a slot is split if need be). A small
        take waits ``LINGER`` once for more: a decode has a fixed cost of about a
        millisecond whatever its size, so a trickle decoded a few datagrams at a time
        kept the core busy at any rate (docs/netflow.md)."""
        if self._ring is None:
            self._start_process()
        max_datagrams = max(1, max_datagrams)
        got: list = []
        n = self._take_slots(got, 0, max_datagrams)
        if not got:
            if not self._ring.wait(timeout):
                self._reader_gone()
                return self._read_queued(max_datagrams, 0)
            n = self._take_slots(got, 0, max_datagrams)
        if got and n < LINGER_BELOW and self.linger > 0:
            time.sleep(self.linger)
            n = self._take_slots(got, n, max_datagrams)
        self.dropped = self._ring.dropped_records
        return self._hand_over(got, n, self.dropped,
                               f"UDP reader ring full ({self._ring.nslots} slots "
                               f"of {self._ring.slot_size} bytes)")

    def _take_slots(self, got: list, n: int, max_datagrams: int) -> int:
        """Append the ring's published slots to ``got`` while fewer than
        ``max_datagrams`` are taken (the rest of a slot waits in ``_pending``)."""
        while n < max_datagrams:
            b = self._pending
            self._pending = None
            if b is None:
                slot = self._ring.read_burst()
                if slot is None:
                    break
                buf, lengths, exps, ports, tss, names = slot
                starts = np.cumsum(lengths) - lengths
                b = DatagramBatch(buf, starts, lengths, exps, names, ports, tss)
            room = max_datagrams - n
            if len(b) > room:
                self._pending = _part(b, room, len(b))
                b = _part(b, 0, room)
            got.append(b)
            n += len(b)
        return n

    def _start_process(self) -> None:
        from ..ring import BURST_MAX, BurstRing
        ring = self._ring = BurstRing(self._max_queued, "udp-reader",
                                      self._slot_datagrams or BURST_MAX)
        # the core's signals stay blocked across the fork, so that one arriving before
        # the reader has set them to SIG_IGN cannot kill it (the reader unblocks them
        # once ignored; the core right after the fork, its pending ones then delivered)
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CORE_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            raise
        if pid == 0:                                    # the reader process
            code = 1
            try:
                code = _reader_process(self.sock, ring, self.title, old_mask)
            except BaseException:
                pass
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self._pid = pid
        os.close(ring.wfd)                              # the core keeps the read end
        ring.wfd = -1

    def _reader_gone(self) -> None:
        """The reader process exited (its end of the wake-up pipe closed) though the
        core did not ask: go on reading in a thread."""
        status = self._reap(0.5)
        self._log("error", f"UDP reader process (PID {self._pid}) exited unexpectedly "
                           f"({status}); reading in a thread instead.")
        self._pid = 0
        self.reader = "thread"

    def _reap(self, wait: float):
        deadline = time.monotonic() + wait
        while True:
            try:
                pid, status = os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:
                return "reaped by the core"
            if pid:
                return f"wait status {status}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _stop_process(self) -> None:
        ring = self._ring
        if self._pid:
            ring.request_stop()
            if self._reap(1.0) is None:
                try:
                    os.kill(self._pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._reap(2.0)
            self._pid = 0
        ring.close_fds()

    def _read_queued(self, max_datagrams: int, timeout: float | None):
        """Up to ``max_datagrams`` of the reader thread's queued datagrams, as one
        ``DatagramBatch`` (several bursts are joined; a burst is split if need be)."""
        if self._thread is None:
            self._start_reader()
        max_datagrams = max(1, max_datagrams)
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)
            got, n = [], 0
            while self._queue and n < max_datagrams:
                b = self._queue[0]
                room = max_datagrams - n
                if len(b) <= room:
                    got.append(self._queue.pop(0))
                else:
                    got.append(_part(b, 0, room))
                    self._queue[0] = _part(b, room, len(b))
                n += len(got[-1])
            self._queued_bytes -= sum(int(b.length.sum()) for b in got)
            dropped = self.dropped
        return self._hand_over(got, n, dropped,
                               f"UDP reader queue full ({self._max_queued} bytes)")

    def _hand_over(self, got, n: int, dropped: int, why_dropped: str):
        """Count the ``n`` datagrams read, warn once per new run of drops (``why_dropped``
        says what overflowed) and join the batches into one."""
        self.received += n
        if dropped != self._logged_drops:
            self._log("warn", f"{why_dropped}: {dropped - self._logged_drops} datagrams "
                              f"dropped ({dropped} in all).")
            self._logged_drops = dropped
        if not got:
            return []
        return got[0] if len(got) == 1 else _join(got)

    def _start_reader(self) -> None:
        self._prev_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._prev_switch, SWITCH_INTERVAL))
        self._burst_view = memoryview(bytearray(BURST_BYTES))
        self._thread = threading.Thread(target=self._reader, name="udp-reader", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        """The reader thread: wait for the socket, drain it, queue what came."""
        cond = self._cond
        sock = self.sock
        while not self._closing:
            try:
                ready, _, _ = select.select([sock], [], [], 0.25)
                if not ready:
                    continue
                burst = self._burst()
            except (OSError, ValueError) as e:
                if self._closing:
                    return
                self._log("error", f"UDP reader: {e}; retrying.")
                time.sleep(0.1)
                continue
            if burst is None:
                continue
            with cond:
                if self._queued_bytes + len(burst.buf) > self._max_queued:
                    self.dropped += len(burst)      # the core is that far behind: count it
                else:
                    self._queue.append(burst)
                    self._queued_bytes += len(burst.buf)    # == its payloads' bytes
                    cond.notify()
            if len(burst) < BURST_NAP_BELOW:
                # a trickle: let a few more arrive before the next wake-up, so the thread
                # takes the GIL once per handful of datagrams rather than once per datagram
                time.sleep(BURST_NAP)

    def _burst(self):
        """What the socket holds now (up to BURST_DATAGRAMS), read straight into the
        thread's one buffer and copied out once: no per-datagram 64 kB allocation (nor a
        fresh multi-MB buffer per burst, whose zeroing would hold the GIL), and the
        decoder gets it packed."""
        view = self._burst_view
        recv_into = self.sock.recvfrom_into
        starts, lengths, exps, ports, tss = [], [], [], [], []
        names: dict = {}
        clean = self._clean
        off = 0
        limit = BURST_BYTES - MAX_DATAGRAM
        while off <= limit and len(starts) < BURST_DATAGRAMS:
            try:
                n, addr = recv_into(view[off:], MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:      # ICMP errors surfacing on a UDP socket
                continue
            e = names.get(addr[0])
            if e is None:
                e = names[addr[0]] = len(names)
            starts.append(off)
            lengths.append(n)
            exps.append(e)
            ports.append(addr[1])
            tss.append(time.time_ns() // 1000)
            off += n
        if not starts:
            return None
        return DatagramBatch(bytes(view[:off]), np.array(starts, np.int64), np.array(lengths, np.int64),
                             np.array(exps, np.int64), [clean(a) for a in names],
                             np.array(ports, np.int64), np.array(tss, np.int64))

    @staticmethod
    def _clean(src: str) -> str:
        if src.startswith("::ffff:") and "." in src:
            return src[7:]
        if "%" in src:
            return src.split("%", 1)[0]
        return src

    def _drain(self, max_datagrams: int, timeout: float | None) -> list[Datagram]:
        out: list[Datagram] = []
        recv = self.sock.recvfrom
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError) as e:
            if getattr(e, "errno", None) == errno.EINTR:
                return out
            raise
        if not ready:
            return out
        while len(out) < max_datagrams:
            try:
                data, addr = recv(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except InterruptedError:
                break
            except ConnectionRefusedError:      # ICMP errors surfacing on a UDP socket
                continue
            out.append(Datagram(data, self._clean(addr[0]), addr[1], time.time_ns() // 1000))
        return out

    def close(self) -> None:
        if self._ring is not None:
            self._stop_process()
        if self._thread is not None:
            self._closing = True
            self._thread.join(2.0)
            sys.setswitchinterval(self._prev_switch)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


PR_SET_PDEATHSIG = 1
POLL_MS = 250
HOLD_MS = 1            # holding unpublished datagrams: look at the core this often


_CORE_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]


_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "i686": 351, "i386": 351}


def request_short_slice(ns: int) -> bool:
    """Ask the kernel's fair scheduler for a ``ns`` slice for this process (Linux 6.12+
    EEVDF: ``sched_setattr`` with ``sched_runtime`` on SCHED_OTHER, allowed to any user;
    older kernels ignore it). Policy and nice stay as they are: the process gets no more
    CPU than before, but a task with a shorter slice gets an earlier deadline, so when
    it wakes it runs soon rather than after the running task's slice. Silently False
    where the call is unavailable or refused."""
    nr = _SYS_SCHED_SETATTR.get(os.uname().machine)
    if nr is None or os.sched_getscheduler(0) != os.SCHED_OTHER:
        return False
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), os.SCHED_OTHER, 0,
                      os.getpriority(os.PRIO_PROCESS, 0), 0, int(ns), 0, 0)
    try:
        return ctypes.CDLL(None, use_errno=True).syscall(nr, 0, ctypes.byref(attr), 0) == 0
    except (OSError, AttributeError):
        return False


def _reader_process(sock, ring, title, mask=None) -> int:
    """The reader process's body: block until the socket has datagrams, receive them
    straight into the ring's next free slot, publish it; a full ring drops (and counts)
    the burst. The core handles the signals; this process dies with it."""
    for s in _CORE_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass                                     # getppid() below still notices
    if os.getppid() != parent:
        return 0
    keep = {0, 1, 2, sock.fileno(), ring.wfd}
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    ring.rfd = -1
    if title:
        from ..runtime.process import set_title
        set_title(title)
    if READER_SLICE_NS and os.environ.get("PYPMACCT_UDP_READER_SLICE", "1") != "0":
        request_short_slice(READER_SLICE_NS)
    from ..ring import BURST_PAYLOAD
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    recv_into = sock.recvfrom_into
    scratch = memoryview(bytearray(MAX_DATAGRAM))
    limit = BURST_PAYLOAD - MAX_DATAGRAM
    clean = UdpSource._clean
    now = time.time_ns
    lengths, exps, ports, tss = [], [], [], []
    names: dict = {}
    off = 0            # bytes in the open slot (the next free one, not yet published)
    while not ring.stop_requested:
        try:
            if not poller.poll(HOLD_MS if lengths else POLL_MS):
                if lengths and ring.backlog() == 0:
                    ring.publish(lengths, exps, ports, tss, [clean(a) for a in names], off)
                    ring.wake()
                    lengths, exps, ports, tss, names, off = [], [], [], [], {}, 0
                elif os.getppid() != parent:
                    return 0
                continue
        except InterruptedError:
            continue
        if not lengths and ring.full():
            n = 0                                # the core is that far behind: count it
            while True:
                try:
                    recv_into(scratch, MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue
                n += 1
            if n:
                ring._drop(n)
            time.sleep(BURST_NAP)
            continue
        view = ring.free_slot()
        got = len(lengths)
        while off <= limit and len(lengths) < ring.burst_max:
            try:
                n, addr = recv_into(view[off:], MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:      # ICMP errors surfacing on a UDP socket
                continue
            tss.append(now() // 1000)
            e = names.get(addr[0])
            if e is None:
                e = names[addr[0]] = len(names)
            lengths.append(n)
            exps.append(e)
            ports.append(addr[1])
            off += n
        del view
        got = len(lengths) - got
        # publish at once if the core is waiting for data, or the slot is full; while the
        # core is busy with earlier slots, keep filling this one (slots are not wasted on
        # a datagram or two each)
        if lengths and (ring.backlog() == 0 or off > limit or len(lengths) >= ring.burst_max):
            ring.publish(lengths, exps, ports, tss, [clean(a) for a in names], off)
            ring.wake()
            lengths, exps, ports, tss, names, off = [], [], [], [], {}, 0
        if got < BURST_NAP_BELOW:
            time.sleep(BURST_NAP)                # a trickle: fewer wake-ups
    return 0
