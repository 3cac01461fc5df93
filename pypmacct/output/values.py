"""Vectorised value -> text conversions for output columns.

A column of texts is held as a ``uint8`` matrix of shape ``(n, w)``: row ``i`` holds the
bytes of text ``i`` with NUL bytes as padding. A text never contains NUL itself, so a
whole output line can be laid out in fixed-width slots and have the NUL padding deleted
at the end (see :mod:`pypmacct.output.rows`). The padding may be anywhere: numbers are
right-aligned behind leading NULs, addresses keep a NUL hole after short groups. Texts
built from lookup tables and strings are "compact" (NULs only at the end);
:func:`compact` makes any text so. :func:`ljust` (printf ``%-Ns``) appends the spaces a
text needs, counted from its non-NUL bytes.

Conversions work per column, never per cell: small integers through lookup tables,
wide integers four digits at a time through a table, IPv4 addresses two octets at a
time through a table, IPv6 addresses group by group with the zero-run compression of
``inet_ntop`` done in array arithmetic, timestamps through integer calendar
arithmetic. Values with many possible spellings but few distinct values in practice
(route distinguishers, strings, reals) are formatted once per distinct value and
spread back with ``np.unique``'s inverse.
"""
from __future__ import annotations

import socket
import struct
import time
from functools import lru_cache

import numpy as np

# --------------------------------------------------------------------------------------
# basic text-matrix helpers
# --------------------------------------------------------------------------------------


def empty(n: int, width: int = 0) -> np.ndarray:
    return np.zeros((n, width), dtype=np.uint8)


def from_bytes(items) -> np.ndarray:
    """A text matrix from a sequence of ``bytes`` (none may contain NUL)."""
    items = list(items)
    if not items:
        return empty(0)
    width = max(1, max(len(b) for b in items))
    arr = np.array(items, dtype=f"S{width}")
    return arr.view(np.uint8).reshape(len(items), width)


def rows_of(table: np.ndarray, idx) -> np.ndarray:
    """Rows ``idx`` of a text table (a lookup of many values in a small table of
    texts), gathered as one ``w``-byte item per row: numpy's fancy indexing copies the
    narrow rows of a 2-D uint8 array about half as fast."""
    k, w = table.shape        # w >= 1: from_bytes makes every table at least 1 wide
    idx = np.asarray(idx)
    cells = np.ascontiguousarray(table).view(np.dtype((np.void, w))).reshape(k)
    return cells[idx].view(np.uint8).reshape(len(idx), w)


def from_strs(items) -> np.ndarray:
    return from_bytes([s.encode("utf-8") for s in items])


def constant(text: bytes, n: int) -> np.ndarray:
    row = np.frombuffer(text, dtype=np.uint8)
    return np.broadcast_to(row, (n, len(text)))


def lengths(m: np.ndarray) -> np.ndarray:
    return np.count_nonzero(m, axis=1)


def blank_rows(m: np.ndarray) -> np.ndarray:
    """Rows whose text is empty."""
    if m.shape[1] == 0:
        return np.ones(m.shape[0], dtype=bool)
    return ~m.any(axis=1)


def ljust(m: np.ndarray, width: int) -> np.ndarray:
    """Left-justify every text to at least ``width`` characters with spaces (printf
    ``%-<width>s``: longer texts are kept whole): the text, then as many spaces as it
    is short of ``width``, then NULs."""
    n, w = m.shape
    if n == 0:
        return np.zeros((0, max(w, width)), dtype=np.uint8)
    short = width - np.count_nonzero(m, axis=1)
    pad_w = int(short.max())
    if pad_w <= 0:
        return m
    pad = (np.arange(pad_w, dtype=np.int64) < short[:, None]).view(np.uint8) * np.uint8(0x20)
    return np.concatenate([m, pad], axis=1)


def compact(m: np.ndarray) -> np.ndarray:
    """Move every row's non-NUL bytes to the front, keeping their order."""
    n, w = m.shape
    if n == 0 or w == 0:
        return m
    nz = m != 0
    pos = np.cumsum(nz, axis=1) - 1
    out = np.zeros_like(m)
    rows, cols = np.nonzero(nz)
    out[rows, pos[rows, cols]] = m[rows, cols]
    return out


compact_text = compact      # for functions whose ``compact`` argument hides the name


def where_empty(m: np.ndarray, text: bytes) -> np.ndarray:
    """Replace empty texts by ``text``."""
    blank = blank_rows(m)
    if not blank.any():
        return m
    out = np.zeros((m.shape[0], max(m.shape[1], len(text))), dtype=np.uint8)
    out[:, : m.shape[1]] = m
    out[blank, :] = 0
    out[blank, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out


def hstack(parts) -> np.ndarray:
    """Concatenate matrices side by side (the result is compact only if every part but
    the last is full)."""
    return np.concatenate(parts, axis=1)


def to_list(m: np.ndarray) -> list[str]:
    """Python strings (for tests and small outputs)."""
    return [bytes(r).replace(b"\0", b"").decode("utf-8") for r in m]


def per_unique(values: np.ndarray, fmt) -> np.ndarray:
    """Format each distinct value once with ``fmt(value) -> bytes`` and spread back."""
    n = len(values)
    if n == 0:
        return empty(0)
    uniq, inv = np.unique(values, return_inverse=True)
    table = from_bytes([fmt(u) for u in uniq])
    return table[inv.reshape(-1)]


# --------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------

_POW10 = np.array([10 ** k for k in range(1, 20)], dtype=np.uint64)


def _digits32(a: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of uint32 values, ``width`` wide."""
    out = np.empty((len(a), width), dtype=np.uint8)
    x = a.astype(np.uint32, copy=True)
    ten = np.uint32(10)
    for j in range(width - 1, -1, -1):
        q = x // ten
        out[:, j] = (x - q * ten).astype(np.uint8) + np.uint8(0x30)
        x = q
    return out


def _digits64(a: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of uint64 values (split in 9-digit groups so that
    the digit loop runs on 32-bit integers)."""
    if width <= 9:
        return _digits32(a.astype(np.uint32), width)
    billion = np.uint64(10 ** 9)
    lo = (a % billion).astype(np.uint32)
    return np.concatenate([_digits64(a // billion, width - 9), _digits32(lo, 9)], axis=1)


def _low_zero_bytes(v: np.ndarray) -> np.ndarray:
    """How many low-order bytes of each (nonzero) uint64 are zero."""
    low_bit = v & (~v + np.uint64(1))
    return (np.log2(low_bit.astype(np.float64)).astype(np.uint64) >> np.uint64(3))


def _left_align(m: np.ndarray) -> np.ndarray:
    """Right-aligned texts (leading NULs) moved to the left: each row's bytes are
    shifted as one little-endian integer, a word at a time."""
    n, w = m.shape
    if n == 0 or w == 0:
        return m
    nw = (w + 7) // 8
    if w == 8 * nw and m.flags.c_contiguous:
        words = m.view("<u8")
    else:
        words = np.zeros((n, nw), dtype="<u8")
        words.view(np.uint8)[:, :w] = m
    if nw == 1:
        v = words[:, 0]
        drop = _low_zero_bytes(v | np.uint64(1 << 63))
        return (v >> (drop << np.uint64(3))).view(np.uint8).reshape(n, 8)[:, :w]
    nonzero = words != 0
    lead = nonzero.argmax(axis=1)                 # the first word holding text
    first = words[np.arange(n), lead] | np.where(nonzero.any(axis=1), 0, 1 << 63).astype(np.uint64)
    drop = lead.astype(np.uint64) * np.uint64(8) + _low_zero_bytes(first)
    words = np.concatenate([words, np.zeros((n, 1), dtype="<u8")], axis=1)
    q = (drop >> np.uint64(3)).astype(np.intp)[:, None] + np.arange(nw)
    r = ((drop & np.uint64(7)) << np.uint64(3))[:, None]
    lo = np.take_along_axis(words, np.minimum(q, nw), axis=1)     # column nw is zero
    hi = np.take_along_axis(words, np.minimum(q + 1, nw), axis=1)
    out = (lo >> r) | ((hi << (np.uint64(63) - r)) << np.uint64(1))
    return out.view(np.uint8)[:, :w]


@lru_cache(maxsize=None)
def _quads():
    """Four-digit texts of 0..9999 as uint32 (their bytes): zero padded ("0042"), and
    right-aligned behind NULs without leading zeros for the leading group ("\0\0" "42",
    all NUL for 0) and for a number's only group ("\0\0\0" "0" for 0)."""
    i = np.arange(10000)
    digits = np.stack([(i // 10 ** k) % 10 for k in (3, 2, 1, 0)], axis=1) + 0x30
    full = np.ascontiguousarray(digits.astype(np.uint8))
    ndig = 1 + (i >= 10) + (i >= 100) + (i >= 1000)
    lead = full.copy()
    lead[np.arange(4) < (4 - ndig)[:, None]] = 0
    only = lead.copy()
    lead[0] = 0
    return full.view("<u4").ravel(), lead.view("<u4").ravel(), only.view("<u4").ravel()


def uint_text(values, compact: bool = False) -> np.ndarray:
    """Decimal text of unsigned integers (``%u``/``%llu``), right-aligned behind NULs
    (compact with ``compact``, and always for 8 and 16-bit values)."""
    a = np.asarray(values)
    n = len(a)
    if n == 0:
        return empty(0)
    if a.dtype.kind == "u" and a.dtype.itemsize <= 2:
        return rows_of(_small_uint_table(a.dtype.itemsize), a)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
        return rows_of(_small_uint_table(1), a)
    a = a.astype(np.uint64, copy=False)
    top = int(a.max())
    ngroups = max(1, (len(str(top)) + 3) // 4)
    if top < 2 ** 32:
        x = a.astype(np.uint32)
        base = np.uint32(10000)
    else:
        x = a.copy()
        base = np.uint64(10000)
    full, lead, only = _quads()
    out = np.empty((n, ngroups), dtype=np.uint32)
    # groups of four digits from the right; a group with nothing left of it is leading
    for c in range(ngroups - 1, -1, -1):
        last = c == ngroups - 1
        if c == 0:
            out[:, c] = (only if last else lead)[x.astype(np.intp)]
            break
        q = x // base
        r = (x - q * base).astype(np.intp)
        out[:, c] = np.where(q != 0, full[r], (only if last else lead)[r])
        x = q
    text = out.view(np.uint8).reshape(n, 4 * ngroups)
    return _left_align(text) if compact else text


@lru_cache(maxsize=None)
def _small_uint_table(itemsize: int) -> np.ndarray:
    top = 256 if itemsize == 1 else 65536
    return np.ascontiguousarray(
        uint_text(np.arange(top, dtype=np.uint32), compact=True)[:, :3 if top == 256 else 5])


def int_text(values, compact: bool = False) -> np.ndarray:
    """Decimal text of signed integers."""
    a = np.asarray(values).astype(np.int64, copy=False)
    neg = a < 0
    if not neg.any():
        return uint_text(a.astype(np.uint64), compact)
    mag = uint_text(np.abs(a).astype(np.uint64))
    sign = np.where(neg, 0x2D, 0).astype(np.uint8)[:, None]
    return compact_text(hstack([sign, mag]))


@lru_cache(maxsize=None)
def _hex_table() -> np.ndarray:
    return np.ascontiguousarray(_hex_groups()[0].view(np.uint8).reshape(65536, 8)[:, :4])


def hex_text(values) -> np.ndarray:
    """Lower-case hex without leading zeros (``%x``), for 16-bit values."""
    a = np.asarray(values)
    if len(a) == 0:
        return empty(0)
    return rows_of(_hex_table(), a.astype(np.uint16))


@lru_cache(maxsize=None)
def _fixed_table(width: int) -> np.ndarray:
    return from_bytes([b"%0*d" % (width, i) for i in range(10 ** width)])


def fixed_digits(values, width: int) -> np.ndarray:
    """Zero-padded decimal text of fixed ``width`` (``%0<width>d``) of values that fit."""
    a = np.asarray(values)
    if width <= 4:
        return rows_of(_fixed_table(width), a.astype(np.int64))
    return _digits64(a.astype(np.uint64), width)


def float_text(values) -> np.ndarray:
    """``%f`` (six decimals), as pmacct prints GeoIP coordinates in text outputs."""
    return per_unique(np.asarray(values, dtype=np.float64), lambda v: b"%f" % float(v))


def json_real(v: float) -> bytes:
    """A real as jansson writes it: ``%.17g``, then ``.0`` if it would read as an
    integer, and the exponent without ``+`` or leading zeros."""
    s = "%.17g" % v
    if "e" in s:
        mant, exp = s.split("e")
        sign = "-" if exp.startswith("-") else ""
        s = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    elif "." not in s and "n" not in s:
        s += ".0"
    return s.encode()


def json_real_text(values) -> np.ndarray:
    return per_unique(np.asarray(values, dtype=np.float64), lambda v: json_real(float(v)))


# --------------------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _octet_pairs():
    """Texts of every pair of octets as little-endian uint64 (their bytes, NUL padded):
    ``a.b.`` and ``c.d``, and the length of the first in bits."""
    octet = _small_uint_table(1)
    text = np.zeros((256, 8), dtype=np.uint8)
    text[:, :3] = octet
    text = text.view("<u8").ravel()
    bits = (8 * np.count_nonzero(octet, axis=1)).astype(np.uint64)
    a, b = np.arange(65536) >> 8, np.arange(65536) & 255
    dot = np.uint64(0x2E)
    second = text[a] | (dot << bits[a]) | (text[b] << (bits[a] + np.uint64(8)))
    first_bits = bits[a] + bits[b] + np.uint64(16)
    first = second | (dot << (first_bits - np.uint64(8)))
    return first, second, first_bits


def ipv4_text(octets: np.ndarray) -> np.ndarray:
    """Dotted-quad text of an (n, 4) uint8 array of IPv4 addresses (16 bytes, compact):
    the texts of the two octet pairs, the second shifted in right after the first."""
    n = len(octets)
    first, second, bits = _octet_pairs()
    pairs = np.ascontiguousarray(octets[:, :4], dtype=np.uint8).view(">u2").astype(np.intp)
    hi = pairs[:, 0]
    a = first[hi]
    b = second[pairs[:, 1]]
    shift = bits[hi]                        # 32..64
    out = np.empty((n, 2), dtype="<u8")
    out[:, 0] = a | ((b << (shift - np.uint64(1))) << np.uint64(1))
    out[:, 1] = b >> (np.uint64(64) - shift)
    return out.view(np.uint8).reshape(n, 16)


@lru_cache(maxsize=None)
def _hex_groups():
    """``%x`` of 0..65535 as little-endian uint64 (its bytes, NUL padded) and its
    length."""
    i = np.arange(65536, dtype=np.uint64)
    digits = np.stack([(i >> np.uint64(4 * k)) & np.uint64(15) for k in (3, 2, 1, 0)], axis=1)
    chars = np.where(digits < 10, digits + 0x30, digits + 0x57).astype(np.uint8)
    length = 1 + (i >= 16) + (i >= 256) + (i >= 4096)
    right = np.ascontiguousarray(chars).view("<u4").ravel().astype(np.uint64)
    text = right >> (np.uint64(8) * (np.uint64(4) - length.astype(np.uint64)))
    return text, length.astype(np.uint8)


def _concat_words(parts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Concatenate, row by row, byte strings held as little-endian uint64 (up to 8 bytes
    each, ``lengths`` long) into compact texts ``width`` bytes wide."""
    n, k = parts.shape
    nw = (width + 7) // 8
    acc = np.zeros((n, nw + 1), dtype="<u8")
    flat = acc.reshape(-1)
    base = np.arange(n, dtype=np.int64) * (nw + 1)     # each row's first word in flat
    off = np.zeros(n, dtype=np.int64)                  # each row's length so far, bytes
    for j in range(k):
        q = base + (off >> 3)
        r = ((off & 7) << 3).astype(np.uint64)
        p = parts[:, j]
        flat[q] |= p << r
        flat[q + 1] |= (p >> np.uint64(1)) >> (np.uint64(63) - r)
        off += lengths[:, j]
    return acc.view(np.uint8)[:, :width]


def ipv6_text(raw: np.ndarray, compact: bool = False) -> np.ndarray:
    """Text of an (n, 16) uint8 array of IPv6 addresses as glibc's ``inet_ntop`` writes
    it: groups in lower-case hex without leading zeros, the first longest run of two or
    more zero groups written ``::``, and ``::a.b.c.d`` / ``::ffff:a.b.c.d`` for
    IPv4-compatible and IPv4-mapped addresses. Each group (with its ``:``) fills a
    5-byte slot (40 bytes with NUL holes), or, with ``compact``, 40 compact bytes."""
    n = len(raw)
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    words = raw.view(">u2").astype(np.intp)                 # (n, 8)
    zero = words == 0
    cur = np.zeros(n, dtype=np.int8)                        # zero run ending at group j
    best = np.zeros(n, dtype=np.int8)                       # the first longest run
    end = np.zeros(n, dtype=np.int8)
    for j in range(8):
        cur = (cur + 1) * zero[:, j]
        longer = cur > best
        best = np.maximum(best, cur)
        end[longer] = j
    start = end - best + 1
    cols = np.arange(8)
    in_run = (best >= 2)[:, None] & (cols >= start[:, None]) & (cols <= end[:, None])
    keep = ~in_run
    sep = keep.copy()                                       # ':' before the group
    sep[:, 0] = False
    sep[:, 1:] &= keep[:, :-1]
    hexes, hexlen = _hex_groups()
    parts = hexes[words]
    parts = np.where(sep, (parts << np.uint64(8)) | np.uint64(0x3A), parts)
    parts *= keep
    lengths = (hexlen[words] + sep) * keep
    r = np.flatnonzero(best >= 2)
    parts[r, start[r]] = 0x3A3A                             # '::' for the run
    lengths[r, start[r]] = 2
    halves = raw.view("<u8")
    head = (halves[:, 0] == 0) & ((halves[:, 1] & np.uint64(0xFFFF)) == 0)
    compat = head & ((halves[:, 1] >> np.uint64(16)) & np.uint64(0xFFFF) == 0) & ~zero[:, 6]
    mapped = head & ((halves[:, 1] >> np.uint64(16)) & np.uint64(0xFFFF) == 0xFFFF)
    if compact:
        out = _concat_words(parts, lengths, 40)
    else:
        out = parts.view(np.uint8).reshape(n, 8, 8)[:, :, :5].reshape(n, 40)
    for rows, prefix in ((np.flatnonzero(compat), b"::"), (np.flatnonzero(mapped), b"::ffff:")):
        if len(rows):                                       # '::a.b.c.d', '::ffff:a.b.c.d'
            t = np.zeros((len(rows), 40), dtype=np.uint8)
            t[:, :len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
            t[:, len(prefix):len(prefix) + 16] = ipv4_text(raw[rows, 12:16])
            out[rows] = t
    return out


def addr_text(addrs: np.ndarray, empty_text: bytes = b"", compact: bool = False) -> np.ndarray:
    """Text of ``ADDR_DTYPE`` addresses as pmacct's addr_to_str prints them; an unset
    address (family 0) gives ``empty_text``. IPv6 texts have NUL holes unless
    ``compact``."""
    n = len(addrs)
    if n == 0:
        return empty(0)
    af = addrs["af"]
    raw = np.ascontiguousarray(addrs["addr"]).view(np.uint8).reshape(n, 16)
    four = ipv4_text(raw[:, :4])
    v4 = af == 4
    if bool(v4.all()):
        return four
    six = np.flatnonzero(af == 6)
    words = 5 if len(six) else 2
    words = max(words, (len(empty_text) + 7) // 8)
    out = np.zeros((n, words), dtype="<u8")
    out[:, :2] = four.view("<u8") * v4[:, None]
    if len(six):
        out[six, :words] = 0
        t6 = ipv6_text(raw.take(six, axis=0), compact)
        out[six, :t6.shape[1] // 8] = t6.view("<u8")
    if empty_text:
        unset = np.flatnonzero((af != 4) & (af != 6))
        if len(unset):
            e = np.frombuffer(empty_text.ljust(8 * words, b"\0"), dtype="<u8")
            out[unset] = e
    return out.view(np.uint8).reshape(n, 8 * words)


def nexthop_text(addrs: np.ndarray, flow_af: np.ndarray, empty_text: bytes = b"",
                 compact: bool = False) -> np.ndarray:
    """pmacct's addr_to_str2: print a BGP next hop in the family of its flow. An IPv4
    next hop of an IPv6 flow prints IPv4-mapped; an IPv4-mapped IPv6 next hop of an
    IPv4 flow prints as IPv4; anything else that does not fit, or a flow of unknown
    family, prints empty."""
    n = len(addrs)
    conv = np.zeros(n, dtype=addrs.dtype)
    af = addrs["af"]
    raw = np.ascontiguousarray(addrs["addr"]).view(np.uint8).reshape(n, 16)
    out_raw = np.zeros((n, 16), dtype=np.uint8)
    out_af = np.zeros(n, dtype=np.uint8)
    # same family
    same4 = (flow_af == 4) & (af == 4)
    same6 = (flow_af == 6) & (af == 6)
    out_af[same4] = 4
    out_af[same6] = 6
    out_raw[same4 | same6] = raw[same4 | same6]
    # v6 (mapped) next hop on a v4 flow: pmacct only looks at bytes 10 and 11
    m64 = (flow_af == 4) & (af == 6) & (raw[:, 10] == 0xFF) & (raw[:, 11] == 0xFF)
    out_af[m64] = 4
    out_raw[m64, :4] = raw[m64, 12:16]
    # v4 next hop on a v6 flow: ::ffff:a.b.c.d
    m46 = (flow_af == 6) & (af == 4)
    out_af[m46] = 6
    out_raw[m46, 10:12] = 0xFF
    out_raw[m46, 12:16] = raw[m46, :4]
    conv["af"] = out_af
    conv["addr"] = out_raw.view("V16").reshape(-1)
    return addr_text(conv, empty_text, compact)


@lru_cache(maxsize=None)
def _hex2():
    return from_bytes([b"%02x" % i for i in range(256)])


def mac_text(macs: np.ndarray) -> np.ndarray:
    """``xx:xx:xx:xx:xx:xx`` (lower case) of an array of 6-byte values."""
    n = len(macs)
    raw = np.ascontiguousarray(macs).view(np.uint8).reshape(n, 6)
    hex2 = _hex2()
    out = np.empty((n, 17), dtype=np.uint8)
    for k in range(6):
        out[:, 3 * k: 3 * k + 2] = hex2[raw[:, k]]
        if k < 5:
            out[:, 3 * k + 2] = 0x3A
    return out


# --------------------------------------------------------------------------------------
# route distinguishers
# --------------------------------------------------------------------------------------

RD_TYPE_MASK = 0x1FFF
RD_TYPE_VRFID = 0x1000


def rd_string(raw8: bytes) -> str:
    """An 8-byte route distinguisher (type + value, network order) as pmacct prints it:
    ``type:asn:value``, ``type:ip:value``, ``vrfid:value`` or ``unknown``."""
    raw8 = raw8.ljust(8, b"\0")
    rtype = struct.unpack("!H", raw8[:2])[0] & RD_TYPE_MASK
    if rtype == 0:
        asn, val = struct.unpack("!HI", raw8[2:])
        return f"0:{asn}:{val}"
    if rtype == 1:
        ip = socket.inet_ntoa(raw8[2:6])
        val = struct.unpack("!H", raw8[6:])[0]
        return f"1:{ip}:{val}"
    if rtype == 2:
        asn, val = struct.unpack("!IH", raw8[2:])
        return f"2:{asn}:{val}"
    if rtype == RD_TYPE_VRFID:
        return f"vrfid:{struct.unpack('!I', raw8[4:])[0]}"
    return "unknown"


def rd_text(rds: np.ndarray) -> np.ndarray:
    n = len(rds)
    if n == 0:
        return empty(0)
    sub = np.ascontiguousarray(rds).view("V8").reshape(-1)
    return per_unique(sub, lambda u: rd_string(bytes(u)).encode())


# --------------------------------------------------------------------------------------
# small enumerations
# --------------------------------------------------------------------------------------

# pmacct's own protocol table (pmacct-data.h): names for the numbers it knows, the
# number itself for the others; protocols from 134 up print as numbers.
_PROTO_NAMES = {
    1: "icmp", 2: "igmp", 3: "ggp", 4: "ipencap", 6: "tcp", 8: "egp", 9: "igp", 17: "udp",
    18: "mux", 41: "ipv6", 43: "ipv6-route", 44: "ipv6-frag", 46: "rsvp", 47: "gre",
    50: "esp", 51: "ah", 55: "mobile", 56: "tlsp", 58: "ipv6-icmp", 59: "ipv6-nonxt",
    60: "ipv6-opts", 80: "iso-ip", 83: "vines", 88: "eigrp", 89: "ospf", 91: "larp",
    93: "ax.25", 94: "ipip", 98: "encap", 102: "pnni", 103: "pim", 108: "IPcomp",
    111: "ipx-in-ip", 112: "vrrp", 115: "l2tp", 124: "isis", 132: "sctp", 133: "fc",
}
PROTOCOLS_NUMBER = 134


def proto_name(p: int, numeric: bool = False) -> str:
    if numeric or p >= PROTOCOLS_NUMBER:
        return str(p)
    return _PROTO_NAMES.get(p, str(p))


@lru_cache(maxsize=None)
def _proto_table(numeric: bool) -> np.ndarray:
    return from_bytes([proto_name(i, numeric).encode() for i in range(256)])


def proto_text(values, numeric: bool = False) -> np.ndarray:
    a = np.asarray(values)
    if len(a) == 0:
        return empty(0)
    return rows_of(_proto_table(bool(numeric)), a.astype(np.uint8))


_ROA = (b"u", b"i", b"v", b"V", b"U")


@lru_cache(maxsize=None)
def _roa_table() -> np.ndarray:
    return from_bytes([_ROA[i] if i < len(_ROA) else b"u" for i in range(256)])


def roa_text(values) -> np.ndarray:
    return rows_of(_roa_table(), np.asarray(values).astype(np.uint8))


@lru_cache(maxsize=None)
def _char_table() -> np.ndarray:
    return from_bytes([bytes([i]) if i else b"u" for i in range(256)])


def char_text(values) -> np.ndarray:
    """The sampling direction letter (``i``, ``e``, ``u``). pmacct fills in ``u``
    (unknown) whenever the primitive is aggregated and the exporter says nothing, so an
    unset value (0) prints as ``u`` too."""
    return rows_of(_char_table(), np.asarray(values).astype(np.uint8))


# --------------------------------------------------------------------------------------
# strings (string-table ids)
# --------------------------------------------------------------------------------------


def json_escape(s: str) -> str:
    """Escape a string's content the way jansson does (no surrounding quotes)."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t"}.get(ch, "\\u%04X" % o))
        else:
            out.append(ch)
    return "".join(out)


def _needs_json_escape(s: str) -> bool:
    return any(ch in s for ch in '"\\') or any(ord(ch) < 0x20 for ch in s)


def string_text(ids, strings, transform=None, json: bool = False) -> np.ndarray:
    """Text of string-table ids; ``transform(str) -> str`` is applied first."""
    ids = np.asarray(ids)
    n = len(ids)
    if n == 0:
        return empty(0)

    def fmt(i):
        i = int(i)
        s = strings[i] if 0 <= i < len(strings) else ""
        if transform is not None:
            s = transform(s)
        s = s.replace("\0", "")
        if json and _needs_json_escape(s):
            s = json_escape(s)
        return s.encode("utf-8")

    return per_unique(ids, fmt)


def bgp_underscores(s: str) -> str:
    """pmacct prints AS paths and communities with spaces turned into underscores."""
    return s.replace(" ", "_")


def class_name(s: str) -> str:
    return s if s else "unknown"


# --------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------


def _civil(days: np.ndarray):
    """(year, month, day) of days since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = y + (m <= 2)
    return y, m, d


def _gmtoff(t: int) -> int:
    return time.localtime(t).tm_gmtoff


def utc_offsets(secs: np.ndarray, utc: bool) -> np.ndarray:
    """Seconds east of UTC of the local time zone at each instant (0 with ``utc``)."""
    n = len(secs)
    if utc or n == 0:
        return np.zeros(n, dtype=np.int64)
    step = 900      # zone transitions fall on quarter hours
    buckets = secs // step
    ub, inv = np.unique(buckets, return_inverse=True)
    inv = inv.reshape(-1)
    off = np.empty(len(ub), dtype=np.int64)
    odd = []
    for i, b in enumerate(ub.tolist()):
        a, z = _gmtoff(b * step), _gmtoff(b * step + step - 1)
        off[i] = a
        if a != z:
            odd.append(i)
    out = off[inv]
    for i in odd:      # a transition inside the bucket: look each second up
        rows = np.flatnonzero(inv == i)
        out[rows] = [_gmtoff(int(s)) for s in secs[rows].tolist()]
    return out


def _tz_suffix(offsets: np.ndarray) -> np.ndarray:
    """``Z`` for UTC, else ``+hh:mm`` / ``-hh:mm`` (RFC 3339, as pmacct appends it)."""
    n = len(offsets)
    out = np.zeros((n, 6), dtype=np.uint8)
    zulu = offsets == 0
    out[zulu, 0] = ord("Z")
    other = ~zulu
    if other.any():
        o = offsets[other]
        sign = np.where(o < 0, ord("-"), ord("+")).astype(np.uint8)
        a = np.abs(o)
        hh = fixed_digits(a // 3600, 2)
        mm = fixed_digits((a % 3600) // 60, 2)
        block = np.empty((len(o), 6), dtype=np.uint8)
        block[:, 0] = sign
        block[:, 1:3] = hh
        block[:, 3] = ord(":")
        block[:, 4:6] = mm
        out[other] = block
    return out


def timestamp_text(usecs, *, usec: bool = True, since_epoch: bool = False,
                   rfc3339: bool = False, utc: bool = False, compact: bool = False) -> np.ndarray:
    """Timestamps (microseconds since the epoch) as pmacct's compose_timestamp writes
    them: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in local time (or UTC), ``T`` instead of the
    space and a zone suffix with ``rfc3339``, or ``secs[.ffffff]`` since the epoch. A
    zero timestamp prints as ``0000-00-00 00:00:00``."""
    us = np.asarray(usecs).astype(np.int64, copy=False)
    n = len(us)
    if n == 0:
        return empty(0)
    secs = us // 1_000_000
    frac = us % 1_000_000
    if since_epoch:
        parts = [int_text(secs, compact)]
        if usec:
            parts.append(constant(b".", n))
            parts.append(fixed_digits(frac, 6))
        return compact_text(hstack(parts)) if usec else parts[0]
    offsets = utc_offsets(secs, utc)
    local = secs + offsets
    days = local // 86400
    sod = local % 86400
    y, mo, d = _civil(days)
    out = np.empty((n, 19), dtype=np.uint8)
    out[:, 0:4] = fixed_digits(y, 4)
    out[:, 4] = ord("-")
    out[:, 5:7] = fixed_digits(mo, 2)
    out[:, 7] = ord("-")
    out[:, 8:10] = fixed_digits(d, 2)
    out[:, 10] = ord("T") if rfc3339 else ord(" ")
    out[:, 11:13] = fixed_digits(sod // 3600, 2)
    out[:, 13] = ord(":")
    out[:, 14:16] = fixed_digits((sod % 3600) // 60, 2)
    out[:, 16] = ord(":")
    out[:, 17:19] = fixed_digits(sod % 60, 2)
    zero = secs == 0
    if zero.any():
        out[zero] = np.frombuffer(
            b"0000-00-00T00:00:00" if rfc3339 else b"0000-00-00 00:00:00", dtype=np.uint8)
    parts = [out]
    if usec:
        parts.append(constant(b".", n))
        parts.append(fixed_digits(frac, 6))
    if rfc3339:
        parts.append(_tz_suffix(offsets))
    return hstack(parts) if len(parts) > 1 else out


def timestamp_string(us: int, **kw) -> str:
    return to_list(timestamp_text(np.array([us], dtype=np.int64), **kw))[0]
