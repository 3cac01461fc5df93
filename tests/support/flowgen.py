"""Seeded NetFlow v5 / v9 / IPFIX export generator that keeps its ground truth.

``generate(params)`` draws flow records with numpy from a seed, encodes them as export
datagrams of the requested version and returns an :class:`Export`: the datagrams (with their
exporter address, source port and export time) plus ``truth``, a structured array holding
every record exactly as it was put on the wire, with the export header values it travelled
under (exporter, export time, sequence number, source id). Tests compute the rows pmacct
must print from ``truth`` (see ``tests/support/truth.py``).

Serialisation is vectorised: for each template ("kind") all its records are packed into one
big-endian structured array and turned into bytes with ``tobytes()``; a packet is then a
header plus slices of those buffers. A 1M-record capture takes a few seconds.

What the datagrams look like:
- One *stream* per (exporter, observation domain / source id / engine id). Records are
  assigned to streams at random, then chunked into packets in order.
- Export time of a stream's packets runs from ``base_time`` to ``base_time + duration``
  (whole seconds). Flow end = export time minus ``min_age_ms`` (0) to ``max_age_ms``;
  flow start = end minus up to ``max_duration_ms``. v5/v9 carry them as sysUpTime-relative FIRST/LAST_SWITCHED
  with each exporter booted at a whole second ``boot_age`` seconds (default one day) before
  ``base_time``; IPFIX carries flowStart/EndMilliseconds.
- Sequence numbers are correct per stream: v5 counts flows, v9 counts export packets,
  IPFIX counts data records (options data records included).
- v9/IPFIX: templates (and the sampling options template plus its data record, when
  ``sampling`` is set) at the start of a stream and again every ``template_every``
  packets. IPv4 and IPv6 records use two templates; a packet carries one data set per
  template present in it. ``padding`` pads every set to a 4-byte boundary.
  ``redefine`` re-defines the IPv4 template id halfway through each stream with another
  field order and without ToS (records after that carry tos 0 in ``truth``).
  ``nat`` adds a NEL-like template (post-NAT addresses/ports and natEvent) used by a share
  ``nat_share`` of the IPv4 records.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import pcapio

DAY_MS = 86_400_000

# --------------------------------------------------------------------------------------
# The ground truth record
# --------------------------------------------------------------------------------------
TRUTH_DTYPE = np.dtype([
    ("exporter", "u2"),          # index into Export.exporters
    ("domain", "u4"),            # v9 source id / IPFIX observation domain / v5 engine id
    ("version", "u1"),           # 5, 9, 10
    ("packet", "u4"),            # index of the datagram in Export.datagrams
    ("seqno", "u4"),             # sequence number in that datagram's header
    ("export_secs", "u4"),       # unix_secs / export time of that datagram
    ("kind", "u1"),              # template kind (KIND_*)
    ("is_v6", "?"),
    ("src_ip", "u1", (16,)),     # packed network order; IPv4 uses the first 4 bytes
    ("dst_ip", "u1", (16,)),
    ("next_hop", "u1", (16,)),
    ("bgp_next_hop", "u1", (16,)),
    ("src_port", "u2"),
    ("dst_port", "u2"),
    ("proto", "u1"),
    ("tos", "u1"),
    ("tcp_flags", "u1"),
    ("in_iface", "u4"),
    ("out_iface", "u4"),
    ("src_as", "u4"),
    ("dst_as", "u4"),
    ("src_mask", "u1"),
    ("dst_mask", "u1"),
    ("src_mac", "u1", (6,)),
    ("dst_mac", "u1", (6,)),
    ("vlan", "u2"),
    ("first_ms", "u8"),          # absolute unix milliseconds
    ("last_ms", "u8"),
    ("packets", "u8"),
    ("bytes", "u8"),
    ("mpls_depth", "u1"),
    ("mpls_labels", "u4", (3,)),  # label values (20 bit), top first
    ("sampler_id", "u1"),        # 0: none
    ("sampling_rate", "u4"),     # what the exporter announced for sampler_id (0: none)
    ("post_nat_src_ip", "u1", (4,)),
    ("post_nat_dst_ip", "u1", (4,)),
    ("post_nat_src_port", "u2"),
    ("post_nat_dst_port", "u2"),
    ("nat_event", "u1"),
])

KIND_V4, KIND_V6, KIND_NAT, KIND_V4B = 0, 1, 2, 3

# Optional field groups of the v9/IPFIX data templates (always present: addresses, ports,
# proto, first/last times, packets, bytes).
ALL_GROUPS = ("tos", "tcpflags", "ifaces", "as", "masks", "nexthop", "bgp_nexthop",
              "macs", "vlan", "mpls")
V5_GROUPS = ("tos", "tcpflags", "ifaces", "as", "masks", "nexthop")

# (information element id, length) by field name; names are truth columns or helpers
IE = {
    "src_ip4": (8, 4), "dst_ip4": (12, 4), "src_ip6": (27, 16), "dst_ip6": (28, 16),
    "src_port": (7, 2), "dst_port": (11, 2), "proto": (4, 1), "tos": (5, 1),
    "tcp_flags": (6, 1), "in_iface": (10, 4), "out_iface": (14, 4),
    "src_as": (16, 4), "dst_as": (17, 4),
    "src_mask4": (9, 1), "dst_mask4": (13, 1), "src_mask6": (29, 1), "dst_mask6": (30, 1),
    "next_hop4": (15, 4), "next_hop6": (62, 16),
    "bgp_next_hop4": (18, 4), "bgp_next_hop6": (63, 16),
    "src_mac": (56, 6), "dst_mac": (80, 6), "vlan": (58, 2),
    "last_sw": (21, 4), "first_sw": (22, 4), "start_ms": (152, 8), "end_ms": (153, 8),
    "bytes4": (1, 4), "packets4": (2, 4), "bytes8": (1, 8), "packets8": (2, 8),
    "mpls1": (70, 3), "mpls2": (71, 3), "mpls3": (72, 3),
    "sampler_id": (48, 1),
    "post_nat_src4": (225, 4), "post_nat_dst4": (226, 4),
    "post_nat_src_port": (227, 2), "post_nat_dst_port": (228, 2), "nat_event": (230, 1),
}


@dataclass(frozen=True)
class GenParams:
    version: int = 10                 # 5, 9 or 10
    records: int = 1000
    seed: int = 1
    exporters: int = 2
    exporter_family: str = "4"        # "4", "6" or "mix" (alternating)
    domains: int = 1                  # source ids / observation domains / engine ids per exporter
    ipv6_share: float = 0.25          # share of IPv6 flow records (v9/IPFIX)
    groups: tuple = ALL_GROUPS        # optional field groups in the data templates
    hosts: int = 200                  # size of the host pools (per family)
    ports: int = 40                   # size of the port pool (plus well-known ports)
    base_time: int = 1704067200       # 2024-01-01T00:00:00Z
    duration: int = 300               # seconds of export time spanned
    max_age_ms: int = 20_000          # flow end before export time, at most
    min_age_ms: int = 0               # ... and at least
    boot_age: int = 86_400            # seconds from exporter boot (sysUpTime 0) to base_time
    max_duration_ms: int = 60_000     # flow start before flow end, at most
    max_packets: int = 1000           # per record
    records_per_packet: int = 0       # 0: as many as fit in ``mtu``
    mtu: int = 1500
    template_every: int = 20          # packets between template re-sends (per stream)
    redefine: bool = False
    padding: bool = False
    sampling: int = 0                 # announce 1-out-of-N sampling via options (v9/IPFIX) or v5 header
    nat: bool = False
    nat_share: float = 0.3
    collector: str = ""               # collector address ("" = 192.0.2.1 / 2001:db8::1)
    collector_port: int = 2100
    seq_start: int = 0                # first sequence number of every stream
    flow_pool: int = 0                # >0: 5-tuples drawn from this many distinct flows

    def with_(self, **kw) -> "GenParams":
        return replace(self, **kw)


@dataclass
class Exporter:
    address: str
    port: int
    boot_ms: int                       # absolute unix ms when sysUpTime was 0


@dataclass
class Export:
    params: GenParams
    exporters: list[Exporter]
    datagrams: list[tuple[int, int, bytes]]   # (ts_ns, exporter index, payload)
    truth: np.ndarray
    template_ids: dict = field(default_factory=dict)

    @property
    def records(self) -> int:
        return len(self.truth)

    def write_pcap(self, path, fmt: str = "pcap") -> Path:
        """Write the datagrams as Ethernet/IP/UDP frames towards the collector."""
        coll = self.params.collector
        path = Path(path)
        with pcapio.open_writer(path, fmt) as w:
            for n, (ts_ns, ex, payload) in enumerate(self.datagrams):
                e = self.exporters[ex]
                is6 = ":" in e.address
                dst = coll or ("2001:db8::1" if is6 else "192.0.2.1")
                if (":" in dst) != is6:
                    dst = "2001:db8::1" if is6 else "192.0.2.1"
                w.write(ts_ns, pcapio.udp_frame(e.address, dst, e.port, self.params.collector_port,
                                                payload, ip_id=n))
        return path


# --------------------------------------------------------------------------------------
# Drawing the records
# --------------------------------------------------------------------------------------
def _exporters(p: GenParams) -> list[Exporter]:
    out = []
    for i in range(p.exporters):
        six = p.exporter_family == "6" or (p.exporter_family == "mix" and i % 2 == 1)
        addr = f"2001:db8:e::{i + 1:x}" if six else f"203.0.113.{i + 1}"
        boot_ms = (p.base_time - p.boot_age - 3_600 * i) * 1000
        out.append(Exporter(addr, 50000 + i, boot_ms))
    return out


def _pool4(rng, n, first_octet):
    a = np.zeros((n, 16), np.uint8)
    a[:, 0] = first_octet
    a[:, 1:4] = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return a


def _pool6(rng, n, tag):
    a = np.zeros((n, 16), np.uint8)
    a[:, 0:4] = np.frombuffer(bytes.fromhex("20010db8"), np.uint8)
    a[:, 4] = tag
    a[:, 5:8] = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    a[:, 14:16] = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    return a


def _draw(p: GenParams, rng: np.random.Generator, exporters: list[Exporter]) -> np.ndarray:
    n = p.records
    t = np.zeros(n, TRUTH_DTYPE)
    t["version"] = p.version
    t["exporter"] = rng.integers(0, p.exporters, n)
    t["domain"] = rng.integers(0, p.domains, n)
    if p.version != 5:
        t["domain"] += 100 if p.version == 10 else 0
    v6 = (rng.random(n) < p.ipv6_share) if p.version != 5 else np.zeros(n, bool)
    t["is_v6"] = v6
    pools4 = [_pool4(rng, p.hosts, o) for o in (10, 172, 192)]
    pools6 = [_pool6(rng, p.hosts, tag) for tag in (1, 2, 3)]

    def pick(pool4, pool6):
        i = rng.integers(0, p.hosts, n)
        return np.where(v6[:, None], pool6[i], pool4[i])

    t["src_ip"] = pick(pools4[0], pools6[0])
    t["dst_ip"] = pick(pools4[1], pools6[1])
    proto = rng.choice(np.array([6, 17, 1, 58, 47], np.uint8), n, p=[0.6, 0.3, 0.05, 0.0, 0.05])
    proto = np.where(v6 & (proto == 1), 58, proto).astype(np.uint8)
    t["proto"] = proto
    pool_ports = np.concatenate([np.array([22, 53, 80, 123, 443, 8080], np.uint16),
                                 rng.integers(1024, 65536, p.ports).astype(np.uint16)])
    sp = pool_ports[rng.integers(0, len(pool_ports), n)]
    dp = pool_ports[rng.integers(0, len(pool_ports), n)]
    l4 = (proto == 6) | (proto == 17)
    t["src_port"] = np.where(l4, sp, 0)
    # ICMP: type/code travel in the destination port, as exporters do
    icmp = (proto == 1) | (proto == 58)
    t["dst_port"] = np.where(l4, dp, np.where(icmp, rng.choice([0x0800, 0x0000, 0x0303], n), 0))
    if p.flow_pool:
        # long-lived flows exported again and again: bounded 5-tuple cardinality
        pick_flow = rng.integers(0, min(p.flow_pool, n), n)
        for col in ("is_v6", "src_ip", "dst_ip", "src_port", "dst_port", "proto"):
            t[col] = t[col][pick_flow]
        v6 = t["is_v6"].copy()
        proto = t["proto"].copy()
        l4 = (proto == 6) | (proto == 17)
    nh4 = _pool4(rng, 8, 192)
    nh6 = _pool6(rng, 8, 9)
    g = set(p.groups) if p.version != 5 else set(p.groups) & set(V5_GROUPS)
    if "nexthop" in g:
        t["next_hop"] = np.where(v6[:, None], nh6[rng.integers(0, 8, n)], nh4[rng.integers(0, 8, n)])
    if "bgp_nexthop" in g:
        t["bgp_next_hop"] = np.where(v6[:, None], nh6[rng.integers(0, 8, n)], nh4[rng.integers(0, 8, n)])
    if "tos" in g:
        t["tos"] = rng.choice(np.array([0, 0, 0, 0x10, 0x28, 0xb8], np.uint8), n)
    if "tcpflags" in g:
        t["tcp_flags"] = np.where(proto == 6, rng.choice(np.array([0x02, 0x12, 0x10, 0x18, 0x11, 0x1b, 0x04], np.uint8), n), 0)
    if "ifaces" in g:
        hi = 65535 if p.version == 5 else 70000
        t["in_iface"] = rng.choice(np.array([1, 2, 3, 10, 100, hi], np.uint32), n)
        t["out_iface"] = rng.choice(np.array([1, 2, 3, 10, 100, hi], np.uint32), n)
    if "as" in g:
        asns = np.array([0, 64496, 64511, 65000, 13335, 3356], np.uint32)
        if p.version != 5:
            asns = np.concatenate([asns, np.array([4200000000, 196608], np.uint32)])
        t["src_as"] = asns[rng.integers(0, len(asns), n)]
        t["dst_as"] = asns[rng.integers(0, len(asns), n)]
    if "masks" in g:
        t["src_mask"] = np.where(v6, rng.choice([48, 56, 64], n), rng.choice([8, 16, 24, 32], n))
        t["dst_mask"] = np.where(v6, rng.choice([32, 48, 64], n), rng.choice([0, 16, 24], n))
    if "macs" in g:
        macs = np.zeros((16, 6), np.uint8)
        macs[:, 0] = 0x02
        macs[:, 1:] = rng.integers(0, 256, (16, 5), dtype=np.uint8)
        t["src_mac"] = macs[rng.integers(0, 16, n)]
        t["dst_mac"] = macs[rng.integers(0, 16, n)]
    if "vlan" in g:
        t["vlan"] = rng.choice(np.array([0, 10, 20, 4094], np.uint16), n)
    if "mpls" in g:
        depth = rng.choice(np.array([0, 1, 2, 3], np.uint8), n, p=[0.4, 0.2, 0.2, 0.2])
        labels = rng.integers(16, 1 << 20, (n, 3), dtype=np.uint32)
        labels[np.arange(3)[None, :] >= depth[:, None]] = 0
        t["mpls_depth"] = depth
        t["mpls_labels"] = labels
    pk = np.minimum(rng.geometric(0.05, n), p.max_packets).astype(np.uint64)
    t["packets"] = pk
    t["bytes"] = pk * rng.integers(40, 1501, n).astype(np.uint64)
    if p.sampling:
        if p.version == 5:
            t["sampling_rate"] = p.sampling
        else:
            t["sampler_id"] = 1
            t["sampling_rate"] = p.sampling
    if p.nat and p.version != 5:
        nat = (~v6) & (rng.random(n) < p.nat_share)
        t["kind"] = np.where(nat, KIND_NAT, t["kind"])
        pool = _pool4(rng, 16, 100)[:, :4]
        t["post_nat_src_ip"] = np.where(nat[:, None], pool[rng.integers(0, 16, n)], 0)
        t["post_nat_dst_ip"] = np.where(nat[:, None], t["dst_ip"][:, :4], 0)
        t["post_nat_src_port"] = np.where(nat & l4, rng.integers(1024, 65536, n), 0)
        t["post_nat_dst_port"] = np.where(nat, t["dst_port"], 0)
        t["nat_event"] = np.where(nat, rng.choice(np.array([1, 2], np.uint8), n), 0)
        # the NAT template carries none of these: the truth must say what is on the wire
        for col in ("tos", "tcp_flags", "in_iface", "out_iface", "src_as", "dst_as", "src_mask",
                    "dst_mask", "next_hop", "bgp_next_hop", "src_mac", "dst_mac", "vlan",
                    "mpls_depth", "mpls_labels", "sampler_id"):
            t[col][nat] = 0
        # no sampler id in NAT records: pmacct applies the sampling the exporter announced
        # for the observation domain (checked against pmacct 1.7.7), so sampling_rate stays
    t["kind"] = np.where(v6, KIND_V6, t["kind"])
    return t


# --------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------
@dataclass
class Template:
    kind: int
    tid: int
    fields: list[str]                  # names in IE
    dtype: np.dtype = None

    def __post_init__(self):
        parts = []
        for i, name in enumerate(self.fields):
            _, ln = IE[name]
            dt = {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}.get(ln)
            if name.endswith(("ip4", "ip6", "hop4", "hop6", "mac", "src4", "dst4")) or ln in (3, 16, 6):
                dt = ("u1", (ln,))
            parts.append((f"f{i}_{name}", dt))
        self.dtype = np.dtype(parts)

    @property
    def reclen(self) -> int:
        return self.dtype.itemsize

    def definition(self, version: int) -> bytes:
        body = struct.pack("!HH", self.tid, len(self.fields))
        for name in self.fields:
            body += struct.pack("!HH", *IE[name])
        return body

    def pack(self, rec: np.ndarray, exporter_boot_ms: np.ndarray) -> bytes:
        out = np.zeros(len(rec), self.dtype)
        for i, name in enumerate(self.fields):
            out[f"f{i}_{name}"] = _column(name, rec, exporter_boot_ms)
        return out.tobytes()


def _column(name, rec, boot_ms):
    simple = {"src_port", "dst_port", "proto", "tos", "tcp_flags", "in_iface", "out_iface",
              "src_as", "dst_as", "vlan", "sampler_id", "post_nat_src_port",
              "post_nat_dst_port", "nat_event", "src_mac", "dst_mac"}
    if name in simple:
        return rec[name]
    if name in ("src_ip4", "dst_ip4", "next_hop4", "bgp_next_hop4"):
        return rec[name[:-1]][:, :4]
    if name in ("src_ip6", "dst_ip6", "next_hop6", "bgp_next_hop6"):
        return rec[name[:-1]]
    if name.startswith(("src_mask", "dst_mask")):
        return rec[name[:-1]]
    if name in ("post_nat_src4", "post_nat_dst4"):
        return rec[name[:-1] + "_ip"]
    if name.startswith("bytes"):
        return rec["bytes"]
    if name.startswith("packets"):
        return rec["packets"]
    if name == "first_sw":
        return (rec["first_ms"] - boot_ms).astype(np.uint32)
    if name == "last_sw":
        return (rec["last_ms"] - boot_ms).astype(np.uint32)
    if name == "start_ms":
        return rec["first_ms"]
    if name == "end_ms":
        return rec["last_ms"]
    if name.startswith("mpls"):
        i = int(name[-1]) - 1
        depth = rec["mpls_depth"].astype(np.uint32)
        lab = rec["mpls_labels"][:, i].astype(np.uint32)
        bos = (depth == i + 1).astype(np.uint32)
        val = np.where(i < depth, (lab << 4) | bos, 0).astype(np.uint32)
        out = np.zeros((len(rec), 3), np.uint8)
        out[:, 0] = (val >> 16) & 0xFF
        out[:, 1] = (val >> 8) & 0xFF
        out[:, 2] = val & 0xFF
        return out
    raise KeyError(name)


def data_templates(p: GenParams) -> dict[int, Template]:
    g = set(p.groups)
    times = ["first_sw", "last_sw"] if p.version == 9 else ["start_ms", "end_ms"]
    ctr = ["bytes4", "packets4"] if p.version == 9 else ["bytes8", "packets8"]

    def fields(six: bool) -> list[str]:
        f = ["src_ip6" if six else "src_ip4", "dst_ip6" if six else "dst_ip4",
             "src_port", "dst_port", "proto"]
        if "tos" in g: f.append("tos")
        if "tcpflags" in g: f.append("tcp_flags")
        if "ifaces" in g: f += ["in_iface", "out_iface"]
        if "as" in g: f += ["src_as", "dst_as"]
        if "masks" in g: f += ["src_mask6", "dst_mask6"] if six else ["src_mask4", "dst_mask4"]
        if "nexthop" in g: f.append("next_hop6" if six else "next_hop4")
        if "bgp_nexthop" in g: f.append("bgp_next_hop6" if six else "bgp_next_hop4")
        if "macs" in g: f += ["src_mac", "dst_mac"]
        if "vlan" in g: f.append("vlan")
        if "mpls" in g: f += ["mpls1", "mpls2", "mpls3"]
        if p.sampling: f.append("sampler_id")
        return f + times + ctr

    t = {KIND_V4: Template(KIND_V4, 256, fields(False)), KIND_V6: Template(KIND_V6, 257, fields(True))}
    if p.nat:
        t[KIND_NAT] = Template(KIND_NAT, 258, [
            "src_ip4", "dst_ip4", "src_port", "dst_port", "proto",
            "post_nat_src4", "post_nat_dst4", "post_nat_src_port", "post_nat_dst_port",
            "nat_event"] + times + ctr)
    if p.redefine:
        f4 = [x for x in fields(False) if x != "tos"]
        t[KIND_V4B] = Template(KIND_V4B, 256, f4[-2:] + f4[:-2])   # counters first, no ToS
    return t


OPTIONS_TID = 300


def options_template(version: int) -> tuple[bytes, int]:
    """Sampling options template definition (body after the set header) and data length."""
    if version == 9:
        # template id, scope length (bytes), option length (bytes); scope: System (1), len 4
        body = struct.pack("!HHH", OPTIONS_TID, 4, 12) + struct.pack("!HH", 1, 4)
        body += struct.pack("!HHHHHH", 48, 1, 49, 1, 50, 4)
        return body, 4 + 1 + 1 + 4
    # IPFIX: field count, scope field count; scope meteringProcessId (143), 4 bytes
    body = struct.pack("!HHH", OPTIONS_TID, 4, 1) + struct.pack("!HH", 143, 4)
    body += struct.pack("!HHHHHH", 48, 1, 49, 1, 50, 4)
    return body, 4 + 1 + 1 + 4


def options_data(p: GenParams) -> bytes:
    return struct.pack("!IBBI", 0, 1, 2, p.sampling)   # sampler 1, random mode, interval


def _pad4(b: bytes, on: bool) -> bytes:
    return b + b"\x00" * ((-len(b)) % 4) if on else b


# --------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------
def _stream_packets(idx: np.ndarray, rpp: int) -> list[np.ndarray]:
    return [idx[i:i + rpp] for i in range(0, len(idx), rpp)]


def _encode_v5(p: GenParams, t: np.ndarray, exporters) -> list:
    rpp = min(p.records_per_packet or 30, 30)
    rec_dt = np.dtype([("src", "u1", (4,)), ("dst", "u1", (4,)), ("nh", "u1", (4,)),
                       ("in", ">u2"), ("out", ">u2"), ("pkts", ">u4"), ("octets", ">u4"),
                       ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"), ("dport", ">u2"),
                       ("pad1", "u1"), ("flags", "u1"), ("proto", "u1"), ("tos", "u1"),
                       ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"),
                       ("dst_mask", "u1"), ("pad2", ">u2")])
    assert rec_dt.itemsize == 48
    boot = np.array([e.boot_ms for e in exporters], np.uint64)[t["exporter"]]
    r = np.zeros(len(t), rec_dt)
    r["src"], r["dst"], r["nh"] = t["src_ip"][:, :4], t["dst_ip"][:, :4], t["next_hop"][:, :4]
    r["in"], r["out"] = t["in_iface"], t["out_iface"]
    r["pkts"], r["octets"] = t["packets"], t["bytes"]
    r["first"] = (t["first_ms"] - boot).astype(np.uint32)
    r["last"] = (t["last_ms"] - boot).astype(np.uint32)
    r["sport"], r["dport"] = t["src_port"], t["dst_port"]
    r["flags"], r["proto"], r["tos"] = t["tcp_flags"], t["proto"], t["tos"]
    r["src_as"], r["dst_as"] = t["src_as"], t["dst_as"]
    r["src_mask"], r["dst_mask"] = t["src_mask"], t["dst_mask"]
    packets = []
    for (ex, dom), idx in _streams(t):
        raw = r[idx].tobytes()          # this stream's records, in order, packed once
        chunks = _stream_packets(idx, rpp)
        seq = p.seq_start
        pos = 0
        for j, c in enumerate(chunks):
            secs = _export_secs(p, j, len(chunks))
            uptime = secs * 1000 - exporters[ex].boot_ms
            samp = (0x4000 | p.sampling) if p.sampling else 0
            hdr = struct.pack("!HHIIIIBBH", 5, len(c), uptime & 0xFFFFFFFF, secs, 0,
                              seq & 0xFFFFFFFF, 0, dom, samp)
            body = raw[pos * 48:(pos + len(c)) * 48]
            pos += len(c)
            t["seqno"][c] = seq & 0xFFFFFFFF
            t["export_secs"][c] = secs
            packets.append((secs, ex, dom, j, hdr + body, c))
            seq += len(c)
    return packets


def records_per_packet(p: GenParams) -> int:
    """Records per export datagram: fixed, or as many as fit in the MTU with templates."""
    if p.version == 5:
        return min(p.records_per_packet or 30, 30)
    if p.records_per_packet:
        return p.records_per_packet
    tpls = data_templates(p)
    hdr_len = 20 if p.version == 9 else 16
    ip_len = 48 if p.exporter_family in ("6", "mix") else 28
    tpl_space = sum(4 + 4 + 4 * len(x.fields) for x in tpls.values() if x.kind != KIND_V4B)
    if p.sampling:
        tpl_space += 8 + len(options_template(p.version)[0]) + 4 + 12
    maxrec = max(x.reclen for x in tpls.values())
    budget = p.mtu - ip_len - 8 - hdr_len - tpl_space - 4 * (len(tpls) + 1) - 3 * len(tpls)
    return max(1, budget // maxrec)


def _export_secs(p: GenParams, j: int, n: int) -> int:
    return p.base_time + (p.duration * j) // max(n, 1)


def _streams(t):
    key = t["exporter"].astype(np.uint64) << 32 | t["domain"].astype(np.uint64)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    bounds = np.flatnonzero(np.diff(ks)) + 1
    for grp in np.split(order, bounds):
        if len(grp):
            k = int(key[grp[0]])
            yield (k >> 32, k & 0xFFFFFFFF), grp


def _encode_templated(p: GenParams, t: np.ndarray, exporters) -> list:
    v = p.version
    tpls = data_templates(p)
    rpp = records_per_packet(p)
    boot_all = np.array([e.boot_ms for e in exporters], np.uint64)
    tpl_set_id, opt_set_id = (0, 1) if v == 9 else (2, 3)
    packets = []
    for (ex, dom), idx in _streams(t):
        chunks = _stream_packets(idx, rpp)
        npk = len(chunks)
        redefine_at = npk // 2 if p.redefine else None
        if redefine_at is not None:
            later = np.concatenate(chunks[redefine_at:]) if redefine_at < npk else idx[:0]
            sel = later[t["kind"][later] == KIND_V4]
            t["kind"][sel] = KIND_V4B
            t["tos"][sel] = 0
        # within a packet, records are grouped by kind (one data set per template)
        chunks = [c[np.argsort(t["kind"][c], kind="stable")] for c in chunks]
        order = np.concatenate(chunks) if chunks else idx[:0]
        # pack every kind once, in stream order
        kbuf, kpos = {}, np.zeros(len(t), np.int64)
        for k, tpl in tpls.items():
            sel = order[t["kind"][order] == k]
            kpos[sel] = np.arange(len(sel))
            kbuf[k] = tpl.pack(t[sel], boot_all[t["exporter"][sel]])
        seq = p.seq_start
        active_v4 = KIND_V4
        for j, c in enumerate(chunks):
            secs = _export_secs(p, j, npk)
            uptime = (secs * 1000 - exporters[ex].boot_ms) & 0xFFFFFFFF
            sets, nrec, ndata = [], 0, 0
            resend = j % max(p.template_every, 1) == 0
            if redefine_at is not None and j == redefine_at:
                active_v4, resend = KIND_V4B, True
            if resend:
                body = b""
                for k in sorted(tpls):
                    if k in (KIND_V4, KIND_V4B) and k != active_v4:
                        continue
                    body += tpls[k].definition(v)
                    nrec += 1
                sets.append(struct.pack("!HH", tpl_set_id, 4 + len(body)) + body)
                if p.sampling:
                    obody, _ = options_template(v)
                    obody = _pad4(obody, v == 9 or p.padding)
                    sets.append(struct.pack("!HH", opt_set_id, 4 + len(obody)) + obody)
                    od = _pad4(options_data(p), p.padding)
                    sets.append(struct.pack("!HH", OPTIONS_TID, 4 + len(od)) + od)
                    nrec += 2
                    ndata += 1
            kinds = t["kind"][c]
            for k in np.unique(kinds):
                sel = c[kinds == k]
                tpl = tpls[int(k)]
                a = int(kpos[sel[0]])
                data = kbuf[int(k)][a * tpl.reclen:(a + len(sel)) * tpl.reclen]
                data = _pad4(data, p.padding)
                sets.append(struct.pack("!HH", tpl.tid, 4 + len(data)) + data)
                nrec += len(sel)
            body = b"".join(sets)
            if v == 9:
                hdr = struct.pack("!HHIIII", 9, nrec, uptime, secs, seq & 0xFFFFFFFF, dom)
                t["seqno"][c] = seq & 0xFFFFFFFF
                seq += 1
            else:
                hdr = struct.pack("!HHIII", 10, 16 + len(body), secs, seq & 0xFFFFFFFF, dom)
                t["seqno"][c] = seq & 0xFFFFFFFF
                seq += len(c) + ndata
            t["export_secs"][c] = secs
            packets.append((secs, ex, dom, j, hdr + body, c))
    return packets


def generate(p: GenParams) -> Export:
    rng = np.random.default_rng(p.seed)
    exporters = _exporters(p)
    t = _draw(p, rng, exporters)
    # flow times: filled after packets are laid out (they depend on the export time), so
    # draw the offsets now to keep the random stream independent of the layout
    age = rng.integers(p.min_age_ms, p.max_age_ms + 1, len(t)).astype(np.uint64)
    dur = rng.integers(0, p.max_duration_ms + 1, len(t)).astype(np.uint64)
    # export seconds are known from the layout: lay out once to learn them
    _layout_times(p, t, exporters, age, dur)
    if p.version == 5:
        packets = _encode_v5(p, t, exporters)
    elif p.version in (9, 10):
        packets = _encode_templated(p, t, exporters)
    else:
        raise ValueError(f"unsupported version {p.version}")
    # interleave streams by export time, then by stream, then packet order
    packets.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
    datagrams = []
    last_secs, k = None, 0
    for n, (secs, ex, dom, j, payload, c) in enumerate(packets):
        t["packet"][c] = n
        k = k + 1 if secs == last_secs else 0
        last_secs = secs
        datagrams.append((secs * 1_000_000_000 + k * 1000, ex, payload))
    return Export(p, exporters, datagrams, t)


def _layout_times(p: GenParams, t, exporters, age, dur):
    """Set first/last ms from each record's export second (same chunking as the encoders)."""
    r = records_per_packet(p)
    for (ex, dom), idx in _streams(t):
        npk = -(-len(idx) // r)
        pk = np.arange(len(idx)) // r
        secs = p.base_time + (p.duration * pk) // max(npk, 1)
        last = secs.astype(np.uint64) * 1000 - age[idx]
        boot = exporters[ex].boot_ms
        last = np.maximum(last, boot + 1000)
        first = np.maximum(last - dur[idx], boot + 1000)
        t["last_ms"][idx] = last
        t["first_ms"][idx] = first


# --------------------------------------------------------------------------------------
# Helpers for tests
# --------------------------------------------------------------------------------------
def ip_text(b: np.ndarray, is_v6: bool) -> str:
    return str(ipaddress.ip_address(bytes(b[:16] if is_v6 else b[:4])))


def write_capture(path, **kw) -> Export:
    """Generate with ``GenParams(**kw)`` and write the pcap; returns the Export."""
    fmt = kw.pop("fmt", "pcap")
    exp = generate(GenParams(**kw))
    exp.write_pcap(path, fmt)
    return exp


# --------------------------------------------------------------------------------------
# Packet traffic for softflowd (scapy builds the frames: this is its natural job)
# --------------------------------------------------------------------------------------
@dataclass
class TrafficTruth:
    packets: int
    ip_bytes: int
    flows: dict          # (src, dst, sport, dport, proto) -> [packets, ip bytes]


def write_traffic_pcap(path, *, seed: int = 7, flows: int = 60, max_packets: int = 40,
                       base_time: float = 1704067200.0, ipv6_share: float = 0.3) -> TrafficTruth:
    """TCP/UDP/ICMP over IPv4/IPv6 conversations in one Ethernet pcap, built with scapy.

    Each flow runs for a few packets spaced 10 ms apart. TCP flows open with SYN and end
    with FIN (both directions counted as separate flows, as exporters do). Returns the per
    flow totals (IP packets and IP-layer bytes, which is what softflowd counts).
    """
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    rng = np.random.default_rng(seed)
    pkts = []
    truth: dict = {}
    t0 = base_time
    for f in range(flows):
        six = rng.random() < ipv6_share
        src = f"2001:db8:{f % 7 + 1}::{f + 1:x}" if six else f"10.{f % 5}.{f // 5}.{f % 250 + 1}"
        dst = f"2001:db8:ff::{f % 3 + 1:x}" if six else f"172.16.{f % 3}.{f % 9 + 1}"
        proto = int(rng.choice([6, 17, 1]))
        sport, dport = int(rng.integers(1024, 65535)), int(rng.choice([53, 80, 443, 8080]))
        n = int(rng.integers(1, max_packets + 1))
        start = t0 + f * 0.05
        for i in range(n):
            ipl = IPv6(src=src, dst=dst) if six else IP(src=src, dst=dst, tos=0)
            size = int(rng.integers(0, 400))
            if proto == 6:
                flags = "S" if i == 0 else ("FA" if i == n - 1 else "PA")
                l4 = TCP(sport=sport, dport=dport, flags=flags, seq=1000 + i)
                k = (src, dst, sport, dport, 6)
            elif proto == 17:
                l4 = UDP(sport=sport, dport=dport)
                k = (src, dst, sport, dport, 17)
            else:
                l4 = ICMPv6EchoRequest(id=f, seq=i) if six else ICMP(type=8, id=f, seq=i)
                k = (src, dst, 0, 0, 58 if six else 1)
            pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ipl / l4 / Raw(b"x" * size)
            pkt.time = start + i * 0.01
            raw = bytes(pkt)
            ip_len = len(raw) - 14
            pkts.append((pkt.time, raw))
            e = truth.setdefault(k, [0, 0])
            e[0] += 1
            e[1] += ip_len
    pkts.sort(key=lambda x: x[0])
    with pcapio.PcapWriter(path) as w:
        for ts, raw in pkts:
            w.write(int(round(ts * 1e6)) * 1000, raw)
    return TrafficTruth(len(pkts), sum(v[1] for v in truth.values()), truth)
