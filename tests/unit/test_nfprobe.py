"""nfprobe: the flow table, datagram cutting and the plugin's configuration checks."""
from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest

from pypmacct.config import ConfigError, load_config
from pypmacct.plugins.base import PluginContext
from pypmacct.plugins.nfprobe_plugin import NfprobePlugin, parse_receiver
from pypmacct.probe.export import ExportOptions, Exporter
from pypmacct.probe.flowtable import R_OVERFLOWS, R_TCP, FlowTable, Timeouts
from pypmacct.record import RECORD_DTYPE

T0 = 1_700_000_000_000_000       # microseconds


def recs(rows):
    """rows: (src, dst, proto, sport, dport, bytes, t_us, extra dict)."""
    r = np.zeros(len(rows), RECORD_DTYPE)
    for i, (src, dst, proto, sp, dp, nbytes, t, *extra) in enumerate(rows):
        for f, a in (("src_host", src), ("dst_host", dst)):
            ip = ipaddress.ip_address(a)
            r[f][i]["af"] = ip.version
            r[f][i]["addr"] = ip.packed.ljust(16, b"\0")
        r["proto"][i], r["src_port"][i], r["dst_port"][i] = proto, sp, dp
        r["packets"][i], r["bytes"][i], r["time_start"][i] = 1, nbytes, t
        for k, v in (extra[0] if extra else {}).items():
            r[k][i] = v
    return r


def table(**kw):
    return FlowTable(Timeouts(), kw.pop("version", 9), **kw)


def test_both_directions_meet_in_one_flow_lower_address_first():
    ft = table()
    ft.add(recs([("10.0.0.9", "10.0.0.1", 17, 5000, 53, 100, T0, {"tos": 8}),
                 ("10.0.0.1", "10.0.0.9", 17, 53, 5000, 300, T0 + 10, {"tos": 4}),
                 ("10.0.0.9", "10.0.0.1", 17, 5000, 53, 50, T0 + 20, {"tos": 16})]))
    assert len(ft) == 1
    f = ft.expire("all")
    assert f.addr[0, 0, :4].tobytes() == bytes([10, 0, 0, 1])
    assert f.port[0].tolist() == [53, 5000]
    assert f.octets[0].tolist() == [300, 150] and f.packets[0].tolist() == [1, 2]
    # the last packet's ToS on its side, the other side's cleared (1.7.7)
    assert f.tos[0].tolist() == [0, 16]
    assert f.start[0] == T0 and f.last[0] == T0 + 20
    assert len(ft) == 0


def test_icmp_type_and_code_in_the_destination_port_tcp_flags_ored():
    ft = table()
    ft.add(recs([("10.0.0.1", "10.0.0.2", 1, 0, 0, 84, T0, {"icmp_type": 8, "icmp_code": 0}),
                 ("10.0.0.3", "10.0.0.4", 6, 1000, 80, 60, T0, {"tcp_flags": 0x02}),
                 ("10.0.0.3", "10.0.0.4", 6, 1000, 80, 60, T0, {"tcp_flags": 0x10}),
                 ("10.0.0.3", "10.0.0.4", 132, 1000, 80, 60, T0)]))
    f = ft.expire("all")
    assert f.port.tolist() == [[0, 8 << 8], [1000, 80], [0, 0]]
    assert f.tcp_flags[1].tolist() == [0x12, 0]


def test_direction_from_tag2_first_known_per_side_and_ifindex_from_tag():
    ft = table(direction="tag2", ifindex_type=2)     # IFINDEX_TAG
    ft.add(recs([("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0, {"tag2": 0, "tag": 5}),
                 ("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0, {"tag2": 1, "tag": 5}),
                 ("10.0.0.2", "10.0.0.1", 17, 2, 1, 10, T0, {"tag2": 2, "tag": 5})]))
    # the interface is in the key: the first packet (no direction, no interface) is a
    # flow of its own; the ingress packet has input 5, the egress one output 5 — the
    # same interface pair seen from either side: one flow
    f = ft.expire("all")
    assert len(f) == 2
    assert f.ifindex.tolist() == [[0, 0], [5, 0]]
    assert f.direction.tolist() == [[0, 0], [1, 2]]
    assert f.octets.tolist() == [[10, 0], [10, 10]]


def test_static_direction_marks_only_the_first_packets_side():
    rows = [("10.0.0.2", "10.0.0.1", 6, 80, 1000, 40, T0),
            ("10.0.0.1", "10.0.0.2", 6, 1000, 80, 40, T0 + 1)]
    ft = table(direction="out")
    ft.add(recs(rows))
    f = ft.expire("all")
    # side 1 (10.0.0.2) started the flow: egress; the other side stays unknown (1.7.7
    # sets the static direction at creation only)
    assert f.direction.tolist() == [[0, 2]] and f.octets.tolist() == [[40, 40]]
    # with a static interface every packet is egress with output 7, so the two
    # directions have different interface pairs: two flows, as in 1.7.7
    ft = table(direction="out", ifindex_type=1, ifindex_value=7)
    ft.add(recs(rows))
    f = ft.expire("all")
    assert f.ifindex.tolist() == [[7, 0], [0, 7]]      # [side] is the side's input
    assert f.direction.tolist() == [[0, 2], [2, 0]]


def test_override_replaces_packet_interfaces_only_when_asked():
    rows = [("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0, {"in_iface": 3})]
    for override, want in ((False, 3), (True, 9)):
        ft = table(direction="in", ifindex_type=1, ifindex_value=9, ifindex_override=override)
        ft.add(recs(rows))
        assert ft.expire("all").ifindex[0, 0] == want


def _random_packets(n, seed):
    rng = np.random.default_rng(seed)
    hosts = [f"10.0.0.{i}" for i in range(1, 6)] + [f"2001:db8::{i}" for i in range(1, 4)]
    rows = []
    for k in range(n):
        six = rng.random() < 0.3
        pool = hosts[5:] if six else hosts[:5]
        a, b = rng.choice(len(pool), 2, replace=False)
        proto = int(rng.choice([6, 17]))
        rows.append((pool[a], pool[b], proto, int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                     int(rng.integers(40, 1500)), T0 + k * 1000,
                     {"tag2": int(rng.integers(0, 3)), "tos": int(rng.integers(0, 4)),
                      "tcp_flags": int(rng.integers(0, 64)) if proto == 6 else 0}))
    return recs(rows)


def test_batches_give_the_same_flows_as_one_batch():
    r = _random_packets(600, 3)
    one = table(direction="tag2")
    one.add(r)
    many = table(direction="tag2")
    for chunk in np.array_split(r, 17):
        many.add(chunk)
    a, b = one.expire("all"), many.expire("all")
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert int(a.octets.sum()) == int(r["bytes"].sum())
    assert int(a.packets.sum()) == len(r)


def test_timeouts_by_protocol_and_flags():
    ft = table()
    t = T0 // 1_000_000
    ft.add(recs([("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0),                          # udp
                 ("10.0.0.1", "10.0.0.3", 6, 1, 2, 10, T0, {"tcp_flags": 0x04}),        # rst
                 ("10.0.0.1", "10.0.0.4", 6, 1, 2, 10, T0, {"tcp_flags": 0x01}),        # fin one way
                 ("10.0.0.4", "10.0.0.1", 6, 2, 1, 10, T0, {"tcp_flags": 0x11}),        # ... both
                 ("10.0.0.1", "10.0.0.5", 6, 1, 2, 10, T0, {"tcp_flags": 0x10}),        # tcp
                 ("10.0.0.1", "10.0.0.6", 47, 0, 0, 10, T0)]))                           # other
    exp = dict(zip(ft.c["key"][:ft.n]["a1"].tolist(), ft.c["expires"][:ft.n].tolist()))
    last = {bytes([10, 0, 0, i]).ljust(16, b"\0"): v for i, v in
            ((2, 300), (3, 120), (4, 300), (5, 3600), (6, 3600))}
    assert {k: v - t for k, v in exp.items()} == last
    assert ft.next_check() == float(((t + 120 + 59) // 60) * 60 + 1)
    got = ft.expire("normal", t + 200)
    assert len(got) == 1 and got.proto.tolist() == [6]           # the RST one
    assert len(ft.expire("forced")) == 0 and len(ft) == 4


def test_maxlife_and_dont_cache_expire_at_once():
    ft = FlowTable(Timeouts(maxlife=5), 9)
    ft.add(recs([("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0),
                 ("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0 + 6_000_000)]))
    assert ft.next_check() == 0.0 and len(ft.expire("forced")) == 1
    ft = table(dont_cache=True)
    ft.add(recs([("10.0.0.1", "10.0.0.2", 17, 1, 2, 10, T0)] * 3))
    assert len(ft) == 3 and len(ft.expire("forced")) == 3


def test_forced_expiry_takes_the_flows_nearest_expiry_then_the_oldest():
    ft = table()
    ft.add(recs([("10.0.0.1", "10.0.0.2", 6, 1, 2, 10, T0),        # tcp: 3600
                 ("10.0.0.1", "10.0.0.3", 17, 1, 2, 10, T0),       # udp: 300
                 ("10.0.0.1", "10.0.0.4", 17, 1, 2, 10, T0)]))     # udp: 300, newer
    ft.force(2)
    assert sorted(ft.c["reason"][:3].tolist()) == [R_TCP, R_OVERFLOWS, R_OVERFLOWS]
    got = ft.expire("forced")
    assert [bytes(a[1, :4]) for a in got.addr] == [bytes([10, 0, 0, 3]), bytes([10, 0, 0, 4])]


@pytest.mark.parametrize("spec,err", [("tcp=10:bogus=3", "bogus"), ("udp=", "udp"),
                                      ("general=0", "greater than zero"), ("udp=1x", "1x")])
def test_bad_timeouts(spec, err):
    with pytest.raises(ValueError, match=err):
        Timeouts.parse(spec)


def test_timeouts_with_units():
    t = Timeouts.parse("udp=2m:tcp.rst=30:expint=1h")
    assert (t.udp, t.tcp_rst, t.expint, t.tcp) == (120, 30, 3600, 3600)


# --- datagrams ---------------------------------------------------------------------------
def _export(version, n_flows, **kw):
    ft = table(version=version)
    rows = [(f"10.{i // 250}.{i % 250}.1", "192.0.2.1", 17, 1000 + i, 53, 100 + i, T0 + i)
            for i in range(n_flows)]
    rows += [("192.0.2.1", f"10.{i // 250}.{i % 250}.1", 17, 53, 1000 + i, 50, T0 + i)
             for i in range(0, n_flows, 2)]
    ft.add(recs(rows))
    sent = []
    ex = Exporter(ExportOptions(version=version, primitives=frozenset(
        {"src_host", "dst_host", "src_port", "dst_port", "proto", "tos"}), **kw), sent.append)
    ex.export(ft.expire("all"))
    return sent, n_flows + (n_flows + 1) // 2


def test_v9_datagrams_cut_at_512_bytes_templates_every_18th():
    sent, nrec = _export(9, 300)
    assert all(len(d) <= 512 for d in sent)
    seqs = [struct.unpack(">I", d[12:16])[0] for d in sent]
    assert seqs == list(range(1, len(sent) + 1))
    with_tpl = [i for i, d in enumerate(sent) if struct.unpack(">H", d[20:22])[0] == 0]
    assert with_tpl == list(range(0, len(sent), 18))
    # v9 count: 4 templates + records; 57-byte records, 4-byte data set header, padding
    counts = [struct.unpack(">H", d[2:4])[0] for d in sent]
    assert sum(counts) - 4 * len(with_tpl) == nrec
    assert counts[1] == (512 - 20 - 4) // 57


def test_ipfix_sequence_counts_records_and_v5_holds_30():
    sent, nrec = _export(10, 100)
    seq = [struct.unpack(">I", d[8:12])[0] for d in sent]
    assert seq[0] == 0 and all(struct.unpack(">H", d[2:4])[0] == len(d) for d in sent)
    per = np.diff(seq + [nrec]).tolist()
    assert sum(per) == nrec and all(p > 0 for p in per)
    sent, nrec = _export(5, 100, engine_type=3, engine_id=4)
    counts = [struct.unpack(">H", d[2:4])[0] for d in sent]
    assert max(counts) == 30 and sum(counts) == nrec
    assert all(len(d) == 24 + 48 * c for d, c in zip(sent, counts))
    assert [struct.unpack(">I", d[16:20])[0] for d in sent] == np.cumsum([0] + counts[:-1]).tolist()
    assert {d[20:22] for d in sent} == {b"\x03\x04"}


# --- configuration -------------------------------------------------------------------------
def _plugin(tmp_path, text, daemon="pmacctd"):
    conf = tmp_path / "p.conf"
    conf.write_text("plugins: nfprobe[np]\n" + text)
    cfg = load_config(daemon, ["-f", str(conf)])
    return NfprobePlugin(cfg.plugins[0], PluginContext(daemon=daemon))


@pytest.mark.parametrize("text,err", [
    ("nfprobe_version: 7\n", "not one of 5 | 9 | 10"),
    ("nfprobe_version: 9\nnfprobe_engine: 1:2\n", "only supported on NetFlow v5"),
    ("nfprobe_version: 5\nnfprobe_engine: 12\n", "engine_type:engine_id"),
    ("nfprobe_engine: 300:1\nnfprobe_version: 5\n", "0 to 255"),
    ("nfprobe_ifindex[np]: tag3\n", "tag, tag2 or a number"),
    ("nfprobe_direction[np]: sideways\n", "not one of in | out | tag | tag2"),
    ("nfprobe_timeouts: udp=5:nope=1\n", "nope"),
    ("aggregate: src_host, class\n", "flow classes"),
    ("aggregate: src_host, std_comm\n", "BGP-related"),
    ("nfprobe_version: 10\naggregate: src_host, label\n", "label"),
    ("sampling_rate: 10\n", "sampling_rate"),
    ("nfprobe_dtls: true\n", "does not implement yet"),
])
def test_configuration_errors_stop_startup(tmp_path, text, err):
    with pytest.raises(ConfigError, match=err):
        _plugin(tmp_path, text)


def test_a_bad_value_names_its_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        _plugin(tmp_path, "nfprobe_timeouts[np]: tcp=abc\n")
    assert "p.conf:2" in str(e.value)


def test_only_pmacctd_and_uacctd_run_it(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("plugins: nfprobe\n")
    for daemon in ("nfacctd", "sfacctd"):
        with pytest.raises(ConfigError, match="not supported by"):
            load_config(daemon, ["-f", str(conf)])
    p = _plugin(tmp_path, "", daemon="uacctd")
    assert p.version == 10 and p.receiver == ("127.0.0.1", 2100)
    assert p.primitives == frozenset({"src_host", "dst_host", "src_port", "dst_port",
                                      "proto", "tos"})
    assert {"icmp_type", "icmp_code", "tag", "tag2", "in_iface"} <= p.wire_fields()


def test_receivers():
    assert parse_receiver("192.0.2.1:9995") == ("192.0.2.1", 9995)
    assert parse_receiver("[2001:db8::1]:2055") == ("2001:db8::1", 2055)
    assert parse_receiver("collector") == ("collector", 2100)
    with pytest.raises(ValueError):
        parse_receiver("192.0.2.1:0")


def test_a_source_address_not_on_this_host_stops_the_plugin(tmp_path):
    p = _plugin(tmp_path, "nfprobe_source_ip: 192.0.2.77\nnfprobe_receiver: 127.0.0.1:24003\n")
    with pytest.raises(OSError, match="from 192.0.2.77"):
        p.start()


@pytest.mark.parametrize("weak", [lambda k: np.zeros(len(k), np.uint64),
                                  lambda k: (k["p0"].astype(np.uint64) % np.uint64(3))])
def test_hash_collisions_fall_back_to_whole_keys(monkeypatch, weak):
    from pypmacct.probe import flowtable
    r = _random_packets(500, 9)
    good = table(direction="tag2")
    for chunk in np.array_split(r, 9):
        good.add(chunk)
    monkeypatch.setattr(flowtable, "_key_hash", weak)
    bad = table(direction="tag2")
    for chunk in np.array_split(r, 9):
        bad.add(chunk)
    a, b = good.expire("all"), bad.expire("all")
    assert len(a) == len(b) > 20
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_forced_expiry_between_batches_keeps_the_index_right():
    from pypmacct.probe.flowtable import _VKEY
    r = _random_packets(800, 11)
    ft = table()
    octets = packets = 0
    for chunk in np.array_split(r, 20):
        ft.add(chunk)
        keys = ft.c["key"][:ft.n].view(_VKEY).reshape(-1)
        assert len(np.unique(keys)) == ft.n                 # no flow twice
        ft.force(ft.n // 3)
        out = ft.expire("forced")
        octets += int(out.octets.sum())
        packets += int(out.packets.sum())
        assert sorted(ft._sr.tolist()) == list(range(ft.n))
    out = ft.expire("all")
    assert octets + int(out.octets.sum()) == int(r["bytes"].sum())
    assert packets + int(out.packets.sum()) == len(r)
