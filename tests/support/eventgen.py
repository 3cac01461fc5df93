"""Seeded NetFlow v9 / IPFIX captures for the QUICKSTART's options and NAT examples.

Two kinds of capture, each in either version (9 or 10), written with tests.unit.nfbuild
and tests.support.pcapio:

- :func:`write_options`: flow records carrying ingressVRFID/egressVRFID (IE 234/235) from
  two IPv4 exporters and one IPv6 exporter, plus option records: a VRF table (scope
  ingressVRFID, option VRFname IE 236 at 32 octets, names short, NUL-padded and exactly 32
  long) and an interface table (scope ingressInterface, option interfaceName IE 82), and a
  template without any counter (an "event" template, which QUICKSTART's map sends
  nowhere). In IPFIX the third exporter's VRF table gives VRFname variable-length.
- :func:`write_nat`: NEL-style NAT event records (natEvent IE 230, post-NAT addresses and
  ports IE 225-228, observationTimeMilliseconds IE 323; an address-only template without
  ports or any time field, whose timestamp falls back to the export header) mixed with
  ordinary flow records (FIRST/LAST_SWITCHED in v9, flowStart/EndMilliseconds in IPFIX),
  from three IPv4 exporters (the third one is in no map line), spread over three
  5-minute bins.

Records are drawn from small pools so that rows aggregate, and every value is taken from a
seeded numpy generator: the same seed writes the same bytes.
"""
from __future__ import annotations

import numpy as np

from tests.support import pcapio
from tests.unit import nfbuild as nb

COLLECTOR4, COLLECTOR6 = "198.51.100.1", "2001:db8:c011::1"
T0 = 1_700_000_000
BOOT = T0 - 86_400                  # v9 exporters' boot time (sysUptime base)

OPT_EXPORTERS = ["203.0.113.7", "203.0.113.8", "2001:db8::7"]
VRF_NAMES = {1: b"red", 2: b"blue", 7: b"mgmt-vrf", 42: b"x" * 32, 9: b"cust\x00junk"}
IF_NAMES = {1: b"ge-0/0/1", 2: b"xe-1/0/0", 3: b"lo0"}

NAT_EXPORTERS = ["203.0.113.21", "203.0.113.22", "203.0.113.23"]
NAT_EVENTS = (1, 2, 3, 4, 5)


def _pack(version: int):
    if version == 9:
        return lambda sets, seq, t: nb.v9(sets, seq=seq, unix=t, uptime=(t - BOOT) * 1000)
    return lambda sets, seq, t: nb.ipfix(sets, seq=seq, export=t)


def _frame(exporter: str, payload: bytes) -> bytes:
    dst = COLLECTOR6 if ":" in exporter else COLLECTOR4
    return pcapio.udp_frame(exporter, dst, 40000, 2100, payload)


# --------------------------------------------------------------------------------------
# Options (section Va)
# --------------------------------------------------------------------------------------
def options_templates(version: int, exporter: int):
    """(data fields, vrf scope, vrf options, if scope, if options, event fields)."""
    l_if = 2 if version == 9 else 4
    data = [(8, 4), (12, 4), (1, 4), (2, 4), (10, l_if), (14, l_if), (5, 1), (234, 4),
            (235, 4), (4, 1), (7, 2), (11, 2)]
    name_len = 65535 if (version == 10 and exporter == 2) else 32
    event = [(8, 4), (12, 4), (234, 4), (10, l_if)]
    return data, [(234, 4)], [(236, name_len)], [(10, 4)], [(82, 32)], event


def write_options(path, version: int, seed: int = 3, datagrams: int = 45) -> dict:
    """Write the capture; returns counts of the records put in it, by kind."""
    rng = np.random.default_rng(seed)
    pack = _pack(version)
    counts = {"flow": 0, "option": 0, "event": 0, "packets": dict.fromkeys(OPT_EXPORTERS, 0)}
    with pcapio.open_writer(path) as w:
        seqs = [0] * len(OPT_EXPORTERS)
        for d in range(datagrams):
            e = d % len(OPT_EXPORTERS)
            exp = OPT_EXPORTERS[e]
            data, vs, vo, is_, io, ev = options_templates(version, e)
            t = T0 + d
            sets = []
            if d < len(OPT_EXPORTERS):
                sets.append(nb.template_set(version, [(256, data), (259, ev)]))
                sets.append(nb.options_template_set(version, 257, vs, vo))
                sets.append(nb.options_template_set(version, 258, is_, io))
            if d % 6 == e:          # each exporter re-sends its tables now and then
                sets.append(nb.data_set(257, [nb.record(vs + vo, [k, v])
                                              for k, v in VRF_NAMES.items()]))
                sets.append(nb.data_set(258, [nb.record(is_ + io, [k, v])
                                              for k, v in IF_NAMES.items()]))
                counts["option"] += len(VRF_NAMES) + len(IF_NAMES)
            recs = []
            for _ in range(int(rng.integers(4, 10))):
                pk = int(rng.integers(1, 20))
                counts["packets"][exp] += pk
                recs.append(nb.record(data, [
                    f"10.0.{int(rng.integers(0, 3))}.{int(rng.integers(1, 5))}",
                    f"192.168.1.{int(rng.integers(1, 5))}",
                    int(rng.integers(40, 9000)), pk,
                    int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                    int(rng.choice([0, 32, 184])), int(rng.choice([0, 1, 2, 7, 9])),
                    int(rng.choice([0, 1, 2, 42])), int(rng.choice([6, 17])),
                    int(rng.choice([80, 443])), int(rng.integers(1024, 1030))]))
            sets.append(nb.data_set(256, recs))
            counts["flow"] += len(recs)
            if d % 4 == 1:
                sets.append(nb.data_set(259, [nb.record(ev, ["10.9.9.9", "10.8.8.8", 7, 1])]))
                counts["event"] += 1
            w.write(t * 10**9 + e, _frame(exp, pack(sets, seqs[e], t)))
            seqs[e] += 1 if version == 9 else len(recs)
    return counts


# --------------------------------------------------------------------------------------
# NAT event logging (section XX)
# --------------------------------------------------------------------------------------
def nat_templates(version: int):
    """(traffic fields, session-event fields, address-event fields)."""
    l_if = 2 if version == 9 else 4
    times = [(22, 4), (21, 4)] if version == 9 else [(152, 8), (153, 8)]
    traffic = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, l_if),
               (14, l_if), (9, 1), (13, 1), (16, 4), (17, 4), (1, 4), (2, 4)] + times
    session = [(8, 4), (225, 4), (4, 1), (7, 2), (227, 2), (12, 4), (226, 4), (11, 2),
               (228, 2), (234, 4), (230, 1), (323, 8)]
    address = [(8, 4), (225, 4), (230, 1)]
    return traffic, session, address


def write_nat(path, version: int, seed: int = 11, datagrams: int = 42) -> dict:
    """Write the capture; returns counts of the records put in it, by kind."""
    rng = np.random.default_rng(seed)
    pack = _pack(version)
    traffic, session, address = nat_templates(version)
    inside = [f"100.64.{i}.{j}" for i in range(2) for j in range(1, 4)]
    outside = ["198.18.0.1", "198.18.0.2"]
    servers = ["8.8.8.8", "1.1.1.1", "93.184.216.34"]
    counts = {"flow": 0, "event": 0, "packets": dict.fromkeys(NAT_EXPORTERS, 0)}
    with pcapio.open_writer(path) as w:
        seqs = [0] * len(NAT_EXPORTERS)
        for d in range(datagrams):
            e = d % len(NAT_EXPORTERS)
            t = T0 + 20 * d                       # 42 datagrams: 14 minutes, three bins
            sets = []
            if d < len(NAT_EXPORTERS) or d % 10 == 0:
                sets.append(nb.template_set(version, [(256, traffic), (257, session),
                                                      (258, address)]))
            flows = []
            for _ in range(int(rng.integers(2, 6))):
                pk = int(rng.integers(1, 9))
                counts["packets"][NAT_EXPORTERS[e]] += pk
                end_ms = t * 1000 - int(rng.integers(0, 5000))
                start_ms = end_ms - int(rng.integers(0, 30000))
                if version == 9:
                    tv = [start_ms - BOOT * 1000, end_ms - BOOT * 1000]
                else:
                    tv = [start_ms, end_ms]
                flows.append(nb.record(traffic, [
                    inside[int(rng.integers(0, len(inside)))],
                    servers[int(rng.integers(0, len(servers)))],
                    int(rng.integers(40000, 40004)), int(rng.choice([53, 443])),
                    int(rng.choice([6, 17])), int(rng.choice([0, 40])),
                    int(rng.choice([0x02, 0x12, 0x1B])), int(rng.integers(1, 3)),
                    int(rng.integers(1, 3)), int(rng.choice([10, 24])),
                    int(rng.choice([0, 24])), int(rng.choice([0, 64512])),
                    int(rng.choice([15169, 13335])), int(rng.integers(40, 3000)), pk] + tv))
            sets.append(nb.data_set(256, flows))
            events = []
            for _ in range(int(rng.integers(1, 5))):
                sp = int(rng.integers(40000, 40004))
                events.append(nb.record(session, [
                    inside[int(rng.integers(0, len(inside)))],
                    outside[int(rng.integers(0, len(outside)))],
                    int(rng.choice([6, 17])), sp, 1024 + sp % 7,
                    servers[int(rng.integers(0, len(servers)))], "0.0.0.0",
                    int(rng.choice([53, 443])), 0, int(rng.choice([0, 5])),
                    int(rng.choice(NAT_EVENTS[:2])),
                    t * 1000 - int(rng.integers(0, 4)) * 250]))
            sets.append(nb.data_set(257, events))
            n_ev = len(events)
            if d % 5 == 2:
                sets.append(nb.data_set(258, [nb.record(address, [
                    inside[d % len(inside)], outside[d % 2], int(rng.choice(NAT_EVENTS[2:]))])]))
                n_ev += 1
            counts["flow"] += len(flows)
            counts["event"] += n_ev
            w.write(t * 10**9 + e, _frame(NAT_EXPORTERS[e], pack(sets, seqs[e], t)))
            seqs[e] += 1 if version == 9 else len(flows) + n_ev
    return counts


# --------------------------------------------------------------------------------------
# Traffic classes for pre_tag_map's sample_type
# --------------------------------------------------------------------------------------
CLASS_EXPORTERS = {5: "203.0.113.31", 9: "203.0.113.32", 10: "203.0.113.33"}
# in_iface tells the class of a record apart in the output
CLASS_IFACE = {"v5": 1, "ipv4": 2, "ipv6": 3, "vlan-ipv4": 4, "mpls-ipv4": 5,
               "mpls-ipv6": 6, "event": 7, "dlfs": 8}


def class_templates():
    base4 = [(8, 4), (12, 4), (4, 1), (10, 4), (1, 4), (2, 4)]
    base6 = [(27, 16), (28, 16), (4, 1), (10, 4), (1, 4), (2, 4)]
    return {
        "ipv4": (300, base4),
        "ipv6": (301, base6),
        "vlan-ipv4": (302, base4 + [(58, 2)]),
        "mpls-ipv4": (303, base4 + [(70, 3)]),
        "mpls-ipv6": (304, base6 + [(70, 3)]),
        "event": (305, [(8, 4), (225, 4), (10, 4), (230, 1)]),
        # IPFIX only: an IPv4 packet in dataLinkFrameSection, variable-length
        "dlfs": (306, [(10, 4), (315, 65535), (1, 4), (2, 4)]),
    }


def write_classes(path, seed: int = 21, rounds: int = 12) -> None:
    """v5, v9 and IPFIX exporters; v9/IPFIX send plain IPv4 and IPv6, VLAN-tagged IPv4
    (VLAN ids below 256: see docs/differences.md), MPLS-labelled IPv4 and IPv6 traffic,
    NAT events and a VRF options table; IPFIX also records with a packet section."""
    rng = np.random.default_rng(seed)
    tpls = class_templates()
    vs, vo = [(234, 4)], [(236, 32)]
    with pcapio.open_writer(path) as w:
        for r in range(rounds):
            t = T0 + r
            recs = [nb.v5_record(src=f"10.5.0.{i}", dst="10.5.1.1", inp=CLASS_IFACE["v5"],
                                 pkts=int(rng.integers(1, 9)), octets=500, first=0, last=0)
                    for i in range(1, 4)]
            w.write(t * 10**9, _frame(CLASS_EXPORTERS[5], nb.v5(recs, seq=3 * r, unix=t)))
            for version in (9, 10):
                sets = []
                kinds = {k: v for k, v in tpls.items() if version == 10 or k != "dlfs"}
                if r % 4 == 0:
                    sets.append(nb.template_set(version, list(kinds.values())))
                    sets.append(nb.options_template_set(version, 310, vs, vo))
                    sets.append(nb.data_set(310, [nb.record(vs + vo, [3, b"blue"])]))
                for kind, (tid, fields) in kinds.items():
                    six = "ipv6" in kind
                    rows = []
                    for i in range(int(rng.integers(1, 4))):
                        src = f"2001:db8::{i + 1}" if six else f"10.{version}.0.{i + 1}"
                        dst = "2001:db8::ff" if six else "10.9.9.9"
                        if kind == "dlfs":
                            frame = pcapio.udp_frame(f"10.{version}.1.{i + 1}", dst, 1000,
                                                     2000, b"x" * 30)
                            vals = [CLASS_IFACE[kind], frame, 100, int(rng.integers(1, 9))]
                        elif kind == "event":
                            vals = [src, "198.18.0.1", CLASS_IFACE[kind], int(rng.integers(1, 3))]
                        else:
                            vals = [src, dst, 6, CLASS_IFACE[kind], 100, int(rng.integers(1, 9))]
                            if kind == "vlan-ipv4":
                                vals.append(int(rng.integers(1, 256)))
                            elif kind.startswith("mpls"):
                                vals.append((int(rng.integers(16, 1000)) << 4) | 1)
                        rows.append(nb.record(fields, vals))
                    sets.append(nb.data_set(tid, rows))
                pack = _pack(version)
                w.write(t * 10**9 + version, _frame(CLASS_EXPORTERS[version], pack(sets, r, t)))
