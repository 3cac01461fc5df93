"""Run a pmacctd with an nfprobe plugin and catch what it exports.

    run = export_run(binary, settings, workdir)   # settings without nfprobe_receiver
    run.datagrams                                 # the UDP payloads, in arrival order
    run.write_pcap(path)                          # as a capture nfacctd can replay

A UDP socket on 127.0.0.1 (a free port) is the receiver; the daemon runs to its end
(pcap_savefile) through ``oracle.run_daemon``.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from . import oracle, pcapio


@dataclass
class ExportRun:
    result: oracle.RunResult
    datagrams: list = field(default_factory=list)
    port: int = 0

    def write_pcap(self, path, start_ns: int = 1_800_000_000_000_000_000):
        with pcapio.PcapWriter(path) as w:
            for i, d in enumerate(self.datagrams):
                w.write(start_ns + i * 1_000_000,
                        pcapio.udp_frame("127.0.0.1", "127.0.0.1", 40000, 2100, d))
        return path


def export_run(binary, settings: dict, workdir, *, plugin: str = "np",
               timeout: float = 120.0) -> ExportRun:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            try:
                got.append(sock.recv(65535))
            except socket.timeout:
                continue

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    try:
        s = dict(settings)
        s[f"nfprobe_receiver[{plugin}]"] = f"127.0.0.1:{port}"
        res = oracle.run_daemon(binary, s, workdir, timeout=timeout, output_glob="none")
        time.sleep(0.3)            # the last datagrams
    finally:
        stop.set()
        rx.join()
        sock.close()
    return ExportRun(res, got, port)


def masked(d: bytes) -> bytes:
    """A datagram without what depends on the clock: header uptime/time, and for v5
    the records' first/last (relative to the probe's start)."""
    v = struct.unpack(">H", d[:2])[0]
    if v == 9:
        return d[:4] + bytes(8) + d[12:]
    if v == 10:
        return d[:4] + bytes(4) + d[8:]
    if v == 5:
        out = bytearray(d[:4] + bytes(12) + d[16:])
        for i in range(struct.unpack(">H", d[2:4])[0]):
            o = 24 + 48 * i
            out[o + 24:o + 32] = bytes(8)
        return bytes(out)
    return d


def template_sets(d: bytes) -> list[bytes]:
    """The template (and options template) sets of a v9/IPFIX datagram."""
    v = struct.unpack(">H", d[:2])[0]
    off = 20 if v == 9 else 16
    out = []
    while off + 4 <= len(d):
        sid, ln = struct.unpack(">HH", d[off:off + 4])
        if ln < 4:
            break
        if sid < 256:
            out.append(d[off:off + ln])
        off += ln
    return out


def masked_all(datagrams: list) -> list[bytes]:
    """``masked`` for each datagram, and, for v9 templates that start with the 32-bit
    uptime-relative LAST/FIRST_SWITCHED (timestamps_secs), those 8 bytes of each record."""
    rel: dict[int, int] = {}        # template id -> record length, for such templates
    out = []
    for d in datagrams:
        d = bytearray(masked(d))
        if struct.unpack(">H", d[:2])[0] != 9:
            out.append(bytes(d))
            continue
        off = 20
        while off + 4 <= len(d):
            sid, ln = struct.unpack(">HH", d[off:off + 4])
            if ln < 4:
                break
            if sid == 0:
                tid, cnt = struct.unpack(">HH", d[off + 4:off + 8])
                fields = [struct.unpack(">HH", d[off + 8 + 4 * i:off + 12 + 4 * i])
                          for i in range(cnt)]
                if fields and fields[0][0] == 21:
                    rel[tid] = sum(f[1] for f in fields)
            elif sid in rel:
                n = (ln - 4) // rel[sid]
                for i in range(n):
                    at = off + 4 + i * rel[sid]
                    d[at:at + 8] = bytes(8)
            off += ln
        out.append(bytes(d))
    return out
