"""Vectorised value -> text conversions for output columns.

A column of texts is held as a ``uint8`` matrix of shape ``(n, w)``: row ``i`` holds the
bytes of text ``i`` from column 0 on, right-padded with NUL bytes ("compact"). A text
never contains NUL itself, so a whole output line can be laid out in fixed-width slots
and have the NUL padding deleted at the end (see :mod:`pypmacct.output.rows`), and a
compact text is left-justified (printf ``%-Ns``) by turning the NULs of its first
``N`` bytes into spaces.

Conversions work per column, never per cell: small integers through lookup tables,
wide integers through digit arithmetic, IPv4 addresses octet by octet, timestamps
through integer calendar arithmetic. Values with many possible spellings but few
distinct values in practice (IPv6 addresses, route distinguishers, strings) are
formatted once per distinct value and spread back with ``np.unique``'s inverse.
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
    ``%-<width>s``: longer texts are kept whole)."""
    n, w = m.shape
    if w <= width:
        out = np.full((n, width), 0x20, dtype=np.uint8)
        np.copyto(out[:, :w], m, where=m != 0)
        return out
    out = m.copy()
    head = out[:, :width]
    head[head == 0] = 0x20
    return out


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


def uint_text(values) -> np.ndarray:
    """Decimal text of unsigned integers (``%u``/``%llu``)."""
    a = np.asarray(values)
    n = len(a)
    if n == 0:
        return empty(0)
    if a.dtype.kind == "u" and a.dtype.itemsize <= 2:
        return _small_uint_table(a.dtype.itemsize)[a]
    a = a.astype(np.uint64, copy=False)
    ndig = 1 + np.searchsorted(_POW10, a, side="right")
    width = int(ndig.max())
    digits = _digits64(a, width)
    if width == 1:
        return digits
    # left-align: row i starts at its first significant digit
    flat = np.concatenate([digits.reshape(-1), np.zeros(width, dtype=np.uint8)])
    start = np.arange(n, dtype=np.int64) * width + (width - ndig)
    out = flat[start[:, None] + np.arange(width)[None, :]]
    out[np.arange(width)[None, :] >= ndig[:, None]] = 0
    return out


@lru_cache(maxsize=None)
def _small_uint_table(itemsize: int) -> np.ndarray:
    top = 256 if itemsize == 1 else 65536
    return from_bytes([str(i).encode() for i in range(top)])


def int_text(values) -> np.ndarray:
    """Decimal text of signed integers."""
    a = np.asarray(values).astype(np.int64, copy=False)
    neg = a < 0
    if not neg.any():
        return uint_text(a.astype(np.uint64))
    mag = uint_text(np.abs(a).astype(np.uint64))
    sign = np.where(neg, 0x2D, 0).astype(np.uint8)[:, None]
    return compact(hstack([sign, mag]))


@lru_cache(maxsize=None)
def _hex_table() -> np.ndarray:
    return from_bytes([b"%x" % i for i in range(65536)])


def hex_text(values) -> np.ndarray:
    """Lower-case hex without leading zeros (``%x``), for 16-bit values."""
    a = np.asarray(values)
    if len(a) == 0:
        return empty(0)
    return _hex_table()[a.astype(np.uint16)]


@lru_cache(maxsize=None)
def _fixed_table(width: int) -> np.ndarray:
    return from_bytes([b"%0*d" % (width, i) for i in range(10 ** width)])


def fixed_digits(values, width: int) -> np.ndarray:
    """Zero-padded decimal text of fixed ``width`` (``%0<width>d``) of values that fit."""
    a = np.asarray(values)
    if width <= 4:
        return _fixed_table(width)[a.astype(np.int64)]
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
    """Texts ``a.b`` for every pair of octets, their lengths, and ``.a.b`` variants."""
    pairs = [b"%d.%d" % (i >> 8, i & 255) for i in range(65536)]
    lens = np.array([len(p) for p in pairs], dtype=np.int64)
    return from_bytes(pairs), from_bytes([b"." + p for p in pairs]), lens


def ipv4_text(octets: np.ndarray) -> np.ndarray:
    """Dotted-quad text of an (n, 4) uint8 array of IPv4 addresses."""
    n = len(octets)
    first, second, lens = _octet_pairs()
    o = octets.astype(np.uint16)
    hi = (o[:, 0] << 8) | o[:, 1]
    lo = (o[:, 2] << 8) | o[:, 3]
    out = np.zeros((n, 16), dtype=np.uint8)
    out[:, :7] = first[hi]
    # the second half goes right after the first, which is 3 to 7 characters long
    length = lens[hi]
    tail = second[lo]
    for k in range(3, 8):
        rows = np.flatnonzero(length == k)
        if len(rows):
            out[rows, k:k + 8] = tail[rows]
    return out[:, :15]


def _ipv6_bytes(raw16: bytes) -> bytes:
    return socket.inet_ntop(socket.AF_INET6, raw16).encode()


def addr_text(addrs: np.ndarray, empty_text: bytes = b"") -> np.ndarray:
    """Text of ``ADDR_DTYPE`` addresses as pmacct's addr_to_str prints them; an unset
    address (family 0) gives ``empty_text``."""
    n = len(addrs)
    if n == 0:
        return empty(0)
    af = addrs["af"]
    raw = np.ascontiguousarray(addrs["addr"]).view(np.uint8).reshape(n, 16)
    v4 = af == 4
    v6 = af == 6
    all4 = bool(v4.all())
    if all4:
        return ipv4_text(raw[:, :4])
    out = np.zeros((n, 40 if v6.any() else max(16, len(empty_text))), dtype=np.uint8)
    if v4.any():
        out[v4, :15] = ipv4_text(raw[v4, :4])
    if v6.any():
        sub = np.ascontiguousarray(raw[v6]).view("V16").reshape(-1)
        uniq, inv = np.unique(sub, return_inverse=True)
        table = from_bytes([_ipv6_bytes(bytes(u)) for u in uniq])
        out[v6, : table.shape[1]] = table[inv.reshape(-1)]
    if empty_text:
        unset = (af != 4) & (af != 6)
        if unset.any():
            out[unset, : len(empty_text)] = np.frombuffer(empty_text, dtype=np.uint8)
    return out


def nexthop_text(addrs: np.ndarray, flow_af: np.ndarray, empty_text: bytes = b"") -> np.ndarray:
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
    return addr_text(conv, empty_text)


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
    return _proto_table(bool(numeric))[a.astype(np.uint8)]


_ROA = (b"u", b"i", b"v", b"V", b"U")


@lru_cache(maxsize=None)
def _roa_table() -> np.ndarray:
    return from_bytes([_ROA[i] if i < len(_ROA) else b"u" for i in range(256)])


def roa_text(values) -> np.ndarray:
    return _roa_table()[np.asarray(values).astype(np.uint8)]


@lru_cache(maxsize=None)
def _char_table() -> np.ndarray:
    return from_bytes([bytes([i]) if i else b"u" for i in range(256)])


def char_text(values) -> np.ndarray:
    """The sampling direction letter (``i``, ``e``, ``u``). pmacct fills in ``u``
    (unknown) whenever the primitive is aggregated and the exporter says nothing, so an
    unset value (0) prints as ``u`` too."""
    return _char_table()[np.asarray(values).astype(np.uint8)]


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
                   rfc3339: bool = False, utc: bool = False) -> np.ndarray:
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
        parts = [int_text(secs)]
        if usec:
            parts.append(constant(b".", n))
            parts.append(fixed_digits(frac, 6))
        return compact(hstack(parts)) if usec else parts[0]
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
