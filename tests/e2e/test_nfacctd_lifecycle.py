"""nfacctd as an operator runs it: UDP on loopback, process titles, pid files,
signals (SIGUSR1 stats, SIGHUP log reopen, SIGTERM purge), a dying plugin."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.nfbuild import v5, v5_record

from .common import NFACCTD, free_port, read_csv, send, wait_for


def v5_datagram(seq: int, records: list[tuple[str, str, int, int]]) -> bytes:
    """A NetFlow v5 datagram; records are (src, dst, packets, bytes)."""
    return v5([v5_record(src=s, dst=d, pkts=p, octets=b) for s, d, p, b in records], seq=seq)


def title_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    conf = tmp_path / "nfacctd.conf"
    conf.write_text(
        f"nfacctd_ip: 127.0.0.1\n"
        f"nfacctd_port: {port}\n"
        f"pidfile: {tmp_path}/nfacctd.pid\n"
        f"logfile: {tmp_path}/nfacctd.log\n"
        f"plugins: print[hosts], print[total]\n"
        f"aggregate[hosts]: src_host, dst_host\n"
        f"aggregate[total]: none\n"
        f"print_output: csv\n"
        f"print_output_file[hosts]: {tmp_path}/hosts.csv\n"
        f"print_output_file[total]: {tmp_path}/total.csv\n"
        f"print_refresh_time: 3600\n")
    proc = subprocess.Popen(NFACCTD + ["-f", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    pidfile = tmp_path / "nfacctd.pid"
    try:
        wait_for(lambda: pidfile.exists() and (tmp_path / "nfacctd.pid-print-total").exists()
                 and (tmp_path / "nfacctd.pid-print-hosts").exists(), what="pid files")
        yield proc, port, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_titles_pidfiles_stats_and_clean_shutdown(daemon):
    proc, port, d = daemon
    core_pid = int((d / "nfacctd.pid").read_text())
    hosts_pid = int((d / "nfacctd.pid-print-hosts").read_text())
    total_pid = int((d / "nfacctd.pid-print-total").read_text())
    assert core_pid == proc.pid
    assert title_of(core_pid) == "nfacctd: Core Process [default]"
    assert title_of(hosts_pid) == "nfacctd: Print Plugin [hosts]"
    assert title_of(total_pid) == "nfacctd: Print Plugin [total]"

    send(port, [v5_datagram(0, [("10.0.0.1", "10.0.0.2", 3, 300)] * 2),
                v5_datagram(2, [("10.0.0.3", "10.0.0.2", 1, 60)])])
    log = d / "nfacctd.log"

    def stats_show_both_datagrams():
        os.kill(core_pid, signal.SIGUSR1)
        time.sleep(0.2)
        return "agent=127.0.0.1" in log.read_text() and "packets=2 records=3" in log.read_text()

    wait_for(stats_show_both_datagrams, what="SIGUSR1 stats for 2 datagrams, 3 records")
    stats = log.read_text()
    assert "records_dropped=0" in stats
    assert "NOTICE ( default/core ): +++" in stats and "NOTICE ( default/core ): ---" in stats

    os.kill(core_pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    rows = read_csv(d / "hosts.csv")
    assert sorted((r["SRC_IP"], r["DST_IP"], r["PACKETS"], r["BYTES"]) for r in rows) == [
        ("10.0.0.1", "10.0.0.2", "6", "600"), ("10.0.0.3", "10.0.0.2", "1", "60")]
    total = read_csv(d / "total.csv")
    assert [(r["PACKETS"], r["BYTES"]) for r in total] == [("7", "660")]
    for name in ("nfacctd.pid", "nfacctd.pid-print-hosts", "nfacctd.pid-print-total"):
        assert not (d / name).exists(), name
    assert "OK, Exiting" in log.read_text()


def test_sighup_reopens_the_log_file(daemon):
    proc, port, d = daemon
    log = d / "nfacctd.log"
    rotated = d / "nfacctd.log.1"
    log.rename(rotated)
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGUSR1)
    wait_for(lambda: log.exists() and "stats" in log.read_text(), what="reopened log")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_dead_plugin_is_reported_and_others_keep_working(daemon):
    proc, port, d = daemon
    hosts_pid = int((d / "nfacctd.pid-print-hosts").read_text())
    os.kill(hosts_pid, signal.SIGKILL)
    log = d / "nfacctd.log"
    send(port, [v5_datagram(0, [("10.0.0.9", "10.0.0.2", 1, 40)])])
    wait_for(lambda: "hosts/print" in log.read_text() and "exited unexpectedly" in log.read_text(),
             what="plugin death report")
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    assert [(r["PACKETS"], r["BYTES"]) for r in read_csv(d / "total.csv")] == [("1", "40")]


def test_plugins_purge_what_they_hold_when_the_core_is_killed(daemon):
    proc, port, d = daemon
    send(port, [v5_datagram(0, [("10.0.0.5", "10.0.0.6", 2, 200)])])
    time.sleep(0.5)
    hosts_pid = int((d / "nfacctd.pid-print-hosts").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not Path(f"/proc/{hosts_pid}").exists()
             or Path(f"/proc/{hosts_pid}/stat").read_text().split()[2] == "Z",
             what="the plugin to finish")
    rows = read_csv(d / "hosts.csv")
    assert [(r["SRC_IP"], r["PACKETS"], r["BYTES"]) for r in rows] == [("10.0.0.5", "2", "200")]
