"""sFlow counter samples to ``sfacctd_counter_file``, as pmacct 1.7.7 writes them.

One JSON object per line. The first datagram from an agent opens its file (the path with
``$peer_src_ip`` replaced by the agent address, dots and colons turned into ``_``) and
writes a ``log_init`` object; then every counter record of a counter sample is one
``log`` object: the sample's header fields (``peer_ip_src``, ``source_id_index``,
``sflow_seq``, ``sflow_cnt_seq``) and the record's counters under pmacct's names
(generic interface, Ethernet and VLAN counters; other records get the header fields
only). sFlow v2/v4 counter blocks are one object (generic plus Ethernet or VLAN). ``seq``
counts every object written, across all files, as pmacct's does.

Counter samples are rare next to flow samples; they are formatted here one by one.
"""
from __future__ import annotations

import datetime
import json
import os
import struct

GENERIC = ("ifIndex", "ifType", "ifSpeed", "ifDirection", "ifStatus", "ifInOctets",
           "ifInUcastPkts", "ifInMulticastPkts", "ifInBroadcastPkts", "ifInDiscards",
           "ifInErrors", "ifInUnknownProtos", "ifOutOctets", "ifOutUcastPkts",
           "ifOutMulticastPkts", "ifOutBroadcastPkts", "ifOutDiscards", "ifOutErrors",
           "ifPromiscuousMode")
GENERIC_FMT = struct.Struct("!IIQIIQIIIIIIQIIIIII")          # 88 bytes
ETHERNET = ("dot3StatsAlignmentErrors", "dot3StatsFCSErrors", "dot3StatsSingleCollisionFrames",
            "dot3StatsMultipleCollisionFrames", "dot3StatsSQETestErrors",
            "dot3StatsDeferredTransmissions", "dot3StatsLateCollisions",
            "dot3StatsExcessiveCollisions", "dot3StatsInternalMacTransmitErrors",
            "dot3StatsCarrierSenseErrors", "dot3StatsFrameTooLongs",
            "dot3StatsInternalMacReceiveErrors", "dot3StatsSymbolErrors")
ETHERNET_FMT = struct.Struct("!13I")                          # 52 bytes
VLAN_FMT = struct.Struct("!IQIIII")                           # 28 bytes


def _generic(obj, data, off=0):
    obj["sf_cnt_type"] = "sflow_cnt_generic"
    obj.update(zip(GENERIC, GENERIC_FMT.unpack_from(data, off)))


def _ethernet(obj, data, off=0):
    obj["sf_cnt_type"] = "sflow_cnt_ethernet"
    obj.update(zip(ETHERNET, ETHERNET_FMT.unpack_from(data, off)))


def _vlan(obj, data, off=0):
    vlan, octets, u, m, b, d = VLAN_FMT.unpack_from(data, off)
    obj["sf_cnt_type"] = "sflow_cnt_vlan"
    obj.update(octets=octets, ucastPkts=u, multicastPkts=m, broadcastPkts=b, discards=d,
               vlan=vlan)


def counter_objects(version: int, body: bytes, expanded: bool):
    """(source index, sequence, [record dicts]) of one counter sample's body (after its
    type, and for v5 its length)."""
    if version == 5:
        seq = struct.unpack_from("!I", body, 0)[0]
        if expanded:
            index = struct.unpack_from("!I", body, 8)[0]
            p = 12
        else:
            index = struct.unpack_from("!I", body, 4)[0] & 0xFFFFFF
            p = 8
        n = struct.unpack_from("!I", body, p)[0]
        p += 4
        out = []
        for _ in range(min(n, 256)):
            tag, ln = struct.unpack_from("!II", body, p)
            data = body[p + 8:p + 8 + ln]
            p += 8 + ln
            obj = {}
            try:
                if tag == 1 and ln >= GENERIC_FMT.size:
                    _generic(obj, data)
                elif tag == 2 and ln >= ETHERNET_FMT.size:
                    _ethernet(obj, data)
                elif tag == 5 and ln >= VLAN_FMT.size:
                    _vlan(obj, data)
            except struct.error:
                obj = {}
            out.append(obj)
        return index, seq, out
    seq, sid, _interval, cver = struct.unpack_from("!IIII", body, 0)
    obj = {}
    if cver in (1, 2):
        _generic(obj, body, 16)
        if cver == 2:
            _ethernet(obj, body, 16 + GENERIC_FMT.size)
    elif cver == 7:
        _vlan(obj, body, 16)
    return sid & 0xFFFFFF, seq, [obj]


def _file_name(pattern: str, agent: str) -> str:
    return pattern.replace("$peer_src_ip", agent.replace(".", "_").replace(":", "_"))


class CounterWriter:
    def __init__(self, pattern: str, output: str = "json", log=None):
        self.pattern = pattern
        self.output = output
        self.log = log
        self.seq = 0
        self.files: dict[str, object] = {}      # agent -> open file
        self.written = 0

    def _now(self) -> str:
        return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")

    def _open(self, agent: str, ts: str):
        fh = self.files.get(agent)
        if fh is None:
            path = _file_name(self.pattern, agent)
            d = os.path.dirname(path)
            if d:
                os.makedirs(d, exist_ok=True)
            fh = self.files[agent] = open(path, "a", buffering=1 << 16)
            self._emit(fh, {"seq": self.seq, "timestamp": ts, "peer_src_ip": agent,
                            "event_type": "log_init"})
        return fh

    def _emit(self, fh, obj) -> None:
        fh.write(json.dumps(obj) + "\n")
        self.seq += 1
        self.written += 1

    def write(self, decoder, _dgrams=None) -> None:
        """Write what the decoder kept from its last batch: agents in datagram order (for
        log_init) and counter samples."""
        ts = self._now()
        # in datagram order: an agent's first datagram opens its file, then its counters
        items = [(d, 0, k, (agent,)) for k, (d, agent) in enumerate(decoder.batch_agents)]
        items += [(c[0], 1, k, c[1:]) for k, c in enumerate(decoder.counter_samples)]
        items.sort(key=lambda x: x[:3])
        for _d, what, _k, rest in items:
            if what == 0:
                self._open(rest[0], ts)
                continue
            agent, version, dseq, body, expanded = rest
            fh = self._open(agent, ts)
            try:
                index, cseq, objs = counter_objects(version, body, expanded)
            except struct.error:
                continue
            for rec in objs:
                obj = {"seq": self.seq, "timestamp": ts, "peer_ip_src": agent,
                       "event_type": "log", "source_id_index": index, "sflow_seq": dseq,
                       "sflow_cnt_seq": cseq}
                obj.update(rec)
                self._emit(fh, obj)
        decoder.counter_samples.clear()
        decoder.batch_agents = []
        for fh in self.files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self.files.values():
            try:
                fh.close()
            except OSError:
                pass
        self.files.clear()
