"""networks_file / ports_file: file forms, longest-prefix match (IPv4 and IPv6, nested),
the per-plugin stage in each mode, and a 100k-prefix table."""
from __future__ import annotations

import ipaddress
import time

import numpy as np
import pytest

from pypmacct.config import ConfigError
from pypmacct.maps.networks import NetworksStage, NetworksTable, PortsList
from pypmacct.record import RECORD_DTYPE


class Cfg:
    def __init__(self, **kw):
        self.kw = kw

    def get(self, k):
        return self.kw.get(k)

    def where(self, k):
        return "test.conf:1"


class Log:
    def __init__(self):
        self.lines = []

    def warn(self, m):
        self.lines.append(m)

    info = warn


FILE = """\
! comment
10.0.0.0/8
65001,10.64.0.0/10
64512_65002,10.128.0.0/9
10.0.0.1,65003,10.200.0.0/13
10.200.7.0/24
65020,2001:db8:100::/40
2001:db8::ff,64999_65021,2001:db8:180::/41
not-a-prefix
65030,10.0.0.0/40
"""


def addrs(*texts):
    a = np.zeros(len(texts), RECORD_DTYPE["src_host"])
    for i, t in enumerate(texts):
        ip = ipaddress.ip_address(t)
        a["af"][i] = 4 if ip.version == 4 else 6
        a["addr"][i] = ip.packed.ljust(16, b"\0")
    return a


def test_file_forms_and_longest_match(tmp_path):
    p = tmp_path / "n.lst"
    p.write_text(FILE)
    log = Log()
    t = NetworksTable(str(p), log)
    assert t.count == 7
    assert sum("skipped" in x for x in log.lines) == 2
    found, mask, asn, peer, nh_af, nh = t.lookup(addrs(
        "10.1.2.3", "10.65.0.1", "10.130.0.1", "10.201.0.1", "10.200.7.9", "11.0.0.1",
        "2001:db8:100::1", "2001:db8:180::1", "2001:db8:300::1"))
    assert found.tolist() == [True] * 5 + [False, True, True, False]
    assert mask.tolist() == [8, 10, 9, 13, 24, 0, 40, 41, 0]
    assert asn.tolist() == [0, 65001, 65002, 65003, 0, 0, 65020, 65021, 0]
    assert peer.tolist() == [0, 0, 64512, 0, 0, 0, 0, 64999, 0]
    assert nh_af.tolist() == [0, 0, 0, 4, 0, 0, 0, 6, 0]
    assert bytes(nh[3])[:4] == bytes([10, 0, 0, 1])


def recs(rows):
    r = np.zeros(len(rows), RECORD_DTYPE)
    for i, row in enumerate(rows):
        for k, v in row.items():
            if k.endswith("_host") or k == "peer_dst_ip":
                r[k][i] = addrs(v)[0]
            else:
                r[k][i] = v
    return r


def stage(tmp_path, **kw):
    p = tmp_path / "n.lst"
    p.write_text(FILE)
    kw.setdefault("networks_file", str(p))
    return NetworksStage(Cfg(**kw), "nfacctd", Log())


def test_file_mode_sets_masks_ases_and_next_hop(tmp_path):
    st = stage(tmp_path, nfacctd_net="file", nfacctd_as="file",
               aggregate=("src_net", "dst_net", "src_as", "dst_as", "peer_dst_ip",
                          "peer_src_as"))
    r = recs([{"src_host": "10.130.0.1", "dst_host": "10.201.0.1", "src_mask": 24,
               "dst_mask": 30, "src_as": 7, "dst_as": 8},
              {"src_host": "2001:db8:180::1", "dst_host": "11.0.0.1", "src_mask": 64}])
    st.apply(r)
    assert r["src_mask"].tolist() == [9, 41] and r["dst_mask"].tolist() == [13, 0]
    assert r["src_as"].tolist() == [65002, 65021] and r["dst_as"].tolist() == [65003, 0]
    assert r["peer_src_as"].tolist() == [64512, 64999]
    assert bytes(r["peer_dst_ip"]["addr"][0])[:4] == bytes([10, 0, 0, 1])


def test_longest_and_no_lpm(tmp_path):
    rows = [{"src_host": "10.65.0.1", "src_mask": 16, "src_as": 5},   # netflow longer
            {"src_host": "10.65.0.1", "src_mask": 8, "src_as": 5}]    # file longer
    st = stage(tmp_path, nfacctd_net="longest", nfacctd_as="longest",
               aggregate=("src_net", "src_as"))
    r = recs(rows)
    st.apply(r)
    assert r["src_mask"].tolist() == [16, 10] and r["src_as"].tolist() == [5, 65001]
    st = stage(tmp_path, nfacctd_net="longest", nfacctd_as="longest",
               networks_file_no_lpm=True, aggregate=("src_net", "src_as"))
    r = recs(rows)
    st.apply(r)
    assert r["src_mask"].tolist() == [10, 10] and r["src_as"].tolist() == [65001, 65001]


def test_filter_zeroes_unknown_hosts(tmp_path):
    st = stage(tmp_path, networks_file_filter=True, aggregate=("src_host", "dst_host"))
    r = recs([{"src_host": "10.1.1.1", "dst_host": "11.1.1.1"}])
    st.apply(r)
    assert bytes(r["src_host"]["addr"][0])[:4] == bytes([10, 1, 1, 1])
    assert bytes(r["dst_host"]["addr"][0]) == bytes(16) and r["dst_host"]["af"][0] == 4


def test_default_is_netflow_and_mask_mode(tmp_path):
    st = stage(tmp_path, aggregate=("src_net", "src_mask"))
    r = recs([{"src_host": "10.65.0.1", "src_mask": 16}])
    st.apply(r)
    assert r["src_mask"].tolist() == [16]      # a networks_file alone keeps NetFlow's masks
    st = NetworksStage(Cfg(nfacctd_net="mask", networks_mask=20,
                           aggregate=("src_net", "src_mask")), "nfacctd", Log())
    r = recs([{"src_host": "10.65.0.1", "src_mask": 16}])
    st.apply(r)
    assert r["src_mask"].tolist() == [20]


def test_missing_file_or_method_source_is_a_startup_error(tmp_path):
    with pytest.raises(ConfigError):
        NetworksStage(Cfg(networks_file=str(tmp_path / "nope")), "nfacctd", Log())
    with pytest.raises(ConfigError):
        NetworksStage(Cfg(nfacctd_as="file", aggregate=("src_as",)), "nfacctd", Log())


def test_ports_file(tmp_path):
    p = tmp_path / "p.lst"
    p.write_text("! ports\n22\n80\n99999\nx\n")
    log = Log()
    pl = PortsList(str(p), log)
    r = recs([{"src_port": 22, "dst_port": 81}, {"src_port": 5, "dst_port": 80}])
    pl.apply(r)
    assert r["src_port"].tolist() == [22, 0] and r["dst_port"].tolist() == [0, 80]
    assert sum("invalid port" in x for x in log.lines) == 2


def test_100k_prefixes_load_and_match(tmp_path):
    rng = np.random.default_rng(3)
    n = 100_000
    nets = set()
    lines = []
    while len(lines) < n:
        a = int(rng.integers(0, 2**32))
        ml = int(rng.integers(8, 33))
        net = ipaddress.ip_network((a & ((2**32 - 1) ^ ((1 << (32 - ml)) - 1)), ml))
        if net in nets:
            continue
        nets.add(net)
        lines.append(f"{len(lines) + 1},{net}")
    p = tmp_path / "big.lst"
    p.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    t = NetworksTable(str(p), None)
    load_s = time.monotonic() - t0
    assert t.count == n
    k = 65536
    raw = rng.integers(0, 2**32, k, dtype=np.uint64)
    a = np.zeros(k, RECORD_DTYPE["src_host"])
    a["af"] = 4
    b = np.zeros((k, 16), np.uint8)
    b[:, :4] = raw.astype(">u4").view(np.uint8).reshape(k, 4)
    a["addr"] = b.view("V16").ravel()
    t0 = time.monotonic()
    found, mask, asn, *_ = t.lookup(a)
    print(f"{n} prefixes loaded in {load_s:.2f}s, {k} lookups in {time.monotonic() - t0:.3f}s "
          "(measured, not asserted: speed belongs to bench/)")
    # check a sample against a brute-force longest match
    table = sorted(((net, i + 1) for i, net in enumerate(
        ipaddress.ip_network(ln.split(",")[1]) for ln in lines)), key=lambda x: -x[0].prefixlen)
    for j in range(0, k, 4096):
        ip = ipaddress.ip_address(int(raw[j]))
        want = next(((net.prefixlen, asn_) for net, asn_ in table if ip in net), (0, 0))
        assert (int(mask[j]), int(asn[j])) == want


def test_reload_swaps_the_table(tmp_path):
    st = stage(tmp_path, nfacctd_net="file", aggregate=("src_net",))
    (tmp_path / "n.lst").write_text("10.0.0.0/16\n")
    st.reload()
    r = recs([{"src_host": "10.0.1.1", "src_mask": 24}])
    st.apply(r)
    assert r["src_mask"].tolist() == [16]
