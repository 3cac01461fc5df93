"""Value -> text conversions of the output formats, against Python's own formatting
and pmacct's rules (addresses, MACs, RDs, protocols, timestamps in every mode)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import time

import numpy as np
import pytest

from pypmacct.output import values as V
from pypmacct.record import ADDR_DTYPE

from .print_support import addr


def texts(m):
    return V.to_list(m)


@pytest.fixture
def tz():
    """Switch the process time zone for a test."""
    old = os.environ.get("TZ")

    def set_tz(name):
        os.environ["TZ"] = name
        time.tzset()
    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


# ---- numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,top", [(np.uint8, 2**8), (np.uint16, 2**16),
                                       (np.uint32, 2**32), (np.uint64, 2**64)])
def test_uint_text_matches_str(dtype, top):
    rng = np.random.default_rng(7)
    a = rng.integers(0, min(top, 2**63), 5000, dtype=np.uint64).astype(dtype)
    a[:4] = [0, 1, 9, 10]
    a[4] = top - 1
    # every digit count is present
    a[5:5 + 20] = [min(10 ** k, top - 1) for k in range(20)]
    assert texts(V.uint_text(a)) == [str(int(x)) for x in a]


def test_uint_text_is_right_aligned_behind_nuls():
    m = V.uint_text(np.array([5, 12345, 300], dtype=np.uint32))
    assert bytes(m[0]) == b"\0" * 7 + b"5"
    assert bytes(m[2]) == b"\0" * 5 + b"300"
    assert bytes(V.compact(m)[2]) == b"300" + b"\0" * 5


def test_ljust_counts_text_bytes_whatever_the_padding():
    m = V.hstack([V.uint_text(np.array([7, 123456], dtype=np.uint64)),
                  V.ipv4_text(np.array([[10, 0, 0, 1], [1, 2, 3, 4]], dtype=np.uint8))])
    assert texts(V.ljust(m, 16)) == ["710.0.0.1       ", "1234561.2.3.4   "]


def test_ipv6_text_matches_inet_ntop():
    rng = np.random.default_rng(11)
    n = 50000
    w = rng.integers(0, 65536, (n, 8))
    w[rng.random((n, 8)) < 0.5] = 0              # zero runs of every length and place
    w[rng.random(n) < 0.1, 5] = 0xFFFF            # IPv4-mapped
    w[rng.random(n) < 0.2, :5] = 0
    w[rng.random(n) < 0.1, :6] = 0                # IPv4-compatible
    w[rng.random((n, 8)) < 0.05] = 1
    w[:4] = 0
    w[1, 7] = 1                                   # ::1
    w[2, 6:] = [0x0102, 0]                        # ::1.2.0.0
    w[3, 5] = 0xFFFF                              # ::ffff:0.0.0.0
    raw = w.astype(">u2").view(np.uint8).reshape(n, 16)
    assert texts(V.ipv6_text(raw)) == [socket.inet_ntop(socket.AF_INET6, bytes(r))
                                       for r in raw]


def test_int_text_signed():
    assert texts(V.int_text(np.array([-5, 0, 12, -1234567890123]))) == \
        ["-5", "0", "12", "-1234567890123"]


def test_hex_text_is_lowercase_without_leading_zeros():
    assert texts(V.hex_text(np.array([0x800, 0x86DD, 0, 0x8100, 0xFFFF], dtype=np.uint16))) \
        == ["800", "86dd", "0", "8100", "ffff"]


def test_ljust_pads_and_keeps_long_values_whole():
    m = V.from_bytes([b"ab", b"abcdef", b""])
    assert texts(V.ljust(m, 4)) == ["ab  ", "abcdef", "    "]


def test_float_text_and_json_real_match_jansson():
    assert texts(V.float_text(np.array([45.5, -0.1234567, 0.0]))) == \
        ["45.500000", "-0.123457", "0.000000"]
    assert V.json_real(45.5) == b"45.5"
    assert V.json_real(3.0) == b"3.0"
    assert V.json_real(0.1) == b"0.10000000000000001"
    assert V.json_real(1e20) == b"1e20"
    assert V.json_real(1e-5) == b"1.0000000000000001e-5"


def _jansson():
    name = ctypes.util.find_library("jansson")
    if not name:
        return None
    j = ctypes.CDLL(name)
    j.json_object.restype = ctypes.c_void_p
    j.json_string.restype = ctypes.c_void_p
    j.json_string.argtypes = [ctypes.c_char_p]
    j.json_real.restype = ctypes.c_void_p
    j.json_real.argtypes = [ctypes.c_double]
    j.json_object_set_new_nocheck.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    j.json_dumps.restype = ctypes.c_void_p
    j.json_dumps.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return j


def _dumps(j, key, value_ptr) -> bytes:
    o = j.json_object()
    j.json_object_set_new_nocheck(o, key, value_ptr)
    p = j.json_dumps(o, 0x100)      # JSON_PRESERVE_ORDER, as pmacct calls it
    return ctypes.string_at(p)


def test_json_strings_and_reals_escape_like_libjansson():
    """pmacct's JSON comes from libjansson: compare with the library itself."""
    j = _jansson()
    if j is None:
        pytest.skip("libjansson not installed (it comes with pmacct)")
    samples = ['plain', 'q"uote', 'back\\slash', 'tab\tnl\ncr\r', 'ctl\x01\x1f\x7f',
               'bs\b ff\f', 'slash/ok', 'ünïcödé €', '😀 astral', '']
    for s in samples:
        want = _dumps(j, b"k", j.json_string(s.encode()))
        got = b'{"k": "' + V.json_escape(s).encode() + b'"}'
        assert got == want, s
    for v in [45.5, 3.0, 0.1, 1e20, 1e-5, -12.345678, 123456789.125, 0.0, -0.5]:
        want = _dumps(j, b"r", j.json_real(v))
        assert b'{"r": ' + V.json_real(v) + b"}" == want, v


# ---- addresses -----------------------------------------------------------------------
def _addrs(items):
    a = np.zeros(len(items), dtype=ADDR_DTYPE)
    for i, s in enumerate(items):
        af, raw = addr(s)
        a["af"][i] = af
        a["addr"][i] = np.void(raw)
    return a


def test_ipv4_text_matches_inet_ntoa():
    rng = np.random.default_rng(3)
    o = rng.integers(0, 256, (20000, 4)).astype(np.uint8)
    o[:4] = [[0, 0, 0, 0], [255, 255, 255, 255], [1, 2, 3, 4], [10, 0, 100, 9]]
    assert texts(V.ipv4_text(o)) == [socket.inet_ntoa(bytes(r)) for r in o]


def test_addr_text_mixed_families_and_unset():
    items = ["10.1.2.3", "2001:db8::1", None, "::ffff:1.2.3.4", "::", "0.0.0.0",
             "fe80::1:2:3:4"]
    assert texts(V.addr_text(_addrs(items))) == \
        ["10.1.2.3", "2001:db8::1", "", "::ffff:1.2.3.4", "::", "0.0.0.0", "fe80::1:2:3:4"]
    assert texts(V.addr_text(_addrs(items), b"::"))[2] == "::"


def test_nexthop_text_follows_the_flow_family():
    hops = _addrs(["192.0.2.1", "192.0.2.1", "2001:db8::9", "::ffff:10.0.0.1",
                   "2001:db8::9", None, "192.0.2.1"])
    flow = np.array([4, 6, 6, 4, 4, 4, 0], dtype=np.uint8)
    assert texts(V.nexthop_text(hops, flow)) == \
        ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::9", "10.0.0.1", "", "", ""]


def test_mac_text():
    macs = np.array([bytes([0, 0x1b, 0x21, 0xaa, 0xbc, 0xff]), bytes(6)], dtype="V6")
    assert texts(V.mac_text(macs)) == ["00:1b:21:aa:bc:ff", "00:00:00:00:00:00"]


# ---- route distinguishers --------------------------------------------------------------
def test_rd_strings():
    assert V.rd_string(bytes(8)) == "0:0:0"
    assert V.rd_string(struct.pack("!HHI", 0, 65000, 100)) == "0:65000:100"
    assert V.rd_string(struct.pack("!H4sH", 1, socket.inet_aton("10.0.0.1"), 7)) == \
        "1:10.0.0.1:7"
    assert V.rd_string(struct.pack("!HIH", 2, 4200000000, 9)) == "2:4200000000:9"
    # pmacct's origin bits (0x2000 flow, 0x4000 BGP...) do not change the type
    assert V.rd_string(struct.pack("!HHI", 0x2000, 1, 2)) == "0:1:2"
    assert V.rd_string(struct.pack("!HHI", 0x1000, 0, 42)) == "vrfid:42"
    assert V.rd_string(struct.pack("!HHI", 5, 0, 42)) == "unknown"
    rds = np.array([bytes(8), struct.pack("!HHI", 0, 1, 2)], dtype="V8")
    assert texts(V.rd_text(rds)) == ["0:0:0", "0:1:2"]


# ---- enumerations ----------------------------------------------------------------------
def test_proto_names_from_pmacct_table():
    a = np.array([0, 1, 6, 17, 41, 47, 50, 58, 108, 132, 133, 134, 200, 255, 5, 7],
                 dtype=np.uint8)
    assert texts(V.proto_text(a)) == ["0", "icmp", "tcp", "udp", "ipv6", "gre", "esp",
                                      "ipv6-icmp", "IPcomp", "sctp", "fc", "134", "200",
                                      "255", "5", "7"]
    assert texts(V.proto_text(a, numeric=True)) == [str(int(x)) for x in a]


def test_roa_and_sampling_direction():
    assert texts(V.roa_text(np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8))) == \
        ["u", "i", "v", "V", "U", "u"]
    assert texts(V.char_text(np.array([ord("i"), ord("e"), ord("u"), 0], dtype=np.uint8))) \
        == ["i", "e", "u", "u"]


def test_string_text_transforms_and_escapes():
    strings = ["", "65000 65001 65002", 'lab"el', "x"]
    ids = np.array([1, 0, 2, 3, 1], dtype=np.int32)
    assert texts(V.string_text(ids, strings, V.bgp_underscores)) == \
        ["65000_65001_65002", "", 'lab"el', "x", "65000_65001_65002"]
    assert texts(V.string_text(ids, strings, None, json=True))[2] == 'lab\\"el'
    assert texts(V.string_text(np.array([0, 3]), strings, V.class_name)) == ["unknown", "x"]


# ---- timestamps --------------------------------------------------------------------------
T = 1677577561088000        # 2023-02-28 09:46:01.088000 UTC


def ts(us, **kw):
    return V.timestamp_string(us, **kw)


def test_timestamps_utc_modes():
    assert ts(T, utc=True) == "2023-02-28 09:46:01.088000"
    assert ts(T, utc=True, usec=False) == "2023-02-28 09:46:01"
    assert ts(T, utc=True, rfc3339=True) == "2023-02-28T09:46:01.088000Z"
    assert ts(T, utc=True, rfc3339=True, usec=False) == "2023-02-28T09:46:01Z"
    assert ts(T, since_epoch=True) == "1677577561.088000"
    assert ts(T, since_epoch=True, usec=False) == "1677577561"
    assert ts(T, since_epoch=True, rfc3339=True) == "1677577561.088000"


def test_timestamp_zero_prints_zero_date():
    assert ts(0, utc=True) == "0000-00-00 00:00:00.000000"
    assert ts(0, utc=True, rfc3339=True, usec=False) == "0000-00-00T00:00:00Z"
    assert ts(0, since_epoch=True) == "0.000000"
    assert ts(7, utc=True) == "0000-00-00 00:00:00.000007"


def test_timestamps_local_time_and_offsets(tz):
    tz("Europe/Zurich")
    assert ts(T) == "2023-02-28 10:46:01.088000"
    assert ts(T, rfc3339=True) == "2023-02-28T10:46:01.088000+01:00"
    summer = 1690000000_000000       # 2023-07-22, CEST
    assert ts(summer, rfc3339=True, usec=False) == "2023-07-22T06:26:40+02:00"
    assert ts(T, utc=True, rfc3339=True) == "2023-02-28T09:46:01.088000Z"
    # the zero date carries the zone of the epoch
    assert ts(0, rfc3339=True, usec=False) == "0000-00-00T00:00:00+01:00"
    tz("America/St_Johns")           # a half-hour zone, west of UTC
    assert ts(T, rfc3339=True, usec=False) == "2023-02-28T06:16:01-03:30"


def test_timestamps_across_a_dst_change_match_strftime(tz):
    tz("Europe/Zurich")
    change = 1679792400              # 2023-03-26 01:00:00 UTC: clocks go 02:00 -> 03:00
    secs = np.arange(change - 1800, change + 1800, 7, dtype=np.int64)
    got = texts(V.timestamp_text(secs * 1_000_000, usec=False, rfc3339=True))
    want = []
    for s in secs.tolist():
        tm = time.localtime(s)
        off = tm.tm_gmtoff
        want.append(time.strftime("%Y-%m-%dT%H:%M:%S", tm)
                    + f"+{off // 3600:02d}:{off % 3600 // 60:02d}")
    assert got == want


def test_timestamps_random_against_strftime(tz):
    tz("Australia/Lord_Howe")        # half-hour daylight saving shift
    rng = np.random.default_rng(11)
    secs = rng.integers(1, 2_000_000_000, 3000)
    us = secs * 1_000_000 + rng.integers(0, 1_000_000, 3000)
    got = texts(V.timestamp_text(us))
    want = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(s))) + ".%06d" % (u % 10**6)
            for s, u in zip(secs.tolist(), us.tolist())]
    assert got == want
