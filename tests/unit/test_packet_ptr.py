"""packet_ptr custom primitives: the file syntax (1.7.7's), where they are refused, and
the vectorised reading on hand-made frames with exact values (layer pointers, protocol
matches, pmacct's captured-length rule, the last pointer that applies winning)."""
from __future__ import annotations

import numpy as np
import pytest

from pypmacct.config import ConfigError, load_config
from pypmacct.decoders.frames import FrameChunk, FrameDecoder, FrameOptions
from pypmacct.maps.custom_primitives import parse_packet_ptr, read_primitives
from pypmacct.record import make_record_dtype


def test_packet_ptr_forms():
    assert parse_packet_ptr("l3:0x800+8") == ("l3", 0x800, 8)
    assert parse_packet_ptr("l3:34525+7") == ("l3", 0x86DD, 7)
    assert parse_packet_ptr("l4:17") == ("l4", 17, 0)
    assert parse_packet_ptr("payload") == ("payload", 0, 0)
    assert parse_packet_ptr("packet+12") == ("packet", 0, 12)
    for bad, msg in (("l5+1", "invalid packet_ptr layer"), ("mac:6", "takes no protocol"),
                     ("l4:tcp", "bad packet_ptr protocol"), ("l3+x", "bad packet_ptr offset")):
        with pytest.raises(ValueError, match=msg):
            parse_packet_ptr(bad, 3)


def test_primitives_file_with_packet_ptr(tmp_path):
    p = tmp_path / "p.lst"
    p.write_text("name=ttl packet_ptr=l3:0x800+8 packet_ptr=l3:0x86dd+7 len=1 semantics=u_int\n"
                 "name=both packet_ptr=l4:17+4 field_type=192 len=2 semantics=u_int\n"
                 "name=txt packet_ptr=payload len=vlen semantics=str\n")
    a, b, c = read_primitives(str(p), set())
    assert a.packet_ptrs == (("l3", 0x800, 8), ("l3", 0x86DD, 7)) and a.field_type == -1
    assert b.packet_ptrs == (("l4", 17, 4),) and b.field_type == 192
    assert c.vlen and c.packet_ptrs == (("payload", 0, 0),)
    p.write_text("name=r packet_ptr=payload len=vlen semantics=raw\n")
    with pytest.raises(ValueError, match="line 1: with packet_ptr, len=vlen needs semantics str"):
        read_primitives(str(p), set())
    p.write_text("name=r " + " ".join(["packet_ptr=l3"] * 9) + " len=1 semantics=u_int\n")
    with pytest.raises(ValueError, match="more than 8 'packet_ptr'"):
        read_primitives(str(p), set())


@pytest.mark.parametrize("daemon", ["nfacctd"])
def test_packet_ptr_refused_outside_pmacctd(daemon, tmp_path):
    prims = tmp_path / "p.lst"
    prims.write_text("name=ttl packet_ptr=l3:0x800+8 len=1 semantics=u_int\n")
    conf = tmp_path / "d.conf"
    conf.write_text(f"aggregate_primitives: {prims}\naggregate: ttl\n")
    with pytest.raises(ConfigError, match="line 1: packet_ptr is not supported on .* by "
                                          "pypmacct yet \\(pmacctd, uacctd and sfacctd only\\)"):
        load_config(daemon, ["-f", str(conf)])
    conf.write_text(f"aggregate_primitives: {prims}\naggregate: ttl\nplugins: print\n")
    for ok in ("pmacctd", "uacctd", "sfacctd"):
        cfg = load_config(ok, ["-f", str(conf)])
        assert [cp.name for cp in cfg.custom_primitives] == ["ttl"]


def test_uacctd_takes_the_ip_layers_only(tmp_path):
    prims = tmp_path / "p.lst"
    prims.write_text("name=ttl packet_ptr=l3:0x800+8 len=1 semantics=u_int\n"
                     "name=m packet_ptr=payload packet_ptr=mac+6 len=6 semantics=mac\n")
    conf = tmp_path / "d.conf"
    conf.write_text(f"aggregate_primitives: {prims}\naggregate: ttl\nplugins: print\n")
    with pytest.raises(ConfigError, match="line 2: packet_ptr layer 'mac' is not supported "
                                          "by uacctd"):
        load_config("uacctd", ["-f", str(conf)])


def _decode(frames, prims_text, tmp_path):
    p = tmp_path / "p.lst"
    p.write_text(prims_text)
    prims = read_primitives(str(p), set())
    dt = make_record_dtype([(cp.name, cp.dtype) for cp in prims])
    dec = FrameDecoder(FrameOptions(record_dtype=dt, packet_ptrs=tuple(prims)))
    buf = b"".join(frames)
    lens = np.array([len(f) for f in frames], np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    b = dec.decode(FrameChunk(buf, 1, offs, lens, np.zeros(len(frames), np.int64)))
    return b.records, b.strings


def _eth(payload_l3: bytes, etype=0x0800, vlan=None) -> bytes:
    h = bytes.fromhex("020000000001" "020000000002")
    if vlan is not None:
        h += (0x8100).to_bytes(2, "big") + vlan.to_bytes(2, "big")
    return h + etype.to_bytes(2, "big") + payload_l3


def _ipv4(proto: int, l4: bytes, ttl=64) -> bytes:
    total = 20 + len(l4)
    return (bytes([0x45, 0]) + total.to_bytes(2, "big") + b"\0\1\0\0" + bytes([ttl, proto])
            + b"\0\0" + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + l4)


def _udp(payload: bytes, dport=53) -> bytes:
    return (1234).to_bytes(2, "big") + dport.to_bytes(2, "big") + \
        (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload


def _ipv6(nh: int, l4: bytes, hlim=7) -> bytes:
    return (bytes.fromhex("60000000") + len(l4).to_bytes(2, "big") + bytes([nh, hlim])
            + bytes(15) + b"\1" + bytes(15) + b"\2" + l4)


def test_layers_protocols_and_the_captured_length_rule(tmp_path):
    frames = [
        _eth(_ipv4(17, _udp(b"ab\0cdefgh"), ttl=33), vlan=0x2064),   # 802.1Q, UDP
        _eth(_ipv6(17, _udp(b"xyz")), etype=0x86DD),                  # IPv6, UDP
        _eth(_ipv4(1, bytes([8, 0, 0, 0, 0, 0, 0, 0]), ttl=99)),     # ICMP: no UDP length
        _eth(_ipv4(17, _udp(b"12345"))),                              # payload of 5 bytes
        _eth(_ipv4(17, _udp(b"1234567"))),                            # ... of 7 bytes
    ]
    recs, strings = _decode(frames, (
        "name=ttl packet_ptr=l3:0x800+8 packet_ptr=l3:0x86dd+7 len=1 semantics=u_int\n"
        "name=ulen packet_ptr=l4:17+4 len=2 semantics=u_int\n"
        "name=tci packet_ptr=vlan len=2 semantics=hex\n"
        "name=dmac packet_ptr=mac len=6 semantics=mac\n"
        "name=txt packet_ptr=payload len=4 semantics=str\n"
        "name=p4 packet_ptr=payload+1 len=4 semantics=raw\n"
        "name=vtxt packet_ptr=payload len=vlen semantics=str\n"
        "name=last packet_ptr=l3+9 packet_ptr=l4:17+2 len=1 semantics=u_int\n"), tmp_path)
    assert recs["ttl"].tolist() == [33, 7, 99, 64, 64]
    assert recs["ulen"].tolist() == [17, 11, 0, 13, 15]
    assert recs["tci"].tolist() == [0x2064, 0, 0, 0, 0]
    assert bytes(recs["dmac"][0]) == bytes.fromhex("020000000001")
    txt = [strings[i] for i in recs["txt"]]
    # 4 bytes must end before the last captured byte: "1234"+"5" yes, "xyz" no
    assert txt == ["ab", "", "\x08", "1234", "1234"]
    p4 = [strings[i] for i in recs["p4"]]
    assert p4 == ["62-00-63-64", "", "00-00-00-00", "", "32-33-34-35"]
    vtxt = [strings[i] for i in recs["vtxt"]]
    # to the end of the capture, its last byte excluded, up to a NUL
    assert vtxt == ["ab", "xy", "\x08", "1234", "123456"]
    # l3+9 is the IPv4 protocol (IPv6: the hop limit's neighbour); l4:17+2 overwrites
    # it for UDP (the destination port's high byte, 0)
    assert recs["last"].tolist() == [0, 0, 1, 0, 0]


def test_packet_ptr_texts_with_a_classifier(tmp_path):
    """With the class primitive the texts join the classifier's string table after the
    class names, once each, in every batch."""
    from pypmacct.classifiers import FlowClassifier, load_classifiers
    pats = tmp_path / "cl"
    pats.mkdir()
    (pats / "hello.pat").write_text("hello\n^hello\n")
    cl = FlowClassifier(load_classifiers(str(pats)))
    p = tmp_path / "p.lst"
    p.write_text("name=pay packet_ptr=payload len=3 semantics=str\n")
    prims = read_primitives(str(p), set())
    dt = make_record_dtype([(cp.name, cp.dtype) for cp in prims])
    dec = FrameDecoder(FrameOptions(record_dtype=dt, packet_ptrs=tuple(prims), classifier=cl))
    frames = [_eth(_ipv4(17, _udp(b"hello world"))), _eth(_ipv4(17, _udp(b"abcdef")))]
    buf = b"".join(frames)
    lens = np.array([len(f) for f in frames], np.int64)
    chunk = FrameChunk(buf, 1, np.array([0, lens[0]]), lens, np.zeros(2, np.int64))
    for _ in range(2):
        b = dec.decode(chunk)
        texts = [b.strings[i] for i in b.records["pay"]]
        if len(b.records):
            assert texts == ["hel", "abc"][:len(texts)] or sorted(texts) == ["abc", "hel"]
        assert b.strings[:2] == ["", "hello"]
        assert b.strings.count("hel") <= 1
