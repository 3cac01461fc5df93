"""Expected print plugin rows for a generated capture, computed from its ground truth.

``expected_rows(export, aggregate)`` aggregates ``export.truth`` by the given primitives and
returns one dict per row, keyed by pmacct's CSV column names, values as pmacct prints them
(the rules below were read off pmacct 1.7.7's output on generated captures; the
``test_oracle_truth`` tests hold them to it). Only the primitives flowgen fills are known.

Value rules worth knowing:
- v5/v9 flow times are sysUpTime-relative; pmacct resolves them to whole seconds as
  ``unix_secs - (sysUpTime - switched) / 1000`` (integer division), so it prints ``.000000``;
  IPFIX flowStart/EndMilliseconds keep their milliseconds.
- ``peer_dst_ip`` (the BGP next hop) is empty, not ``0.0.0.0``, when the record's template
  has no BGP next hop field (always so for NetFlow v5).
- ``tcpflags`` is OR-ed over the records of a row.
- ``src_net``/``dst_net`` is the address masked with the record's own mask.
- ``post_nat_src_host``/``post_nat_dst_host`` are empty for records whose template has no
  post-NAT address (their address family is unset), not ``0.0.0.0``.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from collections import defaultdict

import numpy as np

from .flowgen import KIND_NAT, Export

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 58: "ipv6-icmp"}

COLUMNS = {
    "src_mac": "SRC_MAC", "dst_mac": "DST_MAC", "vlan": "VLAN",
    "src_as": "SRC_AS", "dst_as": "DST_AS",
    "peer_src_ip": "PEER_SRC_IP", "peer_dst_ip": "PEER_DST_IP",
    "in_iface": "IN_IFACE", "out_iface": "OUT_IFACE",
    "src_host": "SRC_IP", "src_net": "SRC_NET", "dst_host": "DST_IP", "dst_net": "DST_NET",
    "src_mask": "SRC_MASK", "dst_mask": "DST_MASK",
    "src_port": "SRC_PORT", "dst_port": "DST_PORT", "tcpflags": "TCP_FLAGS",
    "proto": "PROTOCOL", "tos": "TOS", "sampling_rate": "SAMPLING_RATE",
    "post_nat_src_host": "POST_NAT_SRC_IP", "post_nat_dst_host": "POST_NAT_DST_IP",
    "post_nat_src_port": "POST_NAT_SRC_PORT", "post_nat_dst_port": "POST_NAT_DST_PORT",
    "nat_event": "NAT_EVENT",
    "mpls_label_top": "MPLS_LABEL_TOP", "mpls_label_bottom": "MPLS_LABEL_BOTTOM",
    "mpls_stack_depth": "MPLS_STACK_DEPTH",
    "timestamp_start": "TIMESTAMP_START", "timestamp_end": "TIMESTAMP_END",
    "export_proto_seqno": "EXPORT_PROTO_SEQNO", "export_proto_version": "EXPORT_PROTO_VERSION",
    "export_proto_sysid": "EXPORT_PROTO_SYSID",
}


def _ip(b, v6: bool) -> str:
    return str(ipaddress.ip_address(bytes(b[:16]) if v6 else bytes(b[:4])))


def _net(b, mask: int, v6: bool) -> str:
    a = ipaddress.ip_address(bytes(b[:16]) if v6 else bytes(b[:4]))
    return str(ipaddress.ip_network(f"{a}/{mask}", strict=False).network_address)


def _mac(b) -> str:
    return ":".join(f"{x:02x}" for x in bytes(b))


def _ts(ms: int, since_epoch: bool = False, secs_only: bool = False) -> str:
    if since_epoch:
        return f"{ms // 1000}" if secs_only else f"{ms // 1000}.{(ms % 1000) * 1000:06d}"
    d = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return d if secs_only else f"{d}.{(ms % 1000) * 1000:06d}"


def record_times_ms(export: Export) -> tuple[np.ndarray, np.ndarray]:
    """Flow start/end in ms as pmacct resolves them (see module doc)."""
    t = export.truth
    if export.params.version == 10:
        return t["first_ms"].astype(np.int64), t["last_ms"].astype(np.int64)
    exp_ms = t["export_secs"].astype(np.int64) * 1000
    start = (t["export_secs"].astype(np.int64) - (exp_ms - t["first_ms"].astype(np.int64)) // 1000) * 1000
    end = (t["export_secs"].astype(np.int64) - (exp_ms - t["last_ms"].astype(np.int64)) // 1000) * 1000
    return start, end


def _value(prim: str, r, export: Export, start_ms: int, end_ms: int, opts: dict):
    v6 = bool(r["is_v6"])
    if prim == "peer_src_ip":
        return export.exporters[int(r["exporter"])].address
    if prim == "peer_dst_ip":
        if (r["version"] == 5 or int(r["kind"]) == KIND_NAT
                or "bgp_nexthop" not in export.params.groups):
            return ""          # no BGP next hop field in the record's template
        return _ip(r["bgp_next_hop"], v6)
    if prim == "src_host":
        return _ip(r["src_ip"], v6)
    if prim == "dst_host":
        return _ip(r["dst_ip"], v6)
    if prim == "src_net":
        return _net(r["src_ip"], int(r["src_mask"]), v6)
    if prim == "dst_net":
        return _net(r["dst_ip"], int(r["dst_mask"]), v6)
    if prim in ("src_mac", "dst_mac"):
        return _mac(r[prim])
    if prim == "proto":
        return PROTO_NAMES.get(int(r["proto"]), str(int(r["proto"])))
    if prim in ("src_port", "dst_port", "tos", "vlan", "in_iface", "out_iface", "src_as",
                "dst_as", "src_mask", "dst_mask", "sampling_rate", "post_nat_src_port",
                "post_nat_dst_port", "nat_event"):
        return str(int(r[prim]))
    if prim in ("post_nat_src_host", "post_nat_dst_host"):
        if int(r["kind"]) != KIND_NAT:
            return ""          # the record's template carried no post-NAT address
        return str(ipaddress.ip_address(bytes(r[prim.replace("host", "ip")])))
    if prim == "mpls_label_top":
        return str(int(r["mpls_labels"][0]))
    if prim == "mpls_label_bottom":
        d = int(r["mpls_depth"])
        return str(int(r["mpls_labels"][d - 1])) if d else "0"
    if prim == "mpls_stack_depth":
        return str(int(r["mpls_depth"]))
    if prim == "timestamp_start":
        return _ts(start_ms, opts.get("since_epoch", False), opts.get("secs", False))
    if prim == "timestamp_end":
        return _ts(end_ms, opts.get("since_epoch", False), opts.get("secs", False))
    if prim == "export_proto_seqno":
        return str(int(r["seqno"]))
    if prim == "export_proto_version":
        return str(int(r["version"]))
    if prim == "export_proto_sysid":
        return str(int(r["domain"]))
    raise KeyError(f"truth does not know primitive {prim!r}")


def expected_rows(export: Export, aggregate, *, flows: bool = False, **opts) -> list[dict]:
    """Rows (dicts by CSV column) the print plugin must write for ``aggregate``."""
    prims = [p for p in aggregate if p not in ("tcpflags", "flows", "none")]
    want_flags = "tcpflags" in aggregate
    t = export.truth
    start, end = record_times_ms(export)
    acc: dict = defaultdict(lambda: [0, 0, 0, 0])
    for i in range(len(t)):
        r = t[i]
        key = tuple(_value(p, r, export, int(start[i]), int(end[i]), opts) for p in prims)
        a = acc[key]
        a[0] += int(r["packets"])
        a[1] += int(r["bytes"])
        a[2] += 1
        a[3] |= int(r["tcp_flags"])
    rows = []
    for key, (pk, by, fl, flags) in acc.items():
        row = {COLUMNS[p]: v for p, v in zip(prims, key)}
        if want_flags:
            row["TCP_FLAGS"] = str(flags)
        row["PACKETS"] = str(pk)
        if flows or "flows" in aggregate:
            row["FLOWS"] = str(fl)
        row["BYTES"] = str(by)
        rows.append(row)
    return rows


def totals(export: Export) -> dict[str, int]:
    t = export.truth
    return {"PACKETS": int(t["packets"].sum()), "BYTES": int(t["bytes"].sum()), "FLOWS": len(t)}


def compare_rows(expected: list[dict], actual: list[dict], limit: int = 8) -> str:
    """'' if the two row multisets are equal, else a readable account of the difference."""
    cols = sorted(set().union(*expected, *actual)) if (expected or actual) else []

    def line(d):
        return ",".join(str(d.get(c, "<absent>")) for c in cols)
    e = sorted(line(d) for d in expected)
    a = sorted(line(d) for d in actual)
    if e == a:
        return ""
    se, sa = set(e), set(a)
    msg = [f"expected {len(e)} rows, pmacct printed {len(a)}"]
    if expected and actual and set(expected[0]) != set(actual[0]):
        msg.append(f"columns differ: expected {sorted(expected[0])}, printed {sorted(actual[0])}")
    oe = [x for x in e if x not in sa]
    oa = [x for x in a if x not in se]
    msg.append("columns: " + ",".join(cols))
    msg += [f"{len(oe)} only expected, first {min(limit, len(oe))}:"] + ["  - " + x for x in oe[:limit]]
    msg += [f"{len(oa)} only printed, first {min(limit, len(oa))}:"] + ["  + " + x for x in oa[:limit]]
    return "\n".join(msg)
