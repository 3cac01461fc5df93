"""Our decoder against pmacct 1.7.7's nfacctd, primitive by primitive.

For every IPFIX/NFv9 capture of the corpus, the softflowd captures in tests/data (v5, v9,
IPFIX) and generated captures (NEL, padding, template redefinition, sampling), nfacctd
runs with a print plugin aggregating on every NetFlow primitive and we format our
records the same way; both sides must give the same rows and counters.

Where 1.7.7 loses data, we keep it and compare with the corpus' expected output (written
by a newer pmacct) instead:
- tcp flags sent as two-byte tcpControlBits (111/01, 112): 1.7.7 ignores them;
- VRF ids mapped to route distinguishers by options data (106, 112): 1.7.7 looks the map
  up in the wrong table and prints "vrfid:N";
- selectorId sent in 4 bytes and samplingSize/samplingPopulation options (104, 112):
  1.7.7 finds a rate of 0 (and, renormalising, multiplies counters by 0);
- the second of two variable-length records in one data set (106): 1.7.7 drops it.

Records carrying sampled packets (dataLinkFrameSection) are checked on a generated
capture: pmacct parses the packet for what the template does not say.
"""
from __future__ import annotations

import collections
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pypmacct.decoders import NetflowOptions
from tests.support import flowgen
from tests.unit import netflow_oracle as O

pytestmark = pytest.mark.oracle

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
from tests.support.diffcases import CORPUS  # noqa: E402  (../shared/corpus, or PMACCT_CORPUS)

ALL = O.ALL_PRIMITIVES
NO_FLAGS = tuple(p for p in ALL if p != "tcpflags")
NO_RD_RATE = tuple(p for p in ALL if p not in ("mpls_vpn_rd", "sampling_rate"))
NO_RD_RATE_FLAGS = tuple(p for p in NO_RD_RATE if p != "tcpflags")
BINS = ("src_host", "dst_host", "src_port", "dst_port", "proto", "stamp_inserted")


def corpus(name: str) -> str:
    return str(next(CORPUS.glob(name)))


# (case id, capture, primitives, our options, extra nfacctd config)
CASES = [
    ("100", corpus("100-*/traffic-00.pcap"), ALL, {}, {}),
    ("101", corpus("101-*/traffic-00.pcap"), ALL, {}, {}),
    ("102", corpus("102-*/traffic-00.pcap"), ALL, {}, {}),
    ("102-renorm", corpus("102-*/traffic-00.pcap"), ALL, {"renormalize": True},
     {"nfacctd_renormalize": "true"}),
    ("104", corpus("104-*/traffic-00.pcap"), NO_RD_RATE, {}, {}),
    ("110-01", corpus("110-*/traffic-01.pcap"), ALL, {}, {}),
    ("111-00", corpus("111-*/traffic-00.pcap"), ALL, {}, {}),
    ("111-01", corpus("111-*/traffic-01.pcap"), NO_FLAGS, {}, {}),
    ("112", corpus("112-*/traffic-00.pcap"), NO_RD_RATE_FLAGS, {}, {}),
    ("sf-v5", str(DATA / "softflowd-v5.pcap"), ALL, {}, {}),
    ("sf-v5-sampled", str(DATA / "softflowd-v5-sampled.pcap"), ALL, {}, {}),
    ("sf-v5-renorm", str(DATA / "softflowd-v5-sampled.pcap"), ALL, {"renormalize": True},
     {"nfacctd_renormalize": "true"}),
    ("sf-v9", str(DATA / "softflowd-v9.pcap"), ALL, {}, {}),
    ("sf-ipfix", str(DATA / "softflowd-ipfix.pcap"), ALL, {}, {}),
    ("sf-v5-ipnh", str(DATA / "softflowd-v5.pcap"), ("src_host", "peer_dst_ip"),
     {"use_ip_next_hop": True}, {"use_ip_next_hop": "true"}),
    # time bins (time_start), also with nfacctd_time_secs
    ("bins-100", corpus("100-*/traffic-00.pcap"), BINS, {}, {}),
    ("bins-101", corpus("101-*/traffic-00.pcap"), BINS, {}, {}),
    ("bins-sf-v5", str(DATA / "softflowd-v5.pcap"), BINS, {}, {}),
    ("bins-sf-v9", str(DATA / "softflowd-v9.pcap"), BINS, {}, {}),
    ("bins-sf-ipfix", str(DATA / "softflowd-ipfix.pcap"), BINS, {}, {}),
    ("bins-sf-v5-secs", str(DATA / "softflowd-v5.pcap"), BINS, {"time_secs": True},
     {"nfacctd_time_secs": "true"}),
]
GENERATED = [
    (v, kw) for v in (5, 9, 10)
    for kw in ({"nat": True, "padding": True, "redefine": True},
               {"sampling": 10, "exporter_family": "mix", "domains": 2})
]


DLFS_PRIMS = ("src_host", "dst_host", "src_port", "dst_port", "proto", "tos", "tcpflags",
              "src_mac", "dst_mac", "vlan", "cos", "etype", "mpls_label_top", "in_iface")


def write_dlfs_capture(path):
    """IPFIX records carrying sampled packets (dataLinkFrameSection), with and without
    counters and other elements of their own."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw

    from tests.unit.nfbuild import data_set, ipfix, record, template_set
    from tests.unit.test_savefile import write_pcap

    f4 = bytes(Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / Dot1Q(vlan=42, prio=3) /
               IP(src="10.1.1.1", dst="10.2.2.2", tos=32) / TCP(sport=1234, dport=80, flags="SA") / Raw(b"x" * 100))
    f6 = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=8) / UDP(sport=53, dport=5353) / Raw(b"y" * 40))
    t1, t2, t3 = [(315, 65535)], [(315, 65535), (1, 4), (2, 4), (10, 4)], [(315, 64), (7, 2)]
    p = ipfix([template_set(10, [(256, t1), (257, t2), (258, t3)]),
               data_set(256, [record(t1, [f4]), record(t1, [f6])]),
               data_set(257, [record(t2, [f6, 5000, 7, 3])]),
               data_set(258, [record(t3, [f4[:64], 999])])])
    frame = bytes(Ether() / IP(src="192.0.2.9", dst="192.0.2.1") / UDP(sport=1, dport=2100) / Raw(p))
    write_pcap(path, [(1.0, frame)])
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    out = [("dlfs", str(write_dlfs_capture(d / "dlfs.pcap")), DLFS_PRIMS, {}, {})]
    for v, kw in GENERATED:
        path = d / f"gen-v{v}-{'-'.join(kw)}.pcap"
        flowgen.write_capture(path, version=v, records=3000, exporters=3, seed=v, **kw)
        ren = "sampling" in kw
        out.append((f"gen-v{v}-{'-'.join(kw)}", str(path), ALL,
                    {"renormalize": ren}, {"nfacctd_renormalize": "true" if ren else "false"}))
    return out


@pytest.fixture(scope="module")
def results(pmacct_nfacctd, generated):
    """Run every case's nfacctd at once (each run takes a few seconds, mostly waiting)."""
    cases = CASES + generated

    def one(case):
        cid, pcap, prims, opts, extra = case
        return cid, O.compare(pcap, prims, NetflowOptions(**opts), extra, binary=str(pmacct_nfacctd))

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, cases))


@pytest.mark.parametrize("cid", [c[0] for c in CASES] + ["dlfs"] +
                         [f"gen-v{v}-{'-'.join(kw)}" for v, kw in GENERATED])
def test_same_rows_as_nfacctd(results, cid):
    mine, theirs = results[cid]
    prims = next((c[2] for c in CASES if c[0] == cid), DLFS_PRIMS if cid == "dlfs" else ALL)
    assert len(theirs) > 0
    assert mine == theirs, O.diff_report(mine, theirs, prims)


# --- against the corpus' expected output, where 1.7.7 loses data ---
TCP_FLAG_BITS = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64, "CWR": 128}


def _expected_rows(test_dir: Path, keys):
    rows = collections.Counter()
    agg = collections.defaultdict(lambda: [0, 0])
    for line in (test_dir / "output-flow-00.json").read_text().splitlines():
        if not line.strip():
            continue
        o = json.loads(line)
        key = []
        for k in keys:
            v = o[k]
            if k == "tcp_flags":
                v = sum(TCP_FLAG_BITS[f] for f in v)
            elif k == "ip_proto":
                v = socket.getprotobyname(v) if not str(v).isdigit() else int(v)
            key.append(str(v))
        a = agg[tuple(key)]
        a[0] += o["packets"]
        a[1] += o["bytes"]
    for k, v in agg.items():
        rows[k + tuple(v)] += 1
    return rows


def _our_rows(records, keys):
    fmt = {"ip_src": "src_host", "ip_dst": "dst_host", "port_src": "src_port",
           "port_dst": "dst_port", "ip_proto": "proto", "tos": "tos", "iface_in": "in_iface",
           "iface_out": "out_iface", "mpls_vpn_rd": "mpls_vpn_rd", "tcp_flags": "tcpflags"}
    agg = collections.defaultdict(lambda: [0, 0])
    for r in records:
        key = tuple(O.format_record(r, fmt[k]) for k in keys)
        a = agg[key]
        a[0] += int(r["packets"])
        a[1] += int(r["bytes"])
    return collections.Counter({k + tuple(v): 1 for k, v in agg.items()})


@pytest.mark.parametrize("test,keys", [
    ("104-*", ("ip_src", "ip_dst", "ip_proto", "tos", "iface_in", "mpls_vpn_rd")),
    ("106-*", ("ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "tos", "iface_in",
               "iface_out", "mpls_vpn_rd", "tcp_flags")),
    ("112-*", ("ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "tos", "iface_in",
               "iface_out", "mpls_vpn_rd", "tcp_flags")),
    ("111-*", ("ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "tos", "tcp_flags")),
    ("100-*", ("ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "tos", "iface_in",
               "iface_out", "tcp_flags")),
])
def test_same_rows_as_the_corpus_expectations(test, keys):
    test_dir = next(CORPUS.glob(test))
    conf = (test_dir / "nfacctd-00.conf").read_text()
    renorm = any(l.split(":", 1)[1].strip() == "true" for l in conf.splitlines()
                 if l.startswith("nfacctd_renormalize"))
    recs = []
    for pcap in sorted(test_dir.glob("traffic-0*.pcap")):
        r, _ = O.decode_pcap(str(pcap), NetflowOptions(renormalize=renorm))
        recs.extend(r)
    mine = _our_rows(recs, keys)
    theirs = _expected_rows(test_dir, keys)
    assert mine == theirs, f"only ours: {sorted(mine - theirs)[:5]}\nonly expected: {sorted(theirs - mine)[:5]}"
