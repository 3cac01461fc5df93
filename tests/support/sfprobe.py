"""Real sFlow v5: pmacct 1.7.7's own pmacctd with its sfprobe plugin exports a packet
capture as sFlow, and we record what it sends as a pcap (for sfacctd diff tests).

``export(packets_pcap, out_pcap, sampling_rate=1)`` runs ``/usr/sbin/pmacctd`` on the
capture (``pcap_savefile``) with ``plugins: sfprobe`` sending to a UDP socket of ours on
127.0.0.1, writes every datagram received into ``out_pcap`` (from the sfprobe agent
address given by ``sfprobe_agentip``, to the port we listened on) and returns how many
datagrams came. pmacctd sleeps 2 s before reading a savefile and 2 s at its end: a run
takes about 5 s.
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import oracle, pcapio

AGENT = "192.0.2.77"


def export(packets_pcap, out_pcap, sampling_rate: int = 1, timeout: float = 60.0) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = sock.getsockname()[1]
    got = []
    with tempfile.TemporaryDirectory(prefix="sfprobe-") as d:
        conf = Path(d) / "pmacctd.conf"
        conf.write_text(oracle.render_config({
            "daemonize": False, "pcap_savefile": str(packets_pcap), "plugins": "sfprobe",
            "sfprobe_receiver": f"127.0.0.1:{port}", "sfprobe_agentip": AGENT,
            "sfprobe_sampling_rate": sampling_rate, "logfile": str(Path(d) / "log"),
        }))
        proc = subprocess.Popen([str(oracle.pmacct_binary("pmacctd")), "-f", str(conf)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                try:
                    data, _ = sock.recvfrom(65535)
                    got.append(data)
                except socket.timeout:
                    if proc.poll() is not None:
                        break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            # what is still queued
            sock.settimeout(0.05)
            while True:
                try:
                    got.append(sock.recvfrom(65535)[0])
                except (socket.timeout, BlockingIOError):
                    break
            sock.close()
    with pcapio.PcapWriter(out_pcap) as w:
        for i, payload in enumerate(got):
            w.write(1_700_000_000_000_000_000 + i * 1_000_000,
                    pcapio.udp_frame(AGENT, "127.0.0.1", 6343, port, payload))
    return len(got)
