"""Classification per flow, a batch of packets at a time (pmacctd, uacctd).

As pmacct 0.10-1.5 did it: a bidirectional flow (addresses, ports, protocol; both
directions share one entry) has no class until a packet's payload matches a pattern;
from that packet on, every packet of the flow, in either direction, carries the class.
Each direction has ``classifier_tentatives`` tries (default 5): a packet that carries
payload and matches nothing uses one; packets without payload (a TCP handshake, pure
ACKs) use none. When both directions are out of tries the flow stays unclassified
(``unknown``) until it expires. A direction idle for longer than the flow lifetime
(``pmacctd_flow_lifetime``, 60 s; TCP 432000 s, as pmacct set it when classifiers are
on) starts over with its tries; when both are idle the class is forgotten too.

The payload is what follows the transport header (TCP: its data offset; UDP: 8 bytes;
other protocols: the IP payload; IPv4 non-first fragments: the IP payload), up to the
captured length and the IP length; it is prepared (NULs dropped, lowercased, at most
``snaplen`` bytes) and matched against the patterns in load order, the first match
wins.

Vectorised: entries are found with np.unique and a sorted key table (no per-packet
Python); only the packets of still unclassified flows that carry payload and are within
their direction's tries reach the regular expressions, in rounds (the k-th candidate of
every flow in round k), so that a flow stops being tried as soon as it is classified.
"""
from __future__ import annotations

import time

import numpy as np

from .patterns import Classifier, prepare_payload

KEY_BYTES = 40
TCP_LIFETIME = 432000          # pmacct's FLOW_TCPEST_LIFETIME, used with classifiers
PRUNE_INTERVAL = 60


class FlowClassifier:
    def __init__(self, classifiers: list[Classifier], tentatives: int = 5, snaplen: int = 128,
                 lifetime: int = 60, clock=time.time):
        self.classifiers = classifiers
        self.tentatives = int(tentatives)
        self.snaplen = int(snaplen)
        self.lifetime = int(lifetime) or 60
        self.clock = clock
        # the batch string table: id k is class k's name ("" = unknown)
        self.strings = [""] + [c.protocol for c in classifiers]
        self.keys = np.zeros(0, np.dtype((np.void, KEY_BYTES)))
        self.cls = np.zeros(0, np.int32)
        self.tent = np.zeros((0, 2), np.int32)
        self.last = np.zeros((0, 2), np.int64)
        self.tcp = np.zeros(0, bool)
        self.prune_deadline = int(self.clock()) + PRUNE_INTERVAL
        self.tried = 0                     # payloads matched against the patterns
        self.classified = 0                # flows that got a class

    def __len__(self) -> int:
        return len(self.keys)

    # -- the patterns ---------------------------------------------------------------
    def match(self, payload: bytes) -> int:
        """Class id of the first pattern that matches ``payload`` (raw bytes), or 0."""
        text = prepare_payload(payload, self.snaplen)
        self.tried += 1
        for c in self.classifiers:
            if c.regex.search(text):
                return c.id
        return 0

    # -- expiry -----------------------------------------------------------------------
    def _stale(self, now, last, tcp):
        """Per entry and direction: idle longer than its lifetime."""
        life = np.where(tcp, TCP_LIFETIME, self.lifetime)
        return now > last + life[:, None]

    def prune(self, now: int) -> None:
        if not len(self.keys):
            return
        dead = np.all(self._stale(now, self.last, self.tcp), axis=1)
        if dead.any():
            keep = ~dead
            self.keys, self.cls, self.tent = self.keys[keep], self.cls[keep], self.tent[keep]
            self.last, self.tcp = self.last[keep], self.tcp[keep]

    # -- one batch --------------------------------------------------------------------
    def classify(self, af, src, dst, proto, sport, dport, buf, pstart, pend) -> np.ndarray:
        """Class id per packet. Per packet: af (4/6), src/dst (n,16) uint8, proto,
        sport, dport, and where its payload lies in ``buf`` (bytes-like, sliced only for
        the packets tried: [pstart, pend), empty when pend <= pstart)."""
        n = len(af)
        out = np.zeros(n, np.int32)
        if not n or not self.classifiers:
            return out
        now = int(self.clock())
        if now > self.prune_deadline:
            self.prune(now)
            self.prune_deadline = now + PRUNE_INTERVAL
        proto = np.asarray(proto, np.uint8)
        sport = np.asarray(sport, np.int64)
        dport = np.asarray(dport, np.int64)
        # endpoint order: (address, port) compared bytewise; side 1 = the reverse
        a = np.zeros((n, 18), np.uint8)
        b = np.zeros((n, 18), np.uint8)
        a[:, :16], b[:, :16] = src, dst
        a[:, 16], a[:, 17] = sport >> 8, sport & 0xFF
        b[:, 16], b[:, 17] = dport >> 8, dport & 0xFF
        diff = a != b
        first = np.argmax(diff, axis=1)
        rows = np.arange(n)
        side = (np.any(diff, axis=1) & (a[rows, first] > b[rows, first])).astype(np.int64)
        k = np.zeros((n, KEY_BYTES), np.uint8)
        k[:, 0] = af
        k[:, 1] = proto
        rv = side.astype(bool)[:, None]
        k[:, 2:20] = np.where(rv, b, a)
        k[:, 20:38] = np.where(rv, a, b)
        kv = k.view(np.dtype((np.void, KEY_BYTES))).reshape(-1)
        ukeys, ufirst, inv = np.unique(kv, return_index=True, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        m = len(ukeys)
        # the entries' state at the start of the batch
        pos = np.searchsorted(self.keys, ukeys)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        exists = (pos < len(self.keys)) & (self.keys[pos_c] == ukeys) if len(self.keys) \
            else np.zeros(m, bool)
        tcp = proto[ufirst] == 6
        cls = np.zeros(m, np.int32)
        tent = np.full((m, 2), self.tentatives, np.int32)
        last = np.full((m, 2), now, np.int64)
        if exists.any():
            src_rows = pos_c[exists]
            cls[exists] = self.cls[src_rows]
            tent[exists] = self.tent[src_rows]
            last[exists] = self.last[src_rows]
            stale = self._stale(now, last, tcp)
            both = np.all(stale, axis=1)
            cls[both] = 0
            tent[stale] = self.tentatives
        # candidates: payload, flow unclassified, within the direction's tries
        has_payload = np.asarray(pend) > np.asarray(pstart)
        cand = (cls[inv] == 0) & has_payload
        ci = np.nonzero(cand)[0]
        mpos = np.full(m, n, np.int64)             # the matching packet of each entry
        mcls = np.zeros(m, np.int32)
        if len(ci):
            es = inv[ci] * 2 + side[ci]
            rank_side = _rank(es)
            ok = rank_side < tent[inv[ci], side[ci]]
            ci = ci[ok]
            if len(ci):
                e = inv[ci]
                rank = _rank(e)
                done = np.zeros(m, bool)
                ps = np.asarray(pstart)[ci].tolist()
                pe = np.asarray(pend)[ci].tolist()
                el, cil = e.tolist(), ci.tolist()
                match = self.match
                for r in range(int(rank.max()) + 1):
                    sel = np.nonzero((rank == r) & ~done[e])[0]
                    if not len(sel):
                        break
                    for j in sel.tolist():
                        cid = match(bytes(buf[ps[j]:pe[j]]))
                        if cid:
                            ent = el[j]
                            done[ent] = True
                            mpos[ent] = cil[j]
                            mcls[ent] = cid
        matched = mcls > 0
        self.classified += int(matched.sum())
        at = np.arange(n)
        out = np.where(cls[inv] > 0, cls[inv],
                       np.where(matched[inv] & (at >= mpos[inv]), mcls[inv], 0)).astype(np.int32)
        # tries used: payload packets before the match (all of them when none matched)
        used = np.zeros(2 * m, np.int64)
        counted = has_payload & (cls[inv] == 0) & (at < mpos[inv])
        np.add.at(used, (inv * 2 + side)[counted], 1)
        tent = np.maximum(tent - used.reshape(m, 2), 0).astype(np.int32)
        cls = np.where(matched, mcls, cls).astype(np.int32)
        seen = np.zeros(2 * m, bool)
        seen[inv * 2 + side] = True
        last = np.where(seen.reshape(m, 2), now, last)
        # back into the table
        if exists.any():
            rows_t = pos_c[exists]
            self.cls[rows_t] = cls[exists]
            self.tent[rows_t] = tent[exists]
            self.last[rows_t] = last[exists]
        add = ~exists
        if add.any():
            keys = np.concatenate([self.keys, ukeys[add]])
            order = np.argsort(keys, kind="stable")
            self.keys = keys[order]
            self.cls = np.concatenate([self.cls, cls[add]])[order]
            self.tent = np.concatenate([self.tent, tent[add]])[order]
            self.last = np.concatenate([self.last, last[add]])[order]
            self.tcp = np.concatenate([self.tcp, tcp[add]])[order]
        return out


def _rank(groups: np.ndarray) -> np.ndarray:
    """Per element, how many earlier elements share its group (input in packet order)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start = np.ones(len(g), bool)
    start[1:] = g[1:] != g[:-1]
    idx = np.arange(len(g))
    gstart = np.maximum.accumulate(np.where(start, idx, 0))
    rank = np.empty(len(g), np.int64)
    rank[order] = idx - gstart
    return rank


def payload_bounds(raw: np.ndarray, r, sel, frame_end: np.ndarray):
    """[start, end) of each selected packet's payload in the chunk buffer ``raw``
    (uint8, padded): after the TCP header (data offset), the UDP header, or the IP
    header for other protocols and IPv4 non-first fragments; bounded by the captured
    bytes and by the IP length (Ethernet padding is not payload)."""
    l4 = r.l4_off[sel]
    proto = r.proto[sel].astype(np.int64)
    ip_off = r.ip_off[sel]
    lim = len(raw) - 1
    ihl = (raw[np.clip(ip_off, 0, lim)] & 0x0F).astype(np.int64) * 4
    has_l4 = l4 >= 0
    thl = (raw[np.clip(l4 + 12, 0, lim)] >> 4).astype(np.int64) * 4
    start = np.where(proto == 6, l4 + thl, np.where(proto == 17, l4 + 8, l4))
    v4frag = ~has_l4 & (r.af[sel] == 4) & r.frag[sel]
    start = np.where(has_l4, start, np.where(v4frag, ip_off + ihl, -1))
    end = np.minimum(frame_end, ip_off + r.ip_len[sel])
    # a TCP header cut short or shorter than 20 bytes: no payload
    bad = (start < 0) | ((proto == 6) & has_l4 & (thl < 20))
    end = np.where(bad, 0, end)
    start = np.where(bad, 0, start)
    return start, end
