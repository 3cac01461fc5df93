"""The tee plugin against pmacct 1.7.7.

- The same tee configuration run by 1.7.7's nfacctd/sfacctd and ours on the same
  capture: every receiver gets the same datagrams, in the same order, byte for byte
  (and in transparent mode from the same source address and port).
- Receivers that are collectors: our nfacctd replicates (transparently) to a pool of
  two live collectors, 1.7.7's nfacctd and ours, each printing CSV; both print exactly
  what a collector reading the capture directly prints.
- hash-agent: the one documented difference (docs/differences.md, "tee: hash-agent
  balancing"): 1.7.7 indexes the pool with ``address & pool size`` and so sends most
  exporters to a receiver that does not exist; checked here so that the entry cannot go
  stale.
"""
from __future__ import annotations

import pytest

from tests.support import flowgen, oracle, sflowgen
from tests.support.teerun import (Background, receivers,  # noqa: F401 (fixture)
                                  savefile_settings, udp_queue_empty)

pytestmark = pytest.mark.diff

TAG_MAP = ("set_tag=100 ip=203.0.113.1\n"
           "set_tag=200 ip=203.0.113.2\n"
           "set_tag=301 ip=203.0.113.3\n"
           "! a key 1.7.7's tee dictionary lacks: the line is skipped by both\n"
           "set_tag=999 ip=203.0.113.4 filter='tcp'\n")


def _capture(tmp_path, **kw):
    params = dict(version=10, records=500, exporters=4, seed=21)
    params.update(kw)
    export = flowgen.generate(flowgen.GenParams(**params))
    return export, export.write_pcap(tmp_path / "in.pcap")


def _run_both(tmp_path, make_receivers, n, lst, settings, daemon="nfacctd", expect=None):
    """Run 1.7.7 then ours with the same config; return (theirs, ours) Receivers."""
    got = []
    for who, binary in (("pmacct", oracle.pmacct_binary(daemon)),
                        ("ours", oracle.our_binary(daemon))):
        wd = tmp_path / who
        wd.mkdir()
        r = make_receivers(n)
        (wd / "pretag.map").write_text(TAG_MAP)
        (wd / "r.lst").write_text(lst(r))
        res = oracle.run_daemon(binary, settings, wd, timeout=120)
        assert res.returncode == 0, res.describe()
        if expect is not None:
            r.wait_total(expect)
        got.append((r, res))
    return got


def _pools(r):
    return (f"id=1 ip={r.addr(0)} tag=100\n"
            f"id=2 ip={r.addr(1)},{r.addr(2)} tag=200,301 balance-alg=rr\n"
            f"id=3 ip={r.addr(3)},{r.addr(4)},{r.addr(5)} balance-alg=hash-tag\n"
            f"id=4 ip={r.addr(6)} tag=0\n"
            f"! a repeated pool id loads in 1.7.7 too\n"
            f"id=1 ip={r.addr(7)}\n")


@pytest.mark.parametrize("transparent", [False, True], ids=["proxy", "transparent"])
def test_each_receiver_gets_what_pmacct_sends(tmp_path, receivers, transparent):
    export, cap = _capture(tmp_path)
    settings = savefile_settings(cap, plugins="tee[a]", pre_tag_map="pretag.map",
                         tee_transparent=transparent) | {"tee_receivers[a]": "r.lst"}
    # each datagram: exactly one of pools 1, 2, 4 (by tag), the hash-tag pool, pool 5
    total = 3 * len(export.datagrams)
    (theirs, tres), (ours, ores) = _run_both(tmp_path, receivers, 8, _pools, settings,
                                             expect=total)
    for i in range(8):
        assert ours.payloads(i) == theirs.payloads(i), f"receiver {i}"
        if transparent:
            assert ours.sources(i) == theirs.sources(i), f"receiver {i}: sources"
    assert all(theirs.payloads(i) for i in range(8)), "every receiver gets something"
    sent = [p for _, _, p in export.datagrams]
    assert theirs.payloads(7) == sent          # the catch-all pool: the capture as it was
    assert "unknown key 'filter'" in tres.log and "unknown key 'filter'" in ores.log


def test_sfacctd_same_as_pmacct(tmp_path, receivers):
    cap = sflowgen.generate(sflowgen.SflowParams(seed=9, datagrams=150, agents=3,
                                                 ipv6_agent=False))
    path = cap.write_pcap(tmp_path / "sflow.pcap")
    agents = sorted({a for a, _ in cap.datagrams})

    def lst(r):
        return (f"id=1 ip={r.addr(0)} tag=7\n"
                f"id=2 ip={r.addr(1)},{r.addr(2)} tag=-7 balance-alg=rr\n")
    settings = savefile_settings(path, plugins="tee[s]", pre_tag_map="sf.map",
                         tee_transparent=True) | {"tee_receivers[s]": "r.lst"}
    got = []
    for who, binary in (("pmacct", oracle.pmacct_binary("sfacctd")),
                        ("ours", oracle.our_binary("sfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        r = receivers(3)
        (wd / "sf.map").write_text(f"set_tag=7 ip={agents[0]}\n")
        (wd / "r.lst").write_text(lst(r))
        res = oracle.run_daemon(binary, settings, wd, timeout=120)
        assert res.returncode == 0, res.describe()
        r.wait_total(len(cap.datagrams))
        got.append(r)
    theirs, ours = got
    for i in range(3):
        assert ours.got[i] == theirs.got[i], f"receiver {i}"
    assert theirs.payloads(0) == [p for a, p in cap.datagrams if a == agents[0]]


AGG = "src_host, dst_host, src_port, dst_port, proto, peer_src_ip"


def _collector(port, pmacct=False):
    # 1.7.7's core hands a plugin its buffer only when the buffer is full and drops a
    # half-filled one at shutdown: one record per buffer makes it deliver everything
    small = {"plugin_buffer_size": 1, "plugin_pipe_size": 2048000} if pmacct else {}
    return {**small, "daemonize": False, "nfacctd_ip": "127.0.0.1", "nfacctd_port": port,
            "nfacctd_pipe_size": 8388608,
            "plugins": "print[p]", "aggregate": AGG, "print_output": "csv",
            "print_output_file": "out.csv", "print_refresh_time": 86400,
            "logfile": "daemon.log"}


def test_receivers_print_what_a_direct_collector_prints(tmp_path, receivers):
    export, cap = _capture(tmp_path, records=800, seed=22)
    from tests.e2e.common import free_port
    ports = [free_port(), free_port()]
    coll = [Background(oracle.pmacct_binary("nfacctd"), _collector(ports[0], pmacct=True),
                       tmp_path / "rx-pmacct"),
            Background(oracle.our_binary("nfacctd"), _collector(ports[1]), tmp_path / "rx-ours")]
    try:
        for c, p in zip(coll, ports):
            c.wait_bound(p)
        (tmp_path / "tee").mkdir()
        (tmp_path / "tee" / "r.lst").write_text(
            f"id=1 ip=127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}\n")
        res = oracle.run_daemon(oracle.our_binary("nfacctd"),
                                savefile_settings(cap, plugins="tee[t]", tee_transparent=True)
                                | {"tee_receivers[t]": "r.lst"}, tmp_path / "tee",
                                timeout=120)
        assert res.returncode == 0, res.describe()
        from tests.e2e.common import wait_for
        for p in ports:
            wait_for(lambda p=p: udp_queue_empty(p), 30, f"collector on {p} to read")
        # the last datagram read may still be on its way through a core: not a check,
        # just room for it before the stop signal
        import time
        time.sleep(0.5)
    finally:
        codes = [c.stop() for c in coll]
    assert codes == [0, 0], [c.log() for c in coll]
    outs = [(c.workdir / "out.csv").read_text() for c in coll]
    direct = []
    for who, binary in (("pmacct", oracle.pmacct_binary("nfacctd")),
                        ("ours", oracle.our_binary("nfacctd"))):
        d = oracle.run_daemon(binary, oracle.print_settings(cap, AGG, "csv"),
                              tmp_path / f"direct-{who}")
        oracle.check_run(d, who)
        direct.append(d.output)
    want = oracle.normalise(direct[0], "csv")
    assert len(want) > 100
    assert oracle.normalise(direct[1], "csv") == want
    assert oracle.normalise(outs[0], "csv") == want, "1.7.7 behind our tee"
    assert oracle.normalise(outs[1], "csv") == want, "ours behind our tee"


def test_hash_agent_difference(tmp_path, receivers):
    """docs/differences.md "tee: hash-agent balancing": with two receivers, 1.7.7 picks
    receiver ``first octet & 2`` for 203.0.113.x exporters (203 & 2 == 2, past the
    pool's end): nothing reaches the pool and it logs the af error; ours hashes the
    address modulo the pool size and delivers every datagram."""
    export, cap = _capture(tmp_path, version=5)
    settings = savefile_settings(cap, plugins="tee[h]", tee_transparent=True) \
        | {"tee_receivers[h]": "r.lst"}

    def lst(r):
        return f"id=1 ip={r.addr(0)},{r.addr(1)} balance-alg=hash-agent\n"
    (theirs, tres), (ours, ores) = _run_both(tmp_path, receivers, 2, lst, settings,
                                             expect=None)
    ours.wait_total(len(export.datagrams))
    assert theirs.total() == 0
    assert "Can't bridge Address Families" in tres.log
    import ipaddress
    for i in range(2):
        assert ours.payloads(i) == [p for _, ex, p in export.datagrams
                                    if int(ipaddress.ip_address(export.exporters[ex].address))
                                    % 2 == i]


@pytest.mark.parametrize("family", ["4", "6"])
def test_hash_crc32_same_as_pmacct(tmp_path, receivers, family):
    """hash-crc32 (djb2 over IPv4 exporters, jhash over IPv6 ones): every exporter goes
    to the receiver 1.7.7 picks."""
    export, cap = _capture(tmp_path, version=9, exporters=7, exporter_family=family)
    host = "::1" if family == "6" else "127.0.0.1"
    settings = savefile_settings(cap, plugins="tee[c]") | {"tee_receivers[c]": "r.lst"}
    got = []
    for who, binary in (("pmacct", oracle.pmacct_binary("nfacctd")),
                        ("ours", oracle.our_binary("nfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        r = receivers(3, host)
        (wd / "r.lst").write_text(
            f"id=1 ip={r.addr(0)},{r.addr(1)},{r.addr(2)} balance-alg=hash-crc32\n")
        res = oracle.run_daemon(binary, settings, wd, timeout=120)
        assert res.returncode == 0, res.describe()
        r.wait_total(len(export.datagrams))
        got.append(r)
    theirs, ours = got
    for i in range(3):
        assert ours.payloads(i) == theirs.payloads(i), f"receiver {i}"
    assert sum(1 for i in range(3) if theirs.payloads(i)) >= 2, "exporters spread"


SPLIT_MAP = ("set_tag=100 ip=203.0.113.1 src_net=10.0.0.0/9\n"
             "set_tag=150 ip=203.0.113.2 in=3\n"
             "set_tag=200 ip=0.0.0.0/0\n")


@pytest.mark.parametrize("version", [5, 9, 10])
def test_flows_split_like_pmacct(tmp_path, receivers, version):
    """QUICKSTART XVa: a pre_tag_map with flow keys makes tee[a] send one datagram per
    flow (templates to every pool), while tee[b], with no map, still sends the
    datagrams whole. Every receiver gets what 1.7.7 sends, byte for byte, from the same
    source address and port."""
    # v9/IPFIX with sampling: options templates and options data sets are broadcast too
    export, cap = _capture(tmp_path, version=version, records=200, exporters=3, seed=31,
                           template_every=4, sampling=0 if version == 5 else 10)
    settings = savefile_settings(cap, plugins="tee[a], tee[b]", tee_transparent=True) | {
        "tee_receivers[a]": "a.lst", "tee_receivers[b]": "b.lst", "pre_tag_map[a]": "s.map"}
    got = []
    for who, binary in (("pmacct", oracle.pmacct_binary("nfacctd")),
                        ("ours", oracle.our_binary("nfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        r = receivers(6)
        (wd / "s.map").write_text(SPLIT_MAP)
        (wd / "a.lst").write_text(f"id=1 ip={r.addr(0)} tag=100,150\n"
                                  f"id=2 ip={r.addr(1)},{r.addr(2)} tag=200 balance-alg=rr\n"
                                  f"id=3 ip={r.addr(3)}\n"
                                  f"id=4 ip={r.addr(4)} tag=0\n")
        (wd / "b.lst").write_text(f"id=1 ip={r.addr(5)}\n")
        res = oracle.run_daemon(binary, settings, wd, timeout=120)
        assert res.returncode == 0, res.describe()
        got.append((r, res))
    (theirs, _), (ours, _) = got
    # 1.7.7's run is over (and its datagrams in) by now: ours must get as many
    ours.wait_total(theirs.total())
    for i in range(6):
        assert ours.got[i] == theirs.got[i], f"receiver {i}"
    assert theirs.payloads(5) == [p for _, _, p in export.datagrams]
    assert len(theirs.got[3]) > len(export.datagrams)          # split into flows
    assert theirs.got[0] and theirs.got[1] and theirs.got[2]


def test_sflow_samples_split_like_pmacct(tmp_path, receivers):
    """sfacctd with a map on flow fields: one datagram per flow sample (sample count 1,
    counter samples not sent), tagged per sample; a second plugin gets the datagrams
    whole. IPv4 and IPv6 agents; byte for byte as 1.7.7."""
    cap = sflowgen.generate(sflowgen.SflowParams(seed=9, datagrams=80, agents=3,
                                                 ipv6_agent=True))
    path = cap.write_pcap(tmp_path / "sflow.pcap")
    settings = savefile_settings(path, plugins="tee[a], tee[b]") | {
        "tee_receivers[a]": "a.lst", "tee_receivers[b]": "b.lst", "pre_tag_map[a]": "s.map"}
    got = []
    for who, binary in (("pmacct", oracle.pmacct_binary("sfacctd")),
                        ("ours", oracle.our_binary("sfacctd"))):
        wd = tmp_path / who
        wd.mkdir()
        r = receivers(5)
        (wd / "s.map").write_text("set_tag=100 ip=192.0.2.1 src_net=10.0.0.0/8\n"
                                  "set_tag=150 in=1\n"
                                  "set_tag=200 ip=0.0.0.0/0\n")
        (wd / "a.lst").write_text(f"id=1 ip={r.addr(0)} tag=100,150\n"
                                  f"id=2 ip={r.addr(1)},{r.addr(2)} tag=200 balance-alg=rr\n"
                                  f"id=3 ip={r.addr(3)}\n")
        (wd / "b.lst").write_text(f"id=1 ip={r.addr(4)}\n")
        res = oracle.run_daemon(binary, settings, wd, timeout=120)
        assert res.returncode == 0, res.describe()
        got.append(r)
    theirs, ours = got
    ours.wait_total(theirs.total())
    for i in range(5):
        assert ours.payloads(i) == theirs.payloads(i), f"receiver {i}"
    flow_samples = sum(1 for s in cap.samples)
    assert len(theirs.payloads(3)) == flow_samples > len(cap.datagrams)
    assert theirs.payloads(4) == [p for _, p in cap.datagrams]
    assert theirs.payloads(0) and theirs.payloads(1) and theirs.payloads(2)
