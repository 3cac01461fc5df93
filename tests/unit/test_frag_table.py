"""The fragment table's size and expiry (FrameDecoder, pmacctd_frag_buffer_size) with a
fake clock: a one-entry IPv4 table skips a second datagram until the first entry's 60 s
deadline has passed and a (once a minute) emergency prune frees it."""
from __future__ import annotations

import numpy as np
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether

from pypmacct.decoders.frames import FrameChunk, FrameDecoder, FrameOptions


def _chunk(ident):
    pieces = fragment(IP(src="10.0.0.1", dst="10.0.0.2", id=ident) / UDP(sport=1000 + ident,
                      dport=53) / (b"x" * 200), fragsize=96)
    frames = [bytes(Ether() / p) for p in pieces]
    buf = b"".join(frames)
    ln = np.array([len(f) for f in frames], np.int64)
    off = np.concatenate([[0], np.cumsum(ln)[:-1]]).astype(np.int64)
    return FrameChunk(buf, 1, off, ln, np.zeros(len(ln), np.int64)), len(frames)


def test_full_table_skips_then_expires():
    now = [1000]
    d = FrameDecoder(FrameOptions(frag_buffer_size=72))     # one IPv4 datagram
    d.clock = lambda: now[0]
    logs = []

    class Log:
        def info(self, m):
            logs.append(m)
    d.log = Log()
    c1, n1 = _chunk(1)
    assert int(d.decode(c1).records["packets"].sum()) == n1
    c2, n2 = _chunk(2)
    assert len(d.decode(c2).records) == 0                  # no room: all skipped
    assert d.fragments_skipped == n2
    assert logs == ["Fragment/4 buffer full. Skipping fragments. "
                    "Increase pmacctd_frag_buffer_size"]
    now[0] += 30                                           # not expired, no new log line
    assert len(d.decode(_chunk(3)[0]).records) == 0 and len(logs) == 1
    now[0] += 31                                           # expired and a minute passed
    assert len(d.decode(_chunk(3)[0]).records) == 0        # this one prunes ...
    assert len(logs) == 2
    r = d.decode(_chunk(4)[0]).records                     # ... so the next finds room
    assert int(r["packets"].sum()) == _chunk(4)[1]
    assert set(r["src_port"].tolist()) == {1004}
