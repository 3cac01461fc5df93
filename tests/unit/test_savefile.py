"""``pcap_savefile``: classic pcap and pcapng, link types, IPv4/IPv6, fragments, replay."""
from __future__ import annotations

import functools
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Raw

from pypmacct.sources.savefile import FrameParser, SavefileError, SavefileSource, read_datagrams, read_frames
from tests.unit import netflow_oracle as O
from tests.unit.nfbuild import decoder, v5, v5_record
from tests.support.diffcases import CORPUS

PAYLOAD = b"\x00\x0a" + bytes(range(40))


def write_pcap(path, frames, linktype=1, magic=0xA1B2C3D4, endian="<"):
    """frames: [(ts_seconds, bytes)]; ts as a float or as a (sec, fraction) pair"""
    ns = magic == 0xA1B23C4D
    with open(path, "wb") as f:
        f.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype))
        for ts, fr in frames:
            if isinstance(ts, tuple):
                sec, frac = ts
            else:
                sec = int(ts)
                frac = round((ts - sec) * (1e9 if ns else 1e6))
            f.write(struct.pack(endian + "IIII", sec, frac, len(fr), len(fr)) + fr)
    return path


def _block(btype, body, endian="<"):
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack(endian + "II", btype, total) + body + b"\0" * pad + struct.pack(endian + "I", total)


def write_pcapng(path, interfaces, packets, endian="<"):
    """interfaces: [(linktype, tsresol byte or None)]; packets: [(iface, ts_units, bytes)]"""
    out = _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)
    for lt, res in interfaces:
        opts = b""
        if res is not None:
            opts = struct.pack(endian + "HHB3x", 9, 1, res) + struct.pack(endian + "HH", 0, 0)
        out += _block(1, struct.pack(endian + "HHI", lt, 0, 65535) + opts, endian)
    out += _block(5, b"stats, ignored", endian)       # an Interface Statistics Block
    for iface, ts, fr in packets:
        out += _block(6, struct.pack(endian + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(fr), len(fr)) + fr, endian)
    Path(path).write_bytes(out)
    return path


def udp4(src="192.0.2.1", sport=2055, dport=2100, payload=PAYLOAD):
    return IP(src=src, dst="198.51.100.1") / UDP(sport=sport, dport=dport) / Raw(payload)


def udp6(src="2001:db8::1", sport=2055, payload=PAYLOAD):
    return IPv6(src=src, dst="2001:db8::2") / UDP(sport=sport, dport=2100) / Raw(payload)


def only(path, **kw):
    got = list(read_datagrams(str(path), **kw))
    assert len(got) == 1, got
    return got[0]


@pytest.mark.parametrize("magic,endian,ts,expect_us", [
    (0xA1B2C3D4, "<", (1700000000, 123456), 1700000000123456),
    (0xA1B2C3D4, ">", (1700000000, 500000), 1700000000500000),
    (0xA1B23C4D, "<", (1700000000, 123456789), 1700000000123456),
    (0xA1B23C4D, ">", (1700000000, 1000), 1700000000000001),
])
def test_classic_pcap_variants(tmp_path, magic, endian, ts, expect_us):
    p = write_pcap(tmp_path / "a.pcap", [(ts, bytes(Ether() / udp4()))], magic=magic, endian=endian)
    d = only(p, arrival="capture")
    assert (d.payload, d.src, d.port, d.ts_us) == (PAYLOAD, "192.0.2.1", 2055, expect_us)


@pytest.mark.parametrize("frame,linktype", [
    (Ether() / udp4(), 1),
    (Ether() / Dot1Q(vlan=10) / udp4(), 1),
    (Ether() / Dot1AD(vlan=20) / Dot1Q(vlan=10) / udp4(), 1),
    (CookedLinux() / udp4(), 113),
    (CookedLinuxV2(proto=0x0800) / udp4(), 276),
    (udp4(), 101),
    (udp4(), 228),
    (udp4(), 12),
    (Loopback(type=2) / udp4(), 0),
    (Ether() / udp6(), 1),
    (Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / UDP(sport=2055) / Raw(PAYLOAD), 1),
    (udp6(), 229),
])
def test_link_types(tmp_path, frame, linktype):
    p = write_pcap(tmp_path / "a.pcap", [(1.0, bytes(frame))], linktype=linktype)
    d = only(p)
    assert d.payload == PAYLOAD and d.port == 2055
    assert d.src in ("192.0.2.1", "2001:db8::1")


def test_bsd_loop_and_mpls(tmp_path):
    loop = struct.pack(">I", 2) + bytes(udp4())
    mpls = bytes(Ether(type=0x8847)) + struct.pack(">I", (100 << 12) | (1 << 8) | 64) + bytes(udp4())
    for lt, fr in ((108, loop), (1, mpls)):
        d = only(write_pcap(tmp_path / f"{lt}.pcap", [(1.0, fr)], linktype=lt))
        assert d.payload == PAYLOAD


def tcp4(payload, sport=179):
    return IP(src="192.0.2.1", dst="198.51.100.1") / TCP(sport=sport, dport=2100, flags="PA") / Raw(payload)


def test_every_datagram_whatever_the_port(tmp_path):
    frames = [(1.0, bytes(Ether() / udp4(dport=9992))),
              (2.0, bytes(Ether() / udp4(dport=53, sport=5353))),
              (3.0, bytes(Ether() / tcp4(PAYLOAD, sport=4739))),          # IPFIX over TCP
              (3.5, bytes(Ether() / tcp4(b"\xff" * 19, sport=179))),     # a BGP marker
              (3.7, bytes(Ether() / IP(src="192.0.2.1") / TCP(flags="A"))),  # no payload
              (4.0, bytes(Ether(type=0x0806) / Raw(b"\0" * 28))),        # ARP
              (5.0, bytes(Ether() / udp4())[:30])]                        # cut short
    p = write_pcap(tmp_path / "a.pcap", frames)
    src = SavefileSource(str(p))
    got = [d for b in src.batches() for d in b]
    assert [d.port for d in got] == [2055, 5353, 4739]
    assert src.frames == 7 and src.skipped == 4 and src.done
    src = SavefileSource(str(p), tcp=False)
    assert [d.port for b in src.batches() for d in b] == [2055, 5353]
    src = SavefileSource(str(p), tcp_versions=None)
    assert [d.port for b in src.batches() for d in b] == [2055, 5353, 4739, 179]


def test_ipv4_mapped_source_becomes_ipv4(tmp_path):
    d = only(write_pcap(tmp_path / "a.pcap", [(1.0, bytes(Ether() / udp6(src="::ffff:192.0.2.9")))]))
    assert d.src == "192.0.2.9"


def test_fragments_are_reassembled(tmp_path):
    big = bytes(range(256)) * 12
    frags4 = fragment(udp4(payload=big), fragsize=600)
    assert len(frags4) > 2
    frames = [(1.0, bytes(Ether() / f)) for f in reversed(frags4)]       # out of order too
    pkt6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=7, nh=17)
    raw6 = bytes(UDP(sport=2055, dport=2100) / Raw(big))
    # build the IPv6 fragments by hand: offsets in 8-byte units
    for off in range(0, len(raw6), 1200):
        chunk = raw6[off:off + 1200]
        more = 1 if off + 1200 < len(raw6) else 0
        f6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=7, nh=17, offset=off // 8, m=more) / Raw(chunk)
        frames.append((2.0, bytes(Ether() / f6)))
    del pkt6
    got = list(read_datagrams(str(write_pcap(tmp_path / "f.pcap", frames))))
    assert [d.payload for d in got] == [big, big]
    assert [d.src for d in got] == ["192.0.2.1", "2001:db8::1"]


def test_pcapng_interfaces_and_resolutions(tmp_path):
    e = bytes(Ether() / udp4(src="192.0.2.7"))
    r = bytes(udp6(src="2001:db8::7"))
    p = write_pcapng(tmp_path / "a.pcapng", [(1, None), (101, 9)],
                     [(0, 1_700_000_000_123_456, e), (1, 1_700_000_000_123_456_789, r)])
    got = list(read_datagrams(str(p), arrival="capture"))
    assert [(d.src, d.ts_us) for d in got] == [("192.0.2.7", 1_700_000_000_123_456),
                                              ("2001:db8::7", 1_700_000_000_123_456)]
    pb = write_pcapng(tmp_path / "b.pcapng", [(1, 6)], [(0, 5_000_000, e)], endian=">")
    assert only(pb, arrival="capture").ts_us == 5_000_000


def test_corpus_sll_capture():
    p = next(CORPUS.glob("112-*/traffic-00.pcap"))
    frames = list(read_frames(str(p)))
    assert {lt for lt, _, _ in frames} == {113}
    got = list(read_datagrams(str(p)))
    assert len(got) == 21 and all(d.src == "2001:db8:90::1" for d in got)


def test_not_a_capture(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a pcap")
    with pytest.raises(SavefileError):
        SavefileSource(str(bad))
    with pytest.raises(FileNotFoundError):
        SavefileSource(str(tmp_path / "missing.pcap"))


def test_truncated_file_stops_cleanly(tmp_path):
    p = write_pcap(tmp_path / "a.pcap", [(1.0, bytes(Ether() / udp4()))] * 3)
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    assert len(list(read_datagrams(str(p)))) == 2


def test_replay_delay_and_batches(tmp_path):
    p = write_pcap(tmp_path / "a.pcap", [(1.0 + i, bytes(Ether() / udp4(sport=1000 + i))) for i in range(5)])
    slept = []
    src = SavefileSource(str(p), delay=3, replay=2, sleep=slept.append)
    batches = list(src.batches(max_datagrams=2))
    assert [len(b) for b in batches] == [2, 2, 1, 2, 2, 1]
    assert slept == [3, 3] and src.rounds == 2 and src.done
    # arrival time is the wall clock by default, as in pmacct
    assert batches[0][0].ts_us > 1_600_000_000_000_000
    src = SavefileSource(str(p), arrival="capture")
    assert [d.ts_us for b in src.batches() for d in b] == [(1 + i) * 1_000_000 for i in range(5)]


def test_endless_replay_keeps_going(tmp_path):
    p = write_pcap(tmp_path / "a.pcap", [(1.0, bytes(Ether() / udp4()))])
    src = SavefileSource(str(p), replay=-1)
    it = src.batches()
    for _ in range(5):
        assert len(next(it)) == 1
    assert not src.done


def test_frame_parser_never_raises_on_garbage():
    import random
    rnd = random.Random(3)
    fp = FrameParser()
    base = bytes(Ether() / Dot1Q() / udp4()) + bytes(Ether() / udp6())
    for _ in range(20000):
        b = bytearray(base[:rnd.randrange(len(base))])
        for _ in range(rnd.randrange(4)):
            if b:
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        for lt in (0, 1, 101, 108, 113, 276):
            got = fp.parse(lt, bytes(b))
            assert got is None or (isinstance(got[2], bytes) and got[3] in (6, 17))


@pytest.mark.oracle
def test_pmacct_reads_every_udp_datagram_and_tcp_payloads_too(pmacct_nfacctd, tmp_path):
    """The experiment behind the module docstring: exports to the collector port, to
    another port, to DNS's, and one carried in a TCP segment all count in nfacctd."""
    frames = []
    for i, (l4, port) in enumerate([("udp", 2100), ("udp", 9992), ("udp", 53), ("tcp", 179)]):
        p = v5([v5_record(src=f"10.0.0.{i + 1}", pkts=i + 1)], seq=i)
        seg = UDP(sport=3000, dport=port) if l4 == "udp" else TCP(sport=3000, dport=port, flags="PA")
        frames.append((1.0 + i, bytes(Ether() / IP(src="192.0.2.50", dst="198.51.100.1") / seg / Raw(p))))
    pcap = write_pcap(tmp_path / "ports.pcap", frames)
    theirs = {(r["SRC_IP"], r["PACKETS"]) for r in
              O.run_nfacctd(str(pcap), ("src_host",), binary=str(pmacct_nfacctd))}
    assert theirs == {("10.0.0.1", "1"), ("10.0.0.2", "2"), ("10.0.0.3", "3"), ("10.0.0.4", "4")}
    dec, _ = decoder()
    src = SavefileSource(str(pcap))
    recs = [r for b in src.batches() for r in dec.decode(b).records]
    assert sorted(int(r["packets"]) for r in recs) == [1, 2, 3, 4]


MAC = "02:00:00:00:00:01"       # scapy looks a missing one up on the network, slowly


@functools.lru_cache(maxsize=1)
def _mixed_frames():
    """Frames the batch reader parses itself (Ethernet, one VLAN tag, IPv4/UDP) between
    frames it leaves to the frame parser (IPv6, QinQ, TCP, fragments, ARP, cut short)."""
    import random
    rnd = random.Random(9)
    ETH = Ether(dst=MAC, src=MAC)
    kinds = [
        lambda i: ETH / udp4(src=f"192.0.2.{i % 7}", sport=1000 + i),
        lambda i: ETH / Dot1Q(vlan=i) / udp4(sport=2000 + i),
        lambda i: ETH / Dot1AD(vlan=2) / Dot1Q(vlan=i) / udp4(sport=3000 + i),
        lambda i: ETH / udp6(sport=4000 + i),
        lambda i: ETH / tcp4(PAYLOAD, sport=4739),
        lambda i: Ether(dst=MAC, src=MAC, type=0x0806) / Raw(b"\0" * 28),
        lambda i: ETH / IP(src="192.0.2.1", dst="198.51.100.1", len=0) / UDP(sport=5) / Raw(PAYLOAD),
        lambda i: ETH / udp4(payload=PAYLOAD * (i % 40)),
    ]
    frames = []
    for i in range(600):
        fr = bytes(rnd.choice(kinds)(i))
        if rnd.random() < 0.05:
            fr = fr[:rnd.randrange(len(fr))]
        frames.append((1.0 + i / 1000, fr))
    for f in fragment(udp4(payload=PAYLOAD * 30), fragsize=200):
        frames.insert(rnd.randrange(len(frames)), (2.0, bytes(ETH / f)))
    return tuple(frames)


@pytest.mark.parametrize("chunk", [64, 999, 1 << 22])
@pytest.mark.parametrize("size", [1, 7, 2048])
def test_batches_match_frame_by_frame_reading(tmp_path, monkeypatch, chunk, size):
    import pypmacct.sources.savefile as sf
    monkeypatch.setattr(sf, "_READ_CHUNK", chunk)
    p = str(write_pcap(tmp_path / "m.pcap", _mixed_frames()))
    want = [tuple(d) for d in read_datagrams(p, arrival="capture")]
    src = SavefileSource(p, arrival="capture")
    batches = list(src.batches(size))
    assert all(isinstance(b, sf.DatagramBatch) for b in batches)
    assert [len(b) for b in batches[:-1]] == [size] * (len(batches) - 1)
    assert [tuple(d) for b in batches for d in b] == want
    assert src.frames == len(_mixed_frames()) and src.skipped == src.frames - len(want)
    b = batches[-1]
    assert b[-1] == b[len(b) - 1] and b[0:2] == list(b)[0:2]


def test_linux_cooked_and_raw_ip_batches(tmp_path):
    for lt, wrap in ((113, lambda f: bytes(CookedLinux() / f)), (276, lambda f: bytes(CookedLinuxV2(proto=0x0800) / f)),
                     (101, bytes), (228, bytes)):
        frames = [(1.0, wrap(udp4(sport=1000 + i))) for i in range(5)] + [(2.0, wrap(udp6()))]
        p = str(write_pcap(tmp_path / f"{lt}.pcap", frames, linktype=lt))
        got = [tuple(d) for b in SavefileSource(p, arrival="capture").batches(4) for d in b]
        assert got == [tuple(d) for d in read_datagrams(p, arrival="capture")]
        assert [d[2] for d in got] == [1000, 1001, 1002, 1003, 1004, 2055]


def test_a_batch_decodes_like_its_datagrams(tmp_path):
    from tests.support.flowgen import GenParams, generate
    exp = generate(GenParams(version=10, records=2000, exporters=3, nat=True, sampling=4))
    p = str(exp.write_pcap(tmp_path / "g.pcap"))
    d1, _ = decoder()
    d2, _ = decoder()
    n = 0
    for b in SavefileSource(p, arrival="capture").batches(50):
        r1, r2 = d1.decode(b), d2.decode(list(b))
        assert r1.records.tobytes() == r2.records.tobytes()
        n += len(r1.records)
    assert n == 2000
    assert {k: v.as_dict() for k, v in d1.stats.exporters.items()} == \
        {k: v.as_dict() for k, v in d2.stats.exporters.items()}
