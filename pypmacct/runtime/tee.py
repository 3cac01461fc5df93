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
and the line is skipped; the keys that would need each flow dissected out of its
datagram (``in``, ``out``, ``src_mac``, ``dst_mac``, ``vlan``, ``src_net``, ``dst_net``,
``bgp_nexthop``) are refused at start-up: pypmacct does not dissect yet.
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

    def __init__(self, daemon: str, stages, stats, log):
        self.daemon = daemon
        self.stages = stages
        self.stats = stats
        self.log = log
        self.dtype = subset_dtype(RECORD_DTYPE, TEE_FIELDS)
        self._addr_cache: dict[str, tuple[int, bytes]] = {}
        self.sent = 0

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
        if not keep.all():
            recs = recs[keep]
        if len(recs) == 0:
            return
        batch = Batch(recs, [""])
        if self.stages is not None:
            batch = self.stages.apply(batch)
        fams = np.array([4 if ":" not in s else 6 for s in srcs], dtype=np.uint8)
        for ch in core.channels:
            if not ch.alive:
                continue
            sel = ch.select(batch)
            if len(sel) == 0:
                continue
            r = sel.records
            idx = r["arrival_seq"].astype(np.int64)
            il = idx.tolist()
            before = ch.ring.too_big
            dropped = ch.ring.write_messages(
                [payloads[i] for i in il], fams[idx].tolist(),
                [self._addr(srcs[i])[1] for i in il], [items[i].port for i in il],
                r["tag"], r["tag2"],
                wait=(lambda ch=ch: core._still_alive(ch)) if wait else False)
            ch.sent_records += len(il) - dropped
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
