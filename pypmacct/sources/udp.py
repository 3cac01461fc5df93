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
(set to 0.5 ms while it runs). The queue is bounded (``max_queued_bytes``); datagrams
beyond it are dropped and counted in ``dropped``, and the next ``read`` logs the count.
"""
from __future__ import annotations

import errno
import select
import socket
import sys
import threading
import time

from . import Datagram

MAX_DATAGRAM = 65535
MAX_QUEUED_BYTES = 64 << 20      # the reader thread's queue bound (or SO_RCVBUF if larger)
SWITCH_INTERVAL = 0.0005         # seconds: how soon a waiting reader thread gets the GIL


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

    def _read_queued(self, max_datagrams: int, timeout: float | None) -> list[Datagram]:
        if self._thread is None:
            self._start_reader()
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)
            q = self._queue
            if len(q) <= max_datagrams:
                out, self._queue = q, []
            else:
                out, self._queue = q[:max_datagrams], q[max_datagrams:]
            self._queued_bytes -= sum(len(d.payload) for d in out)
            dropped = self.dropped
        self.received += len(out)
        if dropped != self._logged_drops:
            self._log("warn", f"UDP reader queue full ({self._max_queued} bytes): "
                              f"{dropped - self._logged_drops} datagrams dropped "
                              f"({dropped} in all).")
            self._logged_drops = dropped
        return out

    def _start_reader(self) -> None:
        self._prev_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._prev_switch, SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._reader, name="udp-reader", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        """The reader thread: wait for the socket, drain it, queue what came."""
        cond = self._cond
        while not self._closing:
            try:
                got = self._drain(4096, 0.25)
            except (OSError, ValueError) as e:
                if self._closing:
                    return
                self._log("error", f"UDP reader: {e}; retrying.")
                time.sleep(0.1)
                continue
            if not got:
                continue
            size = sum(len(d.payload) for d in got)
            with cond:
                room = self._max_queued - self._queued_bytes
                if size > room:
                    keep, used = [], 0
                    for d in got:           # only when over the bound: rare
                        if used + len(d.payload) > room:
                            break
                        keep.append(d)
                        used += len(d.payload)
                    self.dropped += len(got) - len(keep)
                    got, size = keep, used
                self._queue.extend(got)
                self._queued_bytes += size
                cond.notify()

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
            src = addr[0]
            if src.startswith("::ffff:") and "." in src:
                src = src[7:]
            elif "%" in src:
                src = src.split("%", 1)[0]
            out.append(Datagram(data, src, addr[1], time.time_ns() // 1000))
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
