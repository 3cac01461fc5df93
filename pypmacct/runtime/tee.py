"""The core's side of the tee plugin: whole datagrams, tagged per datagram.

pmacct 1.7.7 does not decode what it replicates: a daemon whose plugins are tee plugins
(tee and data plugins cannot be mixed, 1.7.7 refuses that at start-up) checks each
datagram's header, evaluates the pre_tag_map on the datagram (exporter address and
header fields), applies each tee plugin's pre_tag_filter / pre_tag2_filter, and hands
the datagram, its exporter address and port and its tags to the plugin's ring. The
decoders never run, so the cost of a tee plugin is not paid by a collector without one.

What a pre_tag_map can match on here is what a datagram's header tells: ``ip`` (the
exporter), ``engine_type``/``engine_id`` (NetFlow v5 header), ``source_id`` (v9 source
id, IPFIX observation domain), ``agent_id`` (sFlow v5 sub-agent id), with ``set_tag``,
``set_tag2``, ``label``/``jeq``/``stack``/``return``. 1.7.7 reads tee maps with that
dictionary, so any other key (``filter``, ``set_label``...) makes the line "unknown key"
and the line is skipped. A map with keys that need flow fields (``in``, ``out``,
``src_mac``, ``dst_mac``, ``vlan``, ``src_net``, ``dst_net``, ``bgp_nexthop``: 1.7.7's
"complex" map) makes the daemon split the datagrams into one per flow (sFlow: per flow
sample) for that plugin (``tee_dissect.py``).
"""
from __future__ import annotations

import socket

import numpy as np

from ..record import ADDR_DTYPE, RECORD_DTYPE, Batch, subset_dtype

# record fields a tee datagram fills (what the pre_tag_map and the tag filters read)
TEE_FIELDS = ("arrival_seq", "peer_src_ip", "engine_type", "engine_id",
              "export_proto_version", "export_proto_sysid", "tag", "tag2", "label")
HEAD = 24          # header bytes looked at


def _addr16(text: str) -> tuple[int, bytes]:
    if ":" in text:
        return 6, socket.inet_pton(socket.AF_INET6, text)
    return 4, socket.inet_pton(socket.AF_INET, text) + bytes(12)


class TeeCore:
    """Per batch of datagrams: header checks, per-datagram tags, one ring write per
    tee plugin."""

    def __init__(self, daemon: str, stages, stats, log, decoder_options=None):
        self.daemon = daemon
        self.stages = stages
        self.stats = stats
        self.log = log
        self.dtype = subset_dtype(RECORD_DTYPE, TEE_FIELDS)
        self._addr_cache: dict[str, tuple[int, bytes]] = {}
        self.sent = 0
        self.decoder_options = decoder_options   # nfacctd's, for splitting flows out
        self.dissector = None

    def _map_of(self, ch):
        own = ch.stages.tagger if ch.stages is not None else None
        return own if own is not None else (self.stages.global_map if self.stages else None)

    def _complex(self, ch) -> bool:
        m = self._map_of(ch)
        return m is not None and m.complex

    def _get_dissector(self, core):
        if self.dissector is None:
            import copy
            from .tee_dissect import Dissector
            fields = set(TEE_FIELDS)
            for ch in core.channels:
                m = self._map_of(ch)
                if m is not None:
                    fields |= m.fields
                if ch.stages is not None:
                    fields |= ch.stages.fields
            self.dissector = Dissector(copy.copy(self.decoder_options), fields, self.log,
                                       self.daemon)
        return self.dissector

    def _addr(self, text: str):
        a = self._addr_cache.get(text)
        if a is None:
            if len(self._addr_cache) > 65536:
                self._addr_cache.clear()
            a = self._addr_cache[text] = _addr16(text)
        return a

    def records(self, payloads, srcs) -> tuple[np.ndarray, np.ndarray]:
        """(records, keep): a record per datagram with the header fields a pre_tag_map
        reads, and which datagrams pass the header checks (1.7.7's process_raw_packet)."""
        n = len(payloads)
        recs = np.zeros(n, dtype=self.dtype)
        recs["arrival_seq"] = np.arange(n, dtype=np.uint64)
        if n == 0:
            return recs, np.zeros(0, bool)
        lens = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=n)
        head = np.frombuffer(b"".join(p[:HEAD].ljust(HEAD, b"\0") for p in payloads),
                             dtype=np.uint8).reshape(n, HEAD).astype(np.uint32)

        def be32(off):
            return (head[:, off] << 24) | (head[:, off + 1] << 16) | (head[:, off + 2] << 8) \
                | head[:, off + 3]

        fams, addrs = zip(*(self._addr(s) for s in srcs))
        peer = np.zeros(n, dtype=ADDR_DTYPE)
        peer["af"] = fams
        peer["addr"] = np.frombuffer(b"".join(addrs), dtype="V16")
        recs["peer_src_ip"] = peer
        if self.daemon == "sfacctd":
            ver = be32(0)
            keep = np.isin(ver, (2, 4, 5)) & (lens >= 8)
            recs["export_proto_version"] = np.where(keep, ver, 0)
            # v5: address type (1 IPv4, 2 IPv6), agent address, sub-agent id
            v4 = be32(4) == 1
            sub = np.where(v4, be32(12), 0)
            six = (be32(4) == 2) & (ver == 5)
            if six.any():
                idx = np.flatnonzero(six)
                sub[idx] = [int.from_bytes(payloads[i][24:28], "big") for i in idx.tolist()]
            recs["export_proto_sysid"] = np.where(ver == 5, sub, 0)
        else:
            ver = (head[:, 0] << 8) | head[:, 1]
            keep = np.isin(ver, (5, 9, 10)) & (lens >= 24)
            recs["export_proto_version"] = np.where(keep, ver, 0)
            recs["engine_type"] = np.where(ver == 5, head[:, 20], 0)
            recs["engine_id"] = np.where(ver == 5, head[:, 21], 0)
            recs["export_proto_sysid"] = np.where(ver == 9, be32(16),
                                                  np.where(ver == 10, be32(12), 0))
        return recs, keep

    def dispatch(self, core, dgrams, wait=False) -> None:
        """Hand a list (or DatagramBatch) of datagrams to every tee plugin's ring."""
        if len(dgrams) == 0:
            return
        items = list(dgrams)
        payloads = [d.payload for d in items]
        srcs = [d.src for d in items]
        recs, keep = self.records(payloads, srcs)
        for i in np.flatnonzero(~keep).tolist():
            c = self.stats.exporter(srcs[i])
            c.datagrams += 1
            c.bad_datagrams += 1
            self.log.limited(("tee-bad", srcs[i]),
                             f"discarding unknown or short packet from [{srcs[i]}:"
                             f"{items[i].port}]", level="INFO")
        for i in np.flatnonzero(keep).tolist():
            self.stats.exporter(srcs[i]).datagrams += 1
        fams = np.array([self._addr(s)[0] for s in srcs], dtype=np.uint8)
        live = [ch for ch in core.channels if ch.alive]
        full = [ch for ch in live if not self._complex(ch)]
        split = [ch for ch in live if self._complex(ch)]
        if full:
            frecs = recs if keep.all() else recs[keep]
            if len(frecs):
                batch = Batch(frecs, [""])
                if self.stages is not None:
                    batch = self.stages.apply(batch)
                for ch in full:
                    sel = ch.select(batch)
                    if len(sel) == 0:
                        continue
                    r = sel.records
                    idx = r["arrival_seq"].astype(np.int64)
                    il = idx.tolist()
                    self._write(core, ch, [payloads[i] for i in il], fams[idx].tolist(),
                                [self._addr(srcs[i])[1] for i in il],
                                [items[i].port for i in il], r["tag"], r["tag2"], None, wait)
        if split:
            self._dispatch_split(core, split, items, payloads, srcs, fams, keep, wait)

    def _dispatch_split(self, core, channels, items, payloads, srcs, fams, keep, wait):
        """Channels whose map needs flow fields get one datagram per flow (docs/tee.md)."""
        d = self._get_dissector(core)
        elems = []
        for i in np.flatnonzero(keep).tolist():
            elems += d.split(payloads[i], srcs[i], i)
        if not elems:
            return
        erecs = d.records(elems, items)
        erecs["arrival_seq"] = np.arange(len(elems), dtype=np.uint64)
        bcast = np.array([e.bcast for e in elems], dtype=bool)
        for f in ("tag", "tag2"):
            erecs[f] = 0
        data = Batch(erecs[~bcast], [""])
        if self.stages is not None and len(data):
            data = self.stages.apply(data)
        dg = np.array([e.dg for e in elems], dtype=np.int64)
        for ch in channels:
            sel = ch.select(data) if len(data) else data
            ids = sel.records["arrival_seq"].astype(np.int64)
            tags = np.zeros(len(elems), np.uint64)
            tag2s = np.zeros(len(elems), np.uint64)
            tags[ids] = sel.records["tag"]
            tag2s[ids] = sel.records["tag2"]
            take = np.zeros(len(elems), bool)
            take[ids] = True
            if bcast.any() and _passes_untagged(ch):
                take |= bcast               # 1.7.7 does not tag them: they go as tag 0
            idx = np.flatnonzero(take)
            il = idx.tolist()
            self._write(core, ch, [elems[k].payload for k in il], fams[dg[idx]].tolist(),
                        [self._addr(srcs[elems[k].dg])[1] for k in il],
                        [items[elems[k].dg].port for k in il], tags[idx], tag2s[idx],
                        bcast[idx], wait)

    def _write(self, core, ch, payloads, fams, addrs, ports, tags, tag2s, bcast, wait):
        if not payloads:
            return
        before = ch.ring.too_big
        dropped = ch.ring.write_messages(
            payloads, fams, addrs, ports, tags, tag2s,
            wait=(lambda ch=ch: core._still_alive(ch)) if wait else False, bcast=bcast)
        ch.sent_records += len(payloads) - dropped
        big = ch.ring.too_big - before
        if big:
            self.log.limited(
                ("too-big", ch.plugin.name),
                f"plugin '{ch.label}': {ch.ring.too_big} datagrams dropped so far for "
                f"not fitting plugin_buffer_size ({ch.ring.slot_size} bytes, "
                f"{ch.ring.overhead} of them per-slot and per-datagram headers); raise "
                f"plugin_buffer_size", level="ERROR")
        if dropped > big:
            self.log.limited(
                ("ring", ch.plugin.name),
                f"plugin '{ch.label}' is not keeping up: {ch.ring.dropped_records} "
                f"datagrams dropped so far (plugin_buffer_size={ch.ring.slot_size}, "
                f"plugin_pipe_size={ch.ring.slot_size * ch.ring.nslots}); consider "
                f"raising plugin_pipe_size")


def _passes_untagged(ch) -> bool:
    """Would the channel's pre_tag_filter / pre_tag2_filter let an untagged datagram in?"""
    if ch.stages is None:
        return True
    zero = np.zeros(1, np.uint64)
    for field, flt in ch.stages.tag_filters:
        if field in ("tag", "tag2") and not bool(flt(zero)[0]):
            return False
    return True


def check_tee_stages(cfg, stages) -> None:
    """Channel stages that read flow fields mean nothing for whole datagrams: refused."""
    from pypmacct.config import ConfigError
    if stages.sampling is not None or stages.geoip is not None:
        key = "sampling_map" if stages.sampling is not None else "geoipv2_file"
        raise ConfigError(f"'{key}' does not apply to tee plugins (datagrams are "
                          f"replicated whole, not decoded)", where=cfg.where(key), key=key)
    for p, ch in zip(cfg.plugins, stages.channels):
        for key, on in (("aggregate_filter", ch.agg_filter is not None),
                        ("networks_file", ch.networks is not None),
                        ("sampling_rate", ch.sampler is not None)):
            if on:
                raise ConfigError(f"'{key}' does not apply to a tee plugin ('{p.name}'): "
                                  f"datagrams are replicated whole, not decoded",
                                  where=p.where(key), key=key)
