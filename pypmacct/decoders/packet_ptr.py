"""``packet_ptr`` custom primitives (aggregate_primitives): values read from the captured
packet bytes, for a batch of packets at once.

pmacct 1.7.7 keeps one pointer per layer for each packet (``packet``, ``mac``, ``vlan``,
``mpls``, ``l3``, ``l4``, ``payload``) and, for each ``packet_ptr`` of a primitive in
turn, copies ``len`` bytes from that layer's pointer plus the offset when the layer is
there, its protocol matches (``l3``: the ethertype, ``l4``: the IP protocol) and
``(layer - packet) + offset + len`` is *less than* the captured length; a later pointer
that applies overwrites an earlier one. Here every step is a gather over the batch: the
layer offsets come from :mod:`pypmacct.decoders.packet` (``Parsed``), the bytes from the
chunk's buffer.

The layers, as 1.7.7's pmacctd sets them:

- ``packet``: the first captured byte; ``mac``: the Ethernet header (Ethernet frames
  only); ``vlan``: the TCI of the first 802.1Q tag right after the Ethernet header;
  ``mpls``: the first label of the stack;
- ``l3``: the IPv4/IPv6 header;
- ``l4``: the header after the IP header(s) (IPv6 extension headers skipped), for
  fragments too (non-first fragments: their first data bytes);
- ``payload``: after the TCP header (its data offset) or the UDP header (and an 8-byte
  VXLAN header for UDP port 4789), for other protocols and non-first fragments right
  after the IP headers; only when it starts inside the captured bytes.
"""
from __future__ import annotations

import numpy as np

from ..maps.custom_primitives import CustomPrimitive

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VXLAN_PORT = 4789
VLEN_CHUNK = 2048       # packets per gather of len=vlen texts


class ListTable:
    """Interning into an existing string list (a classifier's): texts are appended after
    what it holds, once each."""

    def __init__(self, strings: list):
        self.strings = strings
        self._index: dict = {}
        self._seen = 0

    def intern(self, s: str) -> int:
        if self._seen < len(self.strings):         # the list grew elsewhere: index it
            for k in range(self._seen, len(self.strings)):
                self._index.setdefault(self.strings[k], k)
            self._seen = len(self.strings)
        i = self._index.get(s)
        if i is None:
            i = len(self.strings)
            self.strings.append(s)
            self._index[s] = i
            self._seen = len(self.strings)
        return i


def layer_offsets(r, sel, start, end, raw, eth) -> tuple[dict, dict]:
    """({layer: buffer offset or -1}, {layer: protocol}) for packets ``sel`` of the
    parse ``r``; ``start``/``end``: their first and past-the-last captured byte;
    ``raw``: the chunk's bytes (uint8, padded); ``eth``: which of them are Ethernet."""
    lim = len(raw) - 2
    af = r.af[sel]
    proto = r.proto[sel].astype(np.int64)
    l4 = r.l4_at[sel]
    frag = r.frag[sel]
    has_l4 = l4 >= 0
    safe = np.clip(l4, 0, lim)
    thl = (raw[np.minimum(safe + 12, lim)] >> 4).astype(np.int64) * 4
    skip = np.where(frag, 0, np.where(proto == 6, thl, np.where(proto == 17, 8, 0)))
    pay = np.where(has_l4, l4 + skip, -1)
    in_cap = has_l4 & (pay < end)
    dport = (raw[np.minimum(safe + 2, lim)].astype(np.int64) << 8) | \
        raw[np.minimum(safe + 3, lim)]
    vx = in_cap & ~frag & (proto == 17) & (dport == VXLAN_PORT) & (pay + 8 <= end)
    pay = np.where(in_cap, pay + np.where(vx, 8, 0), -1)
    offs = {
        "packet": start,
        "mac": np.where(eth, start, -1),
        "vlan": r.vlan_off[sel],
        "mpls": r.mpls_off[sel],
        "l3": r.ip_off[sel],
        "l4": l4,
        "payload": pay,
    }
    protos = {"l3": np.where(af == 4, ETH_IPV4, np.where(af == 6, ETH_IPV6, 0)),
              "l4": np.where(has_l4, proto, 0)}
    return offs, protos


def _view(raw: np.ndarray, dt) -> np.ndarray:
    """``raw`` seen as overlapping elements of ``dt``, one per byte offset."""
    d = np.dtype(dt)
    return np.ndarray((len(raw) - d.itemsize + 1,), d, buffer=raw, strides=(1,))


def _rows(raw: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each of ``pos``: one gather through an overlapping view."""
    v = _view(raw, f"V{width}")
    return v[np.minimum(pos, len(v) - 1)].view(np.uint8).reshape(len(pos), width).copy()


def fill(out: np.ndarray, prims, raw: np.ndarray, start, end, offs: dict, protos: dict,
         strings) -> None:
    """Write the record fields of the ``packet_ptr`` primitives ``prims`` (those in
    ``out``'s dtype) for these packets; text values are interned into ``strings``
    (a StringTable)."""
    n = len(out)
    caplen = end - start
    for cp in prims:
        if cp.name not in (out.dtype.names or ()) or not cp.packet_ptrs or n == 0:
            continue
        width = 0 if cp.vlen else cp.length
        at = np.full(n, -1, np.int64)            # where the value starts, last pointer wins
        for layer, proto, off in cp.packet_ptrs:
            base = offs[layer]
            ok = (base >= 0) & ((base - start) + off + width < caplen)
            if proto:
                ok &= protos.get(layer, np.zeros(n, np.int64)) == proto
            at = np.where(ok, base + off, at)
        have = at >= 0
        if not have.any():
            continue
        _store(out, cp, raw, at, have, end, strings)


def _store(out, cp: CustomPrimitive, raw, at, have, end, strings) -> None:
    name, sem = cp.name, cp.semantics
    i = np.nonzero(have)[0]
    if cp.vlen:       # str: to the end of the capture, its last byte excluded, up to a NUL
        size = np.maximum(end[i] - 1 - at[i], 0)
        for a in range(0, len(i), VLEN_CHUNK):     # bounded matrices for big captures
            ii, sz = i[a:a + VLEN_CHUNK], size[a:a + VLEN_CHUNK]
            w = int(sz.max())
            if w == 0:
                continue
            b = _rows(raw, at[ii], w)
            b[np.arange(w)[None, :] >= sz[:, None]] = 0
            _intern(out, name, ii, b, w, strings, "str")
        return
    if sem in ("u_int", "hex"):           # lengths 1, 2, 4, 8: big-endian words
        v = _view(raw, f">u{cp.length}")
        out[name][i] = v[np.minimum(at[i], len(v) - 1)]
        return
    b = _rows(raw, at[i], cp.length)
    if sem == "ip":
        addr = np.zeros((len(i), 16), np.uint8)
        addr[:, :cp.length] = b
        out[name]["af"][i] = 4 if cp.length == 4 else 6
        out[name]["addr"][i] = addr.view("V16").reshape(-1)
    elif sem == "mac":
        out[name][i] = np.ascontiguousarray(b).view("V6").reshape(-1)
    else:             # str (text up to the first NUL) or raw (pmacct's hex form)
        _intern(out, name, i, b, cp.length, strings, sem)


def _intern(out, name, i, b: np.ndarray, width: int, strings, sem: str) -> None:
    """String-table ids of the byte rows ``b`` (one text per distinct row)."""
    u, inv = np.unique(np.ascontiguousarray(b).view(f"V{width}").reshape(-1),
                       return_inverse=True)
    texts = []
    for x in u:
        bb = bytes(x)
        if sem == "raw":
            texts.append(bb.hex("-").upper())
        else:
            texts.append(bb.split(b"\0", 1)[0].decode("utf-8", "replace"))
    ids = np.array([strings.intern(t) if t else 0 for t in texts], np.int32)
    out[name][i] = ids[np.asarray(inv).reshape(-1)]
