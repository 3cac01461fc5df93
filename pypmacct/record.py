"""The record that travels from the core to the plugins, and the batch that carries it.

One numpy structured dtype holds every primitive the core can fill. A batch is an
array of such records plus a string table: values without a fixed size (AS paths,
communities, labels, string custom primitives) are stored in the record as an int32
index into ``Batch.strings``. Index 0 is always the empty string, so a zeroed record
means "nothing known" for every field.

Addresses are a nested ``(af, addr)`` pair: ``af`` is 0 (unset), 4 or 6 and ``addr``
holds the address in network byte order, IPv4 in the first four bytes.

Times are int64 microseconds since the epoch; 0 means unset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ADDR_DTYPE = np.dtype([("af", "u1"), ("addr", "V16")])

AF_NONE, AF_INET, AF_INET6 = 0, 4, 6

# Sample types, as pre_tag_map's sample_type and nfacctd_account_options use them.
SAMPLE_FLOW, SAMPLE_OPTION, SAMPLE_EVENT = 1, 2, 3
# Traffic records of a finer class, as pmacct 1.7.7's NF_evaluate_flow_type tells them
# apart for sample_type=flow-ipv4/-ipv6 (which match SAMPLE_FLOW only): NetFlow v5, and
# v9/IPFIX templates with an MPLS label (IE 70). Every value but SAMPLE_OPTION and
# SAMPLE_EVENT is traffic, with counters.
SAMPLE_FLOW_V5, SAMPLE_FLOW_MPLS = 4, 5

# (name, dtype). Order groups related fields; nothing depends on it.
BASE_FIELDS: list[tuple[str, object]] = [
    # arrival order: a decoder fills 0..n-1 in the order records arrived (it may emit
    # them in another order); the core makes it absolute across batches. Plugins use it
    # for first-seen output order and for "last record wins" values.
    ("arrival_seq", "u8"),
    # counters
    ("packets", "u8"), ("bytes", "u8"), ("flows", "u8"),
    # L3
    ("src_host", ADDR_DTYPE), ("dst_host", ADDR_DTYPE),
    ("src_mask", "u1"), ("dst_mask", "u1"),
    ("proto", "u1"), ("tos", "u1"),
    # L4
    ("src_port", "u2"), ("dst_port", "u2"), ("tcp_flags", "u1"),
    # ICMP/ICMPv6 type and code of pmacctd/uacctd packets (what nfprobe exports as the
    # destination port)
    ("icmp_type", "u1"), ("icmp_code", "u1"),
    # L2
    ("src_mac", "V6"), ("dst_mac", "V6"), ("vlan", "u2"), ("cvlan", "u2"),
    ("cos", "u1"), ("etype", "u2"),
    # interfaces
    ("in_iface", "u4"), ("out_iface", "u4"),
    # ASNs
    ("src_as", "u4"), ("dst_as", "u4"), ("peer_src_as", "u4"), ("peer_dst_as", "u4"),
    # exporter, BGP next hop, IP next hop
    ("peer_src_ip", ADDR_DTYPE), ("peer_dst_ip", ADDR_DTYPE), ("nexthop", ADDR_DTYPE),
    # BGP attributes (filled by enrichment)
    ("local_pref", "u4"), ("src_local_pref", "u4"), ("med", "u4"), ("src_med", "u4"),
    ("as_path", "i4"), ("std_comm", "i4"), ("ext_comm", "i4"), ("lrg_comm", "i4"),
    ("src_as_path", "i4"), ("src_std_comm", "i4"), ("src_ext_comm", "i4"),
    ("src_lrg_comm", "i4"), ("src_roa", "u1"), ("dst_roa", "u1"),
    # MPLS: RD is 2 bytes type + 6 bytes value, network order
    ("mpls_vpn_rd", "V8"), ("mpls_pw_id", "u4"), ("mpls_label_top", "u4"),
    ("mpls_label_bottom", "u4"), ("mpls_stack_depth", "u1"),
    # NAT
    ("post_nat_src_host", ADDR_DTYPE), ("post_nat_dst_host", ADDR_DTYPE),
    ("post_nat_src_port", "u2"), ("post_nat_dst_port", "u2"),
    ("nat_event", "u1"), ("fw_event", "u1"),
    # tunnels (sFlow, pmacctd)
    ("tunnel_src_mac", "V6"), ("tunnel_dst_mac", "V6"),
    ("tunnel_src_host", ADDR_DTYPE), ("tunnel_dst_host", ADDR_DTYPE),
    ("tunnel_proto", "u1"), ("tunnel_tos", "u1"),
    ("tunnel_src_port", "u2"), ("tunnel_dst_port", "u2"), ("vxlan", "u4"),
    # time, microseconds since the epoch. ts_* are the timestamp_* primitives;
    # time_start/time_end are what time bins and pro-rating go by (pmacct keeps
    # the two apart: nfacctd_time_new zeroes the latter, not the former).
    ("ts_start", "i8"), ("ts_end", "i8"), ("ts_arrival", "i8"), ("ts_export", "i8"),
    ("time_start", "i8"), ("time_end", "i8"),
    # export protocol
    ("export_proto_seqno", "u4"), ("export_proto_version", "u2"),
    ("export_proto_sysid", "u4"), ("engine_type", "u1"), ("engine_id", "u1"),
    ("sample_type", "u1"), ("direction", "u1"),
    # pre_tag_map match keys only (no primitive prints them): the v9/IPFIX template id
    # (flowset_id), forwardingStatus when exported in one octet (fwdstatus; 0xFFFF when
    # absent), 1 when the template has initiatorOctets and responderOctets (is_bi_flow)
    ("flowset_id", "u2"), ("fwd_status", "u2"), ("bi_flow", "u1"),
    # ... and sFlow's: the sample's type word (enterprise << 12 | format: 1 flow sample,
    # 3 expanded), its data source index, the extended switch record's in/out VLANs
    # (pmacct's in_vlan/out_vlan; the vlan primitive is in_vlan, else out_vlan) and the
    # extended gateway record's next hop alone (peer_dst_ip may be the router's)
    ("sf_sample_type", "u4"), ("sf_ds_index", "u4"), ("sf_in_vlan", "u2"),
    ("sf_out_vlan", "u2"), ("sf_bgp_nexthop", ADDR_DTYPE),
    # sampling: direction is an ASCII letter ('i', 'e', 'u') or 0
    ("sampling_rate", "u4"), ("sampling_direction", "u1"),
    # tagging and classification
    ("tag", "u8"), ("tag2", "u8"), ("label", "i4"), ("class", "i4"),
    # GeoIP
    ("src_host_country", "i4"), ("dst_host_country", "i4"),
    ("src_host_pocode", "i4"), ("dst_host_pocode", "i4"),
    ("src_host_lat", "f8"), ("src_host_lon", "f8"),
    ("dst_host_lat", "f8"), ("dst_host_lon", "f8"),
]

# Fields that hold an index into the batch string table.
# A set, not a frozenset: string custom primitives (aggregate_primitives) join it when the
# configuration is loaded (pypmacct/config/loader.py).
STRING_FIELDS = set(name for name, dt in BASE_FIELDS if dt == "i4")
BASE_STRING_FIELDS = frozenset(STRING_FIELDS)
ADDRESS_FIELDS = frozenset(name for name, dt in BASE_FIELDS if dt is ADDR_DTYPE)


def make_record_dtype(extra: list[tuple[str, object]] | None = None) -> np.dtype:
    """The record dtype, optionally with extra (custom primitive) fields appended."""
    fields = list(BASE_FIELDS)
    if extra:
        names = {n for n, _ in fields}
        for name, dt in extra:
            if name in names:
                raise ValueError(f"custom field {name!r} clashes with a built-in field")
            fields.append((name, dt))
    return np.dtype(fields)


RECORD_DTYPE = make_record_dtype()


def subset_dtype(dtype: np.dtype, names) -> np.dtype:
    """A packed dtype holding only ``names`` of ``dtype``, in ``dtype``'s order."""
    wanted = set(names)
    missing = wanted - set(dtype.names)
    if missing:
        raise KeyError(f"no such record fields: {sorted(missing)}")
    return np.dtype([(n, dtype.fields[n][0]) for n in dtype.names if n in wanted])


def project(records: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The fields of ``dtype`` out of ``records``, as a packed array: ``records`` itself
    when it already has that dtype (the usual case with one plugin: the decoder fills
    just the fields the plugins need), else a new array (copied field by field)."""
    if records.dtype == dtype:
        return records
    out = np.empty(len(records), dtype=dtype)
    for name in dtype.names:
        out[name] = records[name]
    return out


@dataclass
class Batch:
    """Records plus the string table their string fields index into."""
    records: np.ndarray
    strings: list[str] = field(default_factory=lambda: [""])

    def __len__(self) -> int:
        return len(self.records)

    def take(self, selector) -> "Batch":
        """A batch of the selected records (mask or indices) sharing the string table."""
        return Batch(self.records[selector], self.strings)


class StringTable:
    """Builds a batch's string table: interning returns a stable index per string."""

    def __init__(self):
        self.strings: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def intern(self, s: str) -> int:
        i = self._index.get(s)
        if i is None:
            i = len(self.strings)
            self.strings.append(s)
            self._index[s] = i
        return i

    def __len__(self) -> int:
        return len(self.strings)


def empty_records(n: int, dtype: np.dtype = RECORD_DTYPE) -> np.ndarray:
    return np.zeros(n, dtype=dtype)
