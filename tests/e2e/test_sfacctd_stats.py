"""sfacctd's SIGUSR1 statistics: our collector receives sFlow datagrams over UDP on
loopback (sequence numbers in order, skipped and going back, one malformed datagram) and
must log 1.7.7's status table (xflow_status.c's print_status_table: one line per agent and
sub-agent id with datagrams, bytes, seq_good, seq_jmp_fwd, seq_jmp_bck; then
discarded_packets), with the values the test computes from the datagrams it sent.
(pmacct 1.7.7's own sfacctd, run live the same way, stopped answering signals here, so the
expected lines are derived, not taken from it.)"""
from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import time

import pytest

from tests.e2e.common import free_port, send, wait_for
from tests.support import oracle, sflowgen


STAT = re.compile(r"NOTICE \( default/core \): (stats \[[^]]*\] (?:agent=\S+ )?)time=\d+ (.*)$")


def _datagrams():
    cap = sflowgen.generate(sflowgen.SflowParams(seed=5, datagrams=60, agents=3,
                                                 ipv6_agent=False, versions=(5,)))
    d = [payload for _src, payload in cap.datagrams]
    # a gap (forward jumps) and an old datagram sent again (back, then forward)
    d = d[:10] + d[13:30] + [d[3]] + d[30:]
    # a version 3 datagram: discarded
    d.insert(5, struct.pack("!II", 3, 1) + bytes(40))
    return d


def _stats(binary, tmp, datagrams, checks):
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "daemon.log"
    conf = tmp / "daemon.conf"
    conf.write_text(oracle.render_config({
        "daemonize": False, "sfacctd_ip": "127.0.0.1", "sfacctd_port": port,
        "logfile": str(log), "plugins": "print", "aggregate": "src_host",
        "print_output_file": str(tmp / "out.txt"), "print_refresh_time": 3600,
        "sfacctd_disable_checks": not checks}))
    proc = subprocess.Popen([str(binary), "-f", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: log.exists() and "waiting for sFlow data" in log.read_text(),
                 timeout=30, what=f"{binary} to start")
        time.sleep(0.5)
        for i in range(0, len(datagrams), 8):       # small bursts: no socket overrun
            send(port, datagrams[i:i + 8])
            time.sleep(0.05)
        time.sleep(1.0)

        def stats_logged():
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
            return "discarded_packets=" in log.read_text()
        wait_for(stats_logged, timeout=20, what=f"{binary} SIGUSR1 stats")
        text = log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = text.index("discarded_packets=")
    block = text[:text.index("\n", first)]
    block = block[block.rfind("+++"):]
    return sorted(m.group(1) + m.group(2) for m in map(STAT.search, block.splitlines())
                  if m), port


def _expected(datagrams, collector, checks):
    """The status table 1.7.7 keeps, from the datagrams: per (agent, sub id) the count,
    bytes, and each sequence number against the previous one + 1."""
    table = {}
    bad = 0
    for d in datagrams:
        ver, atype = struct.unpack_from("!II", d)
        if ver not in (2, 4, 5) or atype != 1:
            bad += 1
            continue
        agent = ".".join(str(x) for x in d[8:12])
        sub = struct.unpack_from("!I", d, 12)[0] if ver == 5 else 0
        seq = struct.unpack_from("!I", d, 16 if ver == 5 else 12)[0]
        st = table.setdefault((agent, sub), [0, 0, 0, 0, 0, 0])
        st[0] += 1
        st[1] += len(d)
        if not checks or not st[5] or seq == st[5] + 1:
            st[2] += 1
        elif seq > st[5] + 1:
            st[3] += 1
        else:
            st[4] += 1
        st[5] = seq
    lines = [f"stats [{collector}] agent={a}:{sb} packets={n} bytes={b} seq_good={g} "
             f"seq_jmp_fwd={f} seq_jmp_bck={k}" for (a, sb), (n, b, g, f, k, _s) in table.items()]
    return sorted(lines + [f"stats [{collector}] discarded_packets={bad}"])


@pytest.mark.parametrize("checks", [True, False])
def test_sigusr1_stats_line(checks, tmp_path):
    """With sfacctd_disable_checks: false the jumps are counted; with the default (true)
    every datagram is seq_good, as in 1.7.7."""
    datagrams = _datagrams()
    ours, port = _stats(oracle.our_binary("sfacctd"), tmp_path / "ours", datagrams, checks)
    want = _expected(datagrams, f"127.0.0.1:{port}", checks)
    assert ours == want, "\n".join(["want:", *want, "ours:", *ours])
    assert len(ours) == 4 and ours[-1].endswith("discarded_packets=1"), ours
    jumps = lambda what: sum(int(re.search(what + r"=(\d+)", l).group(1)) for l in ours[:-1])
    assert jumps("packets") == len(datagrams) - 1
    assert (jumps("seq_jmp_bck") >= 1 and jumps("seq_jmp_fwd") >= 2) if checks else \
        (jumps("seq_jmp_bck") == jumps("seq_jmp_fwd") == 0)
