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
"""
from __future__ import annotations

import errno
import select
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
                 threaded: bool = False, max_queued_bytes: int = MAX_QUEUED_BYTES):
        self.log = log
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
        self.threaded = threaded
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
        if self.threaded:
            return self._read_queued(max_datagrams, timeout)
        out = self._drain(max_datagrams, timeout)
        self.received += len(out)
        return out

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
        self.received += n
        if dropped != self._logged_drops:
            self._log("warn", f"UDP reader queue full ({self._max_queued} bytes): "
                              f"{dropped - self._logged_drops} datagrams dropped "
                              f"({dropped} in all).")
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
