"""The tee plugin end to end: our nfacctd/sfacctd replicate a capture to UDP receivers on
this host; what each receiver gets is computed from the capture itself (which exporter
sent which datagram, and the map and pools of the test), and compared byte for byte."""
from __future__ import annotations

import ipaddress

import pytest

from tests.support import flowgen, oracle, sflowgen
from tests.support.teerun import receivers, savefile_settings  # noqa: F401 (fixture)

OURS = oracle.our_binary("nfacctd")
OURS_SF = oracle.our_binary("sfacctd")


def netflow_capture(tmp_path, **kw):
    params = dict(version=10, records=600, exporters=4, seed=11)
    params.update(kw)
    export = flowgen.generate(flowgen.GenParams(**params))
    path = export.write_pcap(tmp_path / "in.pcap")
    sent = [(export.exporters[ex].address, export.exporters[ex].port, p)
            for _, ex, p in export.datagrams]
    return path, sent


def run_tee(binary, settings, workdir):
    res = oracle.run_daemon(binary, settings, workdir, timeout=120)
    assert res.returncode == 0, res.describe()
    return res


TAG_MAP = ("set_tag=100 ip=203.0.113.1\n"
           "set_tag=200 ip=203.0.113.2\n"
           "set_tag=300 ip=203.0.113.3\n")


def test_pools_by_tag_and_round_robin(tmp_path, receivers):
    """QUICKSTART XV: tee[a] and tee[b], each with its own pools; tags from a global
    pre_tag_map choose the pools; a rr pool alternates its two receivers."""
    cap, sent = netflow_capture(tmp_path)
    r = receivers(6)
    (tmp_path / "pretag.map").write_text(TAG_MAP)
    (tmp_path / "a.lst").write_text(
        f"id=1 ip={r.addr(0)} tag=100\n"
        f"id=2 ip={r.addr(1)},{r.addr(2)} tag=200,300 balance-alg=rr\n"
        f"id=3 ip={r.addr(3)} tag=0\n")
    (tmp_path / "b.lst").write_text(
        f"! every datagram, then only the ones tagged 100 or 300\n"
        f"id=10 ip={r.addr(4)}\n"
        f"id=11 ip={r.addr(5)} tag=-200,0-99,101-299,300\n")
    run_tee(OURS, savefile_settings(cap, plugins="tee[a], tee[b]", pre_tag_map="pretag.map")
            | {"tee_receivers[a]": "a.lst", "tee_receivers[b]": "b.lst"}, tmp_path)
    tag = {"203.0.113.1": 100, "203.0.113.2": 200, "203.0.113.3": 300}
    by_tag = lambda *tags: [p for a, _, p in sent if tag.get(a, 0) in tags]  # noqa: E731
    rr = by_tag(200, 300)
    expected = [by_tag(100), rr[0::2], rr[1::2], by_tag(0), [p for _, _, p in sent],
                [p for a, _, p in sent if tag.get(a, 0) != 200]]
    r.wait_total(sum(len(e) for e in expected))
    for i, want in enumerate(expected):
        assert r.payloads(i) == want, f"receiver {i}"
    assert all(expected), "every receiver should get something in this capture"


def test_transparent_keeps_the_exporters_address(tmp_path, receivers):
    """tee_transparent: every receiver sees the exporter's address and UDP port as the
    source; IPv6 exporters reach the IPv6 receiver, IPv4 ones the IPv4 receiver."""
    cap, sent = netflow_capture(tmp_path, exporter_family="mix", version=9)
    r4 = receivers(1)
    r6 = receivers(1, "::1")
    (tmp_path / "r.lst").write_text(f"id=1 ip={r4.addr(0)}\nid=2 ip={r6.addr(0)}\n")
    res = run_tee(OURS, savefile_settings(cap, plugins="tee[t]", tee_transparent=True,
                                     tee_ipprec=5) | {"tee_receivers[t]": "r.lst"}, tmp_path)
    v4 = [(a, port, p) for a, port, p in sent if ":" not in a]
    v6 = [(a, port, p) for a, port, p in sent if ":" in a]
    assert v4 and v6
    r4.wait_total(len(v4))
    r6.wait_total(len(v6))
    assert r4.got[0] == v4
    got6 = [(str(ipaddress.ip_address(a)), port, p) for a, port, p in r6.got[0]]
    assert got6 == [(str(ipaddress.ip_address(a)), port, p) for a, port, p in v6]
    assert "Can't bridge Address Families" in res.log


def test_hash_agent_and_hash_tag(tmp_path, receivers):
    cap, sent = netflow_capture(tmp_path, exporters=5, version=5)
    r = receivers(6)
    (tmp_path / "pretag.map").write_text(TAG_MAP)
    (tmp_path / "r.lst").write_text(
        f"id=1 ip={r.addr(0)},{r.addr(1)},{r.addr(2)} balance-alg=hash-agent\n"
        f"id=2 ip={r.addr(3)},{r.addr(4)},{r.addr(5)} balance-alg=hash-tag\n")
    run_tee(OURS, savefile_settings(cap, plugins="tee[h]", pre_tag_map="pretag.map")
            | {"tee_receivers[h]": "r.lst"}, tmp_path)
    tag = {"203.0.113.1": 100, "203.0.113.2": 200, "203.0.113.3": 300}
    want = [[] for _ in range(6)]
    for a, _, p in sent:
        want[int(ipaddress.ip_address(a)) % 3].append(p)
        want[3 + tag.get(a, 0) % 3].append(p)
    r.wait_total(2 * len(sent))
    for i in range(6):
        assert r.payloads(i) == want[i], f"receiver {i}"
    assert sum(1 for w in want[:3] if w) >= 2, "the exporters should spread over the pool"


def test_sfacctd_replicates_sflow_by_agent_tag(tmp_path, receivers):
    cap = sflowgen.generate(sflowgen.SflowParams(seed=5, datagrams=120, agents=3,
                                                 ipv6_agent=False))
    path = cap.write_pcap(tmp_path / "sflow.pcap")
    agents = sorted({src for src, _ in cap.datagrams})
    r = receivers(2)
    (tmp_path / "pretag.map").write_text(f"set_tag=7 ip={agents[0]}\n")
    (tmp_path / "r.lst").write_text(f"id=1 ip={r.addr(0)} tag=7\n"
                                    f"id=2 ip={r.addr(1)} tag=-7\n")
    run_tee(OURS_SF, savefile_settings(path, plugins="tee[s]", pre_tag_map="pretag.map")
            | {"tee_receivers[s]": "r.lst"}, tmp_path)
    want0 = [p for a, p in cap.datagrams if a == agents[0]]
    want1 = [p for a, p in cap.datagrams if a != agents[0]]
    r.wait_total(len(cap.datagrams))
    assert r.payloads(0) == want0 and want0
    assert r.payloads(1) == want1 and want1


@pytest.mark.parametrize("extra, files, message", [
    ({"plugins": "tee[a], print[p]", "tee_receivers[a]": "r.lst"}, {},
     "'tee' plugins are not compatible with data"),
    ({"plugins": "tee[a]"}, {}, "tee_receivers is required"),
    ({"plugins": "tee[a]", "tee_receivers[a]": "k.lst"},
     {"k.lst": "id=1 kafka_broker=127.0.0.1:9092 kafka_topic=x\n"},
     "Kafka or ZeroMQ is not implemented"),
    ({"plugins": "tee[a]", "tee_receivers[a]": "r.lst", "aggregate_filter[a]": "tcp"}, {},
     "'aggregate_filter' does not apply to a tee plugin"),
])
def test_refused_at_start_up(tmp_path, extra, files, message):
    (tmp_path / "r.lst").write_text("id=1 ip=127.0.0.1:9\n")
    (tmp_path / "in.pcap").write_bytes(b"")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    res = oracle.run_daemon(OURS, savefile_settings(tmp_path / "in.pcap", **{}) | extra, tmp_path,
                            timeout=60)
    assert res.returncode == 1
    assert message in res.log + res.stderr, res.describe()


def test_pmacctd_refuses_tee(tmp_path):
    (tmp_path / "in.pcap").write_bytes(b"")
    res = oracle.run_daemon(oracle.our_binary("pmacctd"),
                            savefile_settings(tmp_path / "in.pcap", plugins="tee[a]"), tmp_path,
                            timeout=60)
    assert res.returncode == 1
    assert "tee" in res.log + res.stderr


def _udp_settings(port, **extra):
    s = {"daemonize": False, "nfacctd_ip": "127.0.0.1", "nfacctd_port": port,
         "logfile": "daemon.log"}
    s.update(extra)
    return s


def test_quickstart_replicator_live(tmp_path, receivers):
    """QUICKSTART XV as written, over UDP: tee[a] replicates everything to pool 1 and to
    both receivers of pool 2; tee[b] (transparent) sends untagged datagrams to pool 1 and
    those of agents A, B, C (tag 100) to pool 2. Agent D stays untagged."""
    from tests.e2e.common import free_port, send
    from tests.support.teerun import Background
    export = flowgen.generate(flowgen.GenParams(version=9, records=300, exporters=1, seed=4))
    payloads = [p for _, _, p in export.datagrams]
    agents = {"A": "127.0.0.2", "B": "127.0.0.3", "C": "127.0.0.4", "D": "127.0.0.5"}
    ra, rb = receivers(3), receivers(3)
    (tmp_path / "tee_receivers_a.lst").write_text(
        f"id=1\tip={ra.addr(0)}\nid=2\tip={ra.addr(1)},{ra.addr(2)}\n")
    (tmp_path / "tee_receivers_b.lst").write_text(
        f"id=1\tip={rb.addr(0)}\t\t\ttag=0\nid=2\tip={rb.addr(1)},{rb.addr(2)}\ttag=100\n")
    (tmp_path / "pretag.map").write_text("".join(f"set_tag=100\tip={agents[x]}\n"
                                                 for x in "ABC"))
    port = free_port()
    d = Background(OURS, _udp_settings(port, plugins="tee[a], tee[b]",
                                       pre_tag_map="pretag.map",
                                       plugin_buffer_size=10240, plugin_pipe_size=1024000,
                                       nfacctd_pipe_size=1024000)
                   | {"tee_receivers[a]": "tee_receivers_a.lst",
                      "tee_receivers[b]": "tee_receivers_b.lst",
                      "tee_transparent[b]": True}, tmp_path)
    try:
        d.wait_bound(port)
        order = []
        for x in "ABCD":
            send(port, payloads, src=agents[x])
            order += [(agents[x], p) for p in payloads]
        n = len(order)
        ra.wait_total(3 * n)
        rb.wait_total(n + (n * 3 // 4))
    finally:
        assert d.stop() == 0, d.log()
    every = [p for _, p in order]
    assert ra.payloads(0) == ra.payloads(1) == ra.payloads(2) == every
    assert rb.payloads(0) == [p for a, p in order if a == agents["D"]]
    tagged = [(a, p) for a, p in order if a != agents["D"]]
    assert rb.payloads(1) == rb.payloads(2) == [p for _, p in tagged]
    # transparent on b only: b's receivers see the agents, a's see the replicator
    assert {a for a, _ in rb.sources(1)} == {agents[x] for x in "ABC"}
    assert {a for a, _ in ra.sources(0)} == {"127.0.0.1"}


def test_sigusr2_reloads_the_receivers(tmp_path, receivers):
    import os
    import signal
    from tests.e2e.common import free_port, send, wait_for
    from tests.support.teerun import Background
    export = flowgen.generate(flowgen.GenParams(version=5, records=120, exporters=1, seed=6))
    payloads = [p for _, _, p in export.datagrams]
    r = receivers(2)
    lst = tmp_path / "r.lst"
    lst.write_text(f"id=1 ip={r.addr(0)}\n")
    port = free_port()
    d = Background(OURS, _udp_settings(port, plugins="tee[a]") | {"tee_receivers[a]": "r.lst"},
                   tmp_path)
    try:
        d.wait_bound(port)
        send(port, payloads)
        r.wait_total(len(payloads))
        lst.write_text(f"id=1 ip={r.addr(1)}\n")
        os.killpg(d.proc.pid, signal.SIGUSR2)
        wait_for(lambda: d.log().count("map successfully (re)loaded") >= 2, 20, "reload")
        send(port, payloads)
        r.wait_total(2 * len(payloads))
    finally:
        assert d.stop() == 0, d.log()
    assert r.payloads(0) == payloads and r.payloads(1) == payloads


def test_source_ip_src_port_and_plugin_maps(tmp_path, receivers):
    """tee_source_ip and a pool's src_port set where the copies come from; a plugin's
    own pre_tag_map tags only that plugin's datagrams."""
    from tests.e2e.common import free_port
    cap, sent = netflow_capture(tmp_path, exporters=2)
    r = receivers(3)
    sport = free_port()
    (tmp_path / "own.map").write_text("set_tag=5 ip=203.0.113.2\n")
    (tmp_path / "a.lst").write_text(f"id=1 ip={r.addr(0)} src_port={sport}\n"
                                    f"id=2 ip={r.addr(1)} tag=5\n")
    (tmp_path / "b.lst").write_text(f"id=1 ip={r.addr(2)} tag=0\n")
    run_tee(OURS, savefile_settings(cap, plugins="tee[a], tee[b]", tee_source_ip="127.0.0.9")
            | {"tee_receivers[a]": "a.lst", "tee_receivers[b]": "b.lst",
               "pre_tag_map[a]": "own.map"}, tmp_path)
    every = [p for _, _, p in sent]
    r.wait_total(2 * len(every) + sum(1 for a, _, _ in sent if a == "203.0.113.2"))
    assert r.payloads(0) == every and r.payloads(2) == every
    assert r.payloads(1) == [p for a, _, p in sent if a == "203.0.113.2"]
    assert set(r.sources(0)) == {("127.0.0.9", sport)}
    assert {a for a, _ in r.sources(1)} == {"127.0.0.9"}


def test_datagram_larger_than_plugin_buffer_size(tmp_path, receivers):
    cap, sent = netflow_capture(tmp_path)
    r = receivers(1)
    (tmp_path / "r.lst").write_text(f"id=1 ip={r.addr(0)}\n")
    small = [p for _, _, p in sent if len(p) + 54 <= 600]
    res = run_tee(OURS, savefile_settings(cap, plugins="tee[a]", plugin_buffer_size=600)
                  | {"tee_receivers[a]": "r.lst"}, tmp_path)
    assert len(small) < len(sent)
    r.wait_total(len(small))
    assert r.payloads(0) == small
    assert (f"{len(sent) - len(small)} datagrams dropped so far for not fitting "
            f"plugin_buffer_size (600 bytes") in res.log
