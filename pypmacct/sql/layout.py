"""Which SQL columns a plugin writes, and from what: pmacct 1.7.7's table versioning rules.

``build_layout()`` takes a plugin's ``aggregate`` list and its SQL settings and returns
the column list of the statements it sends, each column saying where its value comes
from: a key field of the aggregate (converted to text or a number the way pmacct writes
it) or a constant (the value pmacct writes for a column of the default table that the
aggregate does not fill: ``0:0:0:0:0:0`` for a MAC, ``0.0.0.0`` for an address, 0...).

The rules, as pmacct applies them (read in its ``sql_evaluate_primitives`` and checked
against pmacct 1.7.7's plugins by the differential tests):

- without ``sql_optimize_clauses`` every column of the chosen default table version is
  written, filled or not, and a primitive the version has no column for stops start-up
  ("... not supported for selected sql_table_version/_type ..."); primitives that no
  default table has (in_iface, cos, NAT, MPLS, timestamps...) are written to their own
  columns in any version;
- with ``sql_optimize_clauses`` only the aggregate's primitives are written (a custom
  table is assumed);
- tables before v6 keep ASNs in ip_src/ip_dst (so an address and an ASN of the same
  direction cannot be aggregated together there); v8 renames src_port/dst_port (MySQL,
  SQLite) to port_src/port_dst, the names PostgreSQL tables always had; v9 renames
  agent_id to tag; flows are a column from v4; tcp_flags from v7; tos from v3; vlan and
  the tag from v2; class from v5;
- ``sql_table_type: bgp`` (switched on by itself by any BGP primitive besides
  src_as/dst_as) selects the BGP table: no L2/L3/L4 columns there, BGP columns instead;
- custom primitives (``aggregate_primitives``) go to a column of their own name in any
  table (no default table has one: the user adds it), u_int as a number, hex/ip/mac/
  str/raw as the text the print plugin shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BGP_PRIMITIVES = frozenset({
    "std_comm", "ext_comm", "lrg_comm", "as_path", "local_pref", "med", "peer_src_as",
    "peer_dst_as", "peer_src_ip", "peer_dst_ip", "src_std_comm", "src_ext_comm",
    "src_lrg_comm", "src_as_path", "src_local_pref", "src_med", "mpls_vpn_rd",
    "mpls_pw_id", "src_roa", "dst_roa"})
# pmacct decides "bgp" by whether the aggregate needs its BGP primitive block: every
# BGP primitive (peer_src_ip included) except src_as and dst_as
_BGP_BLOCK = BGP_PRIMITIVES


class SqlLayoutError(ValueError):
    """The aggregate cannot be written to the selected table (stops start-up)."""


def _unsupported(what: str) -> str:
    return (f"{what} accounting not supported for selected sql_table_version/_type. Read "
            f"about SQL table versioning or consider using sql_optimize_clauses.")


@dataclass(frozen=True)
class SqlColumn:
    name: str                 # the SQL column
    source: str | None        # output column name (pypmacct.output.columns) or None
    kind: str                 # how the value is written: see pypmacct.sql.values
    const: object = None      # the value when source is None
    where: bool = True        # part of the UPDATE's WHERE (tcp_flags is not)
    wrap: str | None = None   # 'ts': the engine's seconds-to-timestamp function


@dataclass
class Layout:
    table_default: str
    columns: list = field(default_factory=list)
    flows: bool = False
    tcp_flags_set: bool = False       # UPDATE ... tcp_flags=tcp_flags|x
    history: bool = False
    bgp: bool = False
    version: int = 1
    log_times: bool = False           # nfacctd_sql_log: stamps are the flow's own times
    counters: bool = True             # False: event/option aggregates (no counter columns)

    @property
    def key_columns(self) -> list:
        return [c for c in self.columns if c.where]

    @property
    def insert_names(self) -> list:
        names = [c.name for c in self.columns]
        if self.history:
            names += ["stamp_updated", "stamp_inserted"]
        if self.counters:
            names += ["packets", "bytes"] + (["flows"] if self.flows else [])
        return names


def default_table(engine: str, version: int, bgp: bool, primitives, sql_data: str) -> str:
    """pmacct's default sql_table. (1.7.7 falls back to 'acct' for v9, though its docs
    and schemas say acct_v9: we use acct_v9, see docs/differences.md.)"""
    if bgp:
        return "acct_bgp"
    if version == 1:
        base = "acct"
    else:
        base = f"acct_v{version}"
    if engine == "pgsql" and version <= 5:
        agg = set(primitives)
        if sql_data == "unified":
            return "acct_uni" if version == 1 else f"acct_uni_v{version}"
        if agg & {"src_as", "dst_as", "sum_as"}:
            return "acct_as" if version == 1 else f"acct_as_v{version}"
    return base


def build_layout(primitives, engine: str, version: int = 1, table_type: str | None = None,
                 optimize: bool = False, num_protos: bool = False, num_hosts: bool = False,
                 sql_data: str = "typed", history: bool = False) -> Layout:
    agg = set(primitives)
    if table_type not in (None, "original", "bgp"):
        raise SqlLayoutError(f"Unknown sql_table_type value: '{table_type}'.")
    bgp = table_type == "bgp" or (table_type is None and bool(agg & _BGP_BLOCK))
    v = version
    custom = optimize
    out = Layout(default_table(engine, v, bgp, agg, sql_data), history=history, bgp=bgp,
                 version=v)
    cols = out.columns
    my = engine in ("mysql", "sqlite3")
    pg_typed = engine == "pgsql" and sql_data != "unified"

    src_ip = agg & {"src_host", "src_net", "sum_host", "sum_net"}
    src_as = agg & {"src_as", "sum_as"}
    dst_ip = agg & {"dst_host", "dst_net"}
    if v < 6 and ((src_ip and src_as) or ("dst_as" in agg and dst_ip)):
        raise SqlLayoutError("SQL tables < v6 are unable to mix IP addresses and AS numbers "
                             "(ie. src_ip, src_as).")
    if engine == "pgsql" and pg_typed and v < 6 and (agg & {"src_as", "sum_as", "dst_as"}) \
            and (agg & {"src_host", "sum_host", "dst_host", "src_net", "sum_net", "dst_net"}):
        raise SqlLayoutError("'typed' PostgreSQL table in use: unable to mix HOST/NET and AS "
                             "aggregations.")

    def add(name, source, kind, const=None, where=True, wrap=None):
        cols.append(SqlColumn(name, source, kind, const, where, wrap))

    def gate(aggregated: bool, unsupported: bool, what: str, always: bool = True) -> bool:
        """Whether the column goes in: aggregated primitives always (or an error where
        the default table lacks it), the rest only for default tables that have it."""
        if not aggregated and (custom or not always):
            return False
        if unsupported and not custom:
            if aggregated:
                raise SqlLayoutError(_unsupported(what))
            return False
        return True

    ip_kind = "addr_aton" if (my and num_hosts) else "addr"
    # --- L2
    if gate(bool(agg & {"src_mac", "sum_mac"}), bgp, "MAC"):
        if agg & {"src_mac", "sum_mac"}:
            add("mac_src", "src_mac", "text")
        else:
            add("mac_src", None, "text", "0:0:0:0:0:0")
    if gate("dst_mac" in agg, bgp, "MAC"):
        if "dst_mac" in agg:
            add("mac_dst", "dst_mac", "text")
        else:
            add("mac_dst", None, "text", "0:0:0:0:0:0")
    if gate("vlan" in agg, v < 2 or bgp, "VLAN"):
        add("vlan", "vlan" if "vlan" in agg else None, "int", 0)
    if "cos" in agg:
        add("cos", "cos", "int")
    if "etype" in agg:
        add("etype", "etype", "text")
    # --- L3 addresses (v<6: ASNs share ip_src/ip_dst)
    as_src_in_ip = v < 6 and bool(src_as)
    as_dst_in_ip = v < 6 and "dst_as" in agg
    if agg & {"src_host", "sum_host"}:
        gate(True, bgp, "IP host")
        add("ip_src", "src_host", ip_kind)
    elif not custom and not (agg & {"sum_net"}) and not as_src_in_ip and not bgp:
        add("ip_src", None, ip_kind, "0.0.0.0")
    if agg & {"src_net", "sum_net"}:
        add("net_src", "src_net", ip_kind)
    if "dst_host" in agg:
        gate(True, bgp, "IP host")
        add("ip_dst", "dst_host", ip_kind)
    elif not custom and not as_dst_in_ip and not bgp:
        add("ip_dst", None, ip_kind, "0.0.0.0")
    if "dst_net" in agg:
        add("net_dst", "dst_net", ip_kind)
    # --- ASNs
    as_txt = "int_text" if (my or not pg_typed) else "int"
    if v >= 6 or bgp:
        if src_as or not custom:
            add("as_src", "src_as" if src_as else None, "int", 0)
    elif src_as:
        add("ip_src", "src_as", as_txt)
    for prim, col in (("in_iface", "iface_in"), ("out_iface", "iface_out"),
                      ("src_mask", "mask_src"), ("dst_mask", "mask_dst")):
        if prim in agg:
            add(col, prim, "int")
    if v >= 6 or bgp:
        if "dst_as" in agg or not custom:
            add("as_dst", "dst_as" if "dst_as" in agg else None, "int", 0)
    elif "dst_as" in agg:
        add("ip_dst", "dst_as", as_txt)
    # --- BGP
    if "std_comm" in agg:
        gate(True, not bgp, "BGP")
        add("comms", "std_comm", "text")
    elif "ext_comm" in agg:
        gate(True, not bgp, "BGP")
        add("ecomms", "ext_comm", "text")
    elif bgp and not custom:
        add("comms", None, "text", "")
    if "lrg_comm" in agg:
        add("lcomms", "lrg_comm", "text")
    if "src_std_comm" in agg:
        add("comms_src", "src_std_comm", "text")
    elif "src_ext_comm" in agg:
        add("ecomms_src", "src_ext_comm", "text")
    if "src_lrg_comm" in agg:
        add("lcomms_src", "src_lrg_comm", "text")
    if "as_path" in agg:
        gate(True, not bgp, "BGP")
        add("as_path", "as_path", "text")
    elif bgp and not custom:
        add("as_path", None, "text", "")
    if "src_as_path" in agg:
        add("as_path_src", "src_as_path", "text")
    if gate("local_pref" in agg, not bgp, "BGP"):
        add("local_pref", "local_pref" if "local_pref" in agg else None, "int", 0)
    if "src_local_pref" in agg:
        add("local_pref_src", "src_local_pref", "int")
    if gate("med" in agg, not bgp, "BGP"):
        add("med", "med" if "med" in agg else None, "int", 0)
    if "src_med" in agg:
        add("med_src", "src_med", "int")
    if "src_roa" in agg:
        add("roa_src", "src_roa", "text")
    if "dst_roa" in agg:
        add("roa_dst", "dst_roa", "text")
    if "mpls_vpn_rd" in agg:
        add("mpls_vpn_rd", "mpls_vpn_rd", "text")
    if "mpls_pw_id" in agg:
        add("mpls_pw_id", "mpls_pw_id", "int")
    for prim, col, kind, const in (("peer_src_as", "peer_as_src", "int", 0),
                                   ("peer_dst_as", "peer_as_dst", "int", 0),
                                   ("peer_src_ip", "peer_ip_src", ip_kind, "0.0.0.0"),
                                   ("peer_dst_ip", "peer_ip_dst", ip_kind, "0.0.0.0")):
        if prim in agg:
            gate(True, not bgp, "BGP")
            add(col, prim, kind)
        elif bgp and not custom:
            add(col, None, kind, const)
    # --- L4
    old_ports = my and (v < 8) if not bgp else my and (v < 8)
    if gate(bool(agg & {"src_port", "sum_port"}), bgp, "TCP/UDP port"):
        add("src_port" if old_ports else "port_src",
            "src_port" if agg & {"src_port", "sum_port"} else None, "int", 0)
    if gate("dst_port" in agg, bgp, "TCP/UDP port"):
        add("dst_port" if old_ports else "port_dst",
            "dst_port" if "dst_port" in agg else None, "int", 0)
    if gate("tcpflags" in agg, v < 7 or bgp, "TCP flags"):
        add("tcp_flags", "tcp_flags" if "tcpflags" in agg else None, "int", 0, where=False)
        out.tcp_flags_set = "tcpflags" in agg
    if gate("tos" in agg, v < 3 or bgp, "IP ToS"):
        add("tos", "tos" if "tos" in agg else None, "int", 0)
    if gate("proto" in agg, bgp, "IP proto"):
        kind = "proto_name" if (my and not num_protos) else "int"
        add("ip_proto", "proto" if "proto" in agg else None, kind, 0)
    # --- primitives no default table has: their own columns, whatever the version
    for prim, col, kind in (
            ("src_host_country", "country_ip_src", "text"),
            ("dst_host_country", "country_ip_dst", "text"),
            ("src_host_pocode", "pocode_ip_src", "text"),
            ("dst_host_pocode", "pocode_ip_dst", "text"),
            ("sampling_rate", "sampling_rate", "int"),
            ("sampling_direction", "sampling_direction", "text"),
            ("post_nat_src_host", "post_nat_ip_src", ip_kind),
            ("post_nat_dst_host", "post_nat_ip_dst", ip_kind),
            ("post_nat_src_port", "post_nat_port_src", "int"),
            ("post_nat_dst_port", "post_nat_port_dst", "int"),
            ("nat_event", "nat_event", "int"),
            ("mpls_label_top", "mpls_label_top", "int"),
            ("mpls_label_bottom", "mpls_label_bottom", "int"),
            ("mpls_stack_depth", "mpls_stack_depth", "int"),
            ("tunnel_src_mac", "tunnel_mac_src", "text"),
            ("tunnel_dst_mac", "tunnel_mac_dst", "text"),
            ("tunnel_src_host", "tunnel_ip_src", ip_kind),
            ("tunnel_dst_host", "tunnel_ip_dst", ip_kind),
            ("tunnel_proto", "tunnel_ip_proto", "proto_name" if (my and not num_protos)
             else "int"),
            ("tunnel_tos", "tunnel_tos", "int"),
            ("tunnel_src_port", "tunnel_port_src", "int"),
            ("tunnel_dst_port", "tunnel_port_dst", "int"),
            ("vxlan", "vxlan", "int")):
        if prim in agg:
            add(col, prim, kind)
    if "src_host_coords" in agg:
        add("lat_ip_src", "src_host_lat", "float")
        add("lon_ip_src", "src_host_lon", "float")
    if "dst_host_coords" in agg:
        add("lat_ip_dst", "dst_host_lat", "float")
        add("lon_ip_dst", "dst_host_lon", "float")
    for prim in ("timestamp_start", "timestamp_end", "timestamp_arrival", "timestamp_export"):
        if prim in agg:
            add(prim, prim, "ts_secs", wrap="ts")
            if prim != "timestamp_export":
                add(prim + "_residual", prim, "ts_usecs")
    for prim in ("export_proto_seqno", "export_proto_version", "export_proto_sysid"):
        if prim in agg:
            add(prim, prim, "int")
    # --- custom primitives (aggregate_primitives): a column named after each, in
    # aggregate order, whatever the table version or sql_optimize_clauses, as 1.7.7
    # writes them: u_int as a number, the other semantics as text (the print plugin's)
    from pypmacct.primitives import CUSTOM_PRIMITIVES, PRIMITIVES
    for name in primitives:
        cp = CUSTOM_PRIMITIVES.get(name)
        if cp is not None and name not in PRIMITIVES:
            add(name, name, "cp_uint" if cp.semantics == "u_int" else "cp_text")
    # --- tags and class
    if gate("tag" in agg, v < 2 and not bgp, "Tag/ID"):
        new_tag = (v >= 9) if not bgp else False
        add("tag" if new_tag else "agent_id", "tag" if "tag" in agg else None, "int", 0)
    if "tag2" in agg:
        add("tag2", "tag2", "int")
    if "label" in agg:
        add("label", "label", "text")
    if gate("class" in agg, v < 5 or bgp, "L7 classification"):
        add("class_id", "class" if "class" in agg else None, "class", "unknown")
    # --- counters
    if "flows" in agg or (v >= 4 and not bgp and not custom):
        if (v < 4 or bgp) and not custom:
            raise SqlLayoutError("The accounting of flows requires SQL table v4. Exiting.")
        out.flows = True
    return out
