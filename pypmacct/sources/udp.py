"""Datagrams from a UDP socket: ``nfacctd_ip`` / ``nfacctd_port`` (and sfacctd's).

As pmacct: without an address the socket is IPv6 "any" (dual stack, so IPv4 exporters
arrive as IPv4-mapped addresses, which are turned back into plain IPv4), falling back to
IPv4 if the host has no IPv6. SO_REUSEPORT and SO_REUSEADDR are set so several
collectors can share a port; ``rcvbuf`` (``nfacctd_pipe_size``) sets SO_RCVBUF, never
below what the system gave by default, and the obtained size is logged.

``read`` waits up to ``timeout`` for the first datagram, then drains what is queued,
without blocking, up to ``max_datagrams``.
"""
from __future__ import annotations

import errno
import select
import socket
import time

from . import Datagram

MAX_DATAGRAM = 65535


def _is_v6(ip: str) -> bool:
    return ":" in ip


class UdpSource:
    def __init__(self, ip: str | None = None, port: int = 2100, rcvbuf: int | None = None,
                 log=None, ipv6_only: bool = False, mcast_groups=(), reuseport: bool = True):
        self.log = log
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
        self.received += len(out)
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
