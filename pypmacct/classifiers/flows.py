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

``account()`` adds what pmacct 0.10-1.5 did with the counters of a flow's first packets
(seen while it was still 'unknown'): they end up in the class found later. Here the
records of those packets are held back in the flow table's side store until the flow is
classified (they leave with the class), runs out of tries in both directions, holds more
than ``hold_per_flow`` records, has held them for the flow lifetime, or the store is
over ``hold_bytes`` (the oldest flows first): then they leave as 'unknown' and the flow
is not held again. Every packet leaves exactly once, with its own record, so totals are
exact whatever the plugins do with their caches (docs/classifiers.md says why this was
chosen over a correcting minus/plus pair).
"""
from __future__ import annotations

import time

import numpy as np

from .patterns import Classifier, prepare_payload

KEY_BYTES = 40
HOLD_BYTES = 16384000          # pmacctd_flow_buffer_size's default
TCP_LIFETIME = 432000          # pmacct's FLOW_TCPEST_LIFETIME, used with classifiers
PRUNE_INTERVAL = 60


class FlowClassifier:
    def __init__(self, classifiers: list[Classifier], tentatives: int = 5, snaplen: int = 128,
                 lifetime: int = 60, clock=time.time, hold_bytes: int = HOLD_BYTES,
                 hold_per_flow: int | None = None):
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
        # holding back the records of unclassified flows (account())
        self.fid = np.zeros(0, np.int64)       # a flow's id, for its held records
        self.hold_n = np.zeros(0, np.int64)    # records held
        self.hold_t = np.zeros(0, np.int64)    # when the first of them came
        self.loose = np.zeros(0, bool)         # released unclassified: not held again
        self.fin = np.zeros((0, 2), bool)      # TCP: a FIN seen, per direction
        self.next_fid = 1
        self.hold_bytes = int(hold_bytes)
        self.hold_per_flow = int(hold_per_flow) if hold_per_flow else 4 * self.tentatives + 16
        self.h_recs = None                     # the held records (the batches' dtype)
        self.h_fid = np.zeros(0, np.int64)
        self.held_classified = 0               # records released with a class
        self.held_unknown = 0                  # records released as 'unknown'
        self.released_early = 0                # flows released by a bound, tries left
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
        dead = np.all(self._stale(now, self.last, self.tcp), axis=1) & (self.hold_n == 0)
        if dead.any():
            self._keep(~dead)

    _COLUMNS = ("keys", "cls", "tent", "last", "tcp", "fid", "hold_n", "hold_t", "loose",
                "fin")

    def _keep(self, sel) -> None:
        for name in self._COLUMNS:
            setattr(self, name, getattr(self, name)[sel])

    # -- one batch --------------------------------------------------------------------
    def classify(self, af, src, dst, proto, sport, dport, buf, pstart, pend) -> np.ndarray:
        """Class id per packet. Per packet: af (4/6), src/dst (n,16) uint8, proto,
        sport, dport, and where its payload lies in ``buf`` (bytes-like, sliced only for
        the packets tried: [pstart, pend), empty when pend <= pstart)."""
        return self._run(af, src, dst, proto, sport, dport, buf, pstart, pend)[0]

    def _run(self, af, src, dst, proto, sport, dport, buf, pstart, pend):
        """classify(), plus per packet its entry (``inv``), per entry its table row
        after the update and its class at the start of the batch, and per packet its
        direction (``side``)."""
        n = len(af)
        out = np.zeros(n, np.int32)
        if not n or not self.classifiers:
            z = np.zeros(n, np.int64)
            return out, z, np.zeros(0, np.int64), np.zeros(0, np.int32), z
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
            self.loose[src_rows[both[exists]]] = False
            fin = self.fin[src_rows]
            fin[stale[exists]] = False
            self.fin[src_rows] = fin
        before = cls.copy()
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
            k = int(add.sum())
            new = {"keys": ukeys[add], "cls": cls[add], "tent": tent[add], "last": last[add],
                   "tcp": tcp[add], "fid": np.arange(self.next_fid, self.next_fid + k),
                   "hold_n": np.zeros(k, np.int64), "hold_t": np.zeros(k, np.int64),
                   "loose": np.zeros(k, bool), "fin": np.zeros((k, 2), bool)}
            self.next_fid += k
            keys = np.concatenate([self.keys, new["keys"]])
            order = np.argsort(keys, kind="stable")
            for name in self._COLUMNS:
                setattr(self, name, np.concatenate([getattr(self, name), new[name]])[order])
        rows = np.searchsorted(self.keys, ukeys)
        return out, inv, rows, before, side


    # -- holding back the packets of flows not classified yet -------------------------
    def account(self, recs: np.ndarray, af, src, dst, proto, sport, dport, buf, pstart,
                pend, tcp_flags=None) -> np.ndarray:
        """The records to pass on now, for a batch ``recs`` of packets (one record per
        packet, in order, with a 'class' field; the other arguments as classify(), and
        the TCP flags per packet, 0 for other protocols).

        The records of a flow without a class that may still get one are held back;
        they leave with the class when a later packet finds it, or as 'unknown' when the
        flow runs out of tries, closes (a TCP RST, or a FIN each way) or a bound
        releases it. The result holds the released records (oldest first), then the
        batch's records that are not held."""
        now = int(self.clock())
        if self.h_recs is None:
            self.h_recs = recs[:0].copy()
            self.hold_cap = max(1, self.hold_bytes // max(1, recs.dtype.itemsize))
        req: list = []                      # (fids, class per fid) to release
        self._expire_holds(now, req)
        out, inv, rows_u, before_u, side = self._run(af, src, dst, proto, sport, dport, buf,
                                                     pstart, pend)
        n = len(recs)
        if not n or not len(rows_u):
            if n:
                recs["class"] = out
            return self._release(req, recs)
        cls_u = self.cls[rows_u]
        pend_u = (before_u == 0) & ~self.loose[rows_u]
        exhausted_u = np.all(self.tent[rows_u] == 0, axis=1)
        closed_u = np.zeros(len(rows_u), bool)
        if tcp_flags is not None:
            fl = np.asarray(tcp_flags, np.int64)
            rst = np.bincount(inv[(fl & 0x04) != 0], minlength=len(rows_u)) > 0
            f = np.nonzero(fl & 0x01)[0]
            if len(f):
                fin = self.fin[rows_u]
                fin[inv[f], side[f]] = True
                self.fin[rows_u] = fin
            closed_u = rst | np.all(self.fin[rows_u], axis=1)
        # a pending flow classified in this batch: all of its packets take the class
        cls_p = np.where(pend_u[inv], cls_u[inv], out).astype(np.int32)
        recs["class"] = cls_p
        # what was held for flows now classified or out of tries leaves
        done = pend_u & (self.hold_n[rows_u] > 0) & ((cls_u > 0) | exhausted_u)
        if done.any():
            self._request(req, rows_u[done], cls_u[done], loose=False)
        # closed without a class: what was held leaves as unknown, nothing more is held
        shut = pend_u & (cls_u == 0) & ~exhausted_u & closed_u
        if shut.any():
            self._request(req, rows_u[shut], np.zeros(int(shut.sum()), np.int32), loose=True)
        # this batch's packets of flows still pending are held
        hold_u = pend_u & (cls_u == 0) & ~exhausted_u & ~closed_u
        hold_p = hold_u[inv]
        hp = np.nonzero(hold_p)[0]
        if len(hp):
            self.h_recs = np.concatenate([self.h_recs, recs[hp]])
            self.h_fid = np.concatenate([self.h_fid, self.fid[rows_u[inv[hp]]]])
            cnt = np.bincount(inv[hp], minlength=len(rows_u))
            r = rows_u[cnt > 0]
            self.hold_t[r] = np.where(self.hold_n[r] == 0, now, self.hold_t[r])
            self.hold_n[r] += cnt[cnt > 0]
            over = r[self.hold_n[r] > self.hold_per_flow]
            if len(over):
                self._request(req, over, np.zeros(len(over), np.int32), loose=True)
        self._cap(req)
        return self._release(req, recs[~hold_p] if len(hp) else recs)

    def release_all(self) -> np.ndarray | None:
        """Every held record, as 'unknown' (end of input, shutdown)."""
        if self.h_recs is None:
            return None
        req: list = []
        rows = np.nonzero(self.hold_n > 0)[0]
        if len(rows):
            self._request(req, rows, np.zeros(len(rows), np.int32), loose=True)
        return self._release(req, self.h_recs[:0])

    @property
    def held(self) -> int:
        return 0 if self.h_recs is None else len(self.h_recs)

    def _request(self, req, rows, classes, loose: bool) -> None:
        if loose:
            early = np.any(self.tent[rows] > 0, axis=1)
            self.released_early += int(early.sum())
            self.loose[rows] = True
        req.append((self.fid[rows], np.asarray(classes, np.int32)))
        self.hold_n[rows] = 0
        self.hold_t[rows] = 0

    def _expire_holds(self, now: int, req) -> None:
        """Flows that have held their records for the flow lifetime let them go."""
        if not self.held:
            return
        old = np.nonzero((self.hold_n > 0) & (now - self.hold_t >= self.lifetime))[0]
        if len(old):
            self._request(req, old, np.zeros(len(old), np.int32), loose=True)

    def _cap(self, req) -> None:
        """Over hold_bytes: the flows holding the longest let theirs go first."""
        total = int(self.hold_n.sum())
        if total <= self.hold_cap:
            return
        rows = np.nonzero(self.hold_n > 0)[0]
        order = rows[np.lexsort((self.fid[rows], self.hold_t[rows]))]
        cum = np.cumsum(self.hold_n[order])
        k = int(np.searchsorted(cum, total - self.hold_cap)) + 1
        self._request(req, order[:k], np.zeros(k, np.int32), loose=True)

    def _release(self, req, tail: np.ndarray) -> np.ndarray:
        """The held records of the requested flows (with their class), then ``tail``."""
        if not req:
            return tail
        fids = np.concatenate([f for f, _c in req])
        classes = np.concatenate([c for _f, c in req])
        order = np.argsort(fids, kind="stable")
        fids, classes = fids[order], classes[order]
        take = np.isin(self.h_fid, fids)
        if not take.any():
            return tail
        got = self.h_recs[take]
        got["class"] = classes[np.searchsorted(fids, self.h_fid[take])]
        known = int((got["class"] > 0).sum())
        self.held_classified += known
        self.held_unknown += len(got) - known
        self.h_recs, self.h_fid = self.h_recs[~take], self.h_fid[~take]
        return np.concatenate([got, tail]) if len(tail) else got


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
