"""Information elements: the IANA numbers nfacctd reads and which record field each feeds.

Where several elements can feed one field, the tuples below list them in the order
pmacct 1.7.7 tries them (pkt_handlers.c, NF_*_handler); the first one the template
carries wins. Element numbers from 384 up are only known with enterprise number 0 as
Cisco ASA (NSEL) extensions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- IANA information elements (NetFlow v9 field types share the numbering) ---
IN_BYTES, IN_PKTS, FLOWS, PROTOCOL, SRC_TOS, TCP_FLAGS = 1, 2, 3, 4, 5, 6
L4_SRC_PORT, IPV4_SRC_ADDR, SRC_MASK, INPUT_SNMP = 7, 8, 9, 10
L4_DST_PORT, IPV4_DST_ADDR, DST_MASK, OUTPUT_SNMP = 11, 12, 13, 14
IPV4_NEXT_HOP, SRC_AS, DST_AS, BGP_IPV4_NEXT_HOP = 15, 16, 17, 18
LAST_SWITCHED, FIRST_SWITCHED, OUT_BYTES, OUT_PKTS = 21, 22, 23, 24
IPV6_SRC_ADDR, IPV6_DST_ADDR, IPV6_SRC_MASK, IPV6_DST_MASK = 27, 28, 29, 30
SAMPLING_INTERVAL, SAMPLING_ALGORITHM = 34, 35
ENGINE_TYPE, ENGINE_ID = 38, 39
IPV4_SRC_PREFIX, IPV4_DST_PREFIX = 44, 45
MPLS_TOP_LABEL_ADDR = 47
FLOW_SAMPLER_ID, FLOW_SAMPLER_MODE, FLOW_SAMPLER_INTERVAL = 48, 49, 50
IN_SRC_MAC, OUT_DST_MAC, SRC_VLAN, DST_VLAN = 56, 57, 58, 59
IP_PROTOCOL_VERSION, DIRECTION, IPV6_NEXT_HOP, BGP_IPV6_NEXT_HOP = 60, 61, 62, 63
MPLS_LABEL_1 = 70
MPLS_LABELS = tuple(range(70, 80))
IN_DST_MAC, OUT_SRC_MAC = 80, 81
FLOW_BYTES, FLOW_PKTS = 85, 86
FORWARDING_STATUS, MPLS_VPN_RD = 89, 90
APPLICATION_ID, APPLICATION_NAME = 95, 96
LAYER2_PKT_SECTION_DATA = 104
PEER_DST_AS, PEER_SRC_AS = 128, 129
EXPORTER_IPV4_ADDRESS, EXPORTER_IPV6_ADDRESS = 130, 131
MPLS_TOP_LABEL_IPV6_ADDR = 140
SCOPE_TEMPLATE_ID = 145
FIRST_SWITCHED_SEC, LAST_SWITCHED_SEC = 150, 151
FIRST_SWITCHED_MSEC, LAST_SWITCHED_MSEC = 152, 153
FIRST_SWITCHED_USEC, LAST_SWITCHED_USEC = 154, 155
FIRST_SWITCHED_NSEC, LAST_SWITCHED_NSEC = 156, 157
FIRST_SWITCHED_DELTA_MICRO, LAST_SWITCHED_DELTA_MICRO = 158, 159
SYSTEM_INIT_TIME_MSEC = 160
IPV6_DST_PREFIX, IPV6_SRC_PREFIX = 169, 170
UDP_SRC_PORT, UDP_DST_PORT, TCP_SRC_PORT, TCP_DST_PORT = 180, 181, 182, 183
POST_NAT_IPV4_SRC_ADDR, POST_NAT_IPV4_DST_ADDR = 225, 226
POST_NAT_SRC_PORT, POST_NAT_DST_PORT = 227, 228
NAT_EVENT, INITIATOR_OCTETS, RESPONDER_OCTETS = 230, 231, 232
INGRESS_VRFID, EGRESS_VRFID = 234, 235
DOT1Q_VLAN_ID, DOT1Q_PRIORITY, DOT1Q_CUSTOMER_VLAN_ID = 243, 244, 245
PSEUDOWIRE_ID = 249
INPUT_PHYSINT, OUTPUT_PHYSINT = 252, 253
POST_DOT1Q_VLAN_ID, POST_DOT1Q_CUSTOMER_VLAN_ID = 254, 255
ETHERTYPE = 256
POST_NAT_IPV6_SRC_ADDR, POST_NAT_IPV6_DST_ADDR = 281, 282
SELECTOR_ID, SELECTOR_ALGORITHM = 302, 304
SAMPLING_PKT_INTERVAL, SAMPLING_PKT_SPACE = 305, 306
SAMPLING_SIZE, SAMPLING_POPULATION = 309, 310
DATALINK_FRAME_SECTION = 315
OBSERVATION_TIME_SEC, OBSERVATION_TIME_MSEC = 322, 323
LAYER2_SEGMENT_ID, LAYER2_OCTET_DELTA_COUNT = 351, 352
# Cisco ASA (NSEL) elements, enterprise number 0
ASA_XLATE_SRC_ADDR, ASA_XLATE_DST_ADDR = 40001, 40002
ASA_XLATE_SRC_PORT, ASA_XLATE_DST_PORT, ASA_XLATE_EVENT = 40003, 40004, 40005

# v9 options scope field types (stored like information elements, as pmacct does)
SCOPE_SYSTEM = 1

# pmacct's own enterprise number and its elements (tag, tag2, label)
PMACCT_PEN = 43874
PMACCT_TAG, PMACCT_TAG2, PMACCT_LABEL = 1, 2, 3

VARIABLE_LENGTH = 65535

# Element numbers below this (with enterprise number 0) follow pmacct's "last
# definition in a template wins" rule; the others take the first definition.
LEGACY_LIMIT = 384

# --- which elements feed which record field, in pmacct's order of preference ---
BYTES_CHAIN = (IN_BYTES, FLOW_BYTES, OUT_BYTES, LAYER2_OCTET_DELTA_COUNT)
PACKETS_CHAIN = (IN_PKTS, FLOW_PKTS, OUT_PKTS)
SRC_PORT_CHAIN = (L4_SRC_PORT, UDP_SRC_PORT, TCP_SRC_PORT)
DST_PORT_CHAIN = (L4_DST_PORT, UDP_DST_PORT, TCP_DST_PORT)
IN_IFACE_CHAIN = (INPUT_SNMP, INPUT_PHYSINT)
OUT_IFACE_CHAIN = (OUTPUT_SNMP, OUTPUT_PHYSINT)
SRC_MAC_CHAIN = (IN_SRC_MAC, OUT_SRC_MAC)
DST_MAC_CHAIN = (IN_DST_MAC, OUT_DST_MAC)
# templates without any of these carry events (NEL/NSEL), not traffic
TRAFFIC_COUNTERS = (IN_BYTES, OUT_BYTES, FLOW_BYTES, INITIATOR_OCTETS, RESPONDER_OCTETS,
                    DATALINK_FRAME_SECTION, LAYER2_PKT_SECTION_DATA, LAYER2_OCTET_DELTA_COUNT)

NAMES = {
    IN_BYTES: "octetDeltaCount", IN_PKTS: "packetDeltaCount", FLOWS: "deltaFlowCount",
    PROTOCOL: "protocolIdentifier", SRC_TOS: "ipClassOfService", TCP_FLAGS: "tcpControlBits",
    L4_SRC_PORT: "sourceTransportPort", IPV4_SRC_ADDR: "sourceIPv4Address",
    SRC_MASK: "sourceIPv4PrefixLength", INPUT_SNMP: "ingressInterface",
    L4_DST_PORT: "destinationTransportPort", IPV4_DST_ADDR: "destinationIPv4Address",
    DST_MASK: "destinationIPv4PrefixLength", OUTPUT_SNMP: "egressInterface",
    IPV4_NEXT_HOP: "ipNextHopIPv4Address", SRC_AS: "bgpSourceAsNumber",
    DST_AS: "bgpDestinationAsNumber", BGP_IPV4_NEXT_HOP: "bgpNextHopIPv4Address",
    LAST_SWITCHED: "flowEndSysUpTime", FIRST_SWITCHED: "flowStartSysUpTime",
    OUT_BYTES: "postOctetDeltaCount", OUT_PKTS: "postPacketDeltaCount",
    IPV6_SRC_ADDR: "sourceIPv6Address", IPV6_DST_ADDR: "destinationIPv6Address",
    IPV6_SRC_MASK: "sourceIPv6PrefixLength", IPV6_DST_MASK: "destinationIPv6PrefixLength",
    SAMPLING_INTERVAL: "samplingInterval", FLOW_SAMPLER_ID: "samplerId",
    FLOW_SAMPLER_INTERVAL: "samplerRandomInterval", IP_PROTOCOL_VERSION: "ipVersion",
    DIRECTION: "flowDirection", MPLS_VPN_RD: "mplsVpnRouteDistinguisher",
    SYSTEM_INIT_TIME_MSEC: "systemInitTimeMilliseconds", NAT_EVENT: "natEvent",
}


def ie_name(ie: int, pen: int = 0) -> str:
    if pen:
        return f"{pen}:{ie}"
    return NAMES.get(ie, str(ie))


@dataclass(frozen=True)
class CustomField:
    """One ``aggregate_primitives`` entry that reads a NetFlow/IPFIX element.

    ``name`` is the record field it fills (the record dtype must have it: see
    ``record.make_record_dtype``). How the value lands depends on that field's dtype:
    integers get the big-endian value, ``V<n>`` fields the raw bytes, address fields an
    IPv4/IPv6 address, string fields (int32 index) text, hex text when ``semantics`` is
    ``raw``. ``repeat`` picks the n-th occurrence of an element listed more than once.
    """
    name: str
    field_type: int
    pen: int = 0
    length: int = 0          # 0: accept any length the template gives
    semantics: str = "u_int"
    repeat: int = 0


def be_uint(raw: np.ndarray) -> np.ndarray:
    """Big-endian unsigned integers out of an (n, k) uint8 array, k <= 8 (uint32 for
    k <= 4, else uint64)."""
    k = raw.shape[1]
    dt = np.uint32 if k <= 4 else np.uint64
    out = raw[:, 0].astype(dt)
    for i in range(1, k):
        out <<= dt(8)
        out |= raw[:, i]
    return out
