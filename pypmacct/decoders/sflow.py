"""sFlow v5 (and v2/v4) decoding: datagrams in, a record batch out.

    dec = SflowDecoder(SflowOptions(...), log=Logger(...), stats=Stats())
    batch = dec.decode(datagrams)

Every step works on the whole batch at once:

1. datagram headers (version, agent address, sub-agent id, sequence number, sample
   count) are read for all datagrams with fancy indexing;
2. samples are walked with one cursor per datagram: iteration k reads the k-th sample
   of every datagram that has one (a loop over sample *position*, a few steps);
3. flow samples (compact and expanded) have their fixed fields read together, then their
   flow records are walked the same way, record position by record position. Records of
   one position are applied in that order, so that a later record overrides what an
   earlier one said, as pmacct's decoder does;
4. raw packet headers go through the shared packet parser (``decoders.packet``), all
   the headers of one record position in one call;
5. the record batch is filled column by column, only with the fields the plugins need.

sFlow v2/v4 datagrams have no sample or record lengths; they go through a small
one-datagram-at-a-time reader that produces the same per-sample columns (they are rare
today). Bad input (short datagrams, unknown versions or sample types, records whose
length does not match their content) is counted for the agent, logged rate-limited in
pmacct's words, and skipped; the rest of the batch is decoded.

What each sample becomes follows pmacct 1.7.7's ``sfacctd`` (see docs/sflow.md): one
record per flow sample carrying IPv4 or IPv6, packets 1 and bytes the sampled packet's
length (times the effective sampling rate with ``sfacctd_renormalize``).
"""
from __future__ import annotations

import socket
import struct
import traceback
from dataclasses import dataclass

import numpy as np

from ..record import RECORD_DTYPE, Batch, StringTable
from ..runtime.log import Logger
from ..runtime.stats import Stats
from . import packet as pkt
from .packed import pack

FLOW_SAMPLE, COUNTER_SAMPLE, FLOW_SAMPLE_EXP, COUNTER_SAMPLE_EXP = 1, 2, 3, 4
BROCADE_ACL_SAMPLE = (1991 << 12) | 1
REC_HEADER, REC_ETHERNET, REC_IPV4, REC_IPV6 = 1, 2, 3, 4
REC_SWITCH, REC_ROUTER, REC_GATEWAY, REC_USER, REC_URL, REC_MPLS, REC_NAT = range(1001, 1008)
REC_MPLS_VC = 1009
REC_GATEWAY_V4 = 0x7FFF0000 | REC_GATEWAY    # internal: a v4 gateway record (no next hop)
HP_ETHERNET, HP_IPV4, HP_IPV6, HP_MPLS = 1, 11, 12, 13
RESET_BOUNDARY = 50              # pmacct's XFLOW_RESET_BOUNDARY
MAX_SAMPLES = 4096               # per datagram, a sanity bound
MAX_RECORDS = 256                # per sample

# the record kinds ``_records`` applies, in the order it applies them: a sample whose
# records come in this order can have all of them applied kind by kind
_RANK_TAGS = np.array(sorted((REC_HEADER, REC_ETHERNET, REC_IPV4, REC_IPV6, REC_SWITCH,
                              REC_ROUTER, REC_GATEWAY, REC_MPLS_VC, REC_GATEWAY_V4)), np.int64)
_HP_KIND = {HP_ETHERNET: pkt.K_ETH, HP_IPV4: pkt.K_IPV4, HP_IPV6: pkt.K_IPV6, HP_MPLS: pkt.K_MPLS}
_HP_LUT = np.zeros(16, np.int64)             # header protocol -> parser kind (0: not parsed)
for _h, _k in _HP_KIND.items():
    _HP_LUT[_h] = _k


@dataclass
class SflowOptions:
    record_dtype: np.dtype = RECORD_DTYPE
    renormalize: bool = False            # sfacctd_renormalize
    disable_checks: bool = True          # sfacctd_disable_checks
    use_ip_next_hop: bool = False
    ext_sampling_rate: int = 0           # sfacctd_ext_sampling_rate
    collector_ip: str = "0.0.0.0"
    collector_port: int = 6343
    counters: bool = False               # keep counter samples (sfacctd_counter_file)
    packet_ptrs: tuple = ()              # custom primitives with packet_ptr (CustomPrimitive)


_ZERO16 = np.zeros(1, "V16")[0]                # an all-zero address (16 bytes)


class _Samples:
    """Per flow sample columns, filled as records are read. A column is made (zeros) the
    first time it is touched, so a run pays only for the columns its records and
    primitives use; ``columns()`` lists those made so far."""

    _SPEC = {}
    for _k in ("dg", "seq", "src_class", "src_index", "rate", "pool", "in_if", "out_if",
               "size", "etype", "proto", "tos", "sport", "dport", "flags", "in_vlan",
               "out_vlan", "in_prio", "out_prio", "src_mask", "dst_mask", "src_as", "dst_as",
               "peer_src_as", "peer_dst_as", "local_pref", "as_path", "comms", "mpls_top",
               "mpls_bottom", "mpls_depth", "pw_id", "vxlan", "tun_proto", "tun_tos",
               "tun_sport", "tun_dport", "stype"):
        _SPEC[_k] = (np.int64, ())
    # seq: samplesGenerated; size: sampledPacketSize; as_path, comms: string ids;
    # pw_id: the extended MPLS VC record's mpls_pw_id; vxlan, tun_*: the frame inside;
    # stype: the sample's type (FLOW_SAMPLE or FLOW_SAMPLE_EXP)
    for _k in ("got4", "got6", "bad"):
        _SPEC[_k] = (bool, ())
    for _k in ("nh_af", "bgp_nh_af", "tun_af"):
        _SPEC[_k] = (np.uint8, ())
    for _k in ("src", "dst", "nh", "bgp_nh", "tun_src", "tun_dst"):
        _SPEC[_k] = (np.uint8, (16,))
    for _k in ("src_mac", "dst_mac", "tun_smac", "tun_dmac"):
        _SPEC[_k] = (np.uint8, (6,))
    del _k

    def __init__(self, n: int, custom=()):
        self.n = n
        # packet_ptr custom primitives: (name, record field dtype), columns "cp_<name>"
        self._custom = {"cp_" + name: dt for name, dt in custom}

    def __getattr__(self, name):
        spec = _Samples._SPEC.get(name)
        if spec is None:
            dt = self.__dict__.get("_custom", {}).get(name)
            if dt is None:
                raise AttributeError(name)
            spec = (dt, ())
        v = np.zeros((self.n,) + spec[1], spec[0])
        setattr(self, name, v)
        return v

    def columns(self) -> dict:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}


class _Agents:
    """Agent address texts by datagram: ``names[ids[d]]`` (also ``agents[d]``)."""
    __slots__ = ("names", "ids")

    def __init__(self, names, ids):
        self.names, self.ids = names, ids

    def __getitem__(self, d) -> str:
        return self.names[int(self.ids[d])]


class _Buf(pkt._Buf):
    def addr(self, p, e):
        """SFLAddress at p: (ok, af, 16 bytes, size)."""
        t = self.be32(p).astype(np.int64)
        size = np.where(t == 1, 8, 20)
        ok = ((t == 1) | (t == 2)) & (p + size <= e)
        raw = self.rows(p + 4, 16)
        raw[t == 1, 4:] = 0
        af = np.where(ok, np.where(t == 1, 4, 6), 0).astype(np.uint8)
        return ok, af, raw, size


def _text4(raw16) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes(raw16[:4]))


_WELL_KNOWN = {0: "internet", 0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise",
               0xFFFFFF03: "local-AS"}


def comm_text(values) -> str:
    return " ".join(_WELL_KNOWN.get(c, f"{c >> 16}:{c & 0xFFFF}") for c in values)


class SflowDecoder:
    def __init__(self, opts: SflowOptions | None = None, log: Logger | None = None,
                 stats: Stats | None = None):
        self.opts = opts or SflowOptions()
        self.log = log or Logger()
        self.stats = stats if stats is not None else Stats()
        self.errors = 0
        self.last_error = ""
        self.bad_samples = 0               # flow samples dropped: bad record lengths
        self.seq_state: dict = {}          # (agent, sub id) -> last datagram sequence
        # (agent, sub id) -> [datagrams, bytes, seq_good, seq_jmp_fwd, seq_jmp_bck]: the
        # status table 1.7.7 prints on SIGUSR1
        self.agent_status: dict = {}
        self.renorm: dict = {}             # (agent, sub id, source id) -> [seq, pool]
        # with opts.counters, what the counter writer takes after each batch:
        # (datagram, agent, version, datagram seq, body, expanded) per counter sample,
        # (datagram, agent) per datagram
        self.counter_samples: list = []
        self.batch_agents: list = []
        self.fields = frozenset(self.opts.record_dtype.names)
        self._tunnels = any(f in self.fields for f in pkt.TUNNEL_FIELDS)
        # fields of the switch and router records only these primitives use
        self._vlan_cos = bool(self.fields & {"vlan", "cos", "sf_in_vlan", "sf_out_vlan"})
        self._router = bool(self.fields & {"peer_dst_ip", "nexthop", "src_mask", "dst_mask"})
        self._cps = tuple(cp for cp in self.opts.packet_ptrs if cp.name in self.fields)
        self._cp_specs = tuple((cp.name, self.opts.record_dtype.fields[cp.name][0])
                               for cp in self._cps)
        self._macs = bool(self.fields & {"src_mac", "dst_mac"})
        self._mpls = bool(self.fields & {"mpls_label_top", "mpls_label_bottom",
                                         "mpls_stack_depth"})
        self._proto = bool(self.fields & {"proto", "src_port", "dst_port", "tcp_flags"})
        # the sampled headers' transport layer (ports, flags, VXLAN, tunnels)
        self._transport = self._tunnels or bool(
            self.fields & {"src_port", "dst_port", "tcp_flags", "vxlan"})

    # --- bad input, in pmacct's words
    def malformed(self, src: str, port: int, msg: str) -> None:
        self.stats.exporter(src).bad_datagrams += 1
        self.log.limited((src, msg), f"{msg}: sfacctd={self.opts.collector_ip}:"
                         f"{self.opts.collector_port} agent={src}:{port}", level="INFO")

    def decode(self, datagrams) -> Batch:
        pk = pack(datagrams)
        if pk.n:
            counts = np.bincount(pk.exp, minlength=len(pk.srcs))
            for i in np.nonzero(counts)[0].tolist():
                self.stats.exporter(pk.srcs[i]).datagrams += int(counts[i])
        strings = self._batch_strings = StringTable()
        try:
            records = self._decode(pk, strings)
        except Exception as e:                     # a bug must not stop the core
            self.errors += 1
            self.last_error = traceback.format_exc()
            self.log.limited(("batch",), f"internal error decoding an sFlow batch: "
                             f"{type(e).__name__}: {e}", level="ERROR")
            records = np.zeros(0, self.opts.record_dtype)
            strings = StringTable()
        return Batch(records, strings.strings)

    # ------------------------------------------------------------------
    def _decode(self, pk, strings) -> np.ndarray:
        n = pk.n
        dtype = self.opts.record_dtype
        if not n:
            return np.zeros(0, dtype)
        S, L = pk.start, pk.length
        E = S + L
        b = _Buf(pk.buf, used=int(E.max()))
        # the datagram headers in one gather: version, agent address type and address,
        # (v5) sub-agent id, sequence number, uptime, sample count
        hd = b.rows(S, 48)
        hw = hd.view(">u4")
        ver = np.where(L >= 4, hw[:, 0], 0).astype(np.int64)
        atype = np.where(L >= 8, hw[:, 1], 0).astype(np.int64)
        alen = np.where(atype == 1, 4, 16)
        hlen = 8 + alen + np.where(ver == 5, 16, 12)
        good = ((ver == 2) | (ver == 4) | (ver == 5)) & ((atype == 1) | (atype == 2)) & (L >= hlen)
        for i in np.nonzero(~good)[0].tolist():
            ref = pk.ref(i)
            if ver[i] in (2, 4, 5):
                self.malformed(ref.src, ref.port, "discarding short sFlow packet")
            else:
                self.malformed(ref.src, ref.port, "discarding unknown sFlow packet")
        # per datagram header columns
        agent_af = np.where(atype == 1, 4, 6).astype(np.uint8)
        agent = hd[:, 8:24].copy()
        agent[atype == 1, 4:] = 0
        k = 2 + alen // 4                           # word of the sub-agent id (v5)
        rows = np.arange(len(S))
        sub = np.where(ver == 5, hw[rows, k], 0).astype(np.int64)
        k = k + (ver == 5)
        dseq = hw[rows, k].astype(np.int64)
        nsamp = hw[rows, k + 2].astype(np.int64)
        first = S + 4 * (k + 3)
        agent_txt = self._agent_texts(agent_af, agent, good)
        self._sequences(pk, np.nonzero(good)[0], agent_txt, sub, dseq)

        if self.opts.counters:
            self.batch_agents.extend((i, agent_txt[i]) for i in np.nonzero(good)[0].tolist())
            self._ctx = (agent_txt, ver, dseq)
        v5 = np.nonzero(good & (ver == 5))[0]
        smp = self._walk_v5(pk, b, v5, first, E, nsamp)
        old = np.nonzero(good & (ver != 5))[0]
        if len(old):
            smp = self._merge(smp, self._v2v4(pk, old, first, E, nsamp, ver, strings, b))
        smp = self._account(smp)
        if not smp.n:
            return np.zeros(0, dtype)
        # records
        out = np.zeros(smp.n, dtype)
        f = self.fields
        dg = smp.dg
        counts = np.bincount(pk.exp[dg], minlength=len(pk.srcs))
        for i in np.nonzero(counts)[0].tolist():
            self.stats.exporter(pk.srcs[i]).records += int(counts[i])
        rate = smp.rate.copy()
        if self.opts.ext_sampling_rate:
            rate[:] = self.opts.ext_sampling_rate
        packets = np.ones(smp.n, np.int64)
        nbytes = smp.size.copy()
        if self.opts.renormalize:
            mult = self._renormalize(smp, agent_txt, sub, rate)
            packets *= mult
            nbytes *= mult
        put = self._putter(out)
        if "arrival_seq" in f:
            put("arrival_seq", np.arange(smp.n))
        if "packets" in f:
            put("packets", packets)
        if "bytes" in f:
            put("bytes", nbytes)
        if "flows" in f:
            put("flows", np.zeros(smp.n, np.int64))
        af = np.where(smp.got4, 4, 6).astype(np.uint8)
        self._addr(out, "src_host", af, smp.src)
        self._addr(out, "dst_host", af, smp.dst)
        if "proto" in f:
            put("proto", smp.proto)
        if "tos" in f:
            put("tos", smp.tos)
        l4 = (smp.proto == 6) | (smp.proto == 17)
        if "src_port" in f:
            put("src_port", np.where(l4, smp.sport, 0))
        if "dst_port" in f:
            put("dst_port", np.where(l4, smp.dport, 0))
        if "tcp_flags" in f:
            put("tcp_flags", np.where(smp.proto == 6, smp.flags, 0))
        if "src_mac" in f:
            out["src_mac"] = pkt.byte_rows(smp.src_mac)
        if "dst_mac" in f:
            out["dst_mac"] = pkt.byte_rows(smp.dst_mac)
        if "vlan" in f:
            put("vlan", np.where(smp.in_vlan != 0, smp.in_vlan, smp.out_vlan) & 0xFFFF)
        if "cos" in f:
            put("cos", np.where(smp.in_prio != 0, smp.in_prio, smp.out_prio) & 0xFF)
        if "etype" in f:
            put("etype", smp.etype & 0xFFFF)
        if "in_iface" in f:
            put("in_iface", smp.in_if & 0xFFFFFFFF)
        if "out_iface" in f:
            put("out_iface", smp.out_if & 0xFFFFFFFF)
        if "src_mask" in f:
            put("src_mask", smp.src_mask & 0xFF)
        if "dst_mask" in f:
            put("dst_mask", smp.dst_mask & 0xFF)
        if "src_as" in f:
            put("src_as", smp.src_as)
        if "dst_as" in f:
            put("dst_as", smp.dst_as)
        if "peer_src_as" in f:
            put("peer_src_as", smp.peer_src_as)
        if "peer_dst_as" in f:
            put("peer_dst_as", smp.peer_dst_as)
        if "local_pref" in f:
            put("local_pref", smp.local_pref)
        if "as_path" in f:
            put("as_path", smp.as_path)
        if "std_comm" in f:
            put("std_comm", smp.comms)
        if "peer_dst_ip" in f:
            # the BGP next hop; else the router's next hop (IPv4 only with use_ip_next_hop)
            nh_af = smp.bgp_nh_af.copy()
            nh = smp.bgp_nh.copy()
            use = (nh_af == 0) & ((smp.nh_af == 6) | ((smp.nh_af == 4) & self.opts.use_ip_next_hop))
            nh_af[use] = smp.nh_af[use]
            nh[use] = smp.nh[use]
            self._addr(out, "peer_dst_ip", nh_af, nh)
        if "nexthop" in f:
            self._addr(out, "nexthop", smp.nh_af, smp.nh)
        if "peer_src_ip" in f:
            self._addr(out, "peer_src_ip", agent_af[dg], agent[dg])
        if "export_proto_seqno" in f:
            put("export_proto_seqno", dseq[dg])
        if "export_proto_version" in f:
            put("export_proto_version", ver[dg])
        if "export_proto_sysid" in f:
            put("export_proto_sysid", sub[dg])
        if "sample_type" in f:
            put("sample_type", np.ones(smp.n, np.int64))
        sr = np.where(self.opts.renormalize & (rate != 0), 1, rate)
        if "sampling_rate" in f:
            put("sampling_rate", sr)
        if "sampling_direction" in f:
            put("sampling_direction", np.full(smp.n, ord("u")))
        if "mpls_pw_id" in f:
            put("mpls_pw_id", smp.pw_id)
        # pre_tag_map's sFlow keys (sample_type, direction, vlan)
        if "sf_sample_type" in f:
            put("sf_sample_type", smp.stype)
        if "sf_ds_index" in f:
            put("sf_ds_index", smp.src_index & 0xFFFFFFFF)
        if "sf_in_vlan" in f:
            put("sf_in_vlan", smp.in_vlan & 0xFFFF)
        if "sf_out_vlan" in f:
            put("sf_out_vlan", smp.out_vlan & 0xFFFF)
        self._addr(out, "sf_bgp_nexthop", smp.bgp_nh_af, smp.bgp_nh)
        if "mpls_label_top" in f:
            put("mpls_label_top", smp.mpls_top)
        if "mpls_label_bottom" in f:
            put("mpls_label_bottom", smp.mpls_bottom)
        if "mpls_stack_depth" in f:
            put("mpls_stack_depth", smp.mpls_depth)
        if "vxlan" in f:
            put("vxlan", smp.vxlan)
        if self._tunnels:
            self._addr(out, "tunnel_src_host", smp.tun_af, smp.tun_src)
            self._addr(out, "tunnel_dst_host", smp.tun_af, smp.tun_dst)
            if "tunnel_proto" in f:
                put("tunnel_proto", smp.tun_proto)
            if "tunnel_tos" in f:
                put("tunnel_tos", smp.tun_tos)
            tl4 = (smp.tun_proto == 6) | (smp.tun_proto == 17)
            if "tunnel_src_port" in f:
                put("tunnel_src_port", np.where(tl4, smp.tun_sport, 0))
            if "tunnel_dst_port" in f:
                put("tunnel_dst_port", np.where(tl4, smp.tun_dport, 0))
            if "tunnel_src_mac" in f:
                out["tunnel_src_mac"] = pkt.byte_rows(smp.tun_smac)
            if "tunnel_dst_mac" in f:
                out["tunnel_dst_mac"] = pkt.byte_rows(smp.tun_dmac)
        for name, _ in self._cp_specs:
            out[name] = getattr(smp, "cp_" + name)
        ts = pk.ts[dg]
        if "ts_arrival" in f:
            put("ts_arrival", ts)
        if "time_start" in f:
            put("time_start", ts)
        return out

    @staticmethod
    def _putter(out):
        names = out.dtype.names

        def put(name, values):
            if name in names:
                out[name] = values
        return put

    @staticmethod
    def _addr(out, name, af, raw16):
        if name in out.dtype.names:
            out[name]["af"] = af
            out[name]["addr"] = np.ascontiguousarray(raw16).view("V16").reshape(-1)

    @staticmethod
    def _agent_texts(af, raw, good) -> "_Agents":
        """The agent of each datagram: an id per datagram and a text per distinct agent
        (formatted once each)."""
        if not len(af):
            return _Agents([], np.zeros(0, np.int64))
        words = np.ascontiguousarray(raw).view(">u8")          # (n, 2): exact 128-bit keys
        hi, lo = words[:, 0], words[:, 1]
        o = np.lexsort((lo, hi, af))
        new = np.ones(len(o), bool)
        new[1:] = (af[o][1:] != af[o][:-1]) | (hi[o][1:] != hi[o][:-1]) | (lo[o][1:] != lo[o][:-1])
        grp = np.cumsum(new) - 1
        ids = np.empty(len(o), np.int64)
        ids[o] = grp
        names = []
        for i in o[new].tolist():
            fam = socket.AF_INET if af[i] == 4 else socket.AF_INET6
            names.append(socket.inet_ntop(fam, bytes(raw[i, :4] if af[i] == 4 else raw[i])))
        return _Agents(names, ids)

    # --- sequence numbers: per (agent, sub-agent) each datagram is the previous + 1
    def _sequences(self, pk, idx, agent_txt, sub, dseq) -> None:
        if not len(idx):
            return
        status = self.agent_status
        if self.opts.disable_checks:
            # only remember each (agent, sub-agent)'s last sequence number; all are good
            # one 64-bit key per datagram: agent id, sub-agent id (32 bits)
            k = (agent_txt.ids[idx].astype(np.int64) << 32) | (sub[idx] & 0xFFFFFFFF)
            rev = k[::-1]
            u, last, inv, cnt = np.unique(rev, return_index=True, return_inverse=True,
                                          return_counts=True)
            nbytes = np.bincount(inv.ravel(), weights=pk.length[idx][::-1], minlength=len(u))
            lastpos = idx[::-1][last]
            pairs = [(int(x) >> 32, int(x) & 0xFFFFFFFF) for x in u.tolist()]
            for (a, sb), i, c, nb in zip(pairs, lastpos.tolist(), cnt.tolist(),
                                         nbytes.tolist()):
                key = (agent_txt.names[a], sb)
                self.seq_state[key] = int(dseq[i])
                st = status.setdefault(key, [0, 0, 0, 0, 0])
                st[0] += c
                st[1] += int(nb)
                st[2] += c
            return
        lengths = pk.length[idx].tolist()
        for i, dlen in zip(idx.tolist(), lengths):
            key = (agent_txt[i], int(sub[i]))
            prev = self.seq_state.get(key)
            s = int(dseq[i])
            st = status.get(key)
            if st is None:
                st = status[key] = [0, 0, 0, 0, 0]
            st[0] += 1
            st[1] += dlen
            if prev and s != ((prev + 1) & 0xFFFFFFFF):
                st[3 if s > ((prev + 1) & 0xFFFFFFFF) else 4] += 1
                ref = pk.ref(i)
                self.stats.exporter(ref.src).seq_errors += 1
                self.log.limited((ref.src, "seq", key[1]),
                                 f"expecting flow '{prev + 1}' but received '{s}' collector="
                                 f"{self.opts.collector_ip}:{self.opts.collector_port} "
                                 f"agent={key[0]}:{key[1]}", level="INFO")
            else:
                st[2] += 1
            self.seq_state[key] = s

    # --- sFlow v5: samples and their records
    def _walk_v5(self, pk, b, idx, first, E, nsamp) -> _Samples:
        flows = []         # (datagram position in idx, rank in it, body start, end, expanded)
        cnts = []
        cur = first[idx].copy()
        left = np.minimum(nsamp[idx], MAX_SAMPLES)
        end = E[idx]
        dgi = idx.copy()
        nflow = np.zeros(len(idx), np.int64)      # flow samples seen so far per datagram
        act = np.nonzero(left > 0)[0]
        while len(act):
            c = cur[act]
            e = end[act]
            w = b.words(c, 2)                       # type, length
            tag = w[:, 0].astype(np.int64)
            ln = w[:, 1].astype(np.int64)
            short = c + 8 > e
            # Brocade ACL samples: three words, then the real sample type
            br = tag == BROCADE_ACL_SAMPLE
            if br.any():
                br &= ~short
                c = np.where(br, c + 12, c)
                w = b.words(c[br], 2)
                tag[br] = w[:, 0]
                ln[br] = w[:, 1]
            bend = c + 8 + ln
            over = short | (bend > e)
            bad = over | (tag < FLOW_SAMPLE) | (tag > COUNTER_SAMPLE_EXP)   # types 1-4
            if bad.any():
                for j, o in zip(act[bad].tolist(), over[bad].tolist()):
                    ref = pk.ref(int(dgi[j]))
                    self.malformed(ref.src, ref.port, "discarding short sFlow v5 packet" if o
                                   else "discarding unknown v5 sample")
                left[act[bad]] = 0
                ok = ~bad
                act, tag, c, bend = act[ok], tag[ok], c[ok], bend[ok]
            fl = (tag == FLOW_SAMPLE) | (tag == FLOW_SAMPLE_EXP)
            af = act[fl]
            flows.append((af, nflow[af], c[fl] + 8, bend[fl], tag[fl] == FLOW_SAMPLE_EXP))
            nflow[af] += 1
            if self.opts.counters:
                ct = ~fl
                if ct.any():
                    cnts.append((dgi[act[ct]], c[ct] + 8, bend[ct], tag[ct] == COUNTER_SAMPLE_EXP))
            cur[act] = bend
            left[act] -= 1
            act = act[np.flatnonzero(left[act] > 0)]      # (index arrays: see _records)
        if cnts:
            self._keep_counters(pk, b, cnts)
        if not flows:
            return _Samples(0, self._cp_specs)
        # arrival order (by datagram, then position): each flow sample's place is the
        # number of flow samples of the datagrams before its own plus its rank in its own
        # (``idx`` is in datagram order)
        j, rank, bs, be, ex = (np.concatenate(x) for x in zip(*flows))
        base = np.cumsum(nflow) - nflow
        dest = base[j] + rank
        n = len(dest)
        dg, bs2, be2, ex2 = (np.empty(n, np.int64), np.empty(n, np.int64),
                             np.empty(n, np.int64), np.empty(n, bool))
        dg[dest], bs2[dest], be2[dest], ex2[dest] = dgi[j], bs, be, ex
        return self._flow_samples(pk, b, dg, bs2, be2, ex2)

    def _flow_samples(self, pk, b, dg, bs, be, ex) -> _Samples:
        n = len(dg)
        s = _Samples(n, self._cp_specs)
        s.dg = dg
        fixed = np.where(ex, 44, 32)
        short = bs + fixed > be
        s.bad |= short
        f = self.fields
        # the fixed part of every sample in one gather: compact (8 words: seq, source
        # id, rate, pool, drops, input, output, records) or expanded (11: seq, source
        # class, index, rate, pool, drops, input format, value, output format, value,
        # records), and the first record's type and length behind it
        w = b.words(bs, 13)
        col = lambda c, e: np.where(ex, w[:, e], w[:, c]).astype(np.int64)  # noqa: E731
        anyex = bool(ex.any())
        if not anyex:
            col = lambda c, e: w[:, c].astype(np.int64)  # noqa: E731
        # what only some primitives or renormalization use is read only for them
        if self.opts.renormalize or "sampling_rate" in f:
            s.rate = col(2, 3)
        s.stype = np.where(ex, FLOW_SAMPLE_EXP, FLOW_SAMPLE)
        if self.opts.renormalize or "sf_ds_index" in f:
            s.seq = w[:, 0].astype(np.int64)
            sid = w[:, 1].astype(np.int64)
            s.src_class = np.where(ex, sid, sid >> 24)
            s.src_index = np.where(ex, w[:, 2], sid & 0xFFFFFF).astype(np.int64)
            s.pool = col(3, 4)
        if "in_iface" in f:
            s.in_if = col(5, 7)
        if "out_iface" in f:
            s.out_if = col(6, 9)
        nrec = np.where(short, 0, np.minimum(col(7, 10), MAX_RECORDS))
        cur = bs + fixed
        # walk the records of all samples in lock-step (one step per record position),
        # keeping where each record is; then apply them kind by kind for the whole batch
        parts = []
        last = np.zeros(n, np.int64)               # rank of each sample's latest record
        odd = np.zeros(n, bool)                     # records out of _RANK order
        act = np.nonzero(nrec > 0)[0]
        depth = 0
        while len(act):
            c = cur[act]
            if depth == 0:                          # type, length: gathered above
                e0 = ex[act]
                tag = np.where(e0, w[act, 11], w[act, 8]).astype(np.int64)
                ln = np.where(e0, w[act, 12], w[act, 9])
            else:
                rw = b.words(c, 2)                  # type, length
                tag = rw[:, 0].astype(np.int64)
                ln = rw[:, 1]
            r0 = c + 8
            r1 = r0 + ln
            over = (r0 > be[act]) | (r1 > be[act])
            if over.any():
                s.bad[act[over]] = True
                nrec[act[over]] = 0
                keep = ~over
                act, tag, r0, r1 = act[keep], tag[keep], r0[keep], r1[keep]
            k = np.minimum(np.searchsorted(_RANK_TAGS, tag), len(_RANK_TAGS) - 1)
            rank = np.where(_RANK_TAGS[k] == tag, k + 1, 0)
            known = rank > 0
            if not known.all():
                a2, t2, s2, e2, rk = act[known], tag[known], r0[known], r1[known], rank[known]
            else:
                a2, t2, s2, e2, rk = act, tag, r0, r1, rank
            odd[a2[rk <= last[a2]]] = True
            last[a2] = rk
            parts.append((a2, t2, s2, e2, np.full(len(a2), depth)))
            cur[act] = r1
            nrec[act] -= 1
            act = act[np.flatnonzero(nrec[act] > 0)]
            depth += 1
        if not parts:
            return s
        A, T, R0, R1, D = (np.concatenate(x) for x in zip(*parts)) if len(parts) > 1 \
            else parts[0]
        if not odd.any():
            self._records(b, s, A, T, R0, R1)
            return s
        # samples whose records come in _RANK order (nearly all) take one pass; the
        # others have their records applied position by position, as they came
        sel = ~odd[A]
        self._records(b, s, A[sel], T[sel], R0[sel], R1[sel])
        sel = ~sel
        A, T, R0, R1, D = A[sel], T[sel], R0[sel], R1[sel], D[sel]
        for d in np.unique(D).tolist():
            m = D == d
            self._records(b, s, A[m], T[m], R0[m], R1[m])
        return s

    _FIXED = {REC_ETHERNET: 24, REC_IPV4: 32, REC_IPV6: 56, REC_SWITCH: 16}

    def _records(self, b, s, act, tag, r0, r1) -> None:
        """Apply one record position's records to their samples. A record whose content
        does not fill exactly its declared length makes the sample bad (pmacct's
        lengthCheck drops it)."""
        ln = r1 - r0
        bad = np.zeros(len(act), bool)
        for t, size in self._FIXED.items():
            bad |= (tag == t) & (ln != size)
        # records split by type through index arrays: a boolean mask that selects a
        # share of them in no order is several times slower to index with
        h = np.flatnonzero(tag == REC_HEADER)
        hw = None
        if len(h):
            hw = b.words(r0[h], 4)                  # protocol, size, stripped, length
            hl = hw[:, 3].astype(np.int64)
            bad[h] |= (ln[h] < 16) | (16 + ((hl + 3) & ~3) != ln[h])
        rt = np.flatnonzero(tag == REC_ROUTER)
        if len(rt):
            at = b.be32(r0[rt]).astype(np.int64)
            bad[rt] |= np.where(at == 1, 16, 28) != ln[rt]
        if bad.any():
            s.bad[act[bad]] = True
            keep = ~bad
            if hw is not None:
                hw = hw[keep[h]]
            act, tag, r0, r1 = act[keep], tag[keep], r0[keep], r1[keep]
        m = np.flatnonzero(tag == REC_HEADER)
        if len(m):
            self._header(b, s, act[m], r0[m], r1[m], hw)
        m = np.flatnonzero((tag == REC_ETHERNET) & (r1 - r0 >= 24))
        if len(m):
            i, p = act[m], r0[m]
            ln = b.be32(p).astype(np.int64)
            if "src_mac" in self.fields:
                pkt.byte_rows(s.src_mac)[i] = pkt.byte_rows(b.rows(p + 4, 6))
            if "dst_mac" in self.fields:
                pkt.byte_rows(s.dst_mac)[i] = pkt.byte_rows(b.rows(p + 12, 6))
            et = b.be32(p + 20).astype(np.int64)
            s.etype[i] = et
            s.got4[i] |= et == pkt.ETH_IPV4
            s.got6[i] |= et == pkt.ETH_IPV6
            s.size[i] = np.where(s.size[i] == 0, ln, s.size[i])
        m = np.flatnonzero((tag == REC_IPV4) & (r1 - r0 >= 32))
        if len(m):
            i, p = act[m], r0[m]
            s.size[i] = b.be32(p)
            s.proto[i] = b.be32(p + 4)
            pkt.byte_rows(s.src)[i] = _ZERO16
            pkt.byte_rows(s.dst)[i] = _ZERO16
            pkt.byte_cols4(s.src)[i] = pkt.byte_rows(b.rows(p + 8, 4))
            pkt.byte_cols4(s.dst)[i] = pkt.byte_rows(b.rows(p + 12, 4))
            s.sport[i] = b.be32(p + 16)
            s.dport[i] = b.be32(p + 20)
            s.tos[i] = b.be32(p + 28)
            s.got4[i] = True
        m = np.flatnonzero((tag == REC_IPV6) & (r1 - r0 >= 56))
        if len(m):
            i, p = act[m], r0[m]
            s.size[i] = b.be32(p)
            s.proto[i] = b.be32(p + 4)
            pkt.byte_rows(s.src)[i] = pkt.byte_rows(b.rows(p + 8, 16))
            pkt.byte_rows(s.dst)[i] = pkt.byte_rows(b.rows(p + 24, 16))
            s.sport[i] = b.be32(p + 40)
            s.dport[i] = b.be32(p + 44)
            s.tos[i] = b.be32(p + 52)
            s.got6[i] = True
        m = np.flatnonzero((tag == REC_SWITCH) & (r1 - r0 >= 16)) if self._vlan_cos else ()
        if len(m):
            i, p = act[m], r0[m]
            s.in_vlan[i] = b.be32(p)
            s.in_prio[i] = b.be32(p + 4)
            s.out_vlan[i] = b.be32(p + 8)
            s.out_prio[i] = b.be32(p + 12)
        m = np.flatnonzero(tag == REC_ROUTER) if self._router else ()
        if len(m):
            i, p, e = act[m], r0[m], r1[m]
            ok, af, raw, size = b.addr(p, e)
            ok &= p + size + 8 <= e
            i, p, af, raw, size = i[ok], p[ok], af[ok], raw[ok], size[ok]
            s.nh_af[i] = af
            s.nh[i] = raw
            s.src_mask[i] = b.be32(p + size)
            s.dst_mask[i] = b.be32(p + size + 4)
        m = np.flatnonzero(tag == REC_GATEWAY)
        if len(m):
            self._gateway(b, s, act[m], r0[m], r1[m])
        m = np.flatnonzero(tag == REC_MPLS_VC)
        if len(m):
            i, p, e = act[m], r0[m], r1[m]
            nl = b.be32(p).astype(np.int64)
            q = p + 4 + ((nl + 3) & ~3)
            ok = q + 8 == e
            s.bad[i[~ok]] = True
            s.pw_id[i[ok]] = b.be32(q[ok])
        m = np.flatnonzero(tag == REC_GATEWAY_V4)
        if len(m):
            self._gateway(b, s, act[m], r0[m], r1[m], next_hop=False)

    def _header(self, b, s, i, p, e, w) -> None:
        """Sampled packet header records at ``p`` (``w``: their first four words:
        protocol, frame size, bytes stripped, header length)."""
        hp = w[:, 0].astype(np.int64)
        hl = w[:, 3].astype(np.int64)
        data = p + 16
        hl = np.maximum(np.minimum(hl, e - data), 0)
        s.size[i] = w[:, 1]
        kind = _HP_LUT[np.minimum(hp, len(_HP_LUT) - 1)]
        known = kind > 0
        if not known.all():
            i, data, hl, kind = i[known], data[known], hl[known], kind[known]
            if not len(i):
                return
        f = self.fields
        r = pkt.parse(b, data, hl, kind, max_vlan_tags=1, snap=True, min_l4=8,
                      tunnels=self._tunnels, ipip=True, macs=self._macs,
                      transport=self._transport, extras=bool(self._cps))
        # only what the run's primitives use is written into the samples
        if self._macs:
            eth = kind == pkt.K_ETH
            pkt.byte_rows(s.dst_mac)[i[eth]] = pkt.byte_rows(r.dst_mac)[eth]
            pkt.byte_rows(s.src_mac)[i[eth]] = pkt.byte_rows(r.src_mac)[eth]
        if self._vlan_cos:
            # the header's VLAN and priority count only if no switch record said otherwise
            nov = (s.in_vlan[i] == 0) & (s.out_vlan[i] == 0)
            s.in_vlan[i[nov]] = r.vlan[nov]
            nop = (s.in_prio[i] == 0) & (s.out_prio[i] == 0)
            s.in_prio[i[nop]] = np.where(r.vlan_tags[nop] > 0, r.cos[nop], 0)
        if "etype" in f:
            s.etype[i] = r.etype
        if self._mpls:
            s.mpls_top[i] = r.mpls_top
            s.mpls_bottom[i] = r.mpls_bottom
            s.mpls_depth[i] = r.mpls_depth
        s.got4[i] = r.l3 == 4
        s.got6[i] = r.l3 == 6
        ip = r.af > 0
        if ip.all():
            j, ip = i, slice(None)
        else:
            j = i[ip]
        if "src_host" in f:
            pkt.byte_rows(s.src)[j] = pkt.byte_rows(r.src)[ip]
        if "dst_host" in f:
            pkt.byte_rows(s.dst)[j] = pkt.byte_rows(r.dst)[ip]
        if self._proto:
            s.proto[j] = r.proto[ip]
        if "tos" in f:
            s.tos[j] = np.where(r.af[ip] == 6, r.tos[ip] >> 4, r.tos[ip])
        if "src_port" in f:
            s.sport[j] = r.src_port[ip]
        if "dst_port" in f:
            s.dport[j] = r.dst_port[ip]
        if "tcp_flags" in f:
            s.flags[j] = r.tcp_flags[ip]
        if "vxlan" in f:
            s.vxlan[i] = r.vxlan
        if self._cps:
            self._packet_ptrs(b, s, i, data, hl, kind, r)
        if r.inner is not None and len(r.inner_rows):
            inn, t = r.inner, i[r.inner_rows]
            s.tun_af[t] = inn.af
            s.tun_src[t] = inn.src
            s.tun_dst[t] = inn.dst
            s.tun_proto[t] = inn.proto
            s.tun_tos[t] = np.where(inn.af == 6, inn.tos >> 4, inn.tos)
            s.tun_sport[t] = inn.src_port
            s.tun_dport[t] = inn.dst_port
            s.tun_smac[t] = inn.src_mac
            s.tun_dmac[t] = inn.dst_mac

    def _packet_ptrs(self, b, s, i, data, hl, kind, r) -> None:
        """packet_ptr custom primitives from the sampled header, for Ethernet headers
        that carry IP (the ones 1.7.7 reads them from): pypmacct.decoders.packet_ptr."""
        from . import packet_ptr as PP
        et = b.be16(data + 12)
        rows = np.nonzero((kind == pkt.K_ETH) & (r.af > 0) & (hl >= 14) & np.isin(
            et, (pkt.ETH_IPV4, pkt.ETH_IPV6, pkt.ETH_8021Q) + pkt.ETH_MPLS))[0]
        if not len(rows):
            return
        start = data[rows]
        end = start + hl[rows]
        offs, protos = PP.layer_offsets(r, rows, start, end, b.a,
                                        np.ones(len(rows), bool))
        tmp = np.zeros(len(rows), np.dtype(list(self._cp_specs)))
        PP.fill(tmp, self._cps, b.a, start, end, offs, protos, self._strings)
        for name, _ in self._cp_specs:
            getattr(s, "cp_" + name)[i[rows]] = tmp[name]

    def _gateway(self, b, s, i, p, e, next_hop: bool = True) -> None:
        n = len(i)
        if next_hop:
            ok, af, raw, size = b.addr(p, e)
        else:
            ok, af, raw, size = np.ones(n, bool), np.zeros(n, np.uint8), np.zeros((n, 16), np.uint8), 0
        q = p + size
        ok &= q + 16 <= e
        f = self.fields
        # every record is walked (a malformed one drops its sample); what it says is
        # kept only for the primitives the run uses
        w = b.words(q, 4)                   # AS, source AS, source peer AS, segments
        if f & {"peer_dst_ip", "sf_bgp_nexthop"}:
            s.bgp_nh_af[i[ok]] = af[ok]
            s.bgp_nh[i[ok]] = raw[ok]
        if "src_as" in f:
            s.src_as[i[ok]] = w[ok, 1]
        if "peer_src_as" in f:
            s.peer_src_as[i[ok]] = w[ok, 2]
        nseg = np.where(ok, w[:, 3], 0).astype(np.int64)
        cur = q + 16
        path_start = cur.copy()
        first_as = np.zeros(n, np.int64)
        last_as = np.zeros(n, np.int64)
        for k in range(int(min(nseg.max(initial=0), 64))):
            act = np.nonzero(ok & (nseg > k))[0]
            if not len(act):
                break
            c = cur[act]
            bad = c + 8 > e[act]
            ok[act[bad]] = False
            act, c = act[~bad], c[~bad]
            sl = b.be32(c + 4).astype(np.int64)
            bad = c + 8 + 4 * sl > e[act]
            ok[act[bad]] = False
            act, c, sl = act[~bad], c[~bad], sl[~bad]
            if k == 0:
                has = sl > 0
                first_as[act[has]] = b.be32(c[has] + 8)
            lastseg = nseg[act] == k + 1
            ls = lastseg & (sl > 0)
            last_as[act[ls]] = b.be32(c[ls] + 8 + 4 * (sl[ls] - 1))
            cur[act] = c + 8 + 4 * sl
        path_end = cur.copy()
        nc = np.where(ok & (cur + 4 <= e), b.be32(cur), 0).astype(np.int64)
        ok &= cur + 8 + 4 * nc <= e
        comm_start = cur + 4
        lp = np.where(ok, b.be32(cur + 4 + 4 * nc), 0)
        ok &= cur + 8 + 4 * nc == e                   # the record holds nothing else
        j = i[ok]
        if "dst_as" in f:
            s.dst_as[j] = last_as[ok]
        if "peer_dst_as" in f:
            s.peer_dst_as[j] = first_as[ok]
        if "local_pref" in f:
            s.local_pref[j] = lp[ok]
        s.bad[i[~ok]] = True
        if "as_path" in self.fields or "std_comm" in self.fields:
            self._gateway_texts(b, s, j, path_start[ok], path_end[ok], nseg[ok], comm_start[ok],
                                nc[ok])

    def _gateway_texts(self, b, s, j, ps, pe, nseg, cs, nc) -> None:
        """AS path and community texts: the records' path and community bytes are laid
        in fixed-width rows, made unique, and each distinct value is formatted once."""
        if not len(j):
            return
        st = self._strings
        plen = pe - ps
        clen = 4 * nc
        wp, wc = int(plen.max(initial=0)), int(clen.max(initial=0))
        a = b.a
        cols = []
        for start, ln, w in ((ps, plen, wp), (cs, clen, wc)):
            if w:
                k = np.arange(w)
                idx = np.minimum(start[:, None] + k, len(a) - 1)
                m = a[idx]
                m[k >= ln[:, None]] = 0
                cols.append(m)
        meta = np.stack([plen, clen, nseg], axis=1).astype(">u4").view(np.uint8).reshape(len(j), 12)
        rows = np.ascontiguousarray(np.concatenate([meta] + cols, axis=1))
        # a 64-bit hash per row, made unique; rows equal to their representative keep
        # its id, the rare others (a hash collision) get their own
        words = np.zeros((len(j), (rows.shape[1] + 7) // 8 * 8), np.uint8)
        words[:, :rows.shape[1]] = rows
        w64 = words.view(np.uint64)
        h = np.full(len(j), 0xCBF29CE484222325, np.uint64)
        with np.errstate(over="ignore"):
            for c in range(w64.shape[1]):
                h = (h ^ w64[:, c]) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
        _u, first, inv = np.unique(h, return_index=True, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        clash = np.nonzero((rows != rows[first[inv]]).any(axis=1))[0]
        if len(clash):
            extra = len(first) + np.arange(len(clash))
            first = np.concatenate([first, clash])
            inv = inv.copy()
            inv[clash] = extra
        path_ids = np.empty(len(first), np.int64)
        comm_ids = np.empty(len(first), np.int64)
        for u, f in enumerate(first.tolist()):
            p0, p1, ns = int(ps[f]), int(pe[f]), int(nseg[f])
            c0, ncm = int(cs[f]), int(nc[f])
            words = struct.unpack(f"!{(p1 - p0) // 4}I", a[p0:p1].tobytes())
            parts, pos = [], 0
            for _k in range(ns):
                sl = words[pos + 1]
                parts.append(" ".join(str(x) for x in words[pos + 2:pos + 2 + sl]))
                pos += 2 + sl
            path_ids[u] = st.intern(" ".join(x for x in parts if x))
            comm_ids[u] = st.intern(comm_text(struct.unpack(f"!{ncm}I", a[c0:c0 + 4 * ncm].tobytes())))
        s.as_path[j] = path_ids[inv]
        s.comms[j] = comm_ids[inv]

    # --- which samples become records
    def _account(self, s: _Samples) -> _Samples:
        if s.n and s.bad.any():
            self.bad_samples += int(s.bad.sum())
            self.log.limited(("badsample",), f"discarding {int(s.bad.sum())} malformed sFlow "
                             "flow sample(s) (record lengths do not match)", level="INFO")
        keep = (s.got4 | s.got6) & ~s.bad
        if keep.all():
            return s
        out = _Samples(int(keep.sum()), self._cp_specs)
        for k, v in s.columns().items():
            setattr(out, k, v[keep])
        return out

    def _merge(self, a: _Samples, c: _Samples) -> _Samples:
        if not a.n:
            return c
        if not c.n:
            return a
        out = _Samples(a.n + c.n, self._cp_specs)
        for k in set(a.columns()) | set(c.columns()):
            setattr(out, k, np.concatenate([getattr(a, k), getattr(c, k)]))
        o = np.argsort(out.dg, kind="stable")
        for k, v in out.columns().items():
            setattr(out, k, v[o])
        return out

    # --- sfacctd_renormalize: pmacct's effective sampling rate per data source
    def _renormalize(self, s: _Samples, agent_txt, sub, rate) -> np.ndarray:
        """The multiplier of each sample: the effective rate (pool and sequence deltas
        since the data source's previous sample) where both grew, else the declared rate;
        state per (agent, sub-agent, data source) as pmacct keeps it."""
        n = s.n
        mult = rate.copy()
        # group = (agent, sub-agent, data source): one lexsort
        anames = agent_txt.names
        srcid = (s.src_class << 24) | s.src_index
        k1 = (agent_txt.ids[s.dg] << 32) | sub[s.dg]
        o = np.lexsort((np.arange(n), srcid, k1))
        ks1, ks2 = k1[o], srcid[o]
        newg = np.ones(n, bool)
        newg[1:] = (ks1[1:] != ks1[:-1]) | (ks2[1:] != ks2[:-1])
        g = np.cumsum(newg) - 1
        gid = np.empty(n, np.int64)
        gid[o] = g
        heads = o[newg]
        klist = [(anames[int(a) >> 32], int(a) & 0xFFFFFFFF, int(c))
                 for a, c in zip(k1[heads].tolist(), srcid[heads].tolist())]
        seq, pool = s.seq[o], s.pool[o]
        start = np.ones(n, bool)
        start[1:] = g[1:] != g[:-1]
        prev_seq = np.empty(n, np.int64)
        prev_pool = np.empty(n, np.int64)
        prev_seq[1:], prev_pool[1:] = seq[:-1], pool[:-1]
        has_prev = ~start
        for pos in np.nonzero(start)[0].tolist():
            st = self.renorm.get(klist[int(g[pos])])
            if st is not None:
                prev_seq[pos], prev_pool[pos] = st
                has_prev[pos] = True
        grow = has_prev & (seq > prev_seq) & (pool > prev_pool)
        simple_groups = np.ones(len(klist), bool)
        np.logical_and.at(simple_groups, g, grow | ~has_prev)
        simple = simple_groups[g]
        eff = np.where(grow, (pool - prev_pool) // np.maximum(seq - prev_seq, 1), 0)
        m = np.where(grow, eff, rate[o])
        mult[o[simple]] = m[simple]
        last = np.ones(n, bool)
        last[:-1] = start[1:]
        for pos in np.nonzero(last & simple)[0].tolist():
            self.renorm[klist[int(g[pos])]] = [int(seq[pos]), int(pool[pos])]
        # the rest one by one, in arrival order (out-of-order or reset data sources)
        for pos in np.sort(o[~simple]).tolist():
            k = klist[int(gid[pos])]
            sq, pl = int(s.seq[pos]), int(s.pool[pos])
            st = self.renorm.get(k)
            if st is None:
                self.renorm[k] = [sq, pl]
                mult[pos] = rate[pos]
            elif sq > st[0] and pl > st[1]:
                mult[pos] = (pl - st[1]) // (sq - st[0])
                st[0], st[1] = sq, pl
            else:
                if max(sq, st[0]) > min(sq, st[0]) + RESET_BOUNDARY:
                    st[0], st[1] = sq, pl
                mult[pos] = rate[pos]
        return mult

    # --- sFlow v2/v4: no lengths, one datagram at a time
    def _v2v4(self, pk, idx, first, E, nsamp, ver, strings, b) -> _Samples:
        rows = []
        for d in idx.tolist():
            try:
                rows.extend(self._v2v4_one(b, d, int(first[d]), int(E[d]), int(nsamp[d]),
                                           int(ver[d])))
            except (IndexError, ValueError, struct.error):
                ref = pk.ref(d)
                self.malformed(ref.src, ref.port, "discarding malformed sFlow v2/v4 packet")
        if not rows:
            return _Samples(0, self._cp_specs)
        # re-lay the v2/v4 samples as v5 ones and decode them with the v5 path
        buf = bytearray()
        spans = []
        for d, body in rows:
            spans.append((d, len(buf), len(buf) + len(body)))
            buf += body
        nb = _Buf(bytes(buf))
        dg = np.array([r[0] for r in spans], np.int64)
        bs = np.array([r[1] for r in spans], np.int64)
        be = np.array([r[2] for r in spans], np.int64)
        s = self._flow_samples(pk, nb, dg, bs, be, np.zeros(len(dg), bool))
        return s

    def _v2v4_one(self, b, d, p, e, nsamp, version):
        """Flow samples of one v2/v4 datagram as v5 compact flow sample bodies."""
        a = b.a
        raw = a[:e].tobytes()
        u32 = lambda q: struct.unpack_from("!I", raw, q)[0]  # noqa: E731
        out = []
        for _ in range(min(nsamp, MAX_SAMPLES)):
            if p + 4 > e:
                raise ValueError("short")
            st = u32(p)
            p += 4
            if st == FLOW_SAMPLE:
                head = raw[p:p + 28]
                p += 28
                ptag = u32(p)
                p += 4
                recs = []
                if ptag == 1:                       # header: protocol, size, length, bytes
                    hproto, size, hl = struct.unpack_from("!III", raw, p)
                    data = raw[p + 12:p + 12 + hl]
                    p += 12 + ((hl + 3) & ~3)
                    body = struct.pack("!IIII", hproto, size, 0, hl) + data + bytes(-hl % 4)
                    recs.append((REC_HEADER, body))
                elif ptag == 2:
                    recs.append((REC_IPV4, raw[p:p + 32]))
                    p += 32
                elif ptag == 3:
                    recs.append((REC_IPV6, raw[p:p + 56]))
                    p += 56
                else:
                    raise ValueError("unknown v2/v4 data tag")
                next_ = u32(p)
                p += 4
                for _ in range(min(next_, MAX_RECORDS)):
                    et = u32(p)
                    p += 4
                    q = p
                    if et == 1:
                        p += 16
                    elif et == 2:
                        p += (8 if u32(p) == 1 else 20) + 8
                    elif et == 3:
                        if version == 2:
                            # v2: AS, source AS, source peer AS, then the destination
                            # path as a plain list of AS numbers (no segments, no
                            # communities, no local preference). pmacct 1.7.7 keeps only
                            # the source AS and source peer AS of it: laid out as a v4
                            # record with an empty path
                            n_ = u32(p + 12)
                            p += 16 + 4 * n_
                            if p > e:
                                raise ValueError("short")
                            recs.append((REC_GATEWAY_V4, raw[q:q + 12] + bytes(12)))
                            continue
                        p += 12
                        nseg = u32(p)
                        p += 4
                        for _ in range(nseg):
                            p += 8 + 4 * u32(p + 4)
                        p += 4 + 4 * u32(p) + 4
                        recs.append((REC_GATEWAY_V4, raw[q:p]))     # no BGP next hop
                        continue
                    elif et in (4, 5):
                        if et == 5:
                            p += 4
                        for _ in range(1 if et == 5 else 2):
                            p += 4 + ((u32(p) + 3) & ~3)
                        continue
                    else:
                        raise ValueError("unknown v2/v4 extended tag")
                    recs.append((1000 + et, raw[q:p]))
                if p > e:
                    raise ValueError("short")
                body = head + struct.pack("!I", len(recs)) + b"".join(
                    struct.pack("!II", t, len(r)) + r for t, r in recs)
                out.append((d, body))
            elif st == COUNTER_SAMPLE:
                _seq, _sid, _interval, cver = struct.unpack_from("!IIII", raw, p)
                q = p
                p += 16
                p += {1: 88, 2: 140, 3: 160, 4: 88, 5: 168, 6: 88, 7: 28}.get(cver, -10**9)
                if p < 0:
                    raise ValueError("unknown counters version")
                if self.opts.counters and p <= e:
                    agent_txt, ver, dseq = self._ctx
                    self.counter_samples.append((d, agent_txt[d], version, int(dseq[d]),
                                                 raw[q:p], False))
            else:
                raise ValueError("unknown v2/v4 sample")
        return out

    # --- counter samples (sfacctd_counter_file)
    def _keep_counters(self, pk, b, cnts) -> None:
        agent_txt, ver, dseq = self._ctx
        rows = []
        for dg, bs, be, ex in cnts:
            rows.extend(zip(dg.tolist(), bs.tolist(), be.tolist(), ex.tolist()))
        rows.sort()
        for d, s0, s1, x in rows:
            self.counter_samples.append((d, agent_txt[d], int(ver[d]), int(dseq[d]),
                                         b.a[s0:s1].tobytes(), bool(x)))

    @property
    def _strings(self) -> StringTable:
        return self._batch_strings
