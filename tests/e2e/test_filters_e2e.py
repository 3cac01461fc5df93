"""End to end: the example pre_tag_map config runs, and SIGUSR2 map reloads while records
flow lose and mis-tag nothing."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import flowgen, oracle

from .common import NFACCTD, read_csv, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_example_pretag_config_runs(tmp_path):
    for f in ("examples/nfacctd-pretag.conf", "examples/pretag.map",
              "examples/data/sample-ipfix.pcap"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / f)
    out = subprocess.run(NFACCTD + ["-f", "examples/nfacctd-pretag.conf"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    rows_in, rows_out = read_csv(tmp_path / "in.csv"), read_csv(tmp_path / "out.csv")
    assert rows_in and rows_out
    assert all(r["DST_IP"].startswith("172.") for r in rows_in)
    assert all(r["SRC_IP"].startswith("10.") for r in rows_out)
    assert "WARN" not in out.stderr and "ERROR" not in out.stderr


def test_example_networks_config_runs(tmp_path):
    for f in ("examples/nfacctd-networks.conf", "examples/networks.lst", "examples/ports.lst",
              "examples/data/sample-ipfix.pcap"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / f)
    out = subprocess.run(NFACCTD + ["-f", "examples/nfacctd-networks.conf"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    nets = read_csv(tmp_path / "nets.csv")
    ports = read_csv(tmp_path / "ports.csv")
    assert {r["SRC_AS"] for r in nets} & {"65001", "65002", "65003"}
    assert {r["SRC_PORT"] for r in ports} <= {"0", "22", "53", "80", "443", "8080"}
    assert "WARN" not in out.stderr and "ERROR" not in out.stderr


MAP_A = "set_tag=7 ip=0.0.0.0/0\nset_tag=7 ip=::/0\n"
MAP_B = "! same result, other shape\nset_tag=7 in=-4000000\nset_tag=9 in=4000000\n"


def _reload_under_load(tmp_path, replays: int):
    cap = tmp_path / "c.pcap"
    exp = flowgen.write_capture(cap, version=10, records=3000, seed=5, groups=("ifaces",))
    (tmp_path / "pt.map").write_text(MAP_A)
    s = oracle.print_settings(cap, "tag", "csv", extra={
        "pre_tag_map": "pt.map", "pcap_savefile_replay": replays, "pidfile": "core.pid"})
    (tmp_path / "daemon.conf").write_text(oracle.render_config(s))
    proc = subprocess.Popen(NFACCTD + ["-f", "daemon.conf"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    sent = 0
    try:
        # the core installs its signal handlers before it writes the pid file
        wait_for(lambda: (tmp_path / "core.pid").exists() or proc.poll() is not None,
                 what="pid file")
        pid = proc.pid   # not daemonized: the process we started is the core
        while proc.poll() is None:
            (tmp_path / "pt.map").write_text(MAP_B if sent % 2 else MAP_A)
            try:
                os.kill(pid, signal.SIGUSR2)
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(0.1)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rows = read_csv(tmp_path / "out.txt")
    assert [r["TAG"] for r in rows] == ["7"], rows
    assert int(rows[0]["PACKETS"]) == int(exp.truth["packets"].sum()) * replays
    assert int(rows[0]["BYTES"]) == int(exp.truth["bytes"].sum()) * replays
    log = (tmp_path / "daemon.log").read_text()
    assert log.count("rules loaded") >= 2, "the map was never reloaded"
    return sent


def test_reload_under_load_short(tmp_path):
    assert _reload_under_load(tmp_path, replays=600) >= 3


@pytest.mark.slow
def test_reload_under_load_long(tmp_path):
    assert _reload_under_load(tmp_path, replays=8000) >= 50


def test_pmacctd_stacked_vlan_mpls_filters(tmp_path):
    """pmacctd on a savefile of QinQ and MPLS frames, one print plugin per stacked
    filter: each keeps the packets libpcap's program keeps (compiled with pcapy-ng and
    run on the same frames)."""
    pcapy = pytest.importorskip("pcapy")
    from tests.support import pcapio
    from tests.unit.test_filter_libpcap import _stacked_frames
    frames = _stacked_frames()
    cap = tmp_path / "stacked.pcap"
    with pcapio.PcapWriter(cap) as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_000_000_000 + i * 1000, f)
    filters = {"qinq": "vlan 10 and vlan 20", "inner6": "vlan and vlan and ip6",
               "labels": "mpls 100 and mpls 200", "deep": "mpls and mpls and mpls and udp",
               "tagmpls": "vlan and mpls and mpls 200"}
    s = {"daemonize": False, "pcap_savefile": str(cap), "logfile": "daemon.log",
         "plugins": ", ".join(f"print[{n}]" for n in filters)}
    for n, f in filters.items():
        s.update({f"aggregate[{n}]": "src_host, vlan", f"print_output[{n}]": "csv",
                  f"print_output_file[{n}]": f"out-{n}.txt", f"print_refresh_time[{n}]": 3600,
                  f"aggregate_filter[{n}]": f})
    res = oracle.run_daemon(oracle.our_binary("pmacctd"), s, tmp_path / "run",
                            output_glob="out-*.txt", timeout=120)
    oracle.check_run(res, "our pmacctd")
    for n, f in filters.items():
        prog = pcapy.compile(pcapy.DLT_EN10MB, 65535, f, 1, 0)
        want = sum(prog.filter(x) != 0 for x in frames)
        rows = oracle.parse_rows(res.outputs[f"out-{n}.txt"], "csv")
        assert 0 < want < len(frames)
        assert sum(int(r["PACKETS"]) for r in rows) == want, (n, rows)
