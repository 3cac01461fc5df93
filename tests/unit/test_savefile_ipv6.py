"""The savefile source's vectorised IPv6 UDP path gives what the frame-by-frame parser
gives: same payloads, senders and ports, in file order, on every link type it takes."""
from __future__ import annotations

import struct

import pytest

from pypmacct.sources.savefile import SavefileSource, read_datagrams
from tests.support import pcapio


def frames_for(linktype):
    out = []
    for i in range(40):
        src = f"2001:db8::{i % 7 + 1:x}" if i % 5 else "::ffff:192.0.2.9"   # mapped: slow path
        dst = "2001:db8::ffff" if i % 5 else "::ffff:192.0.2.250"
        payload = bytes([i]) * (i * 3)
        if linktype == pcapio.LINKTYPE_RAW:
            out.append(pcapio.udp_frame(src, dst, 1000 + i, 2055, payload, linktype=linktype))
            continue
        eth = pcapio.udp_frame(src, dst, 1000 + i, 2055, payload)
        if linktype == pcapio.LINKTYPE_LINUX_SLL:
            out.append(struct.pack("!HHH8sH", 0, 1, 6, eth[6:12] + b"\0\0", 0x86DD) + eth[14:])
        elif i % 2:                                        # every other frame 802.1Q-tagged
            out.append(eth[:12] + b"\x81\x00\x00\x07" + eth[12:])
        else:
            out.append(eth)
    return out


@pytest.mark.parametrize("linktype", [pcapio.LINKTYPE_ETHERNET, pcapio.LINKTYPE_RAW,
                                      pcapio.LINKTYPE_LINUX_SLL])
def test_ipv6_fast_path_equals_frame_parser(tmp_path, linktype, monkeypatch):
    path = tmp_path / "v6.pcap"
    with pcapio.PcapWriter(path, linktype=linktype) as w:
        for k, f in enumerate(frames_for(linktype)):
            w.write(1_700_000_000_000_000_000 + k * 1000, f)
    from pypmacct.sources import savefile
    calls = []
    real = savefile.FrameParser.parse
    monkeypatch.setattr(savefile.FrameParser, "parse",
                        lambda self, lt, f: calls.append(1) or real(self, lt, f))
    fast = [(d.payload, d.src, d.port) for b in SavefileSource(str(path), arrival="capture").batches(7)
            for d in b]
    assert len(calls) == 8            # only the IPv4-mapped senders went frame by frame
    monkeypatch.undo()
    slow = [(d.payload, d.src, d.port) for d in read_datagrams(str(path))]
    assert fast == slow
    assert len(fast) == 40
    assert fast[1][1] == "2001:db8::2" and fast[0][1] == "192.0.2.9"
