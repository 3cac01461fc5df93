"""pmacctd: accounting of captured packets (libpcap).

The source is a capture file (``pcap_savefile``, with ``pcap_savefile_delay``,
``pcap_savefile_replay`` and ``pcap_savefile_wait``) or a live interface
(``pcap_interface`` through pcapy-ng, with ``snaplen``, ``promisc``, ``pcap_filter``,
``pcap_direction``, ``pcap_ifindex``, ``pcap_interface_wait``). Frames are parsed a
chunk at a time by ``decoders.frames`` (the packet parser sfacctd shares) into the same
record batches as the other daemons.
"""
from __future__ import annotations

import socket
import sys
import time

from pypmacct.config.registry import lookup
from pypmacct.decoders.frames import FrameDecoder, FrameOptions
from pypmacct.record import RECORD_DTYPE
from pypmacct.sources.capture import (LiveCapture, SavefileError, filtered_savefile_chunks,
                                      savefile_chunks, savefile_linktype)

from .common import Collector, run_daemon, wait_or_stop

DAEMON = "pmacctd"
LIVE_BATCH = 8192


def frame_options(cfg, record_dtype) -> FrameOptions:
    return FrameOptions(record_dtype=record_dtype,
                        ext_sampling_rate=int(cfg.get("nfacctd_ext_sampling_rate") or 0),
                        renormalize=bool(cfg.get("nfacctd_renormalize")))


class PcapCollector(Collector):
    def __init__(self, cfg, log, record_dtype=RECORD_DTYPE):
        super().__init__(cfg, log, record_dtype)
        self.decoder = FrameDecoder(frame_options(cfg, record_dtype))
        self.live = None
        self.ifindex_in = self.ifindex_out = 0

    L2_LINKS = (1, 6, 113)          # Ethernet, Token Ring, Linux cooked: MACs and VLANs

    @classmethod
    def adjust_config(cls, cfg, log) -> None:
        """pmacct drops src_mac, dst_mac and vlan from every plugin's aggregate when the
        link type has no Ethernet header (and warns); so do we."""
        path = cfg.get("pcap_savefile")
        if not path or cfg.get("pcap_interface"):
            return
        try:
            lt = savefile_linktype(path)
        except OSError:
            return
        if lt is None or lt in cls.L2_LINKS:
            return
        key = lookup("aggregate")
        for p in cfg.plugins:
            agg = tuple(p.get("aggregate") or ())
            for prim in ("src_mac", "dst_mac", "vlan"):
                if prim in agg:
                    log.warn(f"'{prim}' aggregation not available for link type: {lt}")
            keep = tuple(a for a in agg if a not in ("src_mac", "dst_mac", "vlan"))
            if keep != agg:
                p._set(key, keep or ("none",), p.where("aggregate") or "pmacctd")

    def open(self) -> None:
        cfg = self.cfg
        path = cfg.get("pcap_savefile")
        if path:
            with open(path, "rb"):                  # fail early, as pmacct does
                pass
            self.log.info(f"reading packets from: {path}")
            return
        dev = cfg.get("pcap_interface")
        if not dev:
            raise OSError("no pcap_interface (-i) or pcap_savefile (-I) given")
        while True:
            try:
                self.live = LiveCapture(dev, int(cfg.get("snaplen")), bool(cfg.get("promisc")),
                                        cfg.get("pcap_filter"), cfg.get("pcap_direction"))
                break
            except Exception as e:
                if not cfg.get("pcap_interface_wait"):
                    raise OSError(f"[{dev}] pcap_open_live(): {e}") from e
                self.log.warn(f"[{dev}] interface not ready ({e}); retrying in 5 secs")
                time.sleep(5)
        ifx = 0
        if cfg.get("pcap_ifindex") == "sys":
            try:
                ifx = socket.if_nametoindex(dev)
            except OSError:
                ifx = 0
        direction = cfg.get("pcap_direction")
        if direction == "in":
            self.ifindex_in = ifx
        elif direction == "out":
            self.ifindex_out = ifx
        self.log.info(f"[{dev},{ifx}] link type is: {self.live.linktype}")

    def _chunks(self, core):
        cfg = self.cfg
        path = cfg.get("pcap_savefile")
        replay = int(cfg.get("pcap_savefile_replay") or 1)
        delay = int(cfg.get("pcap_savefile_delay") or 0)
        rounds = 0
        while replay <= 0 or rounds < replay:
            if delay:
                wait_or_stop(core, delay)
            rounds += 1
            try:
                src = filtered_savefile_chunks(path, cfg.get("pcap_filter")) \
                    if cfg.get("pcap_filter") else savefile_chunks(path)
                yield from src
            except (SavefileError, OSError) as e:
                self.log.error(f"cannot read {path}: {e}")
                return
            if core.stopping:
                return

    def batches(self, core):
        if self.live is None:
            for chunk in self._chunks(core):
                yield self.decoder.decode(chunk), True
                if core.stopping:
                    return
            lt = self.decoder.unsupported_links
            if lt:
                self.log.warn(f"data link not supported: {sorted(lt)}")
            if self.cfg.get("pcap_savefile_wait"):
                self.log.info("finished reading the savefile; waiting for a signal to exit")
                while not core.stopping:
                    wait_or_stop(core, 1.0)
            return
        while not core.stopping:
            chunk = self.live.read(LIVE_BATCH)
            chunk.ifindex_in, chunk.ifindex_out = self.ifindex_in, self.ifindex_out
            yield self.decoder.decode(chunk), False

    def fds(self):
        if self.live is not None:
            fd = self.live.fileno()
            return [fd] if fd >= 0 else []
        return []

    def log_stats(self, log) -> None:
        d = self.decoder
        extra = ""
        if self.live is not None:
            st = self.live.stats()
            if st:
                extra = f" received={st[0]} dropped={st[1]}"
        log.notice(f"stats time={int(time.time())} frames={d.frames} skipped={d.skipped}{extra}")

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def main(argv=None) -> int:
    return run_daemon(DAEMON, PcapCollector, argv)


if __name__ == "__main__":
    sys.exit(main())
