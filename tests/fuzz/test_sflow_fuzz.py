"""Fuzzed sFlow and packet decoding: nothing raises, no internal error is hit, bad input
is counted, and good datagrams in the same batch still decode."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from pypmacct.decoders import packet as pkt
from pypmacct.decoders.sflow import SflowDecoder, SflowOptions
from pypmacct.runtime.log import Logger
from pypmacct.sources import Datagram
from tests.support import sflowgen

_CAP = sflowgen.generate(sflowgen.SflowParams(seed=5, datagrams=40, versions=(4, 5)))
GOOD = [payload for _src, payload in _CAP.datagrams]


def _decoder():
    return SflowDecoder(SflowOptions(), log=Logger("fuzz", "core"))


def _dg(payload, src="192.0.2.1"):
    return Datagram(bytes(payload), src, 6343, 1_700_000_000_000_000)


def _good_count():
    return len(_decoder().decode([_dg(p) for p in GOOD]))


GOOD_RECORDS = _good_count()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_never_break_the_decoder(blobs):
    dec = _decoder()
    batch = dec.decode([_dg(b) for b in blobs] + [_dg(p) for p in GOOD])
    assert dec.errors == 0, dec.last_error
    # random bytes rarely make a valid sample; the good datagrams decode as before
    assert len(batch) >= GOOD_RECORDS


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD) - 1), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                 min_size=1, max_size=6),
       st.integers(0, 10_000))
def test_mutated_datagrams_never_break_the_decoder(which, flips, cut):
    raw = bytearray(GOOD[which])
    for pos, val in flips:
        raw[pos % len(raw)] = val
    raw = raw[:max(cut, 0) % (len(raw) + 1)] if cut % 3 == 0 else raw
    dec = _decoder()
    batch = dec.decode([_dg(raw)] + [_dg(p) for p in GOOD])
    assert dec.errors == 0, dec.last_error
    assert len(batch) >= GOOD_RECORDS - 30       # the mutated datagram's own samples may go
    assert dec.stats.totals().datagrams == len(GOOD) + 1


def test_bad_datagrams_are_counted():
    dec = _decoder()
    dec.decode([_dg(b"\x00\x00\x00\x05"), _dg(b"\x00\x00\x00\x09" + bytes(40)), _dg(GOOD[0][:30])])
    assert dec.stats.exporter("192.0.2.1").bad_datagrams == 3
    assert dec.errors == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=16),
       st.sampled_from(sorted(set(pkt.LINKTYPE_KINDS.values()) | {pkt.K_MPLS})))
def test_packet_parser_takes_anything(frames, kind):
    buf = b"".join(frames)
    lens = np.array([len(f) for f in frames], np.int64)
    starts = np.cumsum(lens) - lens
    r = pkt.parse(buf, starts, lens, kind)
    assert r.n == len(frames)
    # nothing is read past a packet's own bytes: a cut packet never claims a transport header
    assert not (r.l4 & (r.l4_off + 4 > starts + lens)).any()


def _nflog_message(payload: bytes, family=2, indev=3):
    import struct as st
    from pypmacct.sources import nflog
    attrs = nflog._attr(nflog.A_INDEV, st.pack("!I", indev)) + nflog._attr(nflog.A_PAYLOAD, payload)
    body = st.pack("!BBH", family, 0, 5) + attrs
    return nflog._NLH.pack(16 + len(body), (nflog.NFNL_SUBSYS_ULOG << 8), 0, 0, 0) + body


def test_nflog_messages_are_found_and_decoded():
    from scapy.layers.inet import IP, UDP
    from pypmacct.decoders.frames import FrameDecoder
    from pypmacct.sources.nflog import parse_messages
    pkts = [bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=1000 + i) / (b"x" * i))
            for i in range(50)]
    buf = b"".join(_nflog_message(p, indev=i) for i, p in enumerate(pkts))
    c = parse_messages(buf)
    assert list(c.length) == [len(p) for p in pkts]
    r = FrameDecoder().decode(c).records
    assert list(r["dst_port"]) == [1000 + i for i in range(50)]
    assert list(r["in_iface"]) == list(range(50))
    assert list(r["bytes"]) == [28 + i for i in range(50)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=120), st.binary(max_size=60).map(_nflog_message)),
                max_size=10))
def test_nflog_reader_takes_anything(parts):
    from pypmacct.decoders.frames import FrameDecoder
    from pypmacct.sources.nflog import parse_messages
    buf = b"".join(p + bytes(-len(p) % 4) for p in parts)
    c = parse_messages(buf)
    assert ((c.offset >= 0) & (c.offset + c.length <= len(buf))).all()
    FrameDecoder().decode(c)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=16), st.sampled_from([1, 101, 113, 0, 276]))
def test_frame_decoder_takes_anything(frames, linktype):
    from pypmacct.decoders.frames import FrameChunk, FrameDecoder
    lens = np.array([len(f) for f in frames], np.int64)
    c = FrameChunk(b"".join(frames), linktype, np.cumsum(lens) - lens, lens, np.zeros(len(frames), np.int64))
    b = FrameDecoder().decode(c)
    assert len(b) <= len(frames)
