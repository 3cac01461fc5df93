"""The nfprobe plugin: pmacctd/uacctd packets into NetFlow v5, v9 or IPFIX exports.

As pmacct 1.7.7's nfprobe (itself softflowd's flow tracker): packets are tracked in
bidirectional flows (``pypmacct.probe.flowtable``), flows expire on the
``nfprobe_timeouts`` (checked every ``expint`` seconds), when there are more than
``nfprobe_maxflows`` of them (the ones nearest expiry go first) and at shutdown, and
expired flows are sent to ``nfprobe_receiver`` over UDP (``pypmacct.probe.export``).
When reading a savefile, flows expire on time never: only for room and at the end, as
1.7.7 does.

``nfprobe_direction`` sets each side's direction (in, out, or from tag/tag2: 1 is in, 2
is out) and ``nfprobe_ifindex`` fills the input interface of ingress packets and the
output interface of egress ones (a number, or the tag/tag2 value) when the packet has
none (or always, with ``nfprobe_ifindex_override``).
"""
from __future__ import annotations

import errno
import re
import socket
import time

from pypmacct.config import ConfigError
from pypmacct.probe.export import ExportOptions, Exporter, udp_sender
from pypmacct.probe.flowtable import (IFINDEX_STATIC, IFINDEX_TAG, IFINDEX_TAG2, REASONS,
                                      FlowTable, Timeouts)
from pypmacct.record import Batch

from .base import Plugin, PluginContext, setting

DEFAULT_RECEIVER = "127.0.0.1:2100"
DEFAULT_PRIMITIVES = ("src_host", "dst_host", "src_port", "dst_port", "proto", "tos")
# primitives that shape the v9/IPFIX template (anything else in 'aggregate' is ignored,
# as 1.7.7 ignores it)
TEMPLATE_PRIMITIVES = {"src_host", "dst_host", "src_port", "dst_port", "proto", "tos",
                       "src_mask", "dst_mask", "src_as", "dst_as", "src_mac", "dst_mac",
                       "vlan", "mpls_label_top", "tag", "tag2", "flows"}
# 1.7.7 exports these too, pypmacct does not yet: refused rather than silently dropped
NOT_YET = {"class": "flow classes (IE 95 and the class options template)",
           "label": "the label (a variable-length pmacct PEN field)",
           "peer_dst_ip": "BGP next hops (needs the BGP daemon)"}
BGP_PRIMITIVES = {"std_comm", "ext_comm", "lrg_comm", "local_pref", "med", "as_path",
                  "peer_src_as", "peer_dst_as", "peer_src_ip", "src_std_comm",
                  "src_ext_comm", "src_lrg_comm", "src_as_path", "src_med",
                  "src_local_pref", "mpls_vpn_rd", "src_roa", "dst_roa"}


def parse_receiver(text: str) -> tuple[str, int]:
    """'address:port' or '[IPv6 address]:port' (the port defaults to 2100)."""
    text = text.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        host, port = text, None          # a bare IPv6 address
    else:
        host, port = text, None
    port = int(port) if port else 2100
    if not host or not 0 < port < 65536:
        raise ValueError(f"invalid nfprobe_receiver '{text}': expected address:port or "
                         f"[IPv6 address]:port")
    return host, port


def parse_engine(text: str | None, version: int) -> tuple[int, int]:
    """(engine_type, engine_id): 'type:id' for v5, one number (source id /
    observation domain) for v9 and IPFIX."""
    if text is None:
        return 0, 0
    t = text.strip()
    if ":" in t:
        if version != 5:
            raise ValueError("nfprobe_engine 'engine_type:engine_id' is only supported on "
                             "NetFlow v5 export; give one number for v9/IPFIX")
        a, b = t.split(":", 1)
        if not (a.isdigit() and b.isdigit()) or int(a) > 255 or int(b) > 255:
            raise ValueError(f"invalid nfprobe_engine '{text}': expected two numbers "
                             f"from 0 to 255, as type:id")
        return int(a), int(b)
    if version == 5:
        raise ValueError("nfprobe_engine: a source id is only supported on NetFlow v9/"
                         "IPFIX export; give 'engine_type:engine_id' for v5")
    if not t.isdigit() or int(t) > 0xFFFFFFFF:
        raise ValueError(f"invalid nfprobe_engine '{text}': expected a number from 0 to "
                         f"4294967295")
    return 0, int(t)


def parse_ifindex(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 0
    t = text.strip().lower()
    if t == "tag":
        return IFINDEX_TAG, 0
    if t == "tag2":
        return IFINDEX_TAG2, 0
    if t.isdigit() and 1 <= int(t) <= 0xFFFFFFFF:
        return IFINDEX_STATIC, int(t)
    raise ValueError(f"invalid nfprobe_ifindex '{text}': expected tag, tag2 or a number "
                     f"from 1 to 4294967295")


class NfprobePlugin(Plugin):
    type_name = "nfprobe"
    title = "Netflow Probe Plugin"

    def __init__(self, pcfg, ctx: PluginContext):
        super().__init__(pcfg, ctx)
        if ctx.daemon not in ("pmacctd", "uacctd"):
            raise ConfigError(f"'nfprobe' plugin not supported in '{ctx.daemon}'")
        self.version = int(pcfg.get("nfprobe_version"))
        prims = set(pcfg.get("aggregate")) if pcfg.is_set("aggregate") else set(DEFAULT_PRIMITIVES)
        from pypmacct.primitives import CUSTOM_PRIMITIVES
        for p in sorted(prims):
            if p in CUSTOM_PRIMITIVES:
                raise ConfigError(f"[{self.name}] nfprobe: exporting custom primitives "
                                  f"('{p}' in aggregate) is not implemented yet")
            if p in BGP_PRIMITIVES:
                raise ConfigError(f"[{self.name}] 'src_as', 'dst_as' and 'peer_dst_ip' are "
                                  f"currently the only BGP-related primitives supported "
                                  f"within the 'nfprobe' plugin (not '{p}')")
            if p in NOT_YET and (p != "label" or self.version == 10):
                raise ConfigError(f"[{self.name}] nfprobe: exporting {NOT_YET[p]} "
                                  f"('{p}' in aggregate) is not implemented yet")
        if pcfg.get("sampling_rate"):
            raise ConfigError(f"[{self.name}] nfprobe: sampling_rate (and its sampler "
                              f"options template) is not implemented yet")
        self.primitives = frozenset(prims & TEMPLATE_PRIMITIVES)
        def checked(key, parse, *args):
            try:
                return parse(setting(pcfg, key), *args)
            except ValueError as e:
                raise ConfigError(f"{e}", where=pcfg.where(key), key=key) from None
        self.receiver = checked("nfprobe_receiver", lambda v: parse_receiver(v or DEFAULT_RECEIVER))
        engine_type, engine_id = checked("nfprobe_engine", parse_engine, self.version)
        self.timeouts = checked("nfprobe_timeouts", Timeouts.parse)
        self.ifindex_type, self.ifindex_value = checked("nfprobe_ifindex", parse_ifindex)
        self.direction = setting(pcfg, "nfprobe_direction")
        self.maxflows = int(pcfg.get("nfprobe_maxflows"))
        self.hoplimit = setting(pcfg, "nfprobe_hoplimit")
        self.source_ip = setting(pcfg, "nfprobe_source_ip")
        self.ipprec = int(setting(pcfg, "nfprobe_ipprec", 0))
        self.savefile = bool(setting(pcfg, "pcap_savefile"))
        self.dont_cache = bool(setting(pcfg, "nfprobe_dont_cache", False))
        self.opts = ExportOptions(
            version=self.version, primitives=self.primitives,
            timestamps_secs=bool(setting(pcfg, "timestamps_secs", False)),
            tstamp_usec=bool(setting(pcfg, "nfprobe_tstamp_usec", False)),
            engine_type=engine_type, engine_id=engine_id,
            probe_index=self._probe_index(pcfg, ctx), source_ip=self.source_ip)
        if self.opts.tstamp_usec and self.opts.timestamps_secs:
            raise ConfigError(f"[{self.name}] nfprobe_tstamp_usec cannot be used with "
                              f"timestamps_secs")
        self.table = None
        self.exporter = None
        self.sock = None
        self.dropped = 0

    @staticmethod
    def _probe_index(pcfg, ctx) -> int:
        order = getattr(ctx, "nfprobe_order", None)
        if order is None:
            order = ctx.nfprobe_order = []
        if pcfg.name not in order:
            order.append(pcfg.name)
        return order.index(pcfg.name)

    def wire_fields(self) -> frozenset:
        f = {"src_host", "dst_host", "proto", "tos", "src_port", "dst_port", "tcp_flags",
             "icmp_type", "icmp_code", "in_iface", "out_iface", "packets", "bytes",
             "time_start", "tag", "tag2"}
        for p, field in (("src_mac", "src_mac"), ("dst_mac", "dst_mac"), ("vlan", "vlan"),
                         ("src_mask", "src_mask"), ("dst_mask", "dst_mask"),
                         ("src_as", "src_as"), ("dst_as", "dst_as"),
                         ("mpls_label_top", "mpls_label_top")):
            if p in self.primitives:
                f.add(field)
        return frozenset(f)

    # --- plugin process ---------------------------------------------------------------
    def start(self) -> None:
        t = self.timeouts
        self.log.info("NetFlow probe plugin, after pmacct 1.7.7's (itself based on "
                      "softflowd 0.9.7 by Damien Miller)")
        for label, v in (("TCP timeout", t.tcp), ("TCP post-RST timeout", t.tcp_rst),
                         ("TCP post-FIN timeout", t.tcp_fin), ("UDP timeout", t.udp),
                         ("ICMP timeout", t.icmp), ("General timeout", t.general),
                         ("Maximum lifetime", t.maxlife), ("Expiry interval", t.expint)):
            self.log.info(f"{label:>21}: {v}s")
        self.table = FlowTable(t, self.version, self.direction, self.ifindex_type,
                               self.ifindex_value,
                               bool(setting(self.cfg, "nfprobe_ifindex_override", False)),
                               self.dont_cache)
        self.exporter = Exporter(self.opts, self._send)
        self._connect(first=True)

    def _connect(self, first: bool = False) -> None:
        try:
            self.sock = udp_sender(self.receiver, self.source_ip, self.hoplimit, self.ipprec)
        except OSError as e:
            # as 1.7.7: an unreachable network is retried at the next export; anything
            # else (a source address not on this host, a bad receiver) stops the plugin
            if not first or e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                self.log.error(f"cannot open the export socket to {self.receiver[0]}:"
                               f"{self.receiver[1]}: {e}")
                self.sock = None
                return
            raise OSError(f"cannot open the export socket to {self.receiver[0]}:"
                          f"{self.receiver[1]}"
                          f"{' from ' + self.source_ip if self.source_ip else ''}: "
                          f"{e.strerror or e}") from None
        host, port = self.sock.getpeername()[:2]
        self.log.info(f"Exporting flows to [{host}]:{port}")

    def _send(self, payload: bytes) -> None:
        if self.sock is None:
            raise OSError("no connection to the collector")
        self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)   # clear ICMP errors
        self.sock.send(payload)

    def _export(self, mode: str, now: float = 0.0) -> None:
        flows = self.table.expire(mode, now)
        if len(flows) == 0:
            return
        if self.sock is None:
            self._connect()
        try:
            self.exporter.export(flows)
        except OSError as e:
            self.dropped += len(flows)
            self.log.warn(f"Unable to export flows ({len(flows)} dropped): {e}")
            if self.sock is not None:
                self.sock.close()
            self.sock = None

    def ingest(self, batch: Batch) -> None:
        self.table.add(batch.records)
        over = len(self.table) - self.maxflows
        if over > 0:
            self.table.force(over)
        mode = "forced" if self.savefile else "normal"
        if over > 0 or self.dont_cache or self.table.next_check() == 0.0:
            self._export(mode, time.time())

    def next_deadline(self) -> float | None:
        if self.savefile or self.table is None:
            return None
        return self.table.next_check()

    def on_deadline(self, now: float) -> None:
        self._export("normal", now)

    def finish(self) -> None:
        self.log.info("Shutting down on user request.")
        self._export("all")
        tb, ex = self.table, self.exporter
        reasons = ", ".join(f"{REASONS[i]} {n}" for i, n in enumerate(tb.expired_by_reason) if n)
        self.log.info(f"{tb.total_packets} packets, {tb.next_seq - 1} flows, "
                      f"{ex.records} records in {ex.datagrams} datagrams"
                      f"{', expired: ' + reasons if reasons else ''}"
                      f"{f', {self.dropped} flows dropped' if self.dropped else ''}")
        if self.sock is not None:
            self.sock.close()
