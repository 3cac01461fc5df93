"""Every output column the print plugin (and its relatives) can show, in pmacct's order.

One :class:`Column` says, for one piece of an aggregate:

- which aggregate primitives switch it on (``sum_host`` shows as the source address
  column, as pmacct prints it);
- where its value lives: a key field (``source="key"``) or a value column such as the
  OR-ed ``tcp_flags`` (``source="value"``);
- ``kind``: how the raw value becomes text (see :mod:`pypmacct.output.values`);
- the formatted-output header cell (padding included), the minimum width of the value
  and the literal that follows it. ``fmt_header=None`` marks a variable-length column:
  pmacct refuses those in formatted output;
- ``fmt_empty``: what formatted output prints when the value text is empty (an unset
  address prints as ``::`` there but as an empty field in CSV and JSON);
- the CSV header name, and the JSON key and whether JSON carries the value as a number,
  a string or a real.

``COLUMNS`` is in the order of formatted and CSV output (pmacct's fixed order, not the
user's ``aggregate`` order); ``JSON_ORDER`` lists the same columns in JSON key order,
which pmacct builds differently.
"""
from __future__ import annotations

from dataclasses import dataclass

INT, STR, REAL = "int", "str", "real"


@dataclass(frozen=True)
class Column:
    name: str
    primitives: tuple
    field: str
    kind: str
    fmt_header: str | None
    fmt_width: int
    fmt_gap: str
    csv_header: str
    json_key: str
    json_type: str
    source: str = "key"
    fmt_empty: str | None = None

    @property
    def variable_length(self) -> bool:
        return self.fmt_header is None


def _c(name, kind, fmt, csv, json_key, json_type, primitives=None, field=None,
       source="key", empty=None):
    """``fmt`` is (header cell, value width, literal after the value) or None."""
    header, width, gap = fmt if fmt is not None else (None, 0, "")
    return Column(name, tuple(primitives or (name,)), field or name, kind, header, width,
                  gap, csv, json_key, json_type, source, empty)


def _h(title: str, cell: int) -> str:
    """A formatted header cell: ``title`` left-justified in ``cell`` characters."""
    return title.ljust(cell)


_IP = 45        # width of an address value in formatted output, then two spaces
_IP_CELL = 47

COLUMNS: tuple[Column, ...] = (
    _c("tag", "uint", (_h("TAG", 12), 10, "  "), "TAG", "tag", INT),
    _c("tag2", "uint", (_h("TAG2", 12), 10, "  "), "TAG2", "tag2", INT),
    _c("label", "string", None, "LABEL", "label", STR),
    _c("class", "class", (_h("CLASS", 18), 16, "  "), "CLASS", "class", STR),
    _c("src_mac", "mac", (_h("SRC_MAC", 19), 17, "  "), "SRC_MAC", "mac_src", STR,
       primitives=("src_mac", "sum_mac")),
    _c("dst_mac", "mac", (_h("DST_MAC", 19), 17, "  "), "DST_MAC", "mac_dst", STR),
    _c("vlan", "uint", (_h("VLAN", 7), 5, "  "), "VLAN", "vlan", INT),
    _c("cos", "uint", (_h("COS", 4), 2, "  "), "COS", "cos", INT),
    _c("etype", "hex", (_h("ETYPE", 7), 5, "  "), "ETYPE", "etype", STR),
    _c("src_as", "uint", (_h("SRC_AS", 12), 10, "  "), "SRC_AS", "as_src", INT,
       primitives=("src_as", "sum_as")),
    _c("dst_as", "uint", (_h("DST_AS", 12), 10, "  "), "DST_AS", "as_dst", INT),
    _c("std_comm", "bgp_string", None, "COMMS", "comms", STR),
    _c("ext_comm", "bgp_string", None, "ECOMMS", "ecomms", STR),
    _c("lrg_comm", "bgp_string", None, "LCOMMS", "lcomms", STR),
    _c("src_std_comm", "bgp_string", None, "SRC_COMMS", "comms_src", STR),
    _c("src_ext_comm", "bgp_string", None, "SRC_ECOMMS", "ecomms_src", STR),
    _c("src_lrg_comm", "bgp_string", None, "SRC_LCOMMS", "lcomms_src", STR),
    _c("as_path", "bgp_string", None, "AS_PATH", "as_path", STR),
    _c("src_as_path", "bgp_string", None, "SRC_AS_PATH", "as_path_src", STR),
    _c("local_pref", "uint", (_h("PREF", 9), 7, "  "), "PREF", "local_pref", INT),
    _c("src_local_pref", "uint", (_h("SRC_PREF", 9), 7, "  "), "SRC_PREF", "local_pref_src",
       INT),
    _c("med", "uint", (_h("MED", 8), 6, "  "), "MED", "med", INT),
    _c("src_med", "uint", (_h("SRC_MED", 8), 6, "  "), "SRC_MED", "med_src", INT),
    _c("src_roa", "roa", (_h("SRC_ROA", 8), 6, "  "), "SRC_ROA", "roa_src", STR),
    _c("dst_roa", "roa", (_h("DST_ROA", 8), 6, "  "), "DST_ROA", "roa_dst", STR),
    _c("peer_src_as", "uint", (_h("PEER_SRC_AS", 12), 10, "  "), "PEER_SRC_AS", "peer_as_src",
       INT),
    _c("peer_dst_as", "uint", (_h("PEER_DST_AS", 12), 10, "  "), "PEER_DST_AS", "peer_as_dst",
       INT),
    _c("peer_src_ip", "addr", (_h("PEER_SRC_IP", _IP_CELL), _IP, "  "), "PEER_SRC_IP",
       "peer_ip_src", STR, empty="::"),
    _c("peer_dst_ip", "nexthop", (_h("PEER_DST_IP", _IP_CELL), _IP, "  "), "PEER_DST_IP",
       "peer_ip_dst", STR, empty="::"),
    _c("in_iface", "uint", (_h("IN_IFACE", 12), 10, "  "), "IN_IFACE", "iface_in", INT),
    _c("out_iface", "uint", (_h("OUT_IFACE", 12), 10, "  "), "OUT_IFACE", "iface_out", INT),
    _c("mpls_vpn_rd", "rd", (_h("MPLS_VPN_RD", 20), 18, "  "), "MPLS_VPN_RD", "mpls_vpn_rd",
       STR, empty="0:0"),
    _c("mpls_pw_id", "uint", (_h("MPLS_PW_ID", 12), 10, "  "), "MPLS_PW_ID", "mpls_pw_id", INT),
    _c("src_host", "addr", (_h("SRC_IP", _IP_CELL), _IP, "  "), "SRC_IP", "ip_src", STR,
       primitives=("src_host", "sum_host"), empty="::"),
    _c("src_net", "addr", (_h("SRC_NET", _IP_CELL), _IP, "  "), "SRC_NET", "net_src", STR,
       primitives=("src_net", "sum_net"), empty="::"),
    _c("dst_host", "addr", (_h("DST_IP", _IP_CELL), _IP, "  "), "DST_IP", "ip_dst", STR,
       empty="::"),
    _c("dst_net", "addr", (_h("DST_NET", _IP_CELL), _IP, "  "), "DST_NET", "net_dst", STR,
       empty="::"),
    _c("src_mask", "uint", (_h("SRC_MASK", 10), 3, "       "), "SRC_MASK", "mask_src", INT),
    _c("dst_mask", "uint", (_h("DST_MASK", 10), 3, "       "), "DST_MASK", "mask_dst", INT),
    _c("src_port", "uint", (_h("SRC_PORT", 10), 5, "     "), "SRC_PORT", "port_src", INT,
       primitives=("src_port", "sum_port")),
    _c("dst_port", "uint", (_h("DST_PORT", 10), 5, "     "), "DST_PORT", "port_dst", INT),
    # OR-ed over the aggregate, so a value column; JSON carries it as a string
    _c("tcp_flags", "uint", (_h("TCP_FLAGS", 11), 3, "        "), "TCP_FLAGS", "tcp_flags", STR,
       primitives=("tcpflags",), source="value"),
    _c("proto", "proto", (_h("PROTOCOL", 12), 10, "  "), "PROTOCOL", "ip_proto", STR),
    _c("tos", "uint", (_h("TOS", 7), 3, "    "), "TOS", "tos", INT),
    _c("src_host_country", "string", (_h("SH_COUNTRY", 12), 5, "       "), "SH_COUNTRY",
       "country_ip_src", STR),
    _c("dst_host_country", "string", (_h("DH_COUNTRY", 12), 5, "       "), "DH_COUNTRY",
       "country_ip_dst", STR),
    _c("src_host_pocode", "string", (_h("SH_POCODE", 14), 12, "  "), "SH_POCODE",
       "pocode_ip_src", STR),
    _c("dst_host_pocode", "string", (_h("DH_POCODE", 14), 12, "  "), "DH_POCODE",
       "pocode_ip_dst", STR),
    _c("src_host_lat", "float", (_h("SH_LAT", 14), 8, "  "), "SH_LAT", "lat_ip_src", REAL,
       primitives=("src_host_coords",)),
    _c("src_host_lon", "float", (_h("SH_LON", 14), 8, "  "), "SH_LON", "lon_ip_src", REAL,
       primitives=("src_host_coords",)),
    _c("dst_host_lat", "float", (_h("DH_LAT", 14), 8, "  "), "DH_LAT", "lat_ip_dst", REAL,
       primitives=("dst_host_coords",)),
    _c("dst_host_lon", "float", (_h("DH_LON", 14), 8, "  "), "DH_LON", "lon_ip_dst", REAL,
       primitives=("dst_host_coords",)),
    _c("sampling_rate", "uint", (_h("SAMPLING_RATE", 14), 7, "       "), "SAMPLING_RATE",
       "sampling_rate", INT),
    # pmacct's value cell here is one character wider than its header cell
    _c("sampling_direction", "char", (_h("SAMPLING_DIRECTION", 19), 1, " " * 19),
       "SAMPLING_DIRECTION", "sampling_direction", STR),
    _c("post_nat_src_host", "addr", (_h("POST_NAT_SRC_IP", _IP_CELL), _IP, "  "),
       "POST_NAT_SRC_IP", "post_nat_ip_src", STR, empty="::"),
    _c("post_nat_dst_host", "addr", (_h("POST_NAT_DST_IP", _IP_CELL), _IP, "  "),
       "POST_NAT_DST_IP", "post_nat_ip_dst", STR, empty="::"),
    _c("post_nat_src_port", "uint", (_h("POST_NAT_SRC_PORT", 19), 5, " " * 14),
       "POST_NAT_SRC_PORT", "post_nat_port_src", INT),
    _c("post_nat_dst_port", "uint", (_h("POST_NAT_DST_PORT", 19), 5, " " * 14),
       "POST_NAT_DST_PORT", "post_nat_port_dst", INT),
    _c("nat_event", "uint", (_h("NAT_EVENT", 10), 3, " " * 7), "NAT_EVENT", "nat_event", INT),
    _c("mpls_label_top", "uint", (_h("MPLS_LABEL_TOP", 16), 7, " " * 9), "MPLS_LABEL_TOP",
       "mpls_label_top", INT),
    _c("mpls_label_bottom", "uint", (_h("MPLS_LABEL_BOTTOM", 19), 7, " " * 12),
       "MPLS_LABEL_BOTTOM", "mpls_label_bottom", INT),
    _c("mpls_stack_depth", "uint", (_h("MPLS_STACK_DEPTH", 18), 2, " " * 16),
       "MPLS_STACK_DEPTH", "mpls_stack_depth", INT),
    _c("tunnel_src_mac", "mac", (_h("TUNNEL_SRC_MAC", 19), 17, "  "), "TUNNEL_SRC_MAC",
       "tunnel_mac_src", STR),
    _c("tunnel_dst_mac", "mac", (_h("TUNNEL_DST_MAC", 19), 17, "  "), "TUNNEL_DST_MAC",
       "tunnel_mac_dst", STR),
    _c("tunnel_src_host", "addr", (_h("TUNNEL_SRC_IP", _IP_CELL), _IP, "  "), "TUNNEL_SRC_IP",
       "tunnel_ip_src", STR, empty="::"),
    _c("tunnel_dst_host", "addr", (_h("TUNNEL_DST_IP", _IP_CELL), _IP, "  "), "TUNNEL_DST_IP",
       "tunnel_ip_dst", STR, empty="::"),
    _c("tunnel_proto", "proto", (_h("TUNNEL_PROTOCOL", 17), 10, " " * 7), "TUNNEL_PROTOCOL",
       "tunnel_ip_proto", STR),
    _c("tunnel_tos", "uint", (_h("TUNNEL_TOS", 12), 3, " " * 9), "TUNNEL_TOS", "tunnel_tos",
       INT),
    _c("tunnel_src_port", "uint", (_h("TUNNEL_SRC_PORT", 17), 5, " " * 12), "TUNNEL_SRC_PORT",
       "tunnel_port_src", INT),
    _c("tunnel_dst_port", "uint", (_h("TUNNEL_DST_PORT", 17), 5, " " * 12), "TUNNEL_DST_PORT",
       "tunnel_port_dst", INT),
    _c("vxlan", "uint", (_h("VXLAN", 10), 8, "  "), "VXLAN", "vxlan", INT),
    _c("timestamp_start", "timestamp", (_h("TIMESTAMP_START", 31), 30, " "), "TIMESTAMP_START",
       "timestamp_start", STR, field="ts_start"),
    _c("timestamp_end", "timestamp", (_h("TIMESTAMP_END", 31), 30, " "), "TIMESTAMP_END",
       "timestamp_end", STR, field="ts_end"),
    _c("timestamp_arrival", "timestamp", (_h("TIMESTAMP_ARRIVAL", 31), 30, " "),
       "TIMESTAMP_ARRIVAL", "timestamp_arrival", STR, field="ts_arrival"),
    _c("timestamp_export", "timestamp", (_h("TIMESTAMP_EXPORT", 31), 30, " "),
       "TIMESTAMP_EXPORT", "timestamp_export", STR, field="ts_export"),
    _c("export_proto_seqno", "uint", (_h("EXPORT_PROTO_SEQNO", 20), 18, "  "),
       "EXPORT_PROTO_SEQNO", "export_proto_seqno", INT),
    _c("export_proto_version", "uint", (_h("EXPORT_PROTO_VERSION", 22), 20, "  "),
       "EXPORT_PROTO_VERSION", "export_proto_version", INT),
    _c("export_proto_sysid", "uint", (_h("EXPORT_PROTO_SYSID", 20), 18, "  "),
       "EXPORT_PROTO_SYSID", "export_proto_sysid", INT),
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

# The order in which pmacct's JSON encoder adds keys (plugin_cmn_json.c builds its
# handler list in an order of its own).
JSON_ORDER: tuple[str, ...] = (
    "tag", "tag2", "label", "class", "src_mac", "dst_mac", "vlan", "cos", "etype",
    "src_as", "dst_as", "std_comm", "ext_comm", "lrg_comm", "as_path", "local_pref", "med",
    "dst_roa", "peer_src_as", "peer_dst_as", "peer_src_ip", "peer_dst_ip",
    "src_std_comm", "src_ext_comm", "src_lrg_comm", "src_as_path", "src_local_pref",
    "src_med", "src_roa", "in_iface", "out_iface", "mpls_vpn_rd", "mpls_pw_id",
    "src_host", "src_net", "dst_host", "dst_net", "src_mask", "dst_mask",
    "src_port", "dst_port",
    "src_host_country", "dst_host_country", "src_host_pocode", "dst_host_pocode",
    "src_host_lat", "src_host_lon", "dst_host_lat", "dst_host_lon",
    "tcp_flags", "proto", "tos", "sampling_rate", "sampling_direction",
    "post_nat_src_host", "post_nat_dst_host", "post_nat_src_port", "post_nat_dst_port",
    "nat_event", "mpls_label_top", "mpls_label_bottom", "mpls_stack_depth",
    "tunnel_src_mac", "tunnel_dst_mac", "tunnel_src_host", "tunnel_dst_host",
    "tunnel_proto", "tunnel_tos", "tunnel_src_port", "tunnel_dst_port", "vxlan",
    "timestamp_start", "timestamp_end", "timestamp_arrival",
    "export_proto_seqno", "export_proto_version", "export_proto_sysid",
    "timestamp_export",
)

# Counter columns: (formatted header cell, CSV header, JSON key). The last formatted
# cell (bytes) is not padded.
PACKETS = ("PACKETS".ljust(22), "PACKETS", "packets")
FLOWS = ("FLOWS".ljust(22), "FLOWS", "flows")
BYTES = ("BYTES", "BYTES", "bytes")
COUNTER_WIDTH = 20      # packets and flows: %-20 then two spaces

# Primitives that print nothing of their own (or only switch a counter column on).
SILENT_PRIMITIVES = frozenset({"none", "flows"})

# Aggregate primitives pmacct 1.7.7's print plugin knows but never prints.
NOT_PRINTED = frozenset({"fw_event"})


def _check_tables() -> None:
    names = [c.name for c in COLUMNS]
    assert len(set(names)) == len(names)
    assert sorted(JSON_ORDER) == sorted(names), set(names) ^ set(JSON_ORDER)


_check_tables()


# Columns of custom primitives (aggregate_primitives), set when the configuration is
# loaded; pmacct prints them after every built-in column, in aggregate order.
CUSTOM: dict[str, Column] = {}


def set_custom(columns) -> None:
    CUSTOM.clear()
    CUSTOM.update({c.name: c for c in columns})


def _custom(primitives) -> list[Column]:
    out = []
    for p in primitives:
        if p in CUSTOM and CUSTOM[p] not in out:
            out.append(CUSTOM[p])
    return out


def select(primitives) -> list[Column]:
    """The columns ``primitives`` switch on, in formatted/CSV order."""
    wanted = set(primitives)
    return [c for c in COLUMNS if wanted.intersection(c.primitives)] + _custom(primitives)


def select_json(primitives) -> list[Column]:
    """The columns ``primitives`` switch on, in JSON key order."""
    chosen = {c.name: c for c in select(primitives) if c.name not in CUSTOM}
    return [chosen[n] for n in JSON_ORDER if n in chosen] + _custom(primitives)


def unknown_primitives(primitives) -> list[str]:
    """Primitives that neither map to a column nor are known to print nothing."""
    known = set(SILENT_PRIMITIVES) | set(NOT_PRINTED) | set(CUSTOM)
    for c in COLUMNS:
        known.update(c.primitives)
    return [p for p in primitives if p not in known]
