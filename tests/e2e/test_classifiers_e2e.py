"""pmacctd with L7-filter classifiers on a savefile built here: exact rows per class.

The patterns are the project's own (tests/data/classifiers: http, smtp, dnsish). The
capture holds: an HTTP exchange whose handshake and request carry no matching payload
(the server's status line classifies it, both directions); an SMTP session classified
by the greeting; a DNS-like query that matches only once NUL bytes are dropped; a UDP
flow that uses up its 5 tries before the matching payload comes (stays unknown) and one
that matches on its 5th try; a UDP exchange whose two directions both use up their
tries; an HTTP response whose headers lie past snaplen; an ICMP echo (no class). The
packets a flow sends before its class is found are accounted to that class (held back
by the core until then, docs/classifiers.md); a flow that runs out of tries stays
'unknown' with all of its packets. pmacct 1.7.7 (Debian) has no classification, so
there is no oracle run: the expected rows follow pmacct 0.10-1.5's rules.
"""
from __future__ import annotations

import shutil
import struct
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.memory import MemoryDaemon, our_client
from tests.support.oracle import check_run, our_binary, parse_rows, print_settings, run_daemon

scapy = pytest.importorskip("scapy.all")
from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, Raw, wrpcap  # noqa: E402

PATS = Path(__file__).resolve().parents[1] / "data" / "classifiers"
T0 = 1700000000.0


def _dns_query(qid: int, name: str) -> bytes:
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def _tcp_session(cli, srv, cport, sport, exchanges):
    """Handshake (no payload), then (direction, payload) exchanges, each answered by
    an ACK from the other side when it carries payload."""
    pk = [(cli, srv, TCP(sport=cport, dport=sport, flags="S", seq=100)),
          (srv, cli, TCP(sport=sport, dport=cport, flags="SA", seq=500, ack=101)),
          (cli, srv, TCP(sport=cport, dport=sport, flags="A", seq=101, ack=501))]
    for d, data in exchanges:
        a, b, pa, pb = (cli, srv, cport, sport) if d == "c" else (srv, cli, sport, cport)
        pk.append((a, b, TCP(sport=pa, dport=pb, flags="PA") / Raw(data)))
    return [IP(src=a, dst=b) / t for a, b, t in pk]


def _udp(src, dst, sp, dp, payloads):
    return [IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(p) for p in payloads]


def build_capture(path: Path):
    """Writes the capture; returns {(class, src, dst): [packets, bytes]} expected."""
    flows = []      # (packets, class per packet)
    http = _tcp_session("10.0.0.1", "10.0.0.2", 40000, 80, [
        ("c", b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\r\n"),
        ("s", b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
              b"Content-Type: text/html\r\n\r\n"),
        ("c", b"GET /logo.png HTTP/1.1\r\n\r\n"),
        ("s", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)])
    flows.append((http, ["http"] * 7))       # the handshake and the GET too
    smtp = _tcp_session("10.0.0.3", "10.0.0.4", 40001, 25, [
        ("s", b"220 mx.example.org ESMTP Postfix\r\n"),
        ("c", b"EHLO client.example.org\r\n"),
        ("s", b"250-mx.example.org\r\n250 PIPELINING\r\n")])
    flows.append((smtp, ["smtp"] * 6))
    dns = _udp("10.0.0.5", "10.0.0.6", 5353, 53, [_dns_query(0x1234, "www.Example.com")]) + \
        _udp("10.0.0.6", "10.0.0.5", 53, 5353, [_dns_query(0x1234, "www.example.com")[:12] +
                                                b"\x81\x80" + b"\0" * 30])
    flows.append((dns, ["dnsish"] * 2))
    # five tries, all used by junk; the greeting on the 6th packet comes too late
    late = _udp("10.0.0.7", "10.0.0.8", 7000, 7001,
                [b"junk %d" % i for i in range(5)] + [b"220 relay SMTP ready"])
    flows.append((late, ["unknown"] * 6))
    # the same with the greeting on the 5th try: classified there
    fifth = _udp("10.0.0.9", "10.0.0.10", 7000, 7001,
                 [b"junk %d" % i for i in range(4)] + [b"220 relay SMTP ready", b"more"])
    flows.append((fifth, ["smtp"] * 6))
    # both directions out of tries (5 each) before the greeting: unknown, all of it
    both = []
    for i in range(5):
        both += _udp("10.0.0.17", "10.0.0.18", 7100, 7101, [b"ping %d" % i]) + \
            _udp("10.0.0.18", "10.0.0.17", 7101, 7100, [b"pong %d" % i])
    both += _udp("10.0.0.18", "10.0.0.17", 7101, 7100, [b"220 relay SMTP ready"])
    flows.append((both, ["unknown"] * 11))
    # the header the http pattern needs lies beyond snaplen (128 bytes): never seen
    far = _udp("10.0.0.11", "10.0.0.12", 80, 40002,
               [b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 150 + b"\r\nContent-Type: x\r\n"])
    flows.append((far, ["unknown"]))
    # other protocols: the payload is all after the IP header (ICMP header included)
    ping = [IP(src="10.0.0.13", dst="10.0.0.14") / ICMP() / Raw(b"POST /x HTTP/1.0"),
            IP(src="10.0.0.15", dst="10.0.0.16") / ICMP() / Raw(b"220 smtp (anchored)")]
    flows.append((ping[:1], ["http"]))
    flows.append((ping[1:], ["unknown"]))
    # IPv6: the same rules (a POST classifies the flow; the reply shares the class)
    v6 = [IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=999, dport=8080) /
          Raw(b"POST /api HTTP/1.1\r\n"),
          IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=8080, dport=999) / Raw(b"ok")]
    flows.append((v6, ["http", "http"]))
    # interleave the flows packet by packet, as a capture would
    frames, expect = [], defaultdict(lambda: [0, 0])
    longest = max(len(p) for p, _ in flows)
    for i in range(longest):
        for pkts, classes in flows:
            if i < len(pkts):
                p = pkts[i]
                e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
                e.time = T0 + len(frames) * 0.001
                frames.append(e)
                if p.haslayer(IPv6):
                    ip = IPv6(bytes(p))
                    size = ip.plen + 40
                else:
                    ip = IP(bytes(p))
                    size = ip.len
                row = expect[(classes[i], ip.src, ip.dst)]
                row[0] += 1
                row[1] += size
    wrpcap(str(path), frames)
    return dict(expect)


def _capture_totals(path: Path):
    """Packets and IP bytes of a capture, read back with scapy (every frame is IP)."""
    from scapy.all import rdpcap
    packets = byts = 0
    for f in rdpcap(str(path)):
        packets += 1
        byts += f[IPv6].plen + 40 if f.haslayer(IPv6) else f[IP].len
    return packets, byts


def _per_class(got):
    out = defaultdict(lambda: [0, 0])
    for (cls, *_rest), (p, b) in got.items():
        out[cls][0] += p
        out[cls][1] += b
    return dict(out)


def _rows(text):
    got = {}
    for r in parse_rows(text, "csv"):
        got[(r["CLASS"], r["SRC_IP"], r["DST_IP"])] = [int(r["PACKETS"]), int(r["BYTES"])]
    return got


def test_classes_per_flow(tmp_path):
    cap = tmp_path / "l7.pcap"
    expect = build_capture(cap)
    s = print_settings(cap, ["class", "src_host", "dst_host"],
                       extra={"classifiers": str(PATS), "snaplen": 128})
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "run", timeout=120)
    check_run(res, "pmacctd")
    assert res.output.splitlines()[0].split(",")[0] == "CLASS"
    got = _rows(res.output)
    assert got == expect
    assert "3 classifiers successfully loaded" in res.log
    # per class, and nothing lost or counted twice by holding packets back
    assert _per_class(got) == _per_class(expect)
    assert [sum(v[i] for v in got.values()) for i in (0, 1)] == list(_capture_totals(cap))


def test_held_across_savefile_chunks(tmp_path):
    """A flow whose first packets are read in one 4 MB chunk of the savefile and whose
    classifying packet in a later one: all of its packets are accounted to the class,
    in the SQL table too (sql_aggressive_classification, as the seeds' SQL example
    sets it); a flow out of tries stays unknown; per-class totals are exact."""
    import sqlite3
    from tests.support.pcapio import PcapWriter
    cap = tmp_path / "chunks.pcap"
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    early = [eth / p for p in _tcp_session("10.1.0.1", "10.1.0.2", 41000, 80, [
        ("c", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")])]
    late = [eth / p for p in _tcp_session("10.1.0.1", "10.1.0.2", 41000, 80, [
        ("s", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n")])][3:]
    junk = [eth / p for p in _udp("10.1.0.3", "10.1.0.4", 9000, 9001,
                                  [b"junk %d" % i for i in range(3)])]
    # about 5 MB of one UDP flow that its first packet classifies (a POST)
    filler = bytes(eth / IP(src="10.1.0.5", dst="10.1.0.6") / UDP(sport=1, dport=2) /
                   Raw(b"POST /up HTTP/1.0\r\n" + b"p" * 1380))
    want = {"http": [0, 0], "unknown": [0, 0]}
    with PcapWriter(cap) as w:
        t = int(T0 * 1e9)
        for seq in (early + junk[:2], [None] * 3600, late + junk[2:]):
            for f in seq:
                raw = filler if f is None else bytes(f)
                w.write(t, raw)
                t += 1000
                cls = "unknown" if f is not None and f.haslayer(UDP) else "http"
                want[cls][0] += 1
                want[cls][1] += len(raw) - 14
    from pypmacct.sources.savefile import _READ_CHUNK
    assert cap.stat().st_size > _READ_CHUNK          # read in (at least) two chunks
    db = tmp_path / "t.db"
    schema = Path(__file__).resolve().parents[2] / "sql" / "pypmacct-v5.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(schema.read_text())
    con.close()
    s = {"daemonize": False, "pcap_savefile": str(cap), "plugins": "sqlite3",
         "aggregate": "class", "classifiers": str(PATS), "classifier_tentatives": 3,
         "sql_db": str(db), "sql_table_version": 5, "sql_refresh_time": 3600,
         "sql_aggressive_classification": "true", "logfile": "daemon.log"}
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "run", timeout=120,
                     output_glob="none")
    assert res.returncode == 0, res.describe()
    con = sqlite3.connect(db)
    got = {c: [p, b] for c, p, b in con.execute(
        "SELECT class_id, SUM(packets), SUM(bytes) FROM acct_v5 GROUP BY class_id")}
    con.close()
    assert got == want
    assert [sum(v[i] for v in got.values()) for i in (0, 1)] == list(_capture_totals(cap))
    assert "sql_aggressive_classification" not in res.log


def test_json_key_and_tentatives(tmp_path):
    """classifier_tentatives: 6 lets the late flow match; the JSON key is 'class'."""
    cap = tmp_path / "l7.pcap"
    build_capture(cap)
    s = print_settings(cap, ["class", "src_host"], "json",
                       extra={"classifiers": str(PATS), "classifier_tentatives": 6})
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "run", timeout=120)
    check_run(res, "pmacctd")
    got = {(r["class"], r["ip_src"]): r["packets"] for r in parse_rows(res.output, "json")}
    # the late flow matches on its 6th try: its first five packets move to smtp too, and
    # so does the exchange whose reply direction now matches on its 6th try
    assert got[("smtp", "10.0.0.7")] == 6 and ("unknown", "10.0.0.7") not in got
    assert got[("smtp", "10.0.0.17")] == 5 and got[("smtp", "10.0.0.18")] == 6


def test_bad_pattern_skipped_and_memory_class_table(tmp_path):
    """A broken .pat is logged and skipped (ids stay dense, as pmacct numbered them), a
    .so is refused with a warning; `pmacct -C` lists the loaded classes and the table
    holds the classes."""
    pats = tmp_path / "pats"
    shutil.copytree(PATS, pats)
    (pats / "15-broken.pat").write_text("# unbalanced\nbroken\n(abc\n")
    (pats / "16-toolong.pat").write_text("averyveryverylongname\nabc\n")
    (pats / "17-only-name.pat").write_text("lonely\n")
    (pats / "18-plugin.so").write_bytes(b"\x7fELF")
    (pats / "README").write_text("not a pattern\n")
    cap = tmp_path / "l7.pcap"
    expect = build_capture(cap)
    d = MemoryDaemon(our_binary("pmacctd"), {"t": ["flows", "class"]}, cap, tmp_path / "run",
                     extra={"classifiers": str(pats)})
    d.start()
    try:
        d.wait_loaded(our_client())
        r = d.query(our_client(), "t", ["-C"])
        assert r.returncode == 0
        assert r.stdout.decode() == ("CLASS_ID\tCLASS_NAME\n1\t\thttp\n2\t\tsmtp\n"
                                     "3\t\tdnsish\n\nFor a total of: 3 classifiers\n")
        r = d.query(our_client(), "t", ["-s", "-O", "csv"])
        got = {row["CLASS"]: int(row["PACKETS"]) for row in parse_rows(r.stdout.decode(), "csv")}
        want = defaultdict(int)
        for (cls, _s, _d), (p, _b) in expect.items():
            want[cls] += p
        assert got == dict(want)
        # -M by class name: the client takes the names from the server's class table
        r = d.query(our_client(), "t", ["-c", "class", "-M", "smtp", "-O", "csv"])
        rows = parse_rows(r.stdout.decode(), "csv")
        assert [(x["CLASS"], int(x["PACKETS"])) for x in rows] == [("smtp", want["smtp"])]
        r = d.query(our_client(), "t", ["-c", "class", "-M", "ftp"])
        assert r.returncode == 1
        assert r.stdout.decode().strip() == "ERROR: Server has not loaded any classifier for 'ftp'."
        # flows count where a flow starts (its first packet), and that packet takes the
        # class found later: unknown are the flows (one per direction) that never got one
        # (late, far, the second ping, both directions of the exchange out of tries)
        r = d.query(our_client(), "t", ["-c", "class", "-N", "unknown", "-n", "flows"])
        assert r.stdout.decode().split() == ["5"]
    finally:
        d.stop()
    log = d.log()
    assert "15-broken.pat:3: failed compiling regular expression for protocol 'broken'" in log
    assert "16-toolong.pat:1: protocol name too long" in log
    assert "failed to get all needed data from" in log and "17-only-name.pat" in log
    assert "18-plugin.so' not supported" in log


def test_start_up_errors(tmp_path):
    cap = tmp_path / "l7.pcap"
    build_capture(cap)
    s = print_settings(cap, ["class"], extra={"classifiers": str(tmp_path / "nope")})
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "a", timeout=60)
    assert res.returncode == 1 and "Unable to open classifiers directory" in res.log
    s = print_settings(cap, ["class"], extra={"classifiers": str(PATS), "sampling_rate": 10})
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "b", timeout=60)
    assert res.returncode == 1 and "Packet sampling and classification" in res.log
    # no classifiers: 'class' is dropped from the aggregate (as 1.7.7 does), with a warning
    s = print_settings(cap, ["class", "proto"])
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "c", timeout=60)
    check_run(res, "pmacctd", strict_log=False)
    assert res.output.splitlines()[0] == "PROTOCOL,PACKETS,BYTES"
    assert "'class' aggregation not possible without 'classifiers'" in res.log


UACCTD_TRAFFIC = """
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 5025)); srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(b'220 ns.test ESMTP ready\\r\\n')
    c.recv(100)
    c.sendall(b'250 hello\\r\\n')
    c.recv(100)
    c.close()
t = threading.Thread(target=serve); t.start()
s = socket.create_connection(('127.0.0.1', 5025))
s.recv(100); s.sendall(b'EHLO me\\r\\n'); s.recv(100); s.sendall(b'QUIT\\r\\n')
t.join(); s.close(); srv.close()
"""

UACCTD_RULES = """
table inet pypmacct_cls {
  chain out {
    type filter hook output priority 0;
    tcp dport 5025 log group 21
    tcp sport 5025 log group 21
  }
}
"""


def test_uacctd_classifies_in_a_namespace(tmp_path):
    """uacctd on an NFLOG group in a namespace made here: the server's greeting
    classifies the session, both directions, the handshake before it included."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid
    if os.geteuid() != 0:
        pytest.fail("the uacctd test needs root (network namespaces, nftables)", pytrace=False)
    ns = f"pmc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                       input=UACCTD_RULES.encode(), check=True)
        from tests.support.oracle import render_config
        conf = tmp_path / "u.conf"
        out, log = tmp_path / "out.csv", tmp_path / "log"
        conf.write_text(render_config({
            "daemonize": False, "plugins": "print", "aggregate": "class, src_port, dst_port",
            "print_output": "csv", "print_output_file": str(out), "print_refresh_time": 86400,
            "logfile": str(log), "uacctd_group": 21, "snaplen": 200,
            "classifiers": str(PATS)}))
        proc = subprocess.Popen(["ip", "netns", "exec", ns, str(our_binary("uacctd")), "-f",
                                 str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + 30
        while time.monotonic() < end and not (log.exists() and "NFLOG" in log.read_text()):
            time.sleep(0.1)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", UACCTD_TRAFFIC],
                       check=True, timeout=30)
        time.sleep(1.5)
    finally:
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
        subprocess.run(["ip", "netns", "del", ns], check=False)
    rows = parse_rows(out.read_text(), "csv")
    unknown = sum(int(r["PACKETS"]) for r in rows if r["CLASS"] == "unknown")
    smtp = [r for r in rows if r["CLASS"] == "smtp"]
    assert unknown == 0, rows       # SYN, SYN+ACK, ACK: held back, then smtp
    assert {r["SRC_PORT"] for r in smtp} >= {"5025"} and \
        {r["DST_PORT"] for r in smtp} >= {"5025"}, rows
    # the handshake (3) and at least the greeting, EHLO, 250 and QUIT
    assert sum(int(r["PACKETS"]) for r in smtp) >= 7, rows
    assert {r["CLASS"] for r in rows} == {"smtp"}


def test_sqlite_v5_class_id(tmp_path):
    """The SQL plugins write the class name into class_id (table v5), 'unknown' too."""
    import sqlite3
    cap = tmp_path / "l7.pcap"
    expect = build_capture(cap)
    db = tmp_path / "t.db"
    schema = Path(__file__).resolve().parents[2] / "sql" / "pypmacct-v5.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(schema.read_text())
    con.close()
    s = {"daemonize": False, "pcap_savefile": str(cap), "plugins": "sqlite3",
         "aggregate": "class, src_host, dst_host", "classifiers": str(PATS),
         "sql_db": str(db), "sql_table_version": 5, "sql_refresh_time": 3600,
         "logfile": "daemon.log"}
    res = run_daemon(our_binary("pmacctd"), s, tmp_path / "run", timeout=120,
                     output_glob="none")
    assert res.returncode == 0, res.describe()
    con = sqlite3.connect(db)
    got = {(c, s_, d): [p, b] for c, s_, d, p, b in con.execute(
        "SELECT class_id, ip_src, ip_dst, packets, bytes FROM acct_v5")}
    con.close()
    assert got == expect
