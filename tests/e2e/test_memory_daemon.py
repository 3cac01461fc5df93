"""nfacctd with memory plugins as an operator runs it: switches only (-P memory -p -b -m
-s), two named tables from a file, the table's bound, the socket's life cycle."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support import flowgen
from tests.support.memory import our_client, run_client

from .common import NFACCTD, free_port, send, wait_for


def _start(args, tmp_path):
    log = tmp_path / "stderr.log"
    fh = open(log, "wb")
    proc = subprocess.Popen(NFACCTD + args, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                            start_new_session=True, cwd=tmp_path)
    return proc, log


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(60)


def _datagrams(records=300, seed=3):
    exp = flowgen.generate(flowgen.GenParams(version=5, records=records, seed=seed,
                                             exporters=1, hosts=50, ports=10))
    return exp, [p for _, _, p in exp.datagrams]


def _q(path, *args):
    r = run_client(our_client(), ["-p", path] + list(args))
    assert r.returncode == 0, r.stdout
    return r.stdout.decode()


def test_switches_only(tmp_path):
    port = free_port()
    path = str(tmp_path / "sw.pipe")
    proc, log = _start(["-P", "memory", "-p", path, "-b", "64", "-m", "4", "-s", "4096",
                        "-c", "proto,dst_port", "-l", str(port), "-L", "127.0.0.1"],
                       tmp_path)
    try:
        wait_for(lambda: os.path.exists(path), timeout=30, what="the socket")
        exp, dgrams = _datagrams()
        send(port, dgrams)
        want = f"{int(exp.truth['packets'].sum())} {int(exp.truth['bytes'].sum())}"

        def loaded():
            out = _q(path, "-c", "dst_port", "-N", "*", "-n", "all").split()
            return " ".join(out[:2]) == want
        wait_for(loaded, timeout=30, what="all records in the table")
        head = _q(path, "-s").splitlines()[0]
        assert head.split() == ["DST_PORT", "PROTOCOL", "PACKETS", "BYTES"]
        assert _q(path, "-t").count("\n") == 3 + 64       # imt_buckets lines
    finally:
        assert _stop(proc) == 0
    assert not os.path.exists(path)                       # removed at exit
    text = log.read_text()
    assert "memory table: up to 64 aggregates" not in text
    assert f"up to {64 + 3 * (4096 // 352)} aggregates" in text
    assert f"OK ( default_memory/memory ): waiting for data on: '{path}'" in text


def test_two_tables_and_the_bound(tmp_path):
    port = free_port()
    a, b = str(tmp_path / "a.pipe"), str(tmp_path / "b.pipe")
    conf = tmp_path / "n.conf"
    conf.write_text(f"daemonize: false\nplugins: memory[hosts], memory[ports]\n"
                    f"aggregate[hosts]: src_host, dst_host\naggregate[ports]: dst_port\n"
                    f"imt_path[hosts]: {a}\nimt_path[ports]: {b}\n"
                    f"imt_buckets[hosts]: 10\nimt_mem_pools_number[hosts]: 2\n"
                    f"imt_mem_pools_size[hosts]: 1760\n"
                    f"nfacctd_port: {port}\nnfacctd_ip: 127.0.0.1\n")
    proc, log = _start(["-f", str(conf)], tmp_path)
    try:
        wait_for(lambda: os.path.exists(a) and os.path.exists(b), timeout=30,
                 what="both sockets")
        exp, dgrams = _datagrams(records=600, seed=9)
        send(port, dgrams)
        total_b = int(exp.truth["bytes"].sum())
        wait_for(lambda: _q(b, "-c", "dst_port", "-N", "*") == f"{total_b}\n", timeout=30,
                 what="the ports table")
        # hosts: at most 10 + (2 - 1) * (1760 // 352) = 15 aggregates; the first 15
        # host pairs keep every record of theirs, later ones are dropped
        rows = _q(a, "-s", "-O", "csv").splitlines()[1:]
        assert len(rows) == 15
        t = exp.truth
        pairs = {}
        for i in range(len(t)):
            k = (flowgen.ip_text(t["src_ip"][i], False), flowgen.ip_text(t["dst_ip"][i], False))
            pairs.setdefault(k, [0, 0])
            pairs[k][0] += int(t["packets"][i])
            pairs[k][1] += int(t["bytes"][i])
        first15 = list(pairs)[:15]
        assert sorted(rows) == sorted(f"{s},{d},{pairs[(s, d)][0]},{pairs[(s, d)][1]}"
                                      for s, d in first15)
        assert _q(a, "-e") == "OK: Clearing stats.\n"
        assert _q(a, "-s", "-O", "csv").splitlines()[1:] == []
    finally:
        assert _stop(proc) == 0
    text = log.read_text()
    assert "memory table full (15 aggregates" in text
    kept_p = sum(pairs[k][0] for k in first15)
    kept_b = sum(pairs[k][1] for k in first15)
    lost_p = int(exp.truth["packets"].sum()) - kept_p
    lost_b = int(exp.truth["bytes"].sum()) - kept_b
    assert f"({lost_p} packets, {lost_b} bytes) dropped" in text, text[-1500:]


def test_pmacct_console_script_help(tmp_path):
    r = run_client(our_client(), ["-h"])
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[0].startswith("pmacct IMT plugin client, pmacct 1.7.7")
    r = subprocess.run([sys.executable, "-m", "pypmacct.client.main", "-V"],
                       capture_output=True)
    assert r.returncode == 0 and b"pypmacct" in r.stdout
