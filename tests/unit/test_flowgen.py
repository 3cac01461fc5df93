"""Tests of the test tooling itself: flowgen's datagrams, the pcap writers, the traffic pcap.

The generator is checked three ways: an independent struct-based decoder written here (all
records, all versions), scapy's NetFlow v5/v9 dissectors and dpkt's v5 dissector (a few
packets each), and, in tests/diff/test_oracle_truth.py, pmacct 1.7.7 itself.
"""
from __future__ import annotations

import ipaddress
import struct
from collections import defaultdict

import numpy as np
import pytest

from tests.support import flowgen, pcapio
from tests.support.flowgen import IE, GenParams

IE_NAME = {ie: name for name, (ie, _) in IE.items()}


# --------------------------------------------------------------------------------------
# An independent decoder (struct only), written from the RFCs, not from flowgen's code
# --------------------------------------------------------------------------------------
def decode(datagrams, version):
    """-> (records, headers). records: dicts by IE id (raw bytes), plus '_pkt', '_kind'."""
    templates = {}
    records, headers = [], []
    for n, (ts, ex, p) in enumerate(datagrams):
        if version == 5:
            ver, cnt, up, secs, nsecs, seq, etype, eid, samp = struct.unpack_from("!HHIIIIBBH", p)
            assert ver == 5 and len(p) == 24 + 48 * cnt
            headers.append(dict(ex=ex, dom=eid, seq=seq, secs=secs, uptime=up, count=cnt, n=n))
            for i in range(cnt):
                r = p[24 + 48 * i:72 + 48 * i]
                f = struct.unpack("!4s4s4sHHIIIIHHxBBBHHBBxx", r)
                records.append(dict(_pkt=n, src=f[0], dst=f[1], nh=f[2], inif=f[3], outif=f[4],
                                    pkts=f[5], octets=f[6], first=f[7], last=f[8], sport=f[9],
                                    dport=f[10], flags=f[11], proto=f[12], tos=f[13],
                                    src_as=f[14], dst_as=f[15], smask=f[16], dmask=f[17]))
            continue
        if version == 9:
            ver, cnt, up, secs, seq, dom = struct.unpack_from("!HHIIII", p)
            off, tset, oset = 20, 0, 1
        else:
            ver, length, secs, seq, dom = struct.unpack_from("!HHIII", p)
            assert length == len(p)
            cnt, up, off, tset, oset = None, None, 16, 2, 3
        assert ver == version
        h = dict(ex=ex, dom=dom, seq=seq, secs=secs, uptime=up, count=cnt, n=n, nrec=0,
                 ndata=0, sets=[])
        headers.append(h)
        while off < len(p):
            sid, slen = struct.unpack_from("!HH", p, off)
            assert slen >= 4 and off + slen <= len(p), "set overruns the datagram"
            body = p[off + 4:off + slen]
            h["sets"].append((sid, slen))
            if sid == tset:
                o = 0
                while o + 4 <= len(body):
                    tid, fc = struct.unpack_from("!HH", body, o)
                    o += 4
                    fields = [struct.unpack_from("!HH", body, o + 4 * i) for i in range(fc)]
                    o += 4 * fc
                    templates[(ex, dom, tid)] = ("data", fields)
                    h["nrec"] += 1
            elif sid == oset:
                if version == 9:
                    tid, scope_len, opt_len = struct.unpack_from("!HHH", body, 0)
                    flds = [struct.unpack_from("!HH", body, 6 + 4 * i)
                            for i in range((scope_len + opt_len) // 4)]
                else:
                    tid, fc, sc = struct.unpack_from("!HHH", body, 0)
                    flds = [struct.unpack_from("!HH", body, 6 + 4 * i) for i in range(fc)]
                templates[(ex, dom, tid)] = ("options", flds)
                h["nrec"] += 1
            else:
                kind, fields = templates[(ex, dom, sid)]
                rl = sum(ln for _, ln in fields)
                o = 0
                while o + rl <= len(body):
                    rec, fo = {}, o
                    for ie, ln in fields:
                        rec[ie] = body[fo:fo + ln]
                        fo += ln
                    o += rl
                    h["nrec"] += 1
                    h["ndata"] += 1
                    if kind == "data":
                        rec["_pkt"] = n
                        rec["_tid"] = sid
                        records.append(rec)
                assert len(body) - o < rl and not any(body[o:]), "set tail is not zero padding"
            off += slen
        if version == 9:
            assert h["count"] == h["nrec"], "v9 header count must equal the records in the packet"
    return records, headers


def _int(b):
    return int.from_bytes(b, "big")


def _export(version):
    kw = dict(records=1200, seed=21, exporters=3, domains=2, hosts=50)
    if version != 5:
        kw.update(padding=True, redefine=True, sampling=50, nat=True, exporter_family="mix",
                  template_every=4)
    return flowgen.generate(GenParams(version=version, **kw))


@pytest.fixture(scope="module", params=[5, 9, 10])
def export(request):
    return _export(request.param)


@pytest.fixture(scope="module", params=[9, 10])
def templated_export(request):
    return _export(request.param)


def test_every_record_round_trips(export):
    v = export.params.version
    recs, heads = decode(export.datagrams, v)
    t = export.truth
    assert len(recs) == len(t) == export.params.records
    # on the wire: by packet, then one data set per template kind, records in stream order
    order = np.lexsort((np.arange(len(t)), t["kind"], t["packet"]))
    pkts_on_wire = [r["_pkt"] for r in recs]
    assert pkts_on_wire == list(t["packet"][order])
    boots = [e.boot_ms for e in export.exporters]
    for r, i in zip(recs, order):
        tr = t[i]
        h = heads[r["_pkt"]]
        if v == 5:
            assert r["src"] == bytes(tr["src_ip"][:4]) and r["dst"] == bytes(tr["dst_ip"][:4])
            assert (r["pkts"], r["octets"]) == (tr["packets"], tr["bytes"])
            assert (r["sport"], r["dport"], r["proto"], r["tos"], r["flags"]) == (
                tr["src_port"], tr["dst_port"], tr["proto"], tr["tos"], tr["tcp_flags"])
            assert (r["inif"], r["outif"], r["src_as"], r["dst_as"], r["smask"], r["dmask"]) == (
                tr["in_iface"], tr["out_iface"], tr["src_as"], tr["dst_as"], tr["src_mask"], tr["dst_mask"])
            assert r["first"] == (tr["first_ms"] - boots[tr["exporter"]]) & 0xFFFFFFFF
            assert r["last"] == (tr["last_ms"] - boots[tr["exporter"]]) & 0xFFFFFFFF
            continue
        six = bool(tr["is_v6"])
        alen = 16 if six else 4
        assert r[27 if six else 8] == bytes(tr["src_ip"][:alen])
        assert r[28 if six else 12] == bytes(tr["dst_ip"][:alen])
        assert _int(r[7]) == tr["src_port"] and _int(r[11]) == tr["dst_port"]
        assert _int(r[4]) == tr["proto"]
        assert _int(r[1]) == tr["bytes"] and _int(r[2]) == tr["packets"]
        if 5 in r:
            assert _int(r[5]) == tr["tos"]
        else:
            assert tr["tos"] == 0, "redefined template has no ToS: truth must say 0"
        if v == 9:
            assert _int(r[22]) == (tr["first_ms"] - boots[tr["exporter"]]) & 0xFFFFFFFF
            assert _int(r[21]) == (tr["last_ms"] - boots[tr["exporter"]]) & 0xFFFFFFFF
        else:
            assert _int(r[152]) == tr["first_ms"] and _int(r[153]) == tr["last_ms"]
        if 225 in r:
            assert r[225] == bytes(tr["post_nat_src_ip"]) and _int(r[230]) == tr["nat_event"]
            assert tr["kind"] == flowgen.KIND_NAT
        else:
            assert 6 in r  # data templates carry tcp flags
            assert _int(r[6]) == tr["tcp_flags"]
            assert _int(r[10]) == tr["in_iface"] and _int(r[17]) == tr["dst_as"]
            assert _int(r[48]) == tr["sampler_id"] == 1
            depth = int(tr["mpls_depth"])
            for k in range(3):
                lab = _int(r[70 + k])
                if k < depth:
                    assert lab >> 4 == tr["mpls_labels"][k]
                    assert lab & 1 == (1 if k == depth - 1 else 0), "bottom-of-stack bit"
                else:
                    assert lab == 0
        assert int(tr["first_ms"]) <= int(tr["last_ms"]) <= int(tr["export_secs"]) * 1000
        assert h["secs"] == tr["export_secs"] and h["seq"] == tr["seqno"]
        assert h["dom"] == tr["domain"]


def test_sequence_numbers_per_stream(export):
    v = export.params.version
    _, heads = decode(export.datagrams, v)
    streams = defaultdict(list)
    for h in heads:
        streams[(h["ex"], h["dom"])].append(h)
    assert len(streams) == export.params.exporters * export.params.domains
    for key, hs in streams.items():
        expect = export.params.seq_start
        for h in hs:
            assert h["seq"] == expect, f"stream {key} packet {h['n']}"
            if v == 5:
                expect += h["count"]
            elif v == 9:
                expect += 1
            else:
                expect += h["ndata"]      # IPFIX counts data records, options data included
        secs = [h["secs"] for h in hs]
        assert secs == sorted(secs)


def test_templates_resent_redefined_and_sets_padded(templated_export):
    export = templated_export
    v = export.params.version
    _, heads = decode(export.datagrams, v)
    tset = 0 if v == 9 else 2
    stream = [h for h in heads if (h["ex"], h["dom"]) == (heads[0]["ex"], heads[0]["dom"])]
    with_tpl = [i for i, h in enumerate(stream) if any(s == tset for s, _ in h["sets"])]
    every = export.params.template_every
    assert with_tpl[:3] == [0, every, 2 * every][:len(with_tpl[:3])]
    for h in heads:
        for sid, slen in h["sets"]:
            assert slen % 4 == 0, f"set {sid} of packet {h['n']} not padded"
    # the IPv4 template id is defined with two different layouts over the stream
    layouts = set()
    for i in with_tpl:
        p = export.datagrams[stream[i]["n"]][2]
        hl = 20 if v == 9 else 16
        sid, slen = struct.unpack_from("!HH", p, hl)
        assert sid == tset
        o = hl + 4
        while o < hl + slen:
            tid, fc = struct.unpack_from("!HH", p, o)
            if tid == 256:
                layouts.add(p[o + 4:o + 4 + 4 * fc])
            o += 4 + 4 * fc
    assert len(layouts) == 2


def test_deterministic_per_seed():
    a = flowgen.generate(GenParams(version=10, records=500, seed=4))
    b = flowgen.generate(GenParams(version=10, records=500, seed=4))
    c = flowgen.generate(GenParams(version=10, records=500, seed=5))
    assert [d[2] for d in a.datagrams] == [d[2] for d in b.datagrams]
    assert [d[2] for d in a.datagrams] != [d[2] for d in c.datagrams]
    assert np.array_equal(a.truth, b.truth)


def test_v5_matches_dpkt_and_scapy():
    import dpkt
    from scapy.layers.netflow import NetflowHeader, NetflowRecordV5

    e = flowgen.generate(GenParams(version=5, records=90, seed=8, exporters=1))
    t = e.truth[np.argsort(e.truth["packet"], kind="stable")]
    payload = e.datagrams[0][2]
    nf = dpkt.netflow.Netflow5(payload)
    assert nf.count == 30 == len(nf.data)
    for rec, tr in zip(nf.data, t[:30]):
        assert struct.pack("!I", rec.src_addr) == bytes(tr["src_ip"][:4])
        assert (rec.pkts_sent, rec.bytes_sent, rec.src_port, rec.dst_port, rec.ip_proto) == (
            tr["packets"], tr["bytes"], tr["src_port"], tr["dst_port"], tr["proto"])
    sc = NetflowHeader(payload)
    recs = [r for r in sc.iterpayloads() if isinstance(r, NetflowRecordV5)]
    assert len(recs) == 30
    assert recs[0].src == ipaddress.ip_address(bytes(t[0]["src_ip"][:4])).compressed
    assert recs[-1].dOctets == t[29]["bytes"]


def test_v9_matches_scapy():
    from scapy.layers.netflow import NetflowDataflowsetV9, NetflowHeader, netflowv9_defragment

    e = flowgen.generate(GenParams(version=9, records=200, seed=9, exporters=1, ipv6_share=0))
    pk = netflowv9_defragment([NetflowHeader(p) for _, _, p in e.datagrams])
    t = e.truth[np.lexsort((np.arange(len(e.truth)), e.truth["kind"], e.truth["packet"]))]
    got = []
    for p in pk:
        fs = p.getlayer(NetflowDataflowsetV9)
        while fs is not None:
            if fs.templateID == 256:
                got += list(fs.records)
            fs = fs.payload.getlayer(NetflowDataflowsetV9)
    assert len(got) == len(t)
    for r, tr in zip(got[:50], t[:50]):
        assert r.IPV4_SRC_ADDR == ipaddress.ip_address(bytes(tr["src_ip"][:4])).compressed
        assert (r.IN_PKTS, r.IN_BYTES, r.L4_DST_PORT, r.INPUT_SNMP) == (
            tr["packets"], tr["bytes"], tr["dst_port"], tr["in_iface"])


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_capture_frames_and_checksums(tmp_path, fmt):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    e = flowgen.generate(GenParams(version=10, records=300, seed=2, exporters=2, exporter_family="mix"))
    path = e.write_pcap(tmp_path / f"c.{fmt}", fmt)
    dgs = list(pcapio.udp_datagrams(path))
    assert [d.payload for d in dgs] == [p for _, _, p in e.datagrams]
    assert [d.ts_ns for d in dgs] == [ts for ts, _, _ in e.datagrams]
    assert {d.src for d in dgs} == {x.address for x in e.exporters}
    assert all(d.dport == e.params.collector_port for d in dgs)
    frames = list(pcapio.read_frames(path))
    assert all(lt == pcapio.LINKTYPE_ETHERNET for _, lt, _ in frames)
    for _, _, raw in frames[:20]:
        pkt = Ether(raw)
        l3 = pkt[IP] if IP in pkt else pkt[IPv6]
        udp = pkt[UDP]
        want_udp = udp.chksum
        del udp.chksum
        if IP in pkt:
            want_ip = l3.chksum
            del l3.chksum
        rebuilt = Ether(bytes(pkt))
        assert rebuilt[UDP].chksum == want_udp
        if IP in rebuilt:
            assert rebuilt[IP].chksum == want_ip


def test_pcap_nanosecond_and_raw_linktype(tmp_path):
    p = tmp_path / "raw.pcap"
    w = pcapio.PcapWriter(p, linktype=pcapio.LINKTYPE_RAW, nanosecond=True)
    w.write(1_700_000_000_123_456_789, pcapio.udp_frame("10.0.0.1", "10.0.0.2", 1, 2, b"abc",
                                                       linktype=pcapio.LINKTYPE_RAW))
    w.close()
    (d,) = list(pcapio.udp_datagrams(p))
    assert (d.ts_ns, d.src, d.dst, d.sport, d.dport, d.payload) == (
        1_700_000_000_123_456_789, "10.0.0.1", "10.0.0.2", 1, 2, b"abc")


def test_traffic_pcap_truth(tmp_path):
    import dpkt

    tt = flowgen.write_traffic_pcap(tmp_path / "t.pcap", flows=40, max_packets=10, seed=3)
    n = b = 0
    protos = set()
    for _, _, frame in pcapio.read_frames(tmp_path / "t.pcap"):
        ip = dpkt.ethernet.Ethernet(frame).data
        n += 1
        b += len(bytes(ip))
        protos.add(ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt)
    assert (n, b) == (tt.packets, tt.ip_bytes)
    assert sum(v[0] for v in tt.flows.values()) == n
    assert {6, 17} <= protos and protos & {1, 58}


def test_large_capture_is_vectorised_enough():
    """200k records must encode with O(packets) Python work: check the shape, not the time."""
    e = flowgen.generate(GenParams(version=10, records=200_000, seed=1, groups=("tos",)))
    rpp = flowgen.records_per_packet(e.params)
    assert rpp >= 15
    assert len(e.datagrams) <= 200_000 // rpp + 2 * e.params.exporters
    assert int(e.truth["packets"].sum()) > 0 and len(np.unique(e.truth["packet"])) == len(e.datagrams)
