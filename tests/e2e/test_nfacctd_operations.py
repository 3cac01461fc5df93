"""nfacctd operated for real over loopback: daemonizing, file modes, IPv6, the allow list
and its SIGUSR2 reload, templates kept across a restart, SO_REUSEPORT, bad input."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

from tests.unit.nfbuild import data_set, ipfix, record, template_set, v5, v5_record

from .common import NFACCTD, free_port, read_csv, send, wait_for

IPFIX_TEMPLATE = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8)]
rows = read_csv


def conf(tmp, port, extra="", aggregate="peer_src_ip, src_host, dst_host"):
    path = tmp / "nfacctd.conf"
    path.write_text(f"nfacctd_port: {port}\n"
                    f"logfile: {tmp}/nfacctd.log\n"
                    f"pidfile: {tmp}/nfacctd.pid\n"
                    f"plugins: print[p]\n"
                    f"aggregate[p]: {aggregate}\n"
                    f"print_output[p]: csv\n"
                    f"print_output_file[p]: {tmp}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n" + extra)
    return path


def start(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(NFACCTD + ["-f", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = path.parent / "nfacctd.log"
    marker = "waiting for NetFlow/IPFIX data"
    before = log.read_text().count(marker) if log.exists() else 0
    wait_for(lambda: log.exists() and log.read_text().count(marker) > before,
             what="the collector to listen")
    return proc


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_daemonize_detaches_and_files_get_pmacct_mode(tmp_path):
    port = free_port()
    path = conf(tmp_path, port, "daemonize: true\nnfacctd_ip: 127.0.0.1\n")
    r = subprocess.run(NFACCTD + ["-f", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr           # the launching process returns at once
    pidfile = tmp_path / "nfacctd.pid"
    wait_for(pidfile.exists, what="pid file")
    pid = int(pidfile.read_text())
    try:
        assert pid != os.getpid() and pid_alive(pid)
        assert os.getsid(pid) != os.getsid(0)     # a session of its own: detached
        wait_for(lambda: "waiting for NetFlow/IPFIX" in (tmp_path / "nfacctd.log").read_text(),
                 what="listening")
        send(port, [v5([v5_record(pkts=4, octets=400)])])
        time.sleep(0.5)
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), what="daemon exit")
    out = tmp_path / "out.csv"
    assert [(r["SRC_IP"], r["PACKETS"], r["BYTES"]) for r in rows(out)] == [("10.0.0.1", "4", "400")]
    # pmacct's default files_umask is 077: output, log and pid files are private
    for f in (out, tmp_path / "nfacctd.log"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_ipv6_listener(tmp_path):
    port = free_port(socket.AF_INET6, "::1")
    proc = start(conf(tmp_path, port, "nfacctd_ip: ::1\n"))
    send(port, [v5([v5_record(pkts=2, octets=80)])], host="::1", family=socket.AF_INET6)
    time.sleep(0.5)
    assert stop(proc) == 0
    assert [(r["PEER_SRC_IP"], r["PACKETS"]) for r in rows(tmp_path / "out.csv")] == [("::1", "2")]


def test_allow_file_and_sigusr2_reload(tmp_path):
    port = free_port()
    allow = tmp_path / "allow.lst"
    allow.write_text("127.0.0.2\n")
    proc = start(conf(tmp_path, port, f"nfacctd_ip: 127.0.0.1\nnfacctd_allow_file: {allow}\n"))
    send(port, [v5([v5_record(src="10.1.1.1", pkts=1)])], src="127.0.0.1")   # refused
    send(port, [v5([v5_record(src="10.2.2.2", pkts=2)])], src="127.0.0.2")   # allowed
    time.sleep(0.5)
    allow.write_text("127.0.0.0/30\n")
    proc.send_signal(signal.SIGUSR2)
    log = tmp_path / "nfacctd.log"
    wait_for(lambda: "allow list reloaded" in log.read_text(), what="reload")
    send(port, [v5([v5_record(src="10.3.3.3", pkts=3)])], src="127.0.0.1")   # allowed now
    time.sleep(0.5)
    assert stop(proc) == 0
    got = sorted((r["PEER_SRC_IP"], r["SRC_IP"], r["PACKETS"]) for r in rows(tmp_path / "out.csv"))
    assert got == [("127.0.0.1", "10.3.3.3", "3"), ("127.0.0.2", "10.2.2.2", "2")]


def test_templates_file_keeps_templates_across_a_restart(tmp_path):
    port = free_port()
    templates = tmp_path / "templates.json"
    extra = f"nfacctd_ip: 127.0.0.1\nnfacctd_templates_file: {templates}\n"

    def data(seq, src):
        return ipfix([data_set(300, [record(IPFIX_TEMPLATE, [src, "10.9.9.9", 1000, 53, 17, 5, 500])])],
                     seq=seq)

    proc = start(conf(tmp_path, port, extra))
    send(port, [ipfix([template_set(10, [(300, IPFIX_TEMPLATE)])]), data(0, "10.0.0.7")])
    wait_for(lambda: templates.exists() and templates.stat().st_size > 0, what="templates file")
    assert stop(proc) == 0
    first = rows(tmp_path / "out.csv")
    assert [(r["SRC_IP"], r["PACKETS"]) for r in first] == [("10.0.0.7", "5")]

    proc = start(conf(tmp_path, port, extra))       # no template is sent this time
    send(port, [data(1, "10.0.0.8")])
    time.sleep(0.5)
    assert stop(proc) == 0
    assert [(r["SRC_IP"], r["PACKETS"]) for r in rows(tmp_path / "out.csv")] == [("10.0.0.8", "5")]


def test_two_collectors_share_a_port(tmp_path):
    port = free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    pa = start(conf(a, port, "nfacctd_ip: 127.0.0.1\n"))
    pb = start(conf(b, port, "nfacctd_ip: 127.0.0.1\n"))   # SO_REUSEPORT: no bind error
    try:
        assert pa.poll() is None and pb.poll() is None
    finally:
        assert stop(pa) == 0 and stop(pb) == 0


def test_garbage_is_counted_and_logged_with_the_exporter(tmp_path):
    port = free_port()
    proc = start(conf(tmp_path, port, "nfacctd_ip: 127.0.0.1\n"))
    send(port, [b"\x00\x09garbage", b"\xff" * 40, b"\x00\x05" + b"\x00" * 10,
                v5([v5_record(pkts=7, octets=70)])], src="127.0.0.3")
    log = tmp_path / "nfacctd.log"

    def counted():
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        return "agent=127.0.0.3 time=" in log.read_text() and "bad=3" in log.read_text()

    wait_for(counted, what="bad datagrams in the SIGUSR1 stats")
    assert proc.poll() is None                      # the core is still running
    assert stop(proc) == 0
    text = log.read_text()
    assert "127.0.0.3" in text and ("WARN" in text or "INFO" in text)
    assert [(r["SRC_IP"], r["PACKETS"]) for r in rows(tmp_path / "out.csv")] == [("10.0.0.1", "7")]


def test_a_full_ring_drops_visibly_and_the_totals_reconcile(tmp_path):
    """A plugin that cannot keep up loses records, but never silently: the drop is warned
    about (naming the plugin), counted, and what was written plus what was dropped is
    exactly what was received."""
    port = free_port()
    tiny = "nfacctd_ip: 127.0.0.1\nplugin_pipe_size: 4096\nplugin_buffer_size: 2048\n"
    proc = start(conf(tmp_path, port, tiny, aggregate="src_host"))
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(400):
            recs = [v5_record(src=f"10.{i % 200}.{j}.1", pkts=1, octets=10) for j in range(30)]
            s.sendto(v5(recs, seq=sent), ("127.0.0.1", port))
            sent += 30
    log = tmp_path / "nfacctd.log"

    def all_received():
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        return f"records={sent}" in log.read_text()

    wait_for(all_received, what="every record received (else the kernel dropped some)")
    assert stop(proc) == 0
    text = log.read_text()
    assert "plugin 'p/print' is not keeping up" in text
    dropped = int(text.split("plugin 'p/print': ")[1].split(" records were dropped")[0])
    written = sum(int(r["PACKETS"]) for r in rows(tmp_path / "out.csv"))
    assert dropped > 0
    assert written + dropped == sent


def test_syslog_facility(tmp_path, monkeypatch):
    """-S local3: log lines reach syslog with facility local3 and the right severity."""
    sock_path = str(tmp_path / "log.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(15)
    monkeypatch.setenv("PYPMACCT_SYSLOG_SOCKET", sock_path)
    port = free_port()
    proc = subprocess.Popen(NFACCTD + ["-L", "127.0.0.1", "-l", str(port), "-S", "local3",
                                       "-P", "print", "-O", "csv", "-o", str(tmp_path / "o.csv")],
                            stderr=subprocess.PIPE, text=True)
    try:
        got = []
        while not any("waiting for NetFlow/IPFIX data" in m for m in got):
            got.append(listener.recv(65536).decode())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        listener.close()
    local3_info = 19 * 8 + 6
    banner = next(m for m in got if "NetFlow Accounting Daemon" in m)
    assert banner.startswith(f"<{local3_info}>")
    assert f"nfacctd[{proc.pid}]: INFO ( default/core ): NetFlow Accounting Daemon" in banner
    assert proc.stderr.read() == ""        # nothing on stderr once syslog is set


def test_savefile_replay_does_not_hang_when_its_plugin_dies(tmp_path):
    """Reading a savefile the core waits for ring space rather than drop; if the plugin
    it waits for dies, the core reports it and finishes instead of waiting forever."""
    from tests.support.flowgen import write_capture
    cap = tmp_path / "big.pcap"
    write_capture(cap, version=5, records=300_000, seed=5)
    path = tmp_path / "nfacctd.conf"
    path.write_text(f"pcap_savefile: {cap}\npcap_savefile_replay: 0\n"
                    f"logfile: {tmp_path}/nfacctd.log\npidfile: {tmp_path}/nfacctd.pid\n"
                    "plugins: print[slow], print[other]\n"
                    "plugin_pipe_size: 8192\nplugin_buffer_size: 4096\n"
                    f"print_output_file: {tmp_path}/$tag.csv\nprint_output: csv\n")
    proc = subprocess.Popen(NFACCTD + ["-f", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        plugin_pid = tmp_path / "nfacctd.pid-print-slow"
        wait_for(plugin_pid.exists, what="plugin pid file")
        pid = int(plugin_pid.read_text())
        os.kill(pid, signal.SIGSTOP)        # the plugin stops reading: its tiny ring fills up
        time.sleep(1.0)                     # the core is now waiting for ring space
        os.kill(pid, signal.SIGKILL)
        log = tmp_path / "nfacctd.log"
        wait_for(lambda: "exited unexpectedly" in log.read_text(), what="the death report")
        # replay is endless (0): the core keeps feeding the other plugin until told to stop
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            subprocess.run(["pkill", "-9", "-P", str(proc.pid)])
            proc.kill()
            proc.wait()
