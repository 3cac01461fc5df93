"""Helpers for the tee plugin's tests: UDP receivers that keep every datagram with its
source address, and daemons run in the background as live collectors.

``receivers`` is the fixture both tee test modules import: ``receivers(n)`` makes a
``Receivers`` closed at teardown. ``savefile_settings`` is the daemon configuration both
start from (a savefile replay in the foreground, logging to ``daemon.log``).

``Receivers(n)`` binds ``n`` UDP sockets on 127.0.0.1 (free ports) and a thread that
stores, per socket, every datagram as ``(src_ip, src_port, payload)``. ``wait_total``
waits until a number of datagrams has arrived (or fails after a bound).
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .oracle import render_config


@pytest.fixture
def receivers():
    made = []

    def make(n, host="127.0.0.1"):
        r = Receivers(n, host)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def savefile_settings(capture, **extra) -> dict:
    s = {"daemonize": False, "pcap_savefile": str(capture), "logfile": "daemon.log"}
    s.update(extra)
    return s


class Receivers:
    def __init__(self, n: int, host: str = "127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socks = []
        for _ in range(n):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind((host, 0))
            self.socks.append(s)
        self.host = host
        self.ports = [s.getsockname()[1] for s in self.socks]
        self.got = [[] for _ in range(n)]
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def addr(self, i: int) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.ports[i]}"

    def _run(self):
        while not self._stop:
            r, _, _ = select.select(self.socks, [], [], 0.1)
            for s in r:
                data, src = s.recvfrom(65535)
                with self._lock:
                    self.got[self.socks.index(s)].append((src[0], src[1], data))

    def total(self) -> int:
        with self._lock:
            return sum(len(g) for g in self.got)

    def payloads(self, i: int) -> list[bytes]:
        with self._lock:
            return [p for _, _, p in self.got[i]]

    def sources(self, i: int) -> list[tuple[str, int]]:
        with self._lock:
            return [(a, p) for a, p, _ in self.got[i]]

    def wait_total(self, n: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while self.total() < n and time.monotonic() < end:
            time.sleep(0.05)
        assert self.total() >= n, f"receivers got {self.total()} datagrams, expected {n}"

    def close(self):
        self._stop = True
        self._thread.join(2)
        for s in self.socks:
            s.close()


def udp_queue_empty(port: int) -> bool:
    """Is the receive queue of the UDP socket bound to ``port`` empty (/proc/net/udp)?"""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port:
                rx = int(f[4].split(":")[1], 16)
                return rx == 0
    return False


def udp_bound(port: int) -> bool:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


class Background:
    """A daemon run with ``settings`` in ``workdir`` until ``stop()`` (SIGINT)."""

    def __init__(self, binary, settings: dict, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "daemon.conf"
        conf.write_text(render_config(settings))
        env = dict(os.environ, TZ="UTC")
        self.proc = subprocess.Popen([str(binary), "-f", str(conf)], cwd=self.workdir,
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.settings = settings

    def wait_bound(self, port: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not udp_bound(port):
            assert self.proc.poll() is None, f"daemon exited: {self.proc.stderr.read()!r}"
            assert time.monotonic() < end, f"nothing bound to UDP {port}"
            time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> int:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
        # plugins may outlive the core for a moment
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        return self.proc.returncode

    def log(self) -> str:
        p = self.workdir / str(self.settings.get("logfile", "daemon.log"))
        return p.read_text(errors="replace") if p.exists() else ""
