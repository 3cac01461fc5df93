"""The tee plugin's parts: the tee_receivers map, the datagram ring, the per-datagram
header fields and tags, and the transparent IP/UDP headers."""
from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from pypmacct.maps.pretag import PreTagMap
from pypmacct.maps.tee_receivers import TeeMapError, read_receivers
from pypmacct.ring import DatagramRing
from pypmacct.runtime.tee import TeeCore
from pypmacct.runtime.stats import Stats
from pypmacct.plugins.tee_plugin import TeePlugin, _checksum


class Log:
    def __init__(self):
        self.lines = []

    def warn(self, m):
        self.lines.append(m)

    info = debug = error = warn

    def limited(self, key, m, level="WARN", interval=60.0):
        self.lines.append(m)


def write(tmp_path, text, name="r.lst"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ---- tee_receivers ------------------------------------------------------------------
def test_receivers_map_pools(tmp_path):
    path = write(tmp_path, "! comment\n"
                 "id=1\tip=192.0.2.1:2100\n"
                 "id=2 ip=192.0.2.2:2100,[2001:db8::1]:2101 tag=105,110-120 \\\n"
                 "  balance-alg=rr src_port=5000\n"
                 "id=3 ip=localhost:9 tag=-150 balance-alg=hash-tag\n")
    pools = read_receivers(path, Log())
    assert [p.id for p in pools] == [1, 2, 3]
    assert [(r.host, r.port) for r in pools[1].receivers] == [("192.0.2.2", 2100),
                                                             ("2001:db8::1", 2101)]
    assert pools[1].receivers[1].family == socket.AF_INET6
    assert pools[1].balance == "rr" and pools[1].src_port == 5000
    assert pools[0].balance is None and pools[0].tag_filter is None
    tags = np.array([0, 105, 109, 110, 120, 121, 150], dtype=np.uint64)
    assert pools[1].tag_filter(tags).tolist() == [False, True, False, True, True, False, False]
    assert pools[2].tag_filter(tags).tolist() == [True, True, True, True, True, True, False]


@pytest.mark.parametrize("line, message", [
    ("id=0 ip=192.0.2.1:2100", "Invalid Pool ID"),
    ("id=x ip=192.0.2.1:2100", "Invalid Pool ID"),
    ("id=1 ip=192.0.2.1", "No valid receivers"),
    ("id=1 ip=192.0.2.1:0", "No valid receivers"),
    ("id=1", "'ip' must be specified"),
    ("ip=192.0.2.1:2100", "Invalid pool 'id'"),
    ("id=1 ip=192.0.2.1:2100 colour=red", "unknown key 'colour'"),
    ("id=1 ip=192.0.2.1:2100 tag=abc", "is not a tag"),
])
def test_receivers_map_bad_lines_are_skipped(tmp_path, line, message):
    log = Log()
    pools = read_receivers(write(tmp_path, line + "\nid=9 ip=192.0.2.9:1\n"), log)
    assert [p.id for p in pools] == [9]
    assert any(message in m and ":1]" in m for m in log.lines), log.lines


def test_receivers_map_limits_and_duplicates(tmp_path):
    log = Log()
    path = write(tmp_path, "id=1 ip=192.0.2.1:1,192.0.2.2:1,192.0.2.3:1\n"
                 "id=1 ip=192.0.2.4:1\n"
                 "id=2 ip=192.0.2.5:1,bad,192.0.2.6:1 balance-alg=fancy\n"
                 "id=3 ip=192.0.2.7:1\n")
    pools = read_receivers(path, log, max_pools=2, max_receivers=2)
    # a duplicate id loads, as in 1.7.7 (with a warning)
    assert [(p.id, [r.host for r in p.receivers]) for p in pools] == [
        (1, ["192.0.2.1", "192.0.2.2"]), (1, ["192.0.2.4"])]
    log2 = Log()
    pools = read_receivers(path, log2, max_pools=3, max_receivers=2)
    assert pools[2].id == 2 and [r.host for r in pools[2].receivers] == ["192.0.2.5",
                                                                         "192.0.2.6"]
    assert pools[2].balance is None
    log.lines += log2.lines
    text = "\n".join(log.lines)
    for m in ("Maximum amount of receivers per pool", "Duplicate Pool ID specified: 1",
              "Invalid receiver bad", "Unknown balance algorithm 'fancy'",
              "Maximum amount of receivers pool reached: 2"):
        assert m in text


@pytest.mark.parametrize("line", ["id=1 kafka_broker=127.0.0.1:9092 kafka_topic=t",
                                  "id=1 zmq_address=127.0.0.1:5000"])
def test_receivers_map_features_we_lack_stop(tmp_path, line):
    with pytest.raises(TeeMapError):
        read_receivers(write(tmp_path, line + "\n"), Log())


# ---- the datagram ring ----------------------------------------------------------------
def test_datagram_ring_round_trip_and_drops():
    ring = DatagramRing(16 * 2048, 2048)
    payloads = [bytes([i]) * (100 + 37 * i) for i in range(30)] + [b"x" * 5000]
    fams = [4, 6] * 15 + [4]
    addrs = [bytes(range(16))[::-1] if f == 6 else bytes([192, 0, 2, i]) + bytes(12)
             for i, f in enumerate(fams)]
    ports = list(range(1000, 1031))
    tags = np.arange(31, dtype=np.uint64) * 7
    tag2s = np.arange(31, dtype=np.uint64) + 2**63
    dropped = ring.write_messages(payloads, fams, addrs, ports, tags, tag2s)
    assert dropped == 1 and ring.dropped_records == 1    # 5000 bytes do not fit a slot
    got, slots = [], 0
    while (m := ring.read()) is not None:
        slots += 1
        got += list(zip(m.payloads, m.families, m.addrs, m.ports, m.tags.tolist(),
                        m.tag2s.tolist()))
    assert got == list(zip(payloads[:30], fams[:30], addrs[:30], ports[:30],
                           tags[:30].tolist(), tag2s[:30].tolist()))
    assert slots < 30                                     # slots hold several datagrams


def test_datagram_ring_full_drops_and_counts():
    ring = DatagramRing(2 * 1024, 1024)
    p = b"y" * 900
    assert ring.write_messages([p] * 5, [4] * 5, [bytes(16)] * 5, [1] * 5,
                               np.zeros(5, np.uint64), np.zeros(5, np.uint64)) == 3
    assert ring.dropped_records == 3 and ring.dropped_chunks == 3


# ---- per-datagram records ------------------------------------------------------------
def _v5(engine_type, engine_id):
    return struct.pack("!HHIIIIBBH", 5, 0, 0, 0, 0, 0, engine_type, engine_id, 0)


def _v9(source_id):
    return struct.pack("!HHIIII", 9, 0, 0, 0, 0, source_id) + bytes(8)


def _ipfix(domain):
    return struct.pack("!HHIII", 10, 16, 0, 0, domain) + bytes(8)


def test_header_fields_and_checks():
    core = TeeCore("nfacctd", None, Stats(), Log())
    payloads = [_v5(3, 7), _v9(0x01020304), _ipfix(99), b"\x00\x07" + bytes(30), _v5(1, 1)[:20]]
    recs, keep = core.records(payloads, ["192.0.2.1", "2001:db8::1", "192.0.2.1",
                                         "192.0.2.2", "192.0.2.3"])
    assert keep.tolist() == [True, True, True, False, False]
    assert recs["engine_type"][:3].tolist() == [3, 0, 0]
    assert recs["engine_id"][:3].tolist() == [7, 0, 0]
    assert recs["export_proto_sysid"][:3].tolist() == [0, 0x01020304, 99]
    assert recs["export_proto_version"][:3].tolist() == [5, 9, 10]
    assert recs["peer_src_ip"]["af"][:2].tolist() == [4, 6]
    assert bytes(recs["peer_src_ip"]["addr"][1]) == socket.inet_pton(socket.AF_INET6,
                                                                    "2001:db8::1")


def test_sflow_header_fields():
    core = TeeCore("sfacctd", None, Stats(), Log())
    v5 = struct.pack("!II4sII", 5, 1, bytes([10, 0, 0, 1]), 42, 1) + bytes(8)
    v5six = struct.pack("!II16sII", 5, 2, bytes(16), 77, 1)
    v4 = struct.pack("!II4sI", 4, 1, bytes(4), 1) + bytes(8)
    recs, keep = core.records([v5, v5six, v4, struct.pack("!I", 3) + bytes(20)],
                              ["192.0.2.1"] * 4)
    assert keep.tolist() == [True, True, True, False]
    assert recs["export_proto_sysid"][:3].tolist() == [42, 77, 0]


def test_tee_pretag_map_dictionary(tmp_path):
    """1.7.7 reads a tee plugin's map with the tee dictionary: other keys skip the line."""
    path = write(tmp_path, "set_tag=1 ip=192.0.2.1\n"
                 "set_tag=2 ip=192.0.2.2 filter='tcp'\n"
                 "set_label=x ip=192.0.2.3\n"
                 "set_tag=4 ip=192.0.2.0/24 engine_id=7\n"
                 "set_tag2=5 source_id=99\n", "p.map")
    log = Log()
    m = PreTagMap(path, "nfacctd", log, tee=True)
    assert [r.lineno for r in m.rules] == [1, 4, 5]
    assert sum("unknown key" in l for l in log.lines) == 2
    core = TeeCore("nfacctd", None, Stats(), Log())
    recs, _ = core.records([_v5(0, 0), _v5(0, 7), _v5(0, 7), _ipfix(99)],
                           ["192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.1"])
    recs, _ = m.tag_batch(recs, [""])
    assert recs["tag"].tolist() == [1, 4, 4, 0]
    assert recs["tag2"].tolist() == [0, 0, 0, 5]
    assert not m.complex
    # a key that needs each flow split out makes the map "complex" (1.7.7's word)
    m2 = PreTagMap(write(tmp_path, "set_tag=1 ip=192.0.2.1 vlan=10\n", "q.map"), "nfacctd",
                   Log(), tee=True)
    assert len(m2.rules) == 1 and m2.complex and "'vlan'" in m2.dissect_lines[0]
    # the same map for a data plugin keeps every line
    assert len(PreTagMap(path, "nfacctd", Log()).rules) == 5


# ---- transparent headers ---------------------------------------------------------------
class _Cfg:
    name = "t"

    def __init__(self, values):
        self.values = values

    def get(self, k):
        return self.values.get(k)

    def where(self, k):
        return None


class _Ctx:
    daemon = "nfacctd"


def _plugin(tmp_path, **values):
    values.setdefault("tee_receivers", write(tmp_path, "id=1 ip=127.0.0.1:2100,[::1]:2101\n"))
    return TeePlugin(_Cfg(values), _Ctx())


def test_transparent_ipv4_header(tmp_path):
    p = _plugin(tmp_path, tee_ipprec=5)
    r4 = p.pools[0].receivers[0]
    pkt = p._craft(4, bytes([203, 0, 113, 9]) + bytes(12), 50001, r4, b"hello")
    assert pkt == (bytes([0x45, 5 << 5]) + struct.pack("!H", 33) + bytes(4) + bytes([255, 17])
                   + bytes(2) + bytes([203, 0, 113, 9, 127, 0, 0, 1])
                   + struct.pack("!HHHH", 50001, 2100, 13, 0) + b"hello")
    assert p._craft(6, bytes(16), 1, r4, b"x") is None        # cannot bridge families


def test_transparent_ipv6_header_checksum(tmp_path):
    p = _plugin(tmp_path)
    r6 = p.pools[0].receivers[1]
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::5")
    pkt = p._craft(6, src, 4000, r6, b"abc")
    ip, udp = pkt[:40], pkt[40:]
    assert struct.unpack("!IHBB", ip[:8]) == (6 << 28, 11, 17, 255)
    assert ip[8:24] == src and ip[24:40] == socket.inet_pton(socket.AF_INET6, "::1")
    assert udp[8:] == b"abc"
    pseudo = src + ip[24:40] + struct.pack("!I3xB", 11, 17)
    assert _checksum(pseudo + udp) == 0                        # the checksum verifies


def test_plugin_refusals(tmp_path):
    from pypmacct.config import ConfigError
    with pytest.raises(ConfigError, match="tee_receivers is required"):
        TeePlugin(_Cfg({}), _Ctx())
    with pytest.raises(ConfigError, match="Kafka or ZeroMQ"):
        _plugin(tmp_path, tee_receivers=write(
            tmp_path, "id=1 zmq_address=127.0.0.1:5000\n", "c.lst"))

    class Pm:
        daemon = "pmacctd"
    with pytest.raises(ConfigError, match="only in nfacctd and sfacctd"):
        TeePlugin(_Cfg({"tee_receivers": "x"}), Pm())



def test_seqno_for_debug_lines():
    from pypmacct.plugins.tee_plugin import _seqno
    v5 = struct.pack("!HHIIIIBBH", 5, 1, 0, 0, 0, 4242, 0, 0, 0)
    v9 = struct.pack("!HHIIII", 9, 1, 0, 0, 77, 0)
    ipfix = struct.pack("!HHIII", 10, 16, 0, 88, 0)
    sf4 = struct.pack("!II4sII", 5, 1, bytes(4), 0, 99)
    sf6 = struct.pack("!II16sII", 5, 2, bytes(16), 0, 55)
    assert [_seqno(p, "nfacctd") for p in (v5, v9, ipfix)] == [4242, 77, 88]
    assert [_seqno(p, "sfacctd") for p in (sf4, sf6)] == [99, 55]
