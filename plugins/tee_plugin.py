"""The tee plugin: replicates NetFlow/IPFIX/sFlow datagrams, whole, to pools of receivers.

The core hands it every datagram it is to replicate (``pypmacct/runtime/tee.py``) with
the exporter's address and port and the tags a pre_tag_map gave the datagram. For each
pool of ``tee_receivers`` whose ``tag`` filter lets the datagram in, the datagram goes to
every receiver of the pool, or to one of them with ``balance-alg`` (rr, hash-agent,
hash-tag). The payload is sent as received, byte for byte.

With ``tee_transparent`` the datagram leaves a raw socket with the exporter's address and
port as its source (an IPv4/IPv6 + UDP header of our own, as 1.7.7: TTL 255, ToS from
``tee_ipprec``, IPv4 UDP checksum 0); this needs root. Otherwise each receiver has a
connected UDP socket, bound to ``tee_source_ip`` and the pool's ``src_port`` when set.
``tee_pipe_size`` sets the sockets' SO_SNDBUF. SIGUSR2 re-reads the receivers map.
"""
from __future__ import annotations

import os
import socket
import struct

import numpy as np

from pypmacct.config import ConfigError
from pypmacct.maps.tee_receivers import (TeeMapError, agent_key, crc32_agent_hash,
                                         read_receivers)

from .base import Plugin, setting

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = int(np.frombuffer(data, dtype=">u2").sum(dtype=np.uint64))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _seqno(p: bytes, daemon: str) -> int:
    """The sequence number in a datagram's header (for debug lines, as 1.7.7 logs it)."""
    try:
        if daemon == "sfacctd":
            off = 16 if int.from_bytes(p[4:8], "big") == 1 else 28
            return int.from_bytes(p[off:off + 4], "big")
        ver = int.from_bytes(p[:2], "big")
        off = {5: 16, 9: 12, 10: 8}.get(ver)
        return int.from_bytes(p[off:off + 4], "big") if off is not None else 0
    except (IndexError, ValueError):
        return 0


def _pack_dst(r) -> bytes:
    return socket.inet_pton(r.family, r.host)


class TeePlugin(Plugin):
    type_name = "tee"
    title = "Tee Plugin"
    datagrams = True          # the core sends it whole datagrams, not records

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        if ctx.daemon not in ("nfacctd", "sfacctd"):
            raise ConfigError(f"'tee' plugins run only in nfacctd and sfacctd")
        self.path = setting(pcfg, "tee_receivers")
        if not self.path:
            raise ConfigError("No receivers specified: tee_receivers is required",
                              key="tee_receivers")
        self.transparent = bool(setting(pcfg, "tee_transparent", False))
        if self.transparent and os.geteuid() != 0:
            raise ConfigError("Transparent mode requires super-user permissions",
                              where=pcfg.where("tee_transparent"), key="tee_transparent")
        self.source_ip = setting(pcfg, "tee_source_ip")
        self.ipprec = int(setting(pcfg, "tee_ipprec", 0) or 0)
        self.pipe_size = setting(pcfg, "tee_pipe_size")
        self.max_pools = int(setting(pcfg, "tee_max_receiver_pools", 128))
        self.max_receivers = int(setting(pcfg, "tee_max_receivers", 32))
        self.maps_entries = int(setting(pcfg, "maps_entries", 384))
        self.pools = self._read(startup=True)
        self.socks: dict = {}
        self.counts: dict = {}       # (pool index, receiver index) -> datagrams sent
        self.send_errors = 0
        self.debug = bool(setting(pcfg, "debug", False))
        self.proto = "sFlow" if ctx.daemon == "sfacctd" else "NetFlow/IPFIX"

    def wire_fields(self) -> frozenset:
        return frozenset()

    def _read(self, startup=False):
        try:
            pools = read_receivers(self.path, self.log, self.max_pools, self.max_receivers,
                                   self.maps_entries)
        except OSError as e:
            if startup:
                raise ConfigError(f"cannot read tee_receivers '{self.path}': {e.strerror}",
                                  where=self.cfg.where("tee_receivers"),
                                  key="tee_receivers") from None
            raise
        except TeeMapError as e:
            if startup:
                raise ConfigError(str(e), where=self.cfg.where("tee_receivers"),
                                  key="tee_receivers") from None
            raise
        self.log.info(f"[{self.path}] map successfully (re)loaded: {len(pools)} pools")
        return pools

    # ---- sockets ---------------------------------------------------------------
    def _open(self):
        socks = {}
        for n, pool in enumerate(self.pools):
            for i, r in enumerate(pool.receivers):
                socks[(n, i)] = self._socket(r, pool.src_port)
        self.socks = socks

    def _socket(self, r, src_port: int):
        if self.transparent:
            s = socket.socket(r.family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        else:
            s = socket.socket(r.family, socket.SOCK_DGRAM)
            if self.source_ip or src_port:
                ip = self.source_ip or ("::" if r.family == socket.AF_INET6 else "0.0.0.0")
                try:
                    s.bind((ip, src_port))
                except OSError as e:
                    self.log.warn(f"bind() error: {e.strerror}")
        if self.pipe_size:
            saved = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(self.pipe_size))
            except OSError:
                pass
            got = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            if got < saved:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, saved)
                got = saved
            self.log.info(f"tee_pipe_size: obtained={got} target={self.pipe_size}.")
        if self.transparent:
            s.connect((r.host, 0) if r.family == socket.AF_INET else (r.host, 0, 0, 0))
        else:
            s.connect(r.addr)
        return s

    def _close(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}

    def start(self) -> None:
        self._open()
        for pool in self.pools:
            for i, r in enumerate(pool.receivers):
                self.log.debug(f"PoolID={pool.id} receiver={r.text}")

    def reload(self) -> None:
        try:
            pools = self._read()
        except (OSError, TeeMapError) as e:
            self.log.warn(f"tee_receivers not reloaded, keeping the previous pools: {e}")
            return
        self._close()
        self.pools = pools
        self._open()

    def finish(self) -> None:
        self._close()
        if self.send_errors:
            self.log.warn(f"{self.send_errors} datagrams could not be sent")

    # ---- sending ---------------------------------------------------------------
    def ingest(self, msgs) -> None:
        n = len(msgs)
        if n == 0:
            return
        tags = msgs.tags
        for n_pool, pool in enumerate(self.pools):
            ok = np.ones(n, bool) if pool.tag_filter is None else \
                pool.tag_filter(tags) | msgs.bcast
            idx = np.flatnonzero(ok)
            if len(idx) == 0:
                continue
            nrecv = len(pool.receivers)
            if pool.balance is None:
                targets = None
            elif pool.balance == "rr":
                targets = (pool.next_rr + np.arange(len(idx))) % nrecv
                pool.next_rr = int((pool.next_rr + len(idx)) % nrecv)
            elif pool.balance == "hash-tag":
                targets = (tags[idx] % np.uint64(nrecv)).astype(np.int64)
            else:  # hash-agent, hash-crc32: by exporter (cached: a few exporters)
                fn = agent_key if pool.balance == "hash-agent" else crc32_agent_hash
                cache = {}
                tl = []
                for i in idx.tolist():
                    key = (msgs.families[i], msgs.addrs[i])
                    t = cache.get(key)
                    if t is None:
                        fam = socket.AF_INET if key[0] == 4 else socket.AF_INET6
                        t = cache[key] = fn(fam, key[1]) % nrecv
                    tl.append(t)
                targets = np.array(tl, dtype=np.int64)
            for j, i in enumerate(idx.tolist()):
                if targets is None:
                    for k in range(nrecv):
                        self._send(n_pool, pool, k, msgs, i)
                else:
                    self._send(n_pool, pool, int(targets[j]), msgs, i)

    def _send(self, n_pool: int, pool, k: int, msgs, i: int) -> None:
        r = pool.receivers[k]
        s = self.socks[(n_pool, k)]
        payload = msgs.payloads[i]
        try:
            if self.transparent:
                pkt = self._craft(msgs.families[i], msgs.addrs[i], msgs.ports[i], r, payload)
                if pkt is None:
                    return
                s.send(pkt)
            else:
                s.send(payload)
        except OSError as e:
            self.send_errors += 1
            self.log.limited(("send", pool.id, k),
                             f"send() to [{r.text}] failed ({e.strerror}); "
                             f"{self.send_errors} datagrams not sent so far", level="ERROR")
            return
        key = (n_pool, k)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.debug:
            src = socket.inet_ntop(socket.AF_INET if msgs.families[i] == 4 else socket.AF_INET6,
                                   msgs.addrs[i][:4] if msgs.families[i] == 4 else msgs.addrs[i])
            seq = _seqno(payload, self.ctx.daemon)
            self.log.debug(f"Sending {self.proto} packet from [{src}:{msgs.ports[i]}] seqno "
                           f"[{seq}] to [{r.host}:{r.port}]")

    def _craft(self, fam: int, addr16: bytes, sport: int, r, payload: bytes):
        """The spoofed IP + UDP datagram (1.7.7's Tee_craft_transparent_msg)."""
        want = 4 if r.family == socket.AF_INET else 6
        if fam != want:
            self.log.limited("bridge-af", "Can't bridge Address Families when in transparent "
                             "mode", level="ERROR")
            return None
        ulen = _UDP.size + len(payload)
        if fam == 4:
            udp = _UDP.pack(sport, r.port, ulen, 0)
            ip = _IP4.pack(0x45, (self.ipprec << 5) & 0xFF, 20 + ulen, 0, 0, 255,
                           socket.IPPROTO_UDP, 0, addr16[:4], _pack_dst(r))
            return ip + udp + payload
        dst = _pack_dst(r)
        pseudo = addr16 + dst + struct.pack("!I3xB", ulen, socket.IPPROTO_UDP)
        csum = _checksum(pseudo + _UDP.pack(sport, r.port, ulen, 0) + payload) or 0xFFFF
        udp = _UDP.pack(sport, r.port, ulen, csum)
        ip = _IP6.pack(6 << 28, ulen, socket.IPPROTO_UDP, 255, addr16, dst)
        return ip + udp + payload
