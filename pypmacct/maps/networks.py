"""networks_file, networks_mask, nfacctd_net / nfacctd_as and ports_file.

pmacct applies these in each plugin, to the records it receives, before aggregating
(net_aggr.c set_net_funcs; print_plugin.c for ports_file). We apply them per plugin
channel in the core, on that plugin's copy of the records, in the same order:

for the source side, then the destination side:
1. the mask starts as the NetFlow one when the net method has 'netflow' (KEEP), else 0;
   'mask' (networks_mask) replaces it when the plugin aggregates src_mask/dst_mask;
2. with a networks_file, the address is looked up (longest prefix match);
   networks_file_filter zeroes the address of a host that matches no prefix (when the
   plugin aggregates hosts);
3. 'file' (NEW): the mask becomes the matched prefix length (0 when none); 'longest':
   the longer of the two wins, or the file's always with networks_file_no_lpm;
4. nfacctd_as 'file': src_as/dst_as (and peer_src_as/peer_dst_as) from the matched
   entry; 'longest': when the entry's prefix is at least as long as the mask of step 3;
5. destination only: peer_dst_ip from the entry's next hop (net method 'file'/'longest').
pmacctd/uacctd defaults (1.7.7's): net method 'file' with a networks_file plus 'mask' with
a networks_mask; AS method none, so a networks_file alone leaves the ASNs at 0.
src_net/dst_net are then the addresses under the final masks (the plugin computes them).

Longest-prefix match is vectorised: the prefixes are flattened at load time into sorted,
disjoint address segments, each owned by its most specific prefix, and a batch is looked
up with one ``searchsorted`` on 16-byte big-endian keys (IPv4 in the first 4 bytes, as in
the record).
"""
from __future__ import annotations

import ipaddress

import numpy as np

NF_KEEP, NF_NEW, NF_BGP, NF_STATIC, NF_IGP, NF_FALLBACK = 1, 2, 4, 8, 16, 0x80000000

NET_METHODS = {"netflow": NF_KEEP, "sflow": NF_KEEP, "file": NF_NEW, "mask": NF_STATIC,
               "bgp": NF_BGP, "bmp": NF_BGP, "igp": NF_IGP,
               "longest": NF_FALLBACK | NF_KEEP | NF_BGP | NF_IGP,
               "fallback": NF_FALLBACK | NF_KEEP | NF_BGP | NF_IGP}
AS_METHODS = {"netflow": NF_KEEP, "sflow": NF_KEEP, "false": NF_KEEP, "file": NF_NEW,
              "true": NF_NEW, "bgp": NF_BGP, "bmp": NF_BGP,
              "longest": NF_FALLBACK | NF_KEEP | NF_BGP,
              "fallback": NF_FALLBACK | NF_KEEP | NF_BGP}

_V16 = np.dtype("V16")


class NetworksTable:
    """One networks_file: per address family, segments -> entry, and the entries."""

    def __init__(self, path: str, log=None, filter_mode: bool = False):
        self.path = path
        self.problems: list[str] = []
        rows = {4: [], 6: []}
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith("!") or line.startswith("#"):
                    continue
                try:
                    rows_entry = _parse_line(line)
                except ValueError as e:
                    self.problems.append(f"{path}:{lineno}: {e}: line skipped")
                    continue
                rows[rows_entry[0].version].append(rows_entry)
        for p in self.problems:
            if log is not None:
                log.warn(f"networks_file: {p}")
        self.count = len(rows[4]) + len(rows[6])
        self.tables = {fam: _Family(rows[fam]) for fam in (4, 6)}
        self.default_route = {fam: any(r[0].prefixlen == 0 for r in rows[fam])
                              for fam in (4, 6)}
        # pmacct: a file without valid rows still answers lookups (with a zero entry),
        # unless networks_file_filter is set
        self.empty = self.count == 0 and filter_mode
        if log is not None:
            log.info(f"networks_file: {self.count} networks loaded from {path}")

    def lookup(self, addr_col: np.ndarray):
        """(found, mask, as, peer_as, nh_af, nh_addr) for an ADDR_DTYPE column."""
        n = len(addr_col)
        found = np.zeros(n, bool)
        mask = np.zeros(n, np.int32)
        asn = np.zeros(n, np.uint32)
        peer = np.zeros(n, np.uint32)
        nh_af = np.zeros(n, np.uint8)
        nh = np.zeros(n, _V16)
        af = addr_col["af"]
        keys = np.ascontiguousarray(addr_col["addr"]).view(_V16).ravel()
        for fam in (4, 6):
            t = self.tables[fam]
            sel = np.flatnonzero(af == fam)
            if not len(sel) or t.nseg == 0:
                continue
            pos = np.searchsorted(t.starts, keys[sel], side="right") - 1
            ok = pos >= 0
            ent = np.where(ok, t.owner[np.maximum(pos, 0)], -1)
            hit = ent >= 0
            idx, e = sel[hit], ent[hit]
            found[idx] = True
            mask[idx] = t.masknum[e]
            asn[idx] = t.asn[e]
            peer[idx] = t.peer_as[e]
            nh_af[idx] = t.nh_af[e]
            nh[idx] = t.nh[e]
        return found, mask, asn, peer, nh_af, nh


def _parse_line(line: str):
    """[nexthop,][[peer_as_]as,]prefix/len -> (network, as, peer_as, nexthop|None)."""
    parts = line.split(",")
    fields = len(parts) - 1
    if fields >= 3:          # pmacct skips a leading field
        parts = parts[1:]
        fields -= 1
    nh = None
    if fields >= 2:
        try:
            nh = ipaddress.ip_address(parts[0].strip())
        except ValueError:
            raise ValueError(f"bad next hop {parts[0].strip()!r}") from None
        parts = parts[1:]
        fields -= 1
    asn = peer = 0
    if fields >= 1:
        a = parts[0].strip()
        if "_" in a:
            p_s, _, a = a.partition("_")
            peer = _asn(p_s)
        asn = _asn(a)
        parts = parts[1:]
    net_s = parts[0].strip()
    if "/" not in net_s:
        raise ValueError(f"{net_s!r} is not a prefix (address/length)")
    addr_s, _, ml = net_s.partition("/")
    if not ml.isdigit():
        raise ValueError(f"invalid network mask {ml!r}")
    try:
        addr = ipaddress.ip_address(addr_s)
    except ValueError:
        raise ValueError(f"{addr_s!r} is not an IP address") from None
    if int(ml) > addr.max_prefixlen:
        raise ValueError(f"invalid network mask {ml}")
    net = ipaddress.ip_network(f"{addr}/{ml}", strict=False)   # host bits are dropped
    return net, asn, peer, nh


def _asn(s: str) -> int:
    s = s.strip()
    if not s.isdigit() or int(s) > 0xFFFFFFFF:
        raise ValueError(f"bad AS number {s!r}")
    return int(s)


class _Family:
    def __init__(self, rows):
        # the last line for a duplicate prefix wins? pmacct removes dupes keeping one;
        # we keep the first, as a sorted-table merge does
        seen = {}
        for r in rows:
            seen.setdefault(r[0], r)
        rows = sorted(seen.values(), key=lambda r: (r[0].prefixlen, int(r[0].network_address)))
        m = len(rows)
        self.masknum = np.array([r[0].prefixlen for r in rows], np.int32)
        self.asn = np.array([r[1] for r in rows], np.uint32)
        self.peer_as = np.array([r[2] for r in rows], np.uint32)
        self.nh_af = np.array([0 if r[3] is None else (4 if r[3].version == 4 else 6)
                               for r in rows], np.uint8)
        self.nh = np.array([b"\0" * 16 if r[3] is None else r[3].packed.ljust(16, b"\0")
                            for r in rows], _V16) if m else np.zeros(0, _V16)
        if not m:
            self.starts = np.zeros(0, _V16)
            self.owner = np.zeros(0, np.int64)
            self.nseg = 0
            return
        shift = 96 if rows[0][0].version == 4 else 0
        lo = [int(r[0].network_address) << shift for r in rows]
        hi = [(int(r[0].broadcast_address) + 1) << shift for r in rows]   # exclusive
        bounds = sorted(set(lo) | set(b for b in hi if b < (1 << 128)))
        bidx = {b: i for i, b in enumerate(bounds)}
        owner = np.full(len(bounds), -1, np.int64)
        # shorter prefixes first: a more specific one overwrites its part of the segments
        for e, (a, b) in enumerate(zip(lo, hi)):
            i = bidx[a]
            j = bidx[b] if b in bidx else len(bounds)
            owner[i:j] = e
        self.starts = np.array([b.to_bytes(16, "big") for b in bounds], _V16)
        self.owner = owner
        self.nseg = len(bounds)


class PortsList:
    """ports_file: ports not listed are rewritten as 0."""

    def __init__(self, path: str, log=None):
        self.path = path
        self.table = np.zeros(65536, bool)
        n = 0
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, raw in enumerate(f, 1):
                s = raw.strip()
                if not s or s.startswith("!") or s.startswith("#"):
                    continue
                if not s.isdigit() or int(s) > 65535:
                    if log is not None:
                        log.warn(f"ports_file: {path}:{lineno}: invalid port {s!r}: skipped")
                    continue
                self.table[int(s)] = True
                n += 1
        if log is not None:
            log.info(f"ports_file: {n} ports loaded from {path}")

    def apply(self, recs: np.ndarray) -> None:
        for f in ("src_port", "dst_port"):
            if f in recs.dtype.names:
                col = recs[f]
                col[~self.table[col]] = 0


class NetworksStage:
    """What networks_file/networks_mask/nfacctd_net/nfacctd_as/ports_file do to one
    plugin's records."""

    def __init__(self, pcfg, daemon: str, log=None):
        from pypmacct.config import ConfigError
        self.log = log
        agg = set(pcfg.get("aggregate") or ())
        self.agg = agg
        self.path = pcfg.get("networks_file")
        self.networks_mask = int(pcfg.get("networks_mask") or 0)
        self.filter_mode = bool(pcfg.get("networks_file_filter"))
        self.no_lpm = bool(pcfg.get("networks_file_no_lpm"))
        net = pcfg.get("nfacctd_net")
        asm = pcfg.get("nfacctd_as")
        pm = daemon not in ("nfacctd", "sfacctd")
        # 1.7.7 checks the primitives' sources for the other plugins only
        probe = getattr(pcfg, "type", None) in ("nfprobe", "sfprobe")
        if pm:
            # 1.7.7's pmacctd/uacctd warn about 'netflow'/'sflow' (and the legacy 'false')
            # and ignore the key: a packet carries no mask or ASN to keep
            if net in ("netflow", "sflow"):
                self._warn(f"{daemon}_net: invalid value '{net}' in {daemon}: ignored")
                net = None
            if asm in ("netflow", "sflow", "false"):
                self._warn(f"{daemon}_as: invalid value '{asm}' in {daemon}: ignored")
                asm = None
        if net:
            self.net = NET_METHODS[net]
            need = {NF_NEW: self.path, NF_STATIC: self.networks_mask}
            if self.net in need and not need[self.net] and agg & _NET_PRIMS:
                raise ConfigError(f"nfacctd_net '{net}' needs "
                                  f"{'networks_file' if self.net == NF_NEW else 'networks_mask'}",
                                  where=pcfg.where("nfacctd_net"), key="nfacctd_net")
            if self.net & NF_FALLBACK and self.path:
                self.net |= NF_NEW
        elif daemon in ("nfacctd", "sfacctd"):
            # 'netflow'/'sflow' unless told otherwise (checked against 1.7.7: a
            # networks_file alone does not change the masks there)
            self.net = NF_KEEP
        else:
            # pmacctd/uacctd: 'file' and 'mask' when a networks_file / networks_mask is set
            self.net = (NF_NEW if self.path else 0) | (NF_STATIC if self.networks_mask else 0)
        if pm and not probe and agg & _NET_PRIMS and not self.net:
            # 1.7.7's pmacctd/uacctd refuse to start here
            raise ConfigError(f"network aggregation selected but none of '{daemon}_net', "
                              "'networks_file', 'networks_mask' is specified",
                              key=f"{daemon}_net")
        if asm:
            self.asm = AS_METHODS[asm]
            if self.asm & NF_NEW and not self.path and agg & _AS_PRIMS:
                raise ConfigError("AS aggregation selected but no networks_file given",
                                  where=pcfg.where("nfacctd_as"), key="nfacctd_as")
            if self.asm & NF_FALLBACK and self.path:
                self.asm |= NF_NEW
        else:
            # pmacctd/uacctd: no ASNs at all unless pmacctd_as/uacctd_as says 'file' or
            # 'longest' (checked against 1.7.7: a networks_file alone leaves them 0)
            self.asm = 0 if pm else NF_KEEP
        if pm and not probe and agg & _AS_PRIMS and not self.path:
            raise ConfigError(f"AS aggregation selected but no 'networks_file' is specified "
                              f"(and {daemon}_as is not 'bgp')", key="networks_file")
        self.table = None
        if self.path:
            try:
                self.table = NetworksTable(self.path, log, self.filter_mode)
            except OSError as e:
                raise ConfigError(f"cannot read networks_file '{self.path}': {e.strerror}",
                                  where=pcfg.where("networks_file"),
                                  key="networks_file") from None
        self.ports = None
        if pcfg.get("ports_file"):
            try:
                self.ports = PortsList(pcfg.get("ports_file"), log)
            except OSError as e:
                raise ConfigError(f"cannot read ports_file: {e.strerror}",
                                  where=pcfg.where("ports_file"), key="ports_file") from None
        self.fields = set()
        if self.active_nets:
            self.fields |= {"src_host", "dst_host", "src_mask", "dst_mask", "src_as",
                            "dst_as", "peer_src_as", "peer_dst_as", "peer_dst_ip"}
        if self.ports is not None:
            self.fields |= {"src_port", "dst_port"}

    def _warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warn(msg)

    @property
    def active_nets(self) -> bool:
        return self.table is not None or self.net != NF_KEEP or self.asm != NF_KEEP

    @property
    def active(self) -> bool:
        return self.active_nets or self.ports is not None

    def reload(self, log=None) -> None:
        if self.path:
            try:
                self.table = NetworksTable(self.path, log, self.filter_mode)
            except OSError as e:
                if log is not None:
                    log.warn(f"networks_file: not reloaded, keeping the previous one: {e}")

    def apply(self, recs: np.ndarray) -> None:
        names = recs.dtype.names
        if self.ports is not None:
            self.ports.apply(recs)
        if not self.active_nets:
            return
        for side in ("src", "dst"):
            host, mfield = f"{side}_host", f"{side}_mask"
            asf, peerf = f"{side}_as", f"peer_{side}_as"
            if mfield in names:
                if not self.net & NF_KEEP:
                    recs[mfield] = 0
                if self.net & NF_STATIC and self.networks_mask and mfield in self.agg:
                    recs[mfield] = self.networks_mask
            if not self.asm & NF_KEEP and self.asm & NF_NEW:
                for f in (asf,):
                    if f in names:
                        recs[f] = 0
            t = self.table
            if t is None or t.empty or host not in names:
                continue
            found, emask, eas, epeer, nh_af, nh = t.lookup(recs[host])
            fam = recs[host]["af"]
            default = np.where(fam == 6, t.default_route[6], t.default_route[4])
            real = found & ((emask > 0) | default)
            if self.filter_mode and self.agg & {host, "sum_host"}:
                z = ~real & (fam != 0)
                if z.any():
                    recs[host]["addr"][z] = b"\0" * 16
            mask = recs[mfield].astype(np.int32) if mfield in names else np.zeros(len(recs),
                                                                                    np.int32)
            if self.net & NF_NEW:
                if not self.net & NF_FALLBACK:
                    mask = emask.copy()
                elif self.no_lpm:
                    mask = np.where(emask > 0, emask, mask)
                else:
                    mask = np.maximum(mask, emask)
                    if self.filter_mode:
                        mask = np.where((emask == 0) & ~default, 0, mask)
                if mfield in names:
                    recs[mfield] = mask
            if self.asm & NF_NEW:
                if not self.asm & NF_FALLBACK:
                    take = np.ones(len(recs), bool)
                elif self.no_lpm:
                    take = emask > 0
                else:
                    take = emask >= mask
                if asf in names and self.agg & {asf, "sum_as"}:
                    recs[asf] = np.where(take, eas, recs[asf])
                if peerf in names and peerf in self.agg:
                    recs[peerf] = np.where(take, epeer, recs[peerf])
            if side == "dst" and self.net & NF_NEW and "peer_dst_ip" in names \
                    and "peer_dst_ip" in self.agg:
                if not self.net & NF_FALLBACK:
                    take = np.ones(len(recs), bool)
                elif self.no_lpm:
                    take = emask > 0
                else:
                    take = emask >= mask
                col = recs["peer_dst_ip"]
                col["af"][take] = nh_af[take]
                col["addr"][take] = nh[take]


_NET_PRIMS = {"src_net", "dst_net", "sum_net", "src_mask", "dst_mask", "peer_dst_ip"}
_AS_PRIMS = {"src_as", "dst_as", "sum_as"}
