"""pmacctd: accounting of captured packets (libpcap).

The source is a capture file (``pcap_savefile``, with ``pcap_savefile_delay``,
``pcap_savefile_replay`` and ``pcap_savefile_wait``) or a live interface
(``pcap_interface`` through pcapy-ng, with ``snaplen``, ``promisc``, ``pcap_filter``,
``pcap_direction``, ``pcap_ifindex``, ``pcap_interface_wait``). Frames are parsed a
chunk at a time by ``decoders.frames`` (the packet parser sfacctd shares) into the same
record batches as the other daemons.
"""
from __future__ import annotations

import select
import socket
import time

import numpy as np

from pypmacct.classifiers import classifier_for, drop_class_without
from pypmacct.config.registry import lookup
from pypmacct.decoders.frames import FrameChunk, FrameDecoder, FrameOptions
from pypmacct.record import RECORD_DTYPE
from pypmacct.runtime.process import console_script
from pypmacct.sources.capture import (LiveCapture, SavefileError, filtered_savefile_chunks,
                                      jhash_name, savefile_chunks, savefile_linktype)

from .common import Collector, run_daemon, wait_or_stop

DAEMON = "pmacctd"
LIVE_BATCH = 8192
_EMPTY = np.zeros(0, np.int64)


def frame_options(cfg, record_dtype, log=None) -> FrameOptions:
    return FrameOptions(record_dtype=record_dtype,
                        classifier=classifier_for(cfg, log),
                        ext_sampling_rate=int(cfg.get("nfacctd_ext_sampling_rate") or 0),
                        renormalize=bool(cfg.get("nfacctd_renormalize")),
                        flows=any("flows" in tuple(p.get("aggregate") or ())
                                  for p in cfg.plugins),
                        flow_buffer_size=int(cfg.get("pmacctd_flow_buffer_size") or 0),
                        flow_buffer_buckets=int(cfg.get("pmacctd_flow_buffer_buckets") or 256),
                        flow_lifetime=int(cfg.get("pmacctd_flow_lifetime") or 0),
                        flow_tcp_lifetime=int(cfg.get("pmacctd_flow_tcp_lifetime") or 0),
                        frag_buffer_size=int(cfg.get("pmacctd_frag_buffer_size") or 0),
                        force_frag_handling=bool(cfg.get("pmacctd_force_frag_handling")),
                        packet_ptrs=tuple(cp for cp in getattr(cfg, "custom_primitives", ())
                                          if cp.packet_ptrs))


def load_interfaces_map(path: str) -> dict[str, tuple[int, str | None]]:
    """pcap_interfaces_map: ``ifname=NAME [ifindex=N] [direction=in|out]`` per line, '!'
    comments; returns ifname -> (ifindex, direction). Bad lines raise ValueError with
    the line number."""
    out: dict[str, tuple[int, str | None]] = {}
    with open(path) as fh:
        for no, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith(("!", "#")):
                continue
            kv = {}
            for tok in line.split():
                k, sep, v = tok.partition("=")
                if not sep or k.lower() not in ("ifname", "ifindex", "direction"):
                    raise ValueError(f"{path}:{no}: unknown key or bad token '{tok}'")
                kv[k.lower()] = v
            if "ifname" not in kv:
                raise ValueError(f"{path}:{no}: 'ifname' is mandatory")
            d = kv.get("direction", "").lower() or None
            if d not in (None, "in", "out"):
                raise ValueError(f"{path}:{no}: direction must be 'in' or 'out'")
            try:
                idx = int(kv.get("ifindex", "0"))
            except ValueError:
                raise ValueError(f"{path}:{no}: ifindex must be a positive integer") from None
            if idx < 0 or idx > 0xFFFFFFFF:
                raise ValueError(f"{path}:{no}: ifindex must be a positive integer")
            out[kv["ifname"]] = (idx, d)
    return out


class PcapCollector(Collector):
    def __init__(self, cfg, log, record_dtype=RECORD_DTYPE):
        super().__init__(cfg, log, record_dtype)
        self.decoder = FrameDecoder(frame_options(cfg, record_dtype, log))
        self.decoder.log = log
        self.live = None
        self.ifindex_in = self.ifindex_out = 0
        self.ifaces: dict = {}          # pcap_interfaces_map: ifname -> (capture, in, out)

    L2_LINKS = (1, 6, 113)          # Ethernet, Token Ring, Linux cooked: MACs and VLANs

    @classmethod
    def adjust_config(cls, cfg, log) -> None:
        """pmacct drops src_mac, dst_mac and vlan from every plugin's aggregate when the
        link type has no Ethernet header (and warns); so do we. Without 'classifiers'
        'class' goes too (docs/classifiers.md)."""
        drop_class_without(cfg, log)
        path = cfg.get("pcap_savefile")
        if not path or cfg.get("pcap_interface") or cfg.get("pcap_interfaces_map"):
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
        if path and (cfg.get("pcap_interface") or cfg.get("pcap_interfaces_map")):
            raise OSError("interface (-i), pcap_interfaces_map and pcap_savefile (-I) directives "
                          "are mutually exclusive")
        if path:
            with open(path, "rb"):                  # fail early, as pmacct does
                pass
            self.log.info(f"reading packets from: {path}")
            return
        if cfg.get("pcap_ifindex") == "map" and not cfg.get("pcap_interfaces_map"):
            raise OSError("pcap_ifindex set to 'map' but no pcap_interface_map is defined")
        if cfg.get("pcap_interfaces_map"):
            if cfg.get("pcap_interface"):
                raise OSError("interface (-i) and pcap_interfaces_map directives are mutually "
                              "exclusive")
            self._open_map()
            return
        dev = cfg.get("pcap_interface")
        if not dev:
            raise OSError("no pcap_interface (-i), pcap_interfaces_map or pcap_savefile (-I) given")
        while True:
            try:
                self.live = LiveCapture(dev, int(cfg.get("snaplen")), bool(cfg.get("promisc")),
                                        cfg.get("pcap_filter"), cfg.get("pcap_direction"),
                                        protocol=int(cfg.get("pcap_protocol") or 0))
                self.live.set_rcvbuf(cfg.get("nfacctd_pipe_size"), self.log)
                break
            except Exception as e:
                if not cfg.get("pcap_interface_wait"):
                    raise OSError(f"[{dev}] pcap_open_live(): {e}") from e
                self.log.warn(f"[{dev}] interface not ready ({e}); retrying in 5 secs")
                time.sleep(5)
        ifx = self._ifindex(dev, 0)
        direction = cfg.get("pcap_direction")
        if direction == "in":
            self.ifindex_in = ifx
        elif direction == "out":
            self.ifindex_out = ifx
        self.log.info(f"[{dev},{ifx}] link type is: {self.live.linktype}")

    def _ifindex(self, dev: str, mapped: int) -> int:
        """The ifIndex pmacct gives an interface's packets, by ``pcap_ifindex``: the
        system's (sys), the pcap_interfaces_map's (map), or none."""
        how = self.cfg.get("pcap_ifindex")
        if how == "sys":
            try:
                return socket.if_nametoindex(dev)
            except OSError:
                return 0
        if how == "map":
            return mapped
        if how == "hash":
            return jhash_name(dev)
        return 0

    def _open_map(self) -> None:
        cfg = self.cfg
        try:
            entries = load_interfaces_map(cfg.get("pcap_interfaces_map"))
        except ValueError as e:
            raise OSError(str(e)) from e
        for name in [n for n in self.ifaces if n not in entries]:
            self.ifaces.pop(name)[0].close()
            self.log.info(f"[{name}] interface removed from pcap_interfaces_map")
        for name, (idx, direction) in entries.items():
            direction = direction or cfg.get("pcap_direction")
            if name in self.ifaces:
                cap = self.ifaces[name][0]
            else:
                try:
                    cap = LiveCapture(name, int(cfg.get("snaplen")), bool(cfg.get("promisc")),
                                      cfg.get("pcap_filter"), direction,
                                      protocol=int(cfg.get("pcap_protocol") or 0))
                    cap.set_rcvbuf(cfg.get("nfacctd_pipe_size"), self.log)
                except Exception as e:
                    self.log.warn(f"[{name}] cannot open interface: {e}")
                    continue
                self.log.info(f"[{name},{idx}] link type is: {cap.linktype}")
            ifx = self._ifindex(name, idx)
            self.ifaces[name] = (cap, ifx if direction == "in" else 0,
                                 ifx if direction == "out" else 0)
        if not self.ifaces:
            raise OSError("no interface of pcap_interfaces_map could be opened")

    def _map_batches(self, core):
        while not core.stopping:
            caps = list(self.ifaces.values())
            fds = [c.fileno() for c, _i, _o in caps]
            try:
                ready, _, _ = select.select([f for f in fds if f >= 0], [], [], 0.25)
            except (OSError, ValueError):
                ready = []
            for (cap, ifin, ifout), fd in zip(caps, fds):
                if fd in ready or fd < 0:
                    chunk = cap.read(LIVE_BATCH, timeout=0)
                    chunk.ifindex_in, chunk.ifindex_out = ifin, ifout
                    yield self.decoder.decode(chunk), False
            if not ready:
                yield self.decoder.decode(FrameChunk(b"", 1, _EMPTY, _EMPTY, _EMPTY)), False

    def reload(self) -> None:
        if self.ifaces:
            try:
                self._open_map()
                self.log.info("pcap_interfaces_map reloaded")
            except OSError as e:
                self.log.warn(f"pcap_interfaces_map not reloaded: {e}")

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
        if self.ifaces:
            yield from self._map_batches(core)
            return
        if self.live is None:
            for chunk in self._chunks(core):
                yield self.decoder.decode(chunk), True
                if core.stopping:
                    return
            lt = self.decoder.unsupported_links
            if lt:
                self.log.warn(f"data link not supported: {sorted(lt)}")
            # the end of the savefile: what the classifier held back leaves now
            yield self.decoder.flush(), True
            if self.cfg.get("pcap_savefile_wait"):
                self.log.info("finished reading the savefile; waiting for a signal to exit")
                while not core.stopping:
                    wait_or_stop(core, 1.0)
            return
        dropped, checked = 0, time.monotonic()
        while not core.stopping:
            chunk = self.live.read(LIVE_BATCH)
            chunk.ifindex_in, chunk.ifindex_out = self.ifindex_in, self.ifindex_out
            yield self.decoder.decode(chunk), False
            if time.monotonic() - checked >= 5:
                checked = time.monotonic()
                st = self.live.stats()
                if st and st[1] > dropped:
                    self.log.warn(f"[{self.live.device}] libpcap dropped {st[1] - dropped} "
                                  f"packets ({st[1]} so far)")
                    dropped = st[1]

    def drain(self) -> list:
        return [self.decoder.flush()]

    def fds(self):
        if self.ifaces:
            return [f for f in (c.fileno() for c, _i, _o in self.ifaces.values()) if f >= 0]
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
        cl = d.classifier
        if cl is not None:          # packets of flows not classified yet (docs/classifiers.md)
            extra += (f" class_held={cl.held} class_released={cl.held_classified}"
                      f" class_released_unknown={cl.held_unknown}")
        log.notice(f"stats time={int(time.time())} frames={d.frames} skipped={d.skipped}{extra}")

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        for cap, _i, _o in self.ifaces.values():
            cap.close()


def main(argv=None) -> int:
    return run_daemon(DAEMON, PcapCollector, argv)


# the console script (setup.py): no interpreter teardown at exit
run = console_script(main)

if __name__ == "__main__":
    run()
