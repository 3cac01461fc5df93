"""sfacctd over UDP and pmacctd on a live interface (loopback), run as an operator would."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from tests.support import sflowgen

from .common import free_port, read_csv, send, wait_for

SFACCTD = [sys.executable, "-m", "pypmacct.daemons.sfacctd"]
PMACCTD = [sys.executable, "-m", "pypmacct.daemons.pmacctd"]


def _start(cmd, conf, marker):
    proc = subprocess.Popen(cmd + ["-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = conf.parent / "daemon.log"
    try:
        wait_for(lambda: log.exists() and marker in log.read_text(), what=marker)
    except AssertionError:
        proc.kill()
        raise AssertionError(f"{marker!r} never logged: {proc.stderr.read()}"
                             f"{log.read_text() if log.exists() else ''}")
    return proc


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_sfacctd_udp_counts_every_sample_and_denies_by_allow_file(tmp_path):
    port = free_port()
    allow = tmp_path / "allow"
    allow.write_text("127.0.0.1\n")
    conf = tmp_path / "sfacctd.conf"
    conf.write_text(f"sfacctd_port: {port}\nsfacctd_ip: 127.0.0.1\nlogfile: {tmp_path}/daemon.log\n"
                    f"sfacctd_allow_file: {allow}\nsfacctd_pipe_size: 4194304\n"
                    f"plugins: print[p]\naggregate[p]: peer_src_ip, src_host\n"
                    f"print_output[p]: csv\nprint_output_file[p]: {tmp_path}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n")
    cap = sflowgen.generate(sflowgen.SflowParams(seed=41, datagrams=120, ipv6_agent=True))
    proc = _start(SFACCTD, conf, f"waiting for sFlow data on 127.0.0.1:{port}")
    garbage = [b"", b"\x00\x00\x00\x05", b"\x00\x00\x00\x07" + bytes(60),
               cap.datagrams[0][1][:45], bytes(range(256)) * 4]
    try:
        send(port, garbage)
        send(port, [p for _src, p in cap.datagrams])
        # the same datagrams from a sender the allow file does not list: dropped
        send(port, [p for _src, p in cap.datagrams], src="127.0.0.2")
        time.sleep(0.5)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_csv(tmp_path / "out.csv")
    # every IP-carrying flow sample of every datagram, per agent address inside sFlow
    want: dict = {}
    for smp in cap.samples:
        want[smp.agent] = want.get(smp.agent, 0) + 1
    got = {}
    for r in rows:
        got[r["PEER_SRC_IP"]] = got.get(r["PEER_SRC_IP"], 0) + int(r["PACKETS"])
    assert got == want
    log = (tmp_path / "daemon.log").read_text()
    assert "ERROR" not in log
    # bad datagrams are counted and logged with the sender, and the core kept going
    assert "discarding unknown sFlow packet: sfacctd=127.0.0.1:" in log
    assert "discarding short sFlow" in log


def _loopback_traffic(port, n):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(n):
            s.sendto(b"x" * (10 + i % 50), ("127.0.0.1", port))
            time.sleep(0.002)


def test_pmacctd_live_on_loopback_with_filter(tmp_path):
    port = free_port()
    conf = tmp_path / "pmacctd.conf"
    conf.write_text(f"pcap_interface: lo\npcap_filter: udp and dst port {port}\n"
                    f"snaplen: 200\npromisc: false\nlogfile: {tmp_path}/daemon.log\n"
                    f"pmacctd_pipe_size: 4194304\n"
                    f"plugins: print[p]\naggregate[p]: src_host, dst_host, dst_port, proto\n"
                    f"print_output[p]: csv\nprint_output_file[p]: {tmp_path}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n")
    proc = _start(PMACCTD, conf, "link type is: 1")
    try:
        time.sleep(0.3)
        _loopback_traffic(port, 200)
        _loopback_traffic(port + 1 if port < 65535 else port - 1, 50)   # filtered out
        time.sleep(1.0)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["SRC_IP"], r["DST_IP"], r["DST_PORT"], r["PROTOCOL"]) == \
        ("127.0.0.1", "127.0.0.1", str(port), "udp")
    assert int(r["PACKETS"]) == 200
    assert int(r["BYTES"]) == sum(28 + 10 + i % 50 for i in range(200))
    assert "pmacctd_pipe_size: obtained=" in (tmp_path / "daemon.log").read_text()


def test_pmacctd_interfaces_map_and_its_reload(tmp_path):
    port = free_port()
    imap = tmp_path / "interfaces.map"
    imap.write_text("! the loopback, and one that does not exist (warned, skipped)\n"
                    "ifindex=7 ifname=nonexist0 direction=in\n")
    conf = tmp_path / "pmacctd.conf"
    conf.write_text(f"pcap_interfaces_map: {imap}\npcap_ifindex: map\n"
                    f"pcap_filter: udp and dst port {port}\n"
                    f"logfile: {tmp_path}/daemon.log\npidfile: {tmp_path}/pid\n"
                    f"plugins: print[p]\naggregate[p]: dst_port\n"
                    f"print_output[p]: csv\nprint_output_file[p]: {tmp_path}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n")
    # no interface of the map can be opened: start-up stops
    bad = subprocess.run(PMACCTD + ["-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "no interface of pcap_interfaces_map could be opened" in \
        (tmp_path / "daemon.log").read_text()
    imap.write_text("ifindex=7 ifname=lo direction=in\n")
    proc = _start(PMACCTD, conf, "[lo,7] link type is: 1")
    try:
        imap.write_text("ifindex=7 ifname=lo direction=in\nifname=nonexist0\n")
        proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: "pcap_interfaces_map reloaded" in (tmp_path / "daemon.log").read_text(),
                 what="the map reload")
        time.sleep(0.3)
        _loopback_traffic(port, 120)
        time.sleep(1.0)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_csv(tmp_path / "out.csv")
    assert [(r["DST_PORT"], r["PACKETS"]) for r in rows] == [(str(port), "120")]
    assert "[nonexist0] cannot open interface" in (tmp_path / "daemon.log").read_text()


def test_pmacctd_pcap_protocol_keeps_one_ethertype(tmp_path):
    """pcap_protocol: 0x86dd on loopback: IPv6 UDP is captured, IPv4 UDP to the same port
    is not (the capture socket is bound to the protocol, as pcap_set_protocol_linux)."""
    port = free_port()
    conf = tmp_path / "pmacctd.conf"
    conf.write_text(f"pcap_interface: lo\npcap_protocol: 0x86dd\npcap_filter: udp and dst port {port}\n"
                    f"promisc: false\nlogfile: {tmp_path}/daemon.log\n"
                    f"plugins: print[p]\naggregate[p]: src_host, dst_host, etype\n"
                    f"print_output[p]: csv\nprint_output_file[p]: {tmp_path}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n")
    proc = _start(PMACCTD, conf, "link type is: 1")
    try:
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4, \
                socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6:
            for _ in range(30):
                s4.sendto(b"x" * 20, ("127.0.0.1", port))
                s6.sendto(b"y" * 20, ("::1", port))
                time.sleep(0.002)
        time.sleep(1.0)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_csv(tmp_path / "out.csv")
    assert [(r["SRC_IP"], r["DST_IP"], r["ETYPE"], r["PACKETS"]) for r in rows] == \
        [("::1", "::1", "86dd", "30")], rows


def test_pmacctd_pcap_protocol_bad_value_stops_startup(tmp_path):
    conf = tmp_path / "pmacctd.conf"
    conf.write_text("pcap_interface: lo\npcap_protocol: ipv4\nplugins: print\n")
    r = subprocess.run(PMACCTD + ["-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"[{conf}:2] invalid value for 'pcap_protocol'" in r.stderr, r.stderr


SEND_UDP = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "[s.sendto(b'z'*10,(sys.argv[1],int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]\n")


def test_pmacctd_interface_wait_and_direction_in_namespaces(tmp_path):
    """pcap_interface_wait: pmacctd started before its interface exists keeps retrying
    (every 5 s) and captures once the interface appears; pcap_direction: in keeps the
    packets the interface receives, not those it sends. Two network namespaces made by
    the test, joined by a veth pair."""
    import os
    import uuid
    if os.geteuid() != 0:
        import pytest
        pytest.fail("this test needs root (network namespaces)", pytrace=False)
    a, b = (f"pmw-{uuid.uuid4().hex[:6]}{x}" for x in "ab")
    run = lambda *cmd: subprocess.run(list(cmd), check=True, capture_output=True)
    run("ip", "netns", "add", a)
    run("ip", "netns", "add", b)
    conf = tmp_path / "pmacctd.conf"
    conf.write_text(f"pcap_interface: va\npcap_interface_wait: true\npcap_direction: in\n"
                    f"pcap_filter: udp\npromisc: false\nlogfile: {tmp_path}/daemon.log\n"
                    f"plugins: print[p]\naggregate[p]: src_host, dst_host, proto\n"
                    f"print_output[p]: csv\nprint_output_file[p]: {tmp_path}/out.csv\n"
                    f"print_refresh_time[p]: 3600\n")
    proc = None
    try:
        proc = _start(["ip", "netns", "exec", a] + PMACCTD, conf, "interface not ready")
        run("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb",
            "netns", b)
        run("ip", "-n", a, "addr", "add", "10.99.0.1/24", "dev", "va")
        run("ip", "-n", b, "addr", "add", "10.99.0.2/24", "dev", "vb")
        run("ip", "-n", a, "link", "set", "va", "up")
        run("ip", "-n", b, "link", "set", "vb", "up")
        log = tmp_path / "daemon.log"
        wait_for(lambda: "link type is: 1" in log.read_text(), timeout=20,
                 what="the interface opened after a retry")
        time.sleep(0.5)
        run("ip", "netns", "exec", b, sys.executable, "-c", SEND_UDP, "10.99.0.1", "7001", "30")
        run("ip", "netns", "exec", a, sys.executable, "-c", SEND_UDP, "10.99.0.2", "7002", "20")
        time.sleep(1.0)
        assert _stop(proc) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)
    rows = read_csv(tmp_path / "out.csv")
    assert [(r["SRC_IP"], r["DST_IP"], r["PROTOCOL"], r["PACKETS"]) for r in rows] == \
        [("10.99.0.2", "10.99.0.1", "udp", "30")], rows
