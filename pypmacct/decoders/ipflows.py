"""pmacctd's flow buffer: which packets start a new flow (the ``flows`` counter).

pmacct 1.7.7 keeps a bidirectional flow table keyed by (addresses, ports, protocol), the
pair put in a fixed order so that both directions of a conversation share an entry with
a forward and a reverse side. A packet counts one flow (``flows`` = 1) when its side of
the entry is new or has expired: a side expires when the wall clock (not the capture
time: pmacct calls gettimeofday()) is more than a lifetime past the side's last packet:
``pmacctd_flow_lifetime`` (60 s) for non-TCP; for TCP ``pmacctd_flow_tcp_lifetime``
(default: the generic lifetime) once established, 60 s while a SYN is pending, 30 s after
a FIN, 10 s after a RST (a FIN or RST marks both sides). The handshake is established
when the SYN sender's next packet carries the SYN's sequence number + 1 after a SYN+ACK
from the other side. "Ports" are the first four bytes after the IP header for TCP, UDP
and ICMPv6 (the first fragment's for later fragments), zero for other protocols; ICMP
(IPv4) as ICMPv6 (pmacct 1.7.7 crashes on it: docs/differences.md).

The table holds ``pmacctd_flow_buffer_size`` / node size entries per family; when it is
full, new flows are not counted (pmacct's "Flow buffer full. Skipping flows"), expired
entries are dropped at most every 60 s to make room, and every hour in any case.

Vectorised: packets are grouped by entry with np.unique and the table is a sorted array
of keys; entries whose TCP state may change in the batch (a SYN, FIN or RST in it, or
a pending state) are stepped packet position by packet position (iteration k takes the
k-th such packet of every such entry); all others are decided at once (only the first
packet of each side in the batch can be new). All packets of a batch share one "now".
"""
from __future__ import annotations

import time

import numpy as np

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
SYN_LIFETIME, FIN_LIFETIME, RST_LIFETIME = 60, 30, 10
PRUNE_INTERVAL, EMERGENCY_PRUNE_INTERVAL = 3600, 60
DEFAULT_BUFFER = 16384000
# sizeof(struct ip_flow) / sizeof(struct ip_flow6) in pmacct 1.7.7 (amd64), measured by
# counting the flows it accepts with small pmacctd_flow_buffer_size values
NODE_SIZE = {4: 208, 6: 216}
KEY_BYTES = 40


class FlowTable:
    def __init__(self, buffer_size: int = 0, buckets: int = 256, lifetime: int = 0,
                 tcp_lifetime: int = 0, clock=time.time):
        size = buffer_size or DEFAULT_BUFFER
        self.capacity = {af: size // n for af, n in NODE_SIZE.items()}
        self.buckets = buckets or 256        # pmacct's hash table size: no effect on counts
        self.lifetime = lifetime or 60
        self.tcp_lifetime = tcp_lifetime or self.lifetime
        self.clock = clock
        self.keys = np.zeros(0, np.dtype((np.void, KEY_BYTES)))
        self.af = np.zeros(0, np.uint8)
        self.proto = np.zeros(0, np.uint8)
        self.last = np.zeros((0, 2), np.int64)
        self.flags = np.zeros((0, 2), np.uint8)
        self.seq = np.zeros(0, np.int64)
        start = int(self.clock())
        self.prune_deadline = start + PRUNE_INTERVAL
        self.emergency = 0
        self.full_logged = 0
        self.skipped_flows = 0

    # -- expiry -----------------------------------------------------------------------
    def _expired(self, now, proto, last, flags):
        tcp = proto == 6
        est = tcp & (flags == 0) & (now > last + self.tcp_lifetime)
        pend = tcp & (flags != 0) & (
            ((flags & SYN) != 0) & (now > last + SYN_LIFETIME) |
            ((flags & FIN) != 0) & (now > last + FIN_LIFETIME) |
            ((flags & RST) != 0) & (now > last + RST_LIFETIME))
        other = ~tcp & (now > last + self.lifetime)
        return est | pend | other

    def prune(self, now) -> None:
        if not len(self.keys):
            return
        dead = self._expired(now, self.proto, self.last[:, 0], self.flags[:, 0]) & \
            self._expired(now, self.proto, self.last[:, 1], self.flags[:, 1])
        if dead.any():
            keep = ~dead
            self.keys, self.af, self.proto = self.keys[keep], self.af[keep], self.proto[keep]
            self.last, self.flags, self.seq = self.last[keep], self.flags[keep], self.seq[keep]

    # -- one batch ----------------------------------------------------------------------
    def new_flows(self, af, src, dst, proto, sport, dport, tcpflags, seq):
        """``flows`` (0/1) per packet; arrays per packet: af 4/6, src/dst (n,16) uint8,
        proto, sport, dport (what pmacct reads as ports), raw TCP flags, TCP sequence."""
        n = len(af)
        out = np.zeros(n, np.uint8)
        if not n:
            return out
        now = int(self.clock())
        if now > self.prune_deadline:
            self.prune(now)
            self.prune_deadline = now + PRUNE_INTERVAL
        # the table may fill up in this batch: drop expired entries first (pmacct's
        # emergency prune, at most once a minute)
        if any(np.count_nonzero(self.af == fam) + n > cap for fam, cap in self.capacity.items()) \
                and now > self.emergency + EMERGENCY_PRUNE_INTERVAL:
            self.emergency = now
            self.prune(now)
        proto = proto.astype(np.uint8)
        sport = sport.astype(np.int64)
        dport = dport.astype(np.int64)
        # pmacct's normalisation (network-order shorts compared as host shorts; then the
        # addresses): idx 1 = the reverse side
        hs = ((sport & 0xFF) << 8) | (sport >> 8)
        hd = ((dport & 0xFF) << 8) | (dport >> 8)
        s_lt = _addr_less(src, dst, af == 4)
        rev = (hs < hd) | ((hs == hd) & s_lt)
        k = np.zeros((n, KEY_BYTES), np.uint8)
        k[:, 0] = af
        k[:, 1] = proto
        ps = np.where(rev, dport, sport)
        pd = np.where(rev, sport, dport)
        k[:, 2], k[:, 3] = ps >> 8, ps & 0xFF
        k[:, 4], k[:, 5] = pd >> 8, pd & 0xFF
        k[:, 6:22] = np.where(rev[:, None], dst, src)
        k[:, 22:38] = np.where(rev[:, None], src, dst)
        kv = k.view(np.dtype((np.void, KEY_BYTES))).reshape(-1)
        ukeys, first, inv = np.unique(kv, return_index=True, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        m = len(ukeys)
        idx = rev.astype(np.int64)
        # the table's entries for this batch's keys
        pos = np.searchsorted(self.keys, ukeys)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        exists = (pos < len(self.keys)) & (self.keys[pos_c] == ukeys) if len(self.keys) \
            else np.zeros(m, bool)
        uproto = proto[first]
        uaf = af[first].astype(np.uint8)
        last = np.zeros((m, 2), np.int64)
        flg = np.zeros((m, 2), np.uint8)
        sq = np.zeros(m, np.int64)
        if len(self.keys):
            last[exists] = self.last[pos_c[exists]]
            flg[exists] = self.flags[pos_c[exists]]
            sq[exists] = self.seq[pos_c[exists]]
        # nodes for new entries, in order of their first packet, while there is room
        has = exists.copy()
        for fam in (4, 6):
            want = np.nonzero(~exists & (uaf == fam))[0]
            if not len(want):
                continue
            used = int(np.count_nonzero(self.af == fam))
            room = self.capacity[fam] - used
            want = want[np.argsort(first[want], kind="stable")]
            has[want[:max(room, 0)]] = True
            if room < len(want):
                self.skipped_flows += len(want) - max(room, 0)
        # packets' TCP view as pmacct's flow code has it
        tf = tcpflags.astype(np.uint8)
        ptf = np.where(proto == 6, tf & (SYN | FIN | RST), 0).astype(np.uint8)
        ptf |= np.where((ptf != 0) & ((tf & ACK) != 0), ACK, 0).astype(np.uint8)
        seq = seq.astype(np.int64)
        # entries stepped packet by packet: TCP with an event in the batch or pending state
        ev = np.zeros(m, bool)
        np.logical_or.at(ev, inv, ptf != 0)
        stepped = has & (uproto == 6) & (ev | np.any(flg != 0, axis=1))
        pk_step = stepped[inv]
        # the others: only the first packet of each side in the batch may be new
        simple = has[inv] & ~pk_step
        ps_idx = np.nonzero(simple)[0]
        if len(ps_idx):
            side = inv[ps_idx] * 2 + idx[ps_idx]
            _, fo = np.unique(side, return_index=True)
            firsts = ps_idx[fo]
            e = inv[firsts]
            d = idx[firsts]
            stale = self._expired(now, uproto[e], last[e, d], flg[e, d])
            out[firsts] = stale
            # a stale side starts over (clear_tcp_flow_cmn)
            flg[e[stale], d[stale]] = 0
            last[e, d] = now
        sp = np.nonzero(pk_step)[0]
        if len(sp):
            self._step(sp, inv, idx, ptf, seq, uproto, last, flg, sq, out, now)
        # back into the table
        upd = exists & has
        if len(self.keys):
            self.last[pos_c[upd]] = last[upd]
            self.flags[pos_c[upd]] = flg[upd]
            self.seq[pos_c[upd]] = sq[upd]
        add = has & ~exists
        if add.any():
            keys = np.concatenate([self.keys, ukeys[add]])
            order = np.argsort(keys, kind="stable")
            self.keys = keys[order]
            self.af = np.concatenate([self.af, uaf[add]])[order]
            self.proto = np.concatenate([self.proto, uproto[add]])[order]
            self.last = np.concatenate([self.last, last[add]])[order]
            self.flags = np.concatenate([self.flags, flg[add]])[order]
            self.seq = np.concatenate([self.seq, sq[add]])[order]
        return out

    def _step(self, sp, inv, idx, ptf, seq, uproto, last, flg, sq, out, now):
        """Exact TCP state for the stepped entries: k-th packet of each entry at step k."""
        e_all = inv[sp]
        order = np.lexsort((sp, e_all))
        sp, e_all = sp[order], e_all[order]
        start = np.ones(len(sp), bool)
        start[1:] = e_all[1:] != e_all[:-1]
        gstart = np.maximum.accumulate(np.where(start, np.arange(len(sp)), 0))
        rank = np.arange(len(sp)) - gstart
        for k in range(int(rank.max()) + 1):
            sel = rank == k
            p = sp[sel]
            e = e_all[sel]
            d = idx[p]
            r = 1 - d
            stale = self._expired(now, uproto[e], last[e, d], flg[e, d])
            out[p] = stale
            flg[e[stale], d[stale]] = 0
            last[e[stale], d[stale]] = 0
            # evaluate_tcp_flags
            fi, fr = flg[e, d], flg[e, r]
            est = ((fi & SYN) != 0) & ((fr & SYN) != 0) & ((fr & ACK) != 0) & \
                (seq[p] == ((sq[e] + 1) & 0xFFFFFFFF))
            flg[e[est], d[est]] = 0
            flg[e[est], r[est]] = 0
            f = ptf[p]
            syn = (f & SYN) != 0
            flg[e[syn], d[syn]] = SYN | (f[syn] & ACK)
            pure = syn & ((f & ACK) == 0)
            sq[e[pure]] = seq[p[pure]]
            fin = (f & (FIN | RST)) != 0
            flg[e[fin], d[fin]] = f[fin]
            flg[e[fin], r[fin]] = f[fin]
            last[e, d] = now


def _addr_less(a, b, v4):
    """a < b per row, comparing the addresses as pmacct does for IPv4 (a network-order
    u_int32 read as a host integer) and byte-wise for IPv6."""
    a4 = a[:, :4].copy().view("<u4").reshape(-1).astype(np.int64)
    b4 = b[:, :4].copy().view("<u4").reshape(-1).astype(np.int64)
    diff = a != b
    first = np.argmax(diff, axis=1)
    rows = np.arange(len(a))
    lt6 = np.any(diff, axis=1) & (a[rows, first] < b[rows, first])
    return np.where(v4, a4 < b4, lt6)
