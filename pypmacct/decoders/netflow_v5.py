"""NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records.

All v5 records of a batch are decoded together: their bytes are concatenated and read
with one ``np.frombuffer``; header values come in as per-record arrays.
Field semantics follow pmacct 1.7.7 (NF_*_handler for version 5): ports only for TCP and
UDP (destination port also for ICMP), TCP flags only for TCP, one flow per record,
sampling rate from the low 14 bits of the header's sampling field.
"""
from __future__ import annotations

import struct

import numpy as np

from ..record import SAMPLE_FLOW
from .plan import US, _U32, _addr_bytes, _trunc_div

HEADER = struct.Struct("!HHIIIIBBH")      # version, count, uptime, secs, nsecs, seq, etype, eid, sampling
HEADER_LEN = 24
RECORD_LEN = 48
MAX_RECORDS = 30

RECORD_DTYPE_V5 = np.dtype([
    ("src", "u1", (4,)), ("dst", "u1", (4,)), ("nexthop", "u1", (4,)),
    ("input", ">u2"), ("output", ">u2"), ("packets", ">u4"), ("bytes", ">u4"),
    ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"), ("dport", ">u2"),
    ("pad1", "u1"), ("tcp_flags", "u1"), ("proto", "u1"), ("tos", "u1"),
    ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"), ("dst_mask", "u1"),
    ("pad2", ">u2"),
])
assert RECORD_DTYPE_V5.itemsize == RECORD_LEN


def _uptime_delta_secs(uptime: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(uptime - t) ms in whole seconds, modulo the 32-bit uptime counter; a small
    negative difference (flow stamped after the header) stays negative."""
    d = (uptime - t) % _U32
    d = np.where(d >= (1 << 31), d - _U32, d)
    return _trunc_div(d, 1000)


def fill(raw: np.ndarray, tgt: np.ndarray, env, opts) -> None:
    """Decode v5 records ``raw`` (RECORD_DTYPE_V5) into ``tgt``; ``env`` carries the
    per-record header values, with ``env.sampling`` and ``env.engine`` for v5."""
    n = len(raw)
    proto = raw["proto"]
    tcp_udp = (proto == 6) | (proto == 17)
    tgt["src_host"]["af"] = 4
    tgt["src_host"]["addr"] = _addr_bytes(raw["src"], 4)
    tgt["dst_host"]["af"] = 4
    tgt["dst_host"]["addr"] = _addr_bytes(raw["dst"], 4)
    tgt["nexthop"]["af"] = 4
    tgt["nexthop"]["addr"] = _addr_bytes(raw["nexthop"], 4)
    if opts.use_ip_next_hop:
        tgt["peer_dst_ip"] = tgt["nexthop"]
    tgt["in_iface"] = raw["input"]
    tgt["out_iface"] = raw["output"]
    pk = raw["packets"].astype(np.uint64)
    by = raw["bytes"].astype(np.uint64)
    tgt["flows"] = 1
    tgt["src_port"] = np.where(tcp_udp, raw["sport"], 0)
    tgt["dst_port"] = np.where(tcp_udp | (proto == 1) | (proto == 58), raw["dport"], 0)
    tgt["tcp_flags"] = np.where(proto == 6, raw["tcp_flags"], 0)
    tgt["proto"] = proto
    tgt["tos"] = raw["tos"]
    tgt["src_as"] = raw["src_as"]
    tgt["dst_as"] = raw["dst_as"]
    tgt["src_mask"] = raw["src_mask"]
    tgt["dst_mask"] = raw["dst_mask"]
    tgt["etype"] = 0x0800

    unix = env.unix_secs
    up = env.uptime
    first = raw["first"].astype(np.int64)
    last = raw["last"].astype(np.int64)
    # timestamp_start/end: export time minus the age of the flow, in whole seconds
    tgt["ts_start"] = (unix - _uptime_delta_secs(up, first)) * US
    tgt["ts_end"] = (unix - _uptime_delta_secs(up, last)) * US
    if not opts.time_new:
        if opts.time_secs:
            # 32-bit arithmetic as in pmacct (meant for exporters counting seconds)
            tgt["time_start"] = ((unix - (up - first)) % _U32) * US
            tgt["time_end"] = ((unix - (up - last)) % _U32) * US
        else:
            # pmacct's time bins round uptime and switched times to seconds apart
            tgt["time_start"] = (unix - up // 1000 + first // 1000) * US
            tgt["time_end"] = (unix - up // 1000 + last // 1000) * US
    tgt["ts_export"] = unix * US
    tgt["ts_arrival"] = env.arrival
    tgt["export_proto_seqno"] = env.seqno
    tgt["export_proto_version"] = 5
    tgt["export_proto_sysid"] = env.engine & 0xFF          # the engine id
    tgt["engine_id"] = env.engine & 0xFF
    tgt["engine_type"] = env.engine >> 8
    tgt["peer_src_ip"] = env.peer
    tgt["sample_type"] = SAMPLE_FLOW
    tgt["sampling_direction"] = ord("u")
    rate = (env.sampling & 0x3FFF).astype(np.uint64)
    if opts.renormalize:
        if opts.ext_sampling_rate:
            mult = np.uint64(opts.ext_sampling_rate)
        else:
            mult = np.where(rate > 0, rate, 1).astype(np.uint64)
        pk = pk * mult
        by = by * mult
        tgt["sampling_rate"] = np.where(rate > 0, 1, 0)
    else:
        tgt["sampling_rate"] = rate
    tgt["packets"] = pk
    tgt["bytes"] = by
    del n
