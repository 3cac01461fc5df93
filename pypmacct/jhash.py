"""Bob Jenkins' lookup2 hash, the ``jhash`` of Linux 2.4 that pmacct 1.7.7 carries: the
value behind ``pcap_ifindex: hash`` and the tee plugin's IPv6 ``hash-crc32`` balancing.
Plain integers: it hashes a name or an address, never a batch."""
from __future__ import annotations

GOLDEN = 0x9E3779B9
_M32 = 0xFFFFFFFF


def mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """lookup2's reversible mix of three 32-bit words."""
    a = (a - b - c) & _M32; a ^= c >> 13
    b = (b - c - a) & _M32; b ^= (a << 8) & _M32
    c = (c - a - b) & _M32; c ^= b >> 13
    a = (a - b - c) & _M32; a ^= c >> 12
    b = (b - c - a) & _M32; b ^= (a << 16) & _M32
    c = (c - a - b) & _M32; c ^= b >> 5
    a = (a - b - c) & _M32; a ^= c >> 3
    b = (b - c - a) & _M32; b ^= (a << 10) & _M32
    c = (c - a - b) & _M32; c ^= b >> 15
    return a, b, c


def jhash(key: bytes) -> int:
    """The hash of ``key`` with seed 0 (all pmacct uses): 12 bytes (three little-endian
    words) mixed at a time, then the length and the last 0-11 bytes."""
    a = b = GOLDEN
    c = 0
    i, n = 0, len(key)
    while n - i >= 12:
        a = (a + int.from_bytes(key[i:i + 4], "little")) & _M32
        b = (b + int.from_bytes(key[i + 4:i + 8], "little")) & _M32
        c = (c + int.from_bytes(key[i + 8:i + 12], "little")) & _M32
        a, b, c = mix(a, b, c)
        i += 12
    c = (c + n) & _M32
    rest = key[i:]
    a = (a + int.from_bytes(rest[0:4], "little")) & _M32
    b = (b + int.from_bytes(rest[4:8], "little")) & _M32
    # the length took the low byte of c: the tail's bytes 8-10 go above it
    c = (c + (int.from_bytes(rest[8:11], "little") << 8)) & _M32
    return mix(a, b, c)[2]


def jhash_3words(a: int, b: int, c: int) -> int:
    """The hash of three 32-bit words, seed 0."""
    return mix((a + GOLDEN) & _M32, (b + GOLDEN) & _M32, c)[2]
