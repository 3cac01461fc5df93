"""Aggregation primitives: the names users put in ``aggregate``.

Each primitive says which daemons offer it, how ``-a`` lists it, which record fields it
reads and how it becomes part of an aggregate's key:

- ``copy``: the listed record fields are copied into the key as they are;
- ``net``: an address masked by its mask field (``src_net``: ``src_host`` & ``src_mask``);
- ``sum``: a compound primitive; each record is counted once for its source side and
  once for its destination side (``sum_host`` counts a host's in and out traffic);
- ``or``: not part of the key; OR-ed across the records of an aggregate (tcpflags);
- ``output``: not part of the key; only switches an output column on (flows);
- ``none``: nothing at all: one grand-total aggregate.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

DAEMONS = ("pmacctd", "uacctd", "nfacctd", "sfacctd")

_P, _U, _N, _S = "pmacctd", "uacctd", "nfacctd", "sfacctd"
ALL = frozenset(DAEMONS)


@dataclass(frozen=True)
class Primitive:
    name: str
    group: str
    daemons: frozenset
    description: str
    kind: str = "copy"
    fields: tuple = ()
    listed: bool = True      # shown by -a

    def available_in(self, daemon: str) -> bool:
        return daemon in self.daemons


def _p(name, group, daemons, description, kind="copy", fields=None, listed=True):
    if fields is None:
        fields = (name,)
    return Primitive(name, group, frozenset(daemons), description, kind, tuple(fields), listed)


# accepted by these daemons but not shown by their -a (pmacct 1.7.7's pmacctd/uacctd -a
# lists 'flows' for nfacctd only, yet accounts it through the flow buffer)
UNLISTED = frozenset({("pmacctd", "flows"), ("uacctd", "flows")})


# Order matters: it is the order -a prints, grouped as pmacct groups them.
_TABLE = [
    _p("cos", "L2", (_P, _N, _S), "Ethernet CoS, 802.1P"),
    _p("etype", "L2", (_P, _N, _S), "Ethernet Ethertype"),
    _p("src_mac", "L2", ALL, "Source MAC address"),
    _p("dst_mac", "L2", ALL, "Destination MAC address"),
    _p("vlan", "L2", ALL, "Ethernet VLAN, 802.1Q"),

    _p("src_host", "L3", ALL, "Source IPv4/IPv6 address"),
    _p("dst_host", "L3", ALL, "Destination IPv4/IPv6 address"),
    _p("src_mask", "L3", ALL, "Source network mask"),
    _p("dst_mask", "L3", ALL, "Destination network mask"),
    _p("src_net", "L3", ALL, "Source IPv4/IPv6 prefix", "net", ("src_host", "src_mask")),
    _p("dst_net", "L3", ALL, "Destination IPv4/IPv6 prefix", "net", ("dst_host", "dst_mask")),
    _p("proto", "L3", ALL, "IP protocol"),
    _p("tos", "L3", ALL, "IP ToS"),

    _p("src_port", "L4", ALL, "Source TCP/UDP port"),
    _p("dst_port", "L4", ALL, "Destination TCP/UDP port"),
    _p("tcpflags", "L4", ALL, "TCP flags", "or", ("tcp_flags",)),

    _p("src_as", "BGP", ALL, "Source ASN"),
    _p("dst_as", "BGP", ALL, "Destination ASN"),
    _p("as_path", "BGP", ALL, "AS PATH"),
    _p("std_comm", "BGP", ALL, "Standard Communities"),
    _p("ext_comm", "BGP", ALL, "Extended Communities"),
    _p("lrg_comm", "BGP", ALL, "Large Communities"),
    _p("local_pref", "BGP", ALL, "Local Preference"),
    _p("med", "BGP", ALL, "Multi-Exit Discriminator"),
    _p("src_as_path", "BGP", ALL, "Source AS PATH (via reverse BGP lookup)"),
    _p("src_std_comm", "BGP", ALL, "Source Standard Communities (via reverse BGP lookup)"),
    _p("src_ext_comm", "BGP", ALL, "Source Extended Communities (via reverse BGP lookup)"),
    _p("src_lrg_comm", "BGP", ALL, "Source Large Communities (via reverse BGP lookup)"),
    _p("src_local_pref", "BGP", ALL, "Source Local Preference (by default via reverse BGP lookup)"),
    _p("src_med", "BGP", ALL, "Source MED (by default via reverse BGP lookup)"),
    _p("peer_src_as", "BGP", ALL, "Source peer ASN (by default via reverse BGP lookup)"),
    _p("peer_dst_as", "BGP", ALL, "Destination peer ASN"),
    _p("peer_dst_ip", "BGP", ALL, "BGP next-hop"),

    _p("fw_event", "NAT", (_N,), "Firewall event ID"),
    _p("nat_event", "NAT", (_N,), "NAT event ID"),
    _p("post_nat_src_host", "NAT", (_N,), "Source IPv4/IPv6 address after NAT translation"),
    _p("post_nat_dst_host", "NAT", (_N,), "Destination IPv4/IPv6 address after NAT translation"),
    _p("post_nat_src_port", "NAT", (_N,), "Source TCP/UDP port after NAT translation"),
    _p("post_nat_dst_port", "NAT", (_N,), "Destination TCP/UDP port after NAT translation"),

    _p("vxlan", "TUNNEL", ALL, "VXLAN Network Identifier"),
    _p("tunnel_src_mac", "TUNNEL", (_P, _U, _S), "Tunnel inner Source MAC address"),
    _p("tunnel_dst_mac", "TUNNEL", (_P, _U, _S), "Tunnel inner Destination MAC address"),
    _p("tunnel_src_host", "TUNNEL", (_P, _U, _S), "Tunnel inner Source IPv4/IPv6 address"),
    _p("tunnel_dst_host", "TUNNEL", (_P, _U, _S), "Tunnel inner Destination IPv4/IPv6 address"),
    _p("tunnel_proto", "TUNNEL", (_P, _U, _S), "Tunnel inner IP protocol"),
    _p("tunnel_tos", "TUNNEL", (_P, _U, _S), "Tunnel inner IP ToS"),
    _p("tunnel_src_port", "TUNNEL", (_P, _U, _S), "Tunnel inner Source TCP/UDP port"),
    _p("tunnel_dst_port", "TUNNEL", (_P, _U, _S), "Tunnel inner Destination TCP/UDP port"),

    _p("mpls_label_bottom", "MPLS", (_P, _U, _N), "Bottom MPLS label"),
    _p("mpls_label_top", "MPLS", (_P, _U, _N), "Top MPLS label"),
    _p("mpls_stack_depth", "MPLS", (_P, _U, _N), "MPLS stack depth"),
    _p("mpls_vpn_rd", "MPLS", (_N, _S), "MPLS L3 VPN Route Distinguisher"),
    _p("mpls_pw_id", "MPLS", (_N, _S), "MPLS L2 VPN Pseudowire ID"),

    _p("class", "MISC", ALL, "L7 protocol classification"),
    _p("flows", "MISC", (_P, _U, _N), "IP flows", "output", ()),
    _p("src_host_country", "MISC", ALL, "Source IP address GeoIP resolution: country"),
    _p("dst_host_country", "MISC", ALL, "Destination IP address GeoIP resolution: country"),
    _p("src_host_pocode", "MISC", ALL, "Source IP address GeoIP resolution: postal code"),
    _p("dst_host_pocode", "MISC", ALL, "Destination IP address GeoIP resolution: postal code"),
    _p("src_host_coords", "MISC", ALL, "Source IP address GeoIP resolution: lat/lon coordinates",
       fields=("src_host_lat", "src_host_lon")),
    _p("dst_host_coords", "MISC", ALL, "Destination IP address GeoIP resolution: lat/lon coordinates",
       fields=("dst_host_lat", "dst_host_lon")),
    _p("in_iface", "MISC", (_U, _N, _S), "Input interface, SNMP ifIndex"),
    _p("out_iface", "MISC", (_U, _N, _S), "Output interface, SNMP ifIndex"),
    _p("peer_src_ip", "MISC", (_N, _S), "IP address or identificator of telemetry exporting device"),
    _p("sampling_rate", "MISC", ALL, "Sampling rate"),
    _p("sampling_direction", "MISC", (_N,), "Sampling direction (ie. ingress vs egress)"),
    _p("tag", "MISC", ALL, "Numeric tag, ie. as result of pre_tag_map evaluation"),
    _p("tag2", "MISC", ALL, "Numeric tag, ie. as result of pre_tag_map evaluation"),
    _p("label", "MISC", ALL, "String label, ie. as result of pre_tag_map evaluation"),
    _p("export_proto_seqno", "MISC", (_N, _S), "Export protocol (ie. NetFlow) sequence number"),
    _p("export_proto_version", "MISC", (_N, _S), "Export protocol (ie. NetFlow) version"),
    _p("export_proto_sysid", "MISC", (_N, _S),
       "Export protocol ID (ie. sFlow subAgentID, IPFIX Obs Domain ID)"),
    _p("src_roa", "MISC", ALL, "RPKI validation status for source IP prefix"),
    _p("dst_roa", "MISC", ALL, "RPKI validation status for destination IP prefix"),

    _p("timestamp_start", "TIME", (_N,), "Flow start time or observation time at the exporter",
       fields=("ts_start",)),
    _p("timestamp_end", "TIME", (_N,), "Flow end time", fields=("ts_end",)),
    _p("timestamp_arrival", "TIME", ALL, "Observation time at the collector",
       fields=("ts_arrival",)),
    _p("timestamp_export", "TIME", (_N,), "Observation time at the exporter",
       fields=("ts_export",)),

    # Accepted by 'aggregate' but not listed by -a, as in pmacct.
    _p("none", "MISC", ALL, "Grand total", "none", (), listed=False),
    _p("sum_host", "L3", ALL, "Source or destination address", "sum",
       ("src_host", "dst_host"), listed=False),
    _p("sum_net", "L3", ALL, "Source or destination prefix", "sum",
       ("src_host", "src_mask", "dst_host", "dst_mask"), listed=False),
    _p("sum_as", "BGP", ALL, "Source or destination ASN", "sum", ("src_as", "dst_as"), listed=False),
    _p("sum_port", "L4", ALL, "Source or destination port", "sum",
       ("src_port", "dst_port"), listed=False),
    _p("sum_mac", "L2", ALL, "Source or destination MAC", "sum",
       ("src_mac", "dst_mac"), listed=False),
]

GROUPS = ("L2", "L3", "L4", "BGP", "NAT", "TUNNEL", "MPLS", "MISC", "TIME")

PRIMITIVES: dict[str, Primitive] = {p.name: p for p in _TABLE}

# The record field that says whether an address-like primitive was populated.
SUM_PRIMITIVES = frozenset(p.name for p in _TABLE if p.kind == "sum")

# aggregate_primitives of the configuration being loaded (name -> definition); set by
# the config loader before the aggregate lines are read
CUSTOM_PRIMITIVES: dict = {}


class AggregateError(ValueError):
    pass


def parse_aggregate(value: str, daemon: str) -> tuple[str, ...]:
    """Split an ``aggregate`` value into primitive names, checking each for ``daemon``.

    pmacct's rule that a sum_* primitive cannot be combined with any other primitive
    is enforced here.
    """
    names = [t.strip() for t in value.replace(";", ",").split(",") if t.strip()]
    if not names:
        raise AggregateError("empty aggregate")
    for n in names:
        p = PRIMITIVES.get(n)
        if p is None and n in CUSTOM_PRIMITIVES:
            continue
        if p is None:
            close = difflib.get_close_matches(n, [q.name for q in _TABLE
                                                  if q.available_in(daemon)], n=1)
            hint = f". Did you mean '{close[0]}'?" if close else ""
            raise AggregateError(f"unknown primitive '{n}'{hint}")
        if not p.available_in(daemon):
            raise AggregateError(f"primitive '{n}' is not supported by {daemon}")
    sums = [n for n in names if n in SUM_PRIMITIVES]
    if sums and len(set(names)) > 1:
        raise AggregateError(f"'{sums[0]}' is mutually exclusive with any other primitive")
    # keep first occurrence order, drop repeats
    seen = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return tuple(seen)


def list_primitives(daemon: str) -> str:
    """The text ``<daemon> -a`` prints after its banner line."""
    out = []
    for g in GROUPS:
        out.append("")
        out.append(g)
        for p in _TABLE:
            if p.listed and p.group == g and p.available_in(daemon) \
                    and (daemon, p.name) not in UNLISTED:
                out.append(f"{p.name:<32} : {p.description:<64}")
    return "\n".join(out) + "\n"
