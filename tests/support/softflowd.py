"""Drive softflowd 1.1.0 over a packet capture and record what it exports as a pcap.

What softflowd 1.1.0 needs (learnt by running it):
- ``softflowd -r FILE -n 127.0.0.1:PORT -v 5|9|10 -c CTLSOCK -p PIDFILE -d`` reads the file
  in the foreground. ``-c``/``-p`` must point somewhere writable (defaults are in /var/run).
- With ``-r`` it advances only 8192 packets each time its main loop wakes up, and the loop
  wakes for control-socket commands: ``softflowctl -c CTLSOCK statistics`` both nudges it
  and reports "Packets processed: N". Keep asking until N is the number of IP packets in the
  file, then send ``shutdown``: that expires every flow, exports them and exits
  ("Shutting down on user request"). It may also notice the end of the file on its own and
  shut down ("Shutting down after pcap EOF"), after which the control socket is gone: a
  failed softflowctl then just means it is already on its way out.
- It counts IP-layer bytes (IP header included) and one flow per direction. Version 5
  cannot carry IPv6: those flows are simply not exported with ``-v 5``. ``-v 9`` and
  ``-v 10`` export IPv6 flows too.
- Its v9 export puts every flow in a data set of its own (often several sets per packet,
  sets padded by a byte or two) and writes the number of *records* in the v9 header's
  ``count``. pmacct 1.7.7 reads ``count`` as a number of *flowsets* and stops after that
  many sets, so when a packet has more sets than records counted (the first packet, which
  also carries 4 templates and an options template) pmacct misses its last sets: 3 of
  400 flows in our traffic capture. The v5 and IPFIX exports reach pmacct complete.
- Export headers carry the wall clock (unix_secs/export time) and its own uptime, so two
  runs on the same file give different bytes; flow times come from packet timestamps.

We receive the datagrams on a UDP socket of our own and write them into a pcap with our
writer, from 127.0.0.1 (the exporter pmacct will see) to the port we listened on.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import pcapio

SOFTFLOWD = shutil.which("softflowd") or "/usr/sbin/softflowd"
SOFTFLOWCTL = shutil.which("softflowctl") or "/usr/sbin/softflowctl"


@dataclass
class SoftflowdRun:
    pcap: Path
    datagrams: int
    log: str
    statistics: str


def _count_ip_packets(path) -> int:
    n = 0
    for _ts, lt, frame in pcapio.read_frames(path):
        if lt == pcapio.LINKTYPE_ETHERNET and frame[12:14] in (b"\x08\x00", b"\x86\xdd"):
            n += 1
    return n


def _ctl(ctl: Path, cmd: str) -> tuple[int, str]:
    p = subprocess.run([SOFTFLOWCTL, "-c", str(ctl), cmd], capture_output=True, text=True,
                       timeout=10)
    return p.returncode, p.stdout + p.stderr


def export_capture(traffic_pcap, out_pcap, version: int, *, timeout: float = 60.0,
                   extra_args: tuple = ()) -> SoftflowdRun:
    """Run softflowd on ``traffic_pcap`` exporting ``version``; write its datagrams to ``out_pcap``."""
    if not os.access(SOFTFLOWD, os.X_OK):
        raise FileNotFoundError(f"softflowd not found at {SOFTFLOWD}: apt-get install -y softflowd")
    total = _count_ip_packets(traffic_pcap)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.settimeout(0.2)
    got: list[tuple[int, bytes, int]] = []
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            got.append((time.time_ns(), data, addr[1]))

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    work = Path(tempfile.mkdtemp(prefix="softflowd-"))
    ctl, pid = work / "ctl", work / "pid"
    cmd = [SOFTFLOWD, "-r", str(traffic_pcap), "-n", f"127.0.0.1:{port}", "-v", str(version),
           "-c", str(ctl), "-p", str(pid), "-d", *extra_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    stats = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if not ctl.exists():
                time.sleep(0.05)
                continue
            rc, stats = _ctl(ctl, "statistics")
            m = re.search(r"Packets processed: (\d+)", stats)
            if m and int(m.group(1)) >= total:
                break
            time.sleep(0.02)
        else:
            if proc.poll() is None:
                raise TimeoutError(f"softflowd did not process {total} packets in {timeout}s: {stats}")
        if proc.poll() is None:
            _ctl(ctl, "shutdown")
        log, _ = proc.communicate(timeout=timeout)
        # let the last datagrams land
        time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop.set()
        rx.join()
        sock.close()
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"softflowd exited {proc.returncode}: {log}")
    with pcapio.PcapWriter(out_pcap) as w:
        for ts, data, sport in got:
            w.write(ts, pcapio.udp_frame("127.0.0.1", "127.0.0.1", sport, port, data))
    return SoftflowdRun(Path(out_pcap), len(got), log, stats)


def version() -> str:
    p = subprocess.run([SOFTFLOWD, "-h"], capture_output=True, text=True)
    m = re.search(r"softflowd version (\S+)", p.stdout + p.stderr)
    return m.group(1).rstrip(".") if m else "unknown"
