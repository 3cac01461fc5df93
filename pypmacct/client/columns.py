"""The columns of the ``pmacct`` client's tables (``-s``, ``-M``), as 1.7.7 prints them.

The client has its own layout, close to the print plugin's but not the same: interfaces
come right after the class, an unset address prints as ``0`` (not ``::``), BGP
communities and AS paths fit in formatted output, and a few cells are wider or
narrower. Three lists describe it:

- ``HEADER``: the title cells, in the order the title line names them;
- ``VALUES``: the value cells, in the order a line prints them. It is *not* always the
  title order: 1.7.7 titles communities COMMS ECOMMS SRC_COMMS SRC_ECOMMS but prints
  std, src_std, ext, src_ext (and in CSV titles LABEL before CLASS but prints it after):
  we print what it prints;
- ``ALL_HEADER``: the title line of ``-a`` (every field, used or not), which 1.7.7
  writes from a separate, shorter list than the values it then prints (no SRC_NET,
  ECOMMS, VXLAN... titles): again, the same here.

A cell is switched on by any of its ``primitives`` in the table's aggregate.

Custom primitives (``aggregate_primitives``) come last, after EXPORT_PROTO_SYSID and
before the counters, in the order of the plugin's registry (its aggregate order), as
1.7.7's client prints them: the title is the name, left-justified to the value width
(pmacct's ``cps_flen`` digits for u_int/hex, 46 for ip, 18 for mac, the declared length
for str/raw; at least the name) and two spaces; values the same way (:func:`custom_cells`).
"""
from __future__ import annotations

from dataclasses import dataclass

from pypmacct.output.columns import COLUMNS, Column

_PRINT = {c.name: c for c in COLUMNS}


@dataclass(frozen=True)
class Cell:
    name: str             # column name (pypmacct.output.columns naming)
    primitives: tuple     # aggregate primitives that switch it on
    column: Column        # how its value turns into text (kind, field)
    width: int            # formatted: value left-justified to this width...
    gap: str              # ...followed by this literal
    fmt_empty: bytes      # formatted text of an unset value (b"" = print as is)
    csv_empty: bytes      # CSV text of an unset value
    in_all: bool = True   # printed by -a even when not aggregated


def _cell(name, width, gap, fmt_empty=b"", csv_empty=b"", primitives=None, in_all=True,
          kind=None):
    col = _PRINT[name]
    if kind is not None:
        from dataclasses import replace
        col = replace(col, kind=kind)
    return Cell(name, tuple(primitives or col.primitives), col, width, gap, fmt_empty,
                csv_empty, in_all)


_ADDR = dict(fmt_empty=b"0")
_COMM = dict(fmt_empty=b"0")

# value cells in the order 1.7.7 prints them on a line
VALUES: tuple[Cell, ...] = (
    _cell("tag", 10, "  "),
    _cell("tag2", 10, "  "),
    _cell("class", 16, "  ", fmt_empty=b"unknown", csv_empty=b"unknown"),
    _cell("label", 0, "", in_all=True),            # CSV only (formatted refuses it)
    _cell("in_iface", 10, "  "),
    _cell("out_iface", 10, "  "),
    _cell("src_mac", 17, "  "),
    _cell("dst_mac", 17, "  "),
    _cell("vlan", 5, "  "),
    _cell("cos", 2, "  "),
    _cell("etype", 5, "  "),
    _cell("src_as", 10, "  "),
    _cell("dst_as", 10, "  "),
    _cell("std_comm", 22, "   ", **_COMM),
    _cell("src_std_comm", 22, "   ", **_COMM),
    _cell("ext_comm", 22, "   ", in_all=False, **_COMM),
    _cell("src_ext_comm", 22, "   ", in_all=False, **_COMM),
    _cell("lrg_comm", 22, "   ", in_all=False, **_COMM),
    _cell("src_lrg_comm", 22, "   ", in_all=False, **_COMM),
    _cell("as_path", 22, "   ", fmt_empty=b"^$"),
    _cell("src_as_path", 22, "   ", fmt_empty=b"^$"),
    _cell("local_pref", 7, "  "),
    _cell("src_local_pref", 7, "  "),
    _cell("med", 6, "  "),
    _cell("src_med", 6, "  "),
    _cell("src_roa", 6, "  "),
    _cell("dst_roa", 6, "  "),
    _cell("peer_src_as", 10, "  "),
    _cell("peer_dst_as", 10, "  "),
    _cell("peer_src_ip", 45, "  ", **_ADDR),
    _cell("peer_dst_ip", 45, "  ", **_ADDR),
    _cell("mpls_vpn_rd", 18, "  "),
    _cell("mpls_pw_id", 10, "  "),
    _cell("src_host", 45, "  ", **_ADDR),
    _cell("src_net", 45, "  ", **_ADDR),
    _cell("dst_host", 45, "  ", **_ADDR),
    _cell("dst_net", 45, "  ", **_ADDR),
    _cell("src_mask", 3, " " * 7),
    _cell("dst_mask", 3, " " * 7),
    _cell("src_port", 5, " " * 5),
    _cell("dst_port", 5, " " * 5),
    _cell("tcp_flags", 6, " " * 5),
    _cell("proto", 10, "  "),
    _cell("tos", 3, " " * 4),
    _cell("src_host_country", 5, " " * 7),
    _cell("dst_host_country", 5, " " * 7),
    _cell("src_host_pocode", 12, "  "),
    _cell("dst_host_pocode", 12, "  "),
    _cell("src_host_lat", 12, "  "),
    _cell("src_host_lon", 12, "  "),
    _cell("dst_host_lat", 12, "  "),
    _cell("dst_host_lon", 12, "  "),
    _cell("sampling_rate", 7, " " * 7),
    _cell("sampling_direction", 1, " " * 18),
    _cell("post_nat_src_host", 45, "  ", **_ADDR),
    _cell("post_nat_dst_host", 45, "  ", **_ADDR),
    _cell("post_nat_src_port", 5, " " * 14),
    _cell("post_nat_dst_port", 5, " " * 14),
    _cell("nat_event", 3, " " * 7),
    _cell("mpls_label_top", 7, " " * 9),
    _cell("mpls_label_bottom", 7, " " * 12),
    _cell("mpls_stack_depth", 2, " " * 16),
    _cell("tunnel_src_mac", 17, "  "),
    _cell("tunnel_dst_mac", 17, "  "),
    _cell("tunnel_src_host", 45, "  ", **_ADDR),
    _cell("tunnel_dst_host", 45, "  ", **_ADDR),
    _cell("tunnel_proto", 10, " " * 7),    # a number prints as %-10u + 2 (see render)
    _cell("tunnel_tos", 3, " " * 9),
    _cell("tunnel_src_port", 5, " " * 12),
    _cell("tunnel_dst_port", 5, " " * 12),
    _cell("vxlan", 8, "  "),
    _cell("timestamp_start", 30, " "),
    _cell("timestamp_end", 30, " "),
    _cell("timestamp_arrival", 30, " "),
    _cell("timestamp_export", 30, " "),
    _cell("export_proto_seqno", 18, "  "),
    _cell("export_proto_version", 20, "  "),
    _cell("export_proto_sysid", 18, "  "),
)
CELLS = {c.name: c for c in VALUES}

# (column name, title, cell width) in the order of the title line, aggregate-driven
HEADER = (
    ("tag", "TAG", 12), ("tag2", "TAG2", 12), ("class", "CLASS", 18),
    ("in_iface", "IN_IFACE", 12), ("out_iface", "OUT_IFACE", 12),
    ("src_mac", "SRC_MAC", 19), ("dst_mac", "DST_MAC", 19), ("vlan", "VLAN", 7),
    ("cos", "COS", 4), ("etype", "ETYPE", 7), ("src_as", "SRC_AS", 12),
    ("dst_as", "DST_AS", 12), ("std_comm", "COMMS", 24), ("ext_comm", "ECOMMS", 24),
    ("src_std_comm", "SRC_COMMS", 24), ("src_ext_comm", "SRC_ECOMMS", 24),
    ("lrg_comm", "LCOMMS", 24), ("src_lrg_comm", "SRC_LCOMMS", 24),
    ("as_path", "AS_PATH", 25), ("src_as_path", "SRC_AS_PATH", 25),
    ("local_pref", "PREF", 9), ("src_local_pref", "SRC_PREF", 9), ("med", "MED", 8),
    ("src_med", "SRC_MED", 8), ("src_roa", "SRC_ROA", 8), ("dst_roa", "DST_ROA", 8),
    ("peer_src_as", "PEER_SRC_AS", 12), ("peer_dst_as", "PEER_DST_AS", 12),
    ("peer_src_ip", "PEER_SRC_IP", 47), ("peer_dst_ip", "PEER_DST_IP", 47),
    ("mpls_vpn_rd", "MPLS_VPN_RD", 20), ("mpls_pw_id", "MPLS_PW_ID", 12),
    ("src_host", "SRC_IP", 47), ("src_net", "SRC_NET", 47), ("dst_host", "DST_IP", 47),
    ("dst_net", "DST_NET", 47), ("src_mask", "SRC_MASK", 10), ("dst_mask", "DST_MASK", 10),
    ("src_port", "SRC_PORT", 10), ("dst_port", "DST_PORT", 10),
    ("tcp_flags", "TCP_FLAGS", 11), ("proto", "PROTOCOL", 12), ("tos", "TOS", 7),
    ("src_host_country", "SH_COUNTRY", 12), ("dst_host_country", "DH_COUNTRY", 12),
    ("src_host_pocode", "SH_POCODE", 14), ("dst_host_pocode", "DH_POCODE", 14),
    ("src_host_lat", "SH_LAT", 14), ("src_host_lon", "SH_LON", 14),
    ("dst_host_lat", "DH_LAT", 14), ("dst_host_lon", "DH_LON", 14),
    ("sampling_rate", "SAMPLING_RATE", 14), ("sampling_direction", "SAMPLING_DIRECTION", 19),
    ("post_nat_src_host", "POST_NAT_SRC_IP", 47), ("post_nat_dst_host", "POST_NAT_DST_IP", 47),
    ("post_nat_src_port", "POST_NAT_SRC_PORT", 19),
    ("post_nat_dst_port", "POST_NAT_DST_PORT", 19), ("nat_event", "NAT_EVENT", 10),
    ("mpls_label_top", "MPLS_LABEL_TOP", 16), ("mpls_label_bottom", "MPLS_LABEL_BOTTOM", 19),
    ("mpls_stack_depth", "MPLS_STACK_DEPTH", 18),
    ("tunnel_src_mac", "TUNNEL_SRC_MAC", 19), ("tunnel_dst_mac", "TUNNEL_DST_MAC", 19),
    ("tunnel_src_host", "TUNNEL_SRC_IP", 47), ("tunnel_dst_host", "TUNNEL_DST_IP", 47),
    ("tunnel_proto", "TUNNEL_PROTOCOL", 17), ("tunnel_tos", "TUNNEL_TOS", 12),
    ("tunnel_src_port", "TUNNEL_SRC_PORT", 17), ("tunnel_dst_port", "TUNNEL_DST_PORT", 17),
    ("vxlan", "VXLAN", 10),
    ("timestamp_start", "TIMESTAMP_START", 31), ("timestamp_end", "TIMESTAMP_END", 31),
    ("timestamp_arrival", "TIMESTAMP_ARRIVAL", 31),
    ("timestamp_export", "TIMESTAMP_EXPORT", 31),
    ("export_proto_seqno", "EXPORT_PROTO_SEQNO", 20),
    ("export_proto_version", "EXPORT_PROTO_VERSION", 22),
    ("export_proto_sysid", "EXPORT_PROTO_SYSID", 20),
)
_HEADER_BY = {n: (t, w) for n, t, w in HEADER}

# -a: the title line's own list (formatted; CSV adds LABEL after TAG2)
_ALL_SKIP = {"ext_comm", "src_ext_comm", "lrg_comm", "src_lrg_comm", "mpls_vpn_rd",
             "mpls_pw_id", "src_net", "dst_net", "vxlan"}
ALL_HEADER = tuple((n, t, 25 if n in ("std_comm", "src_std_comm") else w)
                   for n, t, w in HEADER if n not in _ALL_SKIP)

COUNTER_CELLS = (("packets", "PACKETS", 22), ("flows", "FLOWS", 22), ("bytes", "BYTES", 0))


def enabled(cell_name: str, primitives) -> bool:
    """Whether an aggregate with ``primitives`` switches the column on."""
    c = CELLS[cell_name]
    return any(p in primitives for p in c.primitives)


def custom_cells(prims) -> list[Cell]:
    """The cells of the custom primitives of a registry (CustomPrimitive objects)."""
    from pypmacct.maps.custom_primitives import columns_for
    return [Cell(col.name, (col.name,), col, p.fmt_width, "  ", b"", b"")
            for p, col in zip(prims, columns_for(prims))]


def custom_header(prims) -> list[tuple[str, str, int]]:
    return [(p.name, p.name, p.fmt_width + 2) for p in prims]


def value_cells(primitives, all_fields: bool, csv: bool, custom=()) -> list[Cell]:
    """The value cells of a line, in print order (``custom``: the registry's custom
    primitives, printed after every built-in cell)."""
    out = []
    for c in VALUES:
        if c.name == "label" and not csv:
            continue        # formatted output never prints a label
        on = enabled(c.name, primitives)
        if all_fields and c.in_all:
            on = True
        if on:
            out.append(c)
    return out + custom_cells(custom)


def header_cells(primitives, all_fields: bool, csv: bool,
                 custom=()) -> list[tuple[str, str, int]]:
    """(name, title, cell width) of the title line, in title order."""
    if all_fields:
        cells = list(ALL_HEADER)
        if csv:
            cells.insert(2, ("label", "LABEL", 0))
        return cells + custom_header(custom)
    cells = [h for h in HEADER if enabled(h[0], primitives)]
    if csv and "label" in primitives:
        at = sum(1 for h in cells if h[0] in ("tag", "tag2"))
        cells.insert(at, ("label", "LABEL", 0))
    return cells + custom_header(custom)
