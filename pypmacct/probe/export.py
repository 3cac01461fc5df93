"""NetFlow v5, v9 and IPFIX datagrams of expired flows, laid out as pmacct 1.7.7's
nfprobe plugin lays them out (nfprobe_plugin/netflow5.c, netflow9.c).

A flow (``FlowColumns``) is bidirectional, softflowd-style: side 0 is the numerically
lower address. Each side with traffic becomes one record. Records are built column by
column into numpy arrays with the template's big-endian layout; only the cutting of
records into datagrams walks the flows (it needs the running offset).

v9/IPFIX, as 1.7.7:
- four templates, sent in the first datagram and then every 18th: IPv4 ingress (id
  1024 + n), IPv4 egress (1025 + n), IPv6 ingress (2048 + n), IPv6 egress (2049 + n),
  n being the nfprobe plugin's position among the daemon's nfprobe plugins. The egress
  templates name the MAC and VLAN fields as egress ones (81/57, 59).
- datagrams are at most 512 bytes; ingress records go first (all flows), then egress
  ones; a side whose direction is unknown counts as ingress. A flow's records in one
  direction never straddle two datagrams. A data set ends when the family changes and
  is padded to 4 bytes.
- with nfprobe_source_ip, the datagrams that carry templates also carry the exporter
  options template (4096 + 2 + n) and its one record.
- v9's sequence number counts datagrams, IPFIX's counts records (options included).
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

import numpy as np

DIRECTION_IN, DIRECTION_OUT = 1, 2
PMACCT_PEN = 43874
NF9_MAX_PACKET = 512
NF9_TEMPLATE_INTERVAL = 18
NF5_MAXFLOWS = 30
V4_TEMPLATE_ID, V6_TEMPLATE_ID, OPTIONS_TEMPLATE_ID = 1024, 2048, 4096

# IE numbers (NetFlow v9 field types)
IN_BYTES, IN_PKTS, FLOWS, PROTOCOL, SRC_TOS, TCP_FLAGS, L4_SRC_PORT, IPV4_SRC_ADDR = \
    1, 2, 3, 4, 5, 6, 7, 8
SRC_MASK, INPUT_SNMP, L4_DST_PORT, IPV4_DST_ADDR, DST_MASK, OUTPUT_SNMP = 9, 10, 11, 12, 13, 14
SRC_AS, DST_AS, LAST_SWITCHED, FIRST_SWITCHED = 16, 17, 21, 22
IPV6_SRC_ADDR, IPV6_DST_ADDR, IPV6_SRC_MASK, IPV6_DST_MASK = 27, 28, 29, 30
IN_SRC_MAC, OUT_DST_MAC, SRC_VLAN, DST_VLAN, IP_VERSION, DIRECTION = 56, 57, 58, 59, 60, 61
MPLS_LABEL_1, IN_DST_MAC, OUT_SRC_MAC = 70, 80, 81
EXPORTER_IPV4, EXPORTER_IPV6, FLOW_EXPORTER = 130, 131, 144
LAST_SWITCHED_MSEC, FIRST_SWITCHED_MSEC = 153, 152
LAST_SWITCHED_USEC, FIRST_SWITCHED_USEC = 155, 154
PEN_TAG, PEN_TAG2 = 1, 2


@dataclass
class FlowColumns:
    """Flows as columns; (n, 2) arrays are per side."""
    af: np.ndarray          # (n,) 4 or 6
    addr: np.ndarray        # (n, 2, 16) uint8 (IPv4 in the first 4 bytes)
    port: np.ndarray        # (n, 2) uint16 (ICMP: type << 8 | code on side ^ 1)
    proto: np.ndarray       # (n,)
    ifindex: np.ndarray     # (n, 2) uint32: [side] is the side's input interface
    octets: np.ndarray      # (n, 2) uint64
    packets: np.ndarray     # (n, 2) uint64
    tcp_flags: np.ndarray   # (n, 2)
    tos: np.ndarray         # (n, 2)
    direction: np.ndarray   # (n, 2) 0 unknown, 1 in, 2 out
    tag: np.ndarray         # (n, 2) uint64
    tag2: np.ndarray        # (n, 2) uint64
    mac: np.ndarray         # (n, 2, 6) uint8
    vlan: np.ndarray        # (n,)
    mask: np.ndarray        # (n, 2)
    asn: np.ndarray         # (n, 2) uint32
    mpls: np.ndarray        # (n, 2) uint32
    start: np.ndarray       # (n,) microseconds since the epoch
    last: np.ndarray        # (n,)

    def __len__(self):
        return len(self.af)


@dataclass
class ExportOptions:
    version: int = 10
    primitives: frozenset = frozenset()     # the plugin's aggregate
    timestamps_secs: bool = False           # v9: 32-bit uptime-relative times
    tstamp_usec: bool = False               # nfprobe_tstamp_usec
    engine_type: int = 0
    engine_id: int = 0                      # v9/IPFIX: source id / observation domain
    probe_index: int = 0                    # n in the template ids
    source_ip: str | None = None            # nfprobe_source_ip: the exporter option
    sampling_rate: int = 0


def _field(ie, length, pen=None):
    return (ie, length, pen)


class _Template:
    """One template: its fields and the numpy dtype of its records."""

    def __init__(self, tid: int, fields: list, version: int):
        self.tid = tid
        self.fields = fields   # [(ie, length, pen, name)]
        self.dtype = np.dtype([(name, "V%d" % ln if ln not in (1, 2, 4, 8) else
                                {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}[ln])
                               for _, ln, _, name in fields])
        assert self.dtype.itemsize == sum(f[1] for f in fields)
        n_plain = sum(1 for f in fields if f[2] is None)
        n_pen = len(fields) - n_plain
        set_id = 0 if version == 9 else 2
        body = b"".join(struct.pack(">HH", ie, ln) if pen is None else
                        struct.pack(">HHI", 0x8000 | ie, ln, pen)
                        for ie, ln, pen, _ in fields)
        self.wire = struct.pack(">HHHH", set_id, 8 + 4 * n_plain + 8 * n_pen, tid,
                                n_plain + n_pen) + body


def build_templates(o: ExportOptions) -> dict:
    """(af, direction) -> _Template, as nf9_init_template builds them."""
    prims = o.primitives        # (the plugin puts pmacct's default in when unset)
    out = {}
    for af in (4, 6):
        for d in (DIRECTION_IN, DIRECTION_OUT):
            f = []
            if o.version == 9 and o.timestamps_secs:
                f += [(LAST_SWITCHED, 4, None, "last"), (FIRST_SWITCHED, 4, None, "first")]
            elif o.tstamp_usec:
                f += [(LAST_SWITCHED_USEC, 16, None, "last"), (FIRST_SWITCHED_USEC, 16, None, "first")]
            else:
                f += [(LAST_SWITCHED_MSEC, 8, None, "last"), (FIRST_SWITCHED_MSEC, 8, None, "first")]
            f += [(IN_BYTES, 8, None, "bytes"), (IN_PKTS, 8, None, "packets"),
                  (IP_VERSION, 1, None, "ipver"), (INPUT_SNMP, 4, None, "input"),
                  (OUTPUT_SNMP, 4, None, "output"), (DIRECTION, 1, None, "direction")]
            if "flows" in prims:
                # 1.7.7 sums pmacctd's flow counter here, which it never runs for an
                # nfprobe plugin: always 0
                f.append((FLOWS, 4, None, "flows"))
            alen = 4 if af == 4 else 16
            if "src_host" in prims:
                f.append((IPV4_SRC_ADDR if af == 4 else IPV6_SRC_ADDR, alen, None, "src"))
            if "dst_host" in prims:
                f.append((IPV4_DST_ADDR if af == 4 else IPV6_DST_ADDR, alen, None, "dst"))
            if "src_mask" in prims:
                f.append((SRC_MASK if af == 4 else IPV6_SRC_MASK, 1, None, "src_mask"))
            if "dst_mask" in prims:
                f.append((DST_MASK if af == 4 else IPV6_DST_MASK, 1, None, "dst_mask"))
            tos = [(SRC_TOS, 1, None, "tos")] if "tos" in prims else []
            if af == 6:
                f += tos
            if "src_port" in prims:
                f.append((L4_SRC_PORT, 2, None, "src_port"))
            if "dst_port" in prims:
                f.append((L4_DST_PORT, 2, None, "dst_port"))
            if af == 4:
                f += tos
            if prims & {"src_port", "dst_port"}:
                f.append((TCP_FLAGS, 1, None, "tcp_flags"))
            if "proto" in prims:
                f.append((PROTOCOL, 1, None, "proto"))
            if "src_as" in prims:
                f.append((SRC_AS, 4, None, "src_as"))
            if "dst_as" in prims:
                f.append((DST_AS, 4, None, "dst_as"))
            out_dir = d == DIRECTION_OUT
            if "src_mac" in prims:
                f.append((OUT_SRC_MAC if out_dir else IN_SRC_MAC, 6, None, "src_mac"))
            if "dst_mac" in prims:
                f.append((OUT_DST_MAC if out_dir else IN_DST_MAC, 6, None, "dst_mac"))
            if "vlan" in prims:
                f.append((DST_VLAN if out_dir else SRC_VLAN, 2, None, "vlan"))
            if "mpls_label_top" in prims:
                f.append((MPLS_LABEL_1, 3, None, "mpls"))
            if o.version == 10 and "tag" in prims:
                f.append((PEN_TAG, 8, PMACCT_PEN, "tag"))
            if o.version == 10 and "tag2" in prims:
                f.append((PEN_TAG2, 8, PMACCT_PEN, "tag2"))
            base = V4_TEMPLATE_ID if af == 4 else V6_TEMPLATE_ID
            tid = base + o.probe_index + (1 if out_dir else 0)
            out[(af, d)] = _Template(tid, f, o.version)
    return out


def _be_bytes(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers as (n, width) big-endian bytes."""
    v = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    return v[:, 8 - width:]


def fill_records(t: _Template, fl: FlowColumns, fi: np.ndarray, si: np.ndarray,
                 o: ExportOptions, boot_us: int) -> np.ndarray:
    """The records of sides ``si`` of flows ``fi`` (one family), as template ``t``."""
    n = len(fi)
    rec = np.zeros(n, t.dtype)
    oi = si ^ 1
    raw = rec.view(np.uint8).reshape(n, t.dtype.itemsize)
    for ie, ln, pen, name in t.fields:
        off = t.dtype.fields[name][1]
        if name in ("last", "first"):
            us = fl.last[fi] if name == "last" else fl.start[fi]
            if ln == 4:      # v9 with timestamps_secs: ms since the probe started
                rec[name] = ((us - boot_us) // 1000) & 0xFFFFFFFF
            elif ln == 8:
                rec[name] = us // 1000
            else:
                raw[:, off:off + 8] = _be_bytes(us // 1_000_000, 8)
                raw[:, off + 8:off + 16] = _be_bytes(us % 1_000_000, 8)
        elif name == "bytes":
            rec[name] = fl.octets[fi, si]
        elif name == "packets":
            rec[name] = fl.packets[fi, si]
        elif name == "ipver":
            rec[name] = fl.af[fi]
        elif name == "input":
            rec[name] = fl.ifindex[fi, si]
        elif name == "output":
            rec[name] = fl.ifindex[fi, oi]
        elif name == "direction":
            dv = fl.direction[fi, si].astype(np.int64)
            rec[name] = np.where(dv > 0, dv - 1, 0)
        elif name in ("src", "dst"):
            side = si if name == "src" else oi
            raw[:, off:off + ln] = fl.addr[fi, side, :ln]
        elif name in ("src_mask", "dst_mask"):
            rec[name] = fl.mask[fi, si if name == "src_mask" else oi]
        elif name in ("src_port", "dst_port"):
            rec[name] = fl.port[fi, si if name == "src_port" else oi]
        elif name == "tos":
            rec[name] = fl.tos[fi, si]
        elif name == "tcp_flags":
            rec[name] = fl.tcp_flags[fi, si]
        elif name == "proto":
            rec[name] = fl.proto[fi]
        elif name in ("src_as", "dst_as"):
            rec[name] = fl.asn[fi, si if name == "src_as" else oi]
        elif name in ("src_mac", "dst_mac"):
            raw[:, off:off + 6] = fl.mac[fi, si if name == "src_mac" else oi]
        elif name == "vlan":
            rec[name] = fl.vlan[fi]
        elif name == "mpls":
            raw[:, off:off + 3] = _be_bytes(fl.mpls[fi, si].astype(np.uint64) << 4, 3)
        elif name in ("tag", "tag2"):
            rec[name] = (fl.tag if name == "tag" else fl.tag2)[fi, si]
    return rec


class Exporter:
    """Builds and sends the datagrams of expired flows; keeps the sequence numbers and
    the template schedule between calls, as 1.7.7 keeps them for a plugin's life."""

    def __init__(self, opts: ExportOptions, send, clock=None):
        import time
        self.o = opts
        self.send = send                 # send(bytes) -> None; raises OSError
        self.clock = clock or time.time
        self.boot = self.clock()
        self.boot_us = int(self.boot * 1_000_000)
        self.flows_exported = 0          # v5/IPFIX: records; v9: datagrams
        self.pkts_until_template = 0
        self.datagrams = 0
        self.records = 0
        if opts.version in (9, 10):
            self.templates = build_templates(opts)
            self.options_wire, self.options_record = self._exporter_option()

    # --- v9 / IPFIX ------------------------------------------------------------
    def _exporter_option(self):
        if not self.o.source_ip:
            return b"", b""
        import ipaddress
        ip = ipaddress.ip_address(self.o.source_ip)
        slen = 4 if ip.version == 4 else 16
        tid = OPTIONS_TEMPLATE_ID + 2 + self.o.probe_index
        if self.o.version == 9:
            set_id, scope, a, b = 1, 1, 4, 8
        else:
            set_id, scope, a, b = 3, FLOW_EXPORTER, 3, 1
        fields = struct.pack(">HHHHHH", scope, slen, EXPORTER_IPV4, 4, EXPORTER_IPV6, 16)
        wire = struct.pack(">HHHHH", set_id, 10 + len(fields), tid, a, b) + fields
        packed = ip.packed
        if ip.version == 4:
            record = packed + packed + bytes(16)
        else:
            record = packed + bytes(4) + packed
        return wire, record

    def _template_block(self) -> tuple[bytes, int]:
        t = self.templates
        parts = [t[(4, DIRECTION_IN)].wire, t[(4, DIRECTION_OUT)].wire,
                 t[(6, DIRECTION_IN)].wire, t[(6, DIRECTION_OUT)].wire]
        if self.options_wire:
            parts.append(self.options_wire)
        return b"".join(parts), len(parts)

    def export_v9(self, fl: FlowColumns) -> int:
        """Send the records of ``fl`` (flows in expiry order). Returns datagrams sent."""
        o = self.o
        now = self.clock()
        uptime = int(round((now - self.boot) * 1000)) & 0xFFFFFFFF
        sent = 0
        eff = np.where(fl.direction == 0, DIRECTION_IN, fl.direction)
        for d in (DIRECTION_IN, DIRECTION_OUT):
            has = (eff == d) & (fl.octets > 0)                    # (n, 2)
            nrec = has.sum(axis=1)
            units = np.nonzero(nrec > 0)[0]                       # flows with records
            # record bytes per unit, in unit order (side 0 first)
            recs, rlen = {}, {}
            for af in (4, 6):
                t = self.templates[(af, d)]
                rlen[af] = t.dtype.itemsize
                sel = units[fl.af[units] == af]
                fi = np.repeat(sel, nrec[sel])
                si = np.nonzero(has[sel].reshape(-1))[0] % 2      # sides, side 0 first
                recs[af] = fill_records(t, fl, fi, si, o, self.boot_us).tobytes()
            pos = {4: 0, 6: 0}
            u_af = fl.af[units].astype(np.int64)
            u_size = nrec[units] * np.where(u_af == 4, rlen[4], rlen[6])
            k = 0
            first_packet = True
            while k < len(units) or first_packet:
                first_packet = False
                body, k, nrecs = self._v9_packet(d, units, u_af, u_size, k, recs, pos, rlen)
                tpl = b""
                count = nrecs
                opt = b""
                if self.pkts_until_template <= 0:
                    tpl, ntpl = self._template_block()
                    count += ntpl
                    if self.options_record:
                        opt = self._options_set(len(tpl))
                        count += 1
                if o.version == 9:
                    if count == 0:
                        continue
                    self.flows_exported += 1
                    head = struct.pack(">HHIIII", 9, count, uptime, int(now),
                                       self.flows_exported, o.engine_id)
                    payload = head + tpl + opt + body
                else:
                    payload_len = 16 + len(tpl) + len(opt) + len(body)
                    if payload_len <= 20:
                        continue
                    head = struct.pack(">HHIII", 10, payload_len, int(now),
                                       self.flows_exported, o.engine_id)
                    payload = head + tpl + opt + body
                    self.flows_exported += nrecs + (1 if opt else 0)
                if tpl:
                    self.pkts_until_template = NF9_TEMPLATE_INTERVAL
                self.send(payload)
                self.pkts_until_template -= 1
                sent += 1
                self.records += nrecs
        self.datagrams += sent
        return sent

    def _options_set(self, tpl_len: int) -> bytes:
        """The exporter options record's data set; padded to 4 bytes of the datagram
        (the options template is 22 bytes long, so this one is 30)."""
        head = 20 if self.o.version == 9 else 16
        size = 4 + len(self.options_record)
        pad = (-(head + tpl_len + size)) % 4
        return struct.pack(">HH", OPTIONS_TEMPLATE_ID + 2 + self.o.probe_index,
                           size + pad) + self.options_record + bytes(pad)

    def _v9_packet(self, d, units, u_af, u_size, k, recs, pos, rlen):
        """Data sets for one datagram from unit ``k`` on: (bytes, next k, records)."""
        o = self.o
        offset = 16 if o.version == 10 else 20
        if self.pkts_until_template <= 0:
            tpl = len(self._template_block()[0])
            offset += tpl
            if self.options_record:
                offset += len(self._options_set(tpl))
        parts = []
        nrecs = 0
        n = len(units)
        while k < n:
            if offset + 4 > NF9_MAX_PACKET:          # no room for a data set header
                break
            af = int(u_af[k])
            end = k
            while end < n and u_af[end] == af:
                end += 1
            c = np.cumsum(u_size[k:end])
            fit = int(np.searchsorted(c, NF9_MAX_PACKET - offset - 4, side="right"))
            if fit == 0:                              # the next flow does not fit
                break
            size = int(c[fit - 1])
            chunk = recs[af][pos[af]:pos[af] + size]
            pos[af] += size
            pad = (-(offset + 4 + size)) % 4
            parts.append(struct.pack(">HH", self.templates[(af, d)].tid, 4 + size + pad)
                         + chunk + bytes(pad))
            nrecs += size // rlen[af]
            offset += 4 + size + pad
            k += fit
            if k < end:                               # datagram full
                break
        return b"".join(parts), k, nrecs

    # --- v5 --------------------------------------------------------------------
    def export_v5(self, fl: FlowColumns) -> int:
        o = self.o
        now = self.clock()
        uptime = int((now - self.boot) * 1000) & 0xFFFFFFFF
        v4 = fl.af == 4
        has = (fl.octets > 0) & v4[:, None]
        nrec = has.sum(axis=1)
        fi = np.repeat(np.arange(len(fl)), nrec)
        si = np.nonzero(has.reshape(-1))[0] % 2
        oi = si ^ 1
        n = len(fi)
        dt = np.dtype([("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("in", ">u2"),
                       ("out", ">u2"), ("packets", ">u4"), ("octets", ">u4"),
                       ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"), ("dport", ">u2"),
                       ("pad1", "u1"), ("tcp_flags", "u1"), ("proto", "u1"), ("tos", "u1"),
                       ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"),
                       ("dst_mask", "u1"), ("pad2", ">u2")])
        rec = np.zeros(n, dt)
        a = fl.addr[:, :, :4].copy().view(">u4").reshape(len(fl), 2)
        rec["src"], rec["dst"] = a[fi, si], a[fi, oi]
        rec["in"] = fl.ifindex[fi, si] & 0xFFFF
        rec["out"] = fl.ifindex[fi, oi] & 0xFFFF
        rec["packets"] = fl.packets[fi, si] & 0xFFFFFFFF
        rec["octets"] = fl.octets[fi, si] & 0xFFFFFFFF
        rec["first"] = ((fl.start[fi] - self.boot_us) // 1000) & 0xFFFFFFFF
        rec["last"] = ((fl.last[fi] - self.boot_us) // 1000) & 0xFFFFFFFF
        rec["sport"], rec["dport"] = fl.port[fi, si], fl.port[fi, oi]
        rec["tcp_flags"] = fl.tcp_flags[fi, si]
        rec["proto"] = fl.proto[fi]
        rec["tos"] = fl.tos[fi, si]
        sa, da = fl.asn[fi, si], fl.asn[fi, oi]
        rec["src_as"] = np.where(sa > 65535, 23456, sa)
        rec["dst_as"] = np.where(da > 65535, 23456, da)
        rec["src_mask"], rec["dst_mask"] = fl.mask[fi, si], fl.mask[fi, oi]
        raw = rec.tobytes()
        # datagram cuts: 1.7.7 checks "29 records or more" before each flow (IPv6 ones
        # included), so a datagram holds up to 30 records
        cuts = []
        j = 0
        for c in nrec.tolist():
            if j >= NF5_MAXFLOWS - 1:
                cuts.append(j)
                j = 0
            j += c
        if j:
            cuts.append(j)
        sampling = o.sampling_rate & 0x3FFF
        if sampling:
            sampling |= 0x4000
        sent, at = 0, 0
        for cnt in cuts:
            head = struct.pack(">HHIIIIBBH", 5, cnt, uptime, int(now),
                               int((now % 1) * 1_000_000) * 1000, self.flows_exported,
                               o.engine_type, o.engine_id, sampling)
            self.send(head + raw[at * dt.itemsize:(at + cnt) * dt.itemsize])
            at += cnt
            self.flows_exported += cnt
            sent += 1
        self.datagrams += sent
        self.records += n
        return sent

    def export(self, fl: FlowColumns) -> int:
        if len(fl) == 0:
            return 0
        if self.o.version == 5:
            return self.export_v5(fl)
        return self.export_v9(fl)


def udp_sender(receiver: tuple, source_ip: str | None, hoplimit: int | None,
               ipprec: int = 0, sndbuf: int | None = None):
    """A connected UDP socket towards ``receiver`` (host, port), as connsock() makes it."""
    host, port = receiver
    info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    s = socket.socket(info[0], socket.SOCK_DGRAM)
    if ipprec:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, ipprec << 5)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if source_ip:
        s.bind((source_ip, 0))
    s.connect(info[4])
    import ipaddress
    addr = ipaddress.ip_address(info[4][0])
    if hoplimit is None and addr.is_multicast:
        hoplimit = 1
    if hoplimit is not None:
        if info[0] == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, hoplimit)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hoplimit)
    return s
