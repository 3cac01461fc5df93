"""NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records.

All v5 records of a batch are decoded together: their rows are gathered from the
batch's datagrams into one array; header values come in as per-record arrays.
Field semantics follow pmacct 1.7.7 (NF_*_handler for version 5): ports only for TCP and
UDP (destination port also for ICMP), TCP flags only for TCP, one flow per record,
sampling rate from the low 14 bits of the header's sampling field.

``compile_fill(fields, opts)`` returns the decoding steps for the record fields asked
for; nothing is computed for fields the record does not hold.
"""
from __future__ import annotations

import struct

import numpy as np

from ..record import SAMPLE_FLOW_V5
from .plan import US, _U32, col_bytes, flow_age, ms_to_s, put_addr

HEADER = struct.Struct("!HHIIIIBBH")      # version, count, uptime, secs, nsecs, seq, etype, eid, sampling
HEADER_LEN = 24
RECORD_LEN = 48
MAX_RECORDS = 30

RECORD_DTYPE_V5 = np.dtype([
    ("src", "V4"), ("dst", "V4"), ("nexthop", "V4"),
    ("input", ">u2"), ("output", ">u2"), ("packets", ">u4"), ("bytes", ">u4"),
    ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"), ("dport", ">u2"),
    ("pad1", "u1"), ("tcp_flags", "u1"), ("proto", "u1"), ("tos", "u1"),
    ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"), ("dst_mask", "u1"),
    ("pad2", ">u2"),
])
assert RECORD_DTYPE_V5.itemsize == RECORD_LEN


def _uptime_delta_secs(uptime: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(uptime - t) ms in whole seconds, modulo the 32-bit uptime counter (flow_age)."""
    return ms_to_s(flow_age(uptime - t))


def _copy(name, src):
    return lambda raw, tgt, env: tgt.__setitem__(name, raw[src])


def _const(name, value):
    return lambda raw, tgt, env: tgt.__setitem__(name, value)


def compile_fill(fields, opts) -> list:
    """The steps (raw, tgt, env) that fill ``fields`` (a set of record field names) from
    v5 records ``raw`` (RECORD_DTYPE_V5); ``env`` carries the per-record header values."""
    f = fields
    steps = []
    add = steps.append
    for name, src in (("src_host", "src"), ("dst_host", "dst"), ("nexthop", "nexthop")):
        if name in f:
            add(lambda raw, tgt, env, name=name, src=src: put_addr(tgt, name, 4, raw[src], 4))
    if opts.use_ip_next_hop and "peer_dst_ip" in f:
        add(lambda raw, tgt, env: put_addr(tgt, "peer_dst_ip", 4, raw["nexthop"], 4))
    for name, src in (("in_iface", "input"), ("out_iface", "output"), ("proto", "proto"),
                      ("tos", "tos"), ("src_as", "src_as"), ("dst_as", "dst_as"),
                      ("src_mask", "src_mask"), ("dst_mask", "dst_mask")):
        if name in f:
            add(_copy(name, src))
    if "flows" in f:
        add(_const("flows", 1))
    if "src_port" in f:
        def sport(raw, tgt, env):
            proto = raw["proto"]
            tgt["src_port"] = np.where((proto == 6) | (proto == 17), raw["sport"], 0)
        add(sport)
    if "dst_port" in f:
        def dport(raw, tgt, env):
            proto = raw["proto"]
            tgt["dst_port"] = np.where((proto == 6) | (proto == 17) | (proto == 1) | (proto == 58),
                                       raw["dport"], 0)
        add(dport)
    if "tcp_flags" in f:
        add(lambda raw, tgt, env: tgt.__setitem__("tcp_flags", np.where(raw["proto"] == 6, raw["tcp_flags"], 0)))
    if "etype" in f:
        add(_const("etype", 0x0800))

    # timestamp_start/end: export time minus the age of the flow, in whole seconds
    for name, src in (("ts_start", "first"), ("ts_end", "last")):
        if name in f:
            add(lambda raw, tgt, env, name=name, src=src: tgt.__setitem__(
                name, (env.unix_secs - _uptime_delta_secs(env.uptime, raw[src].astype(np.int64))) * US))
    if not opts.time_new:
        for name, src in (("time_start", "first"), ("time_end", "last")):
            if name not in f:
                continue
            if opts.time_secs:
                # 32-bit arithmetic as in pmacct (meant for exporters counting seconds)
                add(lambda raw, tgt, env, name=name, src=src: tgt.__setitem__(
                    name, ((env.unix_secs - (env.uptime - raw[src].astype(np.int64))) % _U32) * US))
            else:
                # pmacct's time bins round uptime and switched times to seconds apart
                add(lambda raw, tgt, env, name=name, src=src: tgt.__setitem__(
                    name, (env.unix_secs - env.uptime // 1000 + raw[src].astype(np.int64) // 1000) * US))
    if "ts_export" in f:
        add(lambda raw, tgt, env: tgt.__setitem__("ts_export", env.unix_secs * US))
    if "ts_arrival" in f:
        add(lambda raw, tgt, env: tgt.__setitem__("ts_arrival", env.arrival))
    if "export_proto_seqno" in f:
        add(lambda raw, tgt, env: tgt.__setitem__("export_proto_seqno", env.seqno))
    if "export_proto_version" in f:
        add(_const("export_proto_version", 5))
    for name in ("export_proto_sysid", "engine_id"):            # the engine id
        if name in f:
            add(lambda raw, tgt, env, name=name: tgt.__setitem__(name, env.engine & 0xFF))
    if "engine_type" in f:
        add(lambda raw, tgt, env: tgt.__setitem__("engine_type", env.engine >> 8))
    if "peer_src_ip" in f:
        add(lambda raw, tgt, env: col_bytes(tgt, "peer_src_ip", 0, "V17").__setitem__(
            Ellipsis, env.peer))
    if "sample_type" in f:
        add(_const("sample_type", SAMPLE_FLOW_V5))
    if "sampling_direction" in f:
        add(_const("sampling_direction", ord("u")))

    counters = [n for n in ("packets", "bytes") if n in f]
    if opts.renormalize:
        def renorm(raw, tgt, env):
            rate = (env.sampling & 0x3FFF).astype(np.uint64)
            if opts.ext_sampling_rate:
                mult = np.uint64(opts.ext_sampling_rate)
            else:
                mult = np.where(rate > 0, rate, 1).astype(np.uint64)
            for n in counters:
                tgt[n] = raw[n].astype(np.uint64) * mult
            if "sampling_rate" in f:
                tgt["sampling_rate"] = np.where(rate > 0, 1, 0)
        add(renorm)
    else:
        for n in counters:
            add(_copy(n, n))
        if "sampling_rate" in f:
            add(lambda raw, tgt, env: tgt.__setitem__("sampling_rate", env.sampling & 0x3FFF))
    return steps


def fill(raw: np.ndarray, tgt: np.ndarray, env, steps) -> None:
    """Decode v5 records ``raw`` (RECORD_DTYPE_V5) into ``tgt`` with ``compile_fill``'s
    steps."""
    for step in steps:
        step(raw, tgt, env)
