"""nfacctd_allow_file: addresses and prefixes, pmacct's edge cases, reload."""
from __future__ import annotations

import numpy as np
import pytest

from pypmacct.allow import AllowFileError, AllowList
from pypmacct.runtime.log import Logger
from tests.unit.nfbuild import CaptureSink


def write(tmp_path, text):
    p = tmp_path / "allow.lst"
    p.write_text(text)
    return str(p)


def test_addresses_and_prefixes(tmp_path):
    al = AllowList.load(write(tmp_path, """
! a comment
192.0.2.1
10.0.0.0/8
  172.16.5.0 / 24
2001:db8::/32
2001:db8:ffff::1/128
# also a comment
"""))
    srcs = ["192.0.2.1", "192.0.2.2", "10.200.1.1", "172.16.5.77", "172.16.6.1",
            "2001:db8:1::1", "2001:db9::1", "::ffff:10.1.1.1", "::ffff:192.0.2.2", "not-an-ip"]
    got = al.allows_many(srcs)
    assert got.dtype == np.bool_
    assert got.tolist() == [True, False, True, True, False, True, False, True, False, False]
    assert len(al) == 5


def test_partial_byte_ipv6_prefix(tmp_path):
    # pmacct 1.7.7 turns the partial byte of an IPv6 mask into a full one (/60 acts as
    # /64); we apply the prefix as written
    al = AllowList.load(write(tmp_path, "2001:db8:0:10::/60\n"))
    assert al.allows("2001:db8:0:1f::1")
    assert not al.allows("2001:db8:0:20::1")


def test_bad_lines_are_skipped_and_logged(tmp_path):
    sink = CaptureSink()
    al = AllowList.load(write(tmp_path, "192.0.2.1\nbogus\n10.0.0.0/99\n"), Logger("default", "core", sink))
    assert al.allows("192.0.2.1") and len(al) == 1
    assert sum("Bad IP address" in l for l in sink.lines) == 2


def test_a_file_without_entries_refuses_everyone(tmp_path):
    al = AllowList.load(write(tmp_path, "! nothing here\n\n"))
    assert not al.allows_many(["192.0.2.1", "::1"]).any()


def test_missing_at_start_is_an_error(tmp_path):
    with pytest.raises(AllowFileError):
        AllowList.load(str(tmp_path / "missing"))


def test_reload(tmp_path):
    path = write(tmp_path, "192.0.2.1\n")
    sink = CaptureSink()
    al = AllowList.load(path, Logger("default", "core", sink))
    assert al.allows("192.0.2.1") and not al.allows("192.0.2.2")
    (tmp_path / "allow.lst").write_text("192.0.2.2\n")
    assert al.reload()
    assert not al.allows("192.0.2.1") and al.allows("192.0.2.2")      # memo dropped too
    (tmp_path / "allow.lst").unlink()
    assert not al.reload()
    assert al.allows("192.0.2.2")                                       # rolled back
    assert any("Rolling back old map" in l for l in sink.lines)


def test_many_checks_are_cheap(tmp_path):
    al = AllowList.load(write(tmp_path, "10.0.0.0/8\n"))
    srcs = [f"10.0.{i % 4}.1" for i in range(100_000)]
    assert al.allows_many(srcs).all()
