"""pmacctd's flow buffer (pypmacct/decoders/ipflows.py): lifetimes against a fake clock,
checked against pmacct 1.7.7's rules (ip_flow.c): sides, TCP FIN/RST/SYN lifetimes."""
import numpy as np

from pypmacct.decoders.ipflows import FlowTable


def addr(s):
    a = np.zeros(16, np.uint8)
    a[:4] = [int(x) for x in s.split(".")]
    return a


def pkts(rows):
    """rows: (src, dst, proto, sport, dport, tcpflags, seq)"""
    n = len(rows)
    return dict(af=np.full(n, 4, np.uint8),
                src=np.array([addr(r[0]) for r in rows]), dst=np.array([addr(r[1]) for r in rows]),
                proto=np.array([r[2] for r in rows]), sport=np.array([r[3] for r in rows]),
                dport=np.array([r[4] for r in rows]), tcpflags=np.array([r[5] for r in rows]),
                seq=np.array([r[6] for r in rows]))


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


def test_sides_and_generic_lifetime():
    c = Clock()
    t = FlowTable(lifetime=20, clock=c)
    a = ("10.0.0.1", "10.0.0.2", 17, 5000, 53, 0, 0)
    b = ("10.0.0.2", "10.0.0.1", 17, 53, 5000, 0, 0)
    assert t.new_flows(**pkts([a, a, b, b])).tolist() == [1, 0, 1, 0]
    c.t += 20
    assert t.new_flows(**pkts([a])).tolist() == [0]       # not past the lifetime
    c.t += 15
    assert t.new_flows(**pkts([a, b])).tolist() == [0, 1]  # a was refreshed at +20


def test_tcp_fin_rst_and_established():
    c = Clock()
    t = FlowTable(lifetime=60, tcp_lifetime=500, clock=c)
    syn = ("10.0.0.1", "10.0.0.2", 6, 40000, 80, 0x02, 100)
    synack = ("10.0.0.2", "10.0.0.1", 6, 80, 40000, 0x12, 900)
    ack = ("10.0.0.1", "10.0.0.2", 6, 40000, 80, 0x10, 101)
    back = ("10.0.0.2", "10.0.0.1", 6, 80, 40000, 0x10, 901)
    assert t.new_flows(**pkts([syn, synack, ack])).tolist() == [1, 1, 0]
    c.t += 400                      # established: the TCP lifetime (500) applies
    assert t.new_flows(**pkts([ack, back])).tolist() == [0, 0]
    fin = ("10.0.0.1", "10.0.0.2", 6, 40000, 80, 0x11, 150)
    assert t.new_flows(**pkts([fin])).tolist() == [0]
    c.t += 31                       # a FIN marks both sides: 30 s
    assert t.new_flows(**pkts([ack, back])).tolist() == [1, 1]
    rst = ("10.0.0.2", "10.0.0.1", 6, 80, 40000, 0x04, 0)
    assert t.new_flows(**pkts([rst])).tolist() == [0]
    c.t += 11
    assert t.new_flows(**pkts([back, ack])).tolist() == [1, 1]


def test_full_buffer_skips_new_flows():
    c = Clock()
    t = FlowTable(buffer_size=208 * 3, lifetime=10, clock=c)
    rows = [("10.0.0.1", "10.0.0.2", 17, 1000 + i, 53, 0, 0) for i in range(5)]
    assert t.new_flows(**pkts(rows)).tolist() == [1, 1, 1, 0, 0]
    assert t.skipped_flows == 2
    c.t += 100                      # all expired: the emergency prune makes room
    assert t.new_flows(**pkts(rows[3:])).tolist() == [1, 1]


def test_pcap_ifindex_hash_is_pmacct_jhash():
    """Values printed by pmacct 1.7.7's jhash(name, strlen(name), 0) (its jhash.h
    compiled on its own): short names, a 12-byte block and a tail."""
    from pypmacct.sources.capture import jhash_name
    assert jhash_name("lo") == 2529615826
    assert jhash_name("eth0") == 2142326192
    assert jhash_name("enp0s31f6") == 2998897520
    assert jhash_name("veth-abcdefgh12") == 2877022371
    assert jhash_name("wlp3s0longername0") == 3822262298
