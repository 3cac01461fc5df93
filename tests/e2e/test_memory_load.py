"""Load: 20 clients query a memory table in a loop while NetFlow streams in over UDP.

Nothing may be lost and no client may fail: every record sent ends up in the table
(the core's ring never overflows because the plugin keeps reading while it serves
queries), and every query gets a correct answer. Queries go to the plugin's socket
from threads of this process (the protocol of docs/memory.md), plus a few through the
``pmacct`` command itself. The CI form sends 200k records; the slow form 1M.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from pypmacct.client import protocol as P
from tests.support import flowgen
from tests.support.memory import our_client, run_client

from .common import free_port, wait_for

CLIENTS = 20


def _request(path: str, req: dict):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(path)
        s.sendall(P.encode(dict(req, v=P.VERSION)))
        return P.recv_reply(s)
    finally:
        s.close()


def _total(path: str) -> tuple[int, int, int]:
    hdr, _ = _request(path, {"op": "counter", "queries": [{}]})
    p, b, _, n = hdr["counters"][0]
    return p, b, n


def run_load(tmp_path, records: int, rate: int):
    exp = flowgen.generate(flowgen.GenParams(version=5, records=records, seed=5,
                                             exporters=1, hosts=3000, ports=200))
    want_packets = int(exp.truth["packets"].sum())
    want_bytes = int(exp.truth["bytes"].sum())
    port = free_port()
    path = str(tmp_path / "load.pipe")
    conf = tmp_path / "load.conf"
    conf.write_text(f"daemonize: false\nlogfile: {tmp_path / 'load.log'}\n"
                    f"plugins: memory[load]\naggregate[load]: src_host, dst_host, src_port, "
                    f"dst_port, proto\nimt_path[load]: {path}\nimt_mem_pools_number: 0\n"
                    f"nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"
                    f"nfacctd_pipe_size: 33554432\nplugin_pipe_size: 67108864\n"
                    f"plugin_buffer_size: 65536\n")
    proc = subprocess.Popen([sys.executable, "-m", "pypmacct.daemons.nfacctd", "-f", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    errors, counts = [], [0] * CLIENTS
    stop = threading.Event()

    def client_loop(i):
        while not stop.is_set():
            try:
                if i % 5 == 0:
                    hdr, blobs = _request(path, {"op": "stats"})
                    keys, values = P.table_from_blobs(hdr, blobs)
                    if len(keys) != hdr["rows"] or int(values["packets"].sum()) > want_packets:
                        errors.append(("stats", hdr["rows"]))
                else:
                    hdr, _ = _request(path, {"op": "counter",
                                             "queries": [{"dst_port": 80}, {"proto": 6}, {}]})
                    if not hdr.get("ok") or len(hdr["counters"]) != 3:
                        errors.append(("counter", hdr))
                counts[i] += 1
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                errors.append((i, repr(e)))

    try:
        wait_for(lambda: os.path.exists(path), timeout=30, what="the memory plugin's socket")
        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        # a few queries through the command itself, concurrently
        cmd_out = []
        cmd = threading.Thread(target=lambda: cmd_out.extend(
            run_client(our_client(), ["-p", path, "-c", "dst_port", "-N", "80;443", "-S"])
            for _ in range(3)))
        cmd.start()
        sent = 0
        t0 = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            per_dgram = records / max(1, len(exp.datagrams))
            for k, (_, _, payload) in enumerate(exp.datagrams):
                s.sendto(payload, ("127.0.0.1", port))
                sent += 1
                if k % 20 == 19:   # pace to `rate` records/s
                    ahead = (sent * per_dgram) / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        deadline = time.monotonic() + 120

        def all_in():
            return _total(path)[:2] == (want_packets, want_bytes)
        while time.monotonic() < deadline and not all_in():
            time.sleep(0.2)
        got = _total(path)
        stop.set()
        for t in threads:
            t.join(60)
        cmd.join(120)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = (tmp_path / "load.log").read_text()
    assert errors == []
    assert got[:2] == (want_packets, want_bytes), (got, want_packets, want_bytes, log[-2000:])
    assert min(counts) >= 3, counts               # every client was served, repeatedly
    assert all(r.returncode == 0 and len(r.stdout.split()) == 1 for r in cmd_out), cmd_out
    assert "dropped" not in log.lower() and "missing data" not in log.lower(), log[-2000:]
    return counts


def test_twenty_clients_while_200k_records_stream_in(tmp_path):
    run_load(tmp_path, 200_000, rate=40_000)


@pytest.mark.slow
def test_twenty_clients_while_1m_records_stream_in(tmp_path):
    run_load(tmp_path, 1_000_000, rate=50_000)
