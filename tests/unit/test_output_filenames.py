"""Dynamic print_output_file names: $-variables, strftime, $tzone, grouping."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pypmacct.aggregate import KeyBuilder
from pypmacct.output.filenames import (FileNamer, has_non_time_variables, is_dynamic,
                                       strftime_name)

from .print_support import keys_for

T = 1704067200          # 2024-01-01 00:00:00 UTC


@pytest.fixture
def zurich():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Zurich"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_dynamic_detection():
    assert not is_dynamic("/tmp/out.txt")
    assert is_dynamic("/tmp/out-%Y.txt")
    assert is_dynamic("/tmp/$tag.txt")
    assert not has_non_time_variables("/tmp/%Y$tzone.txt")
    assert has_non_time_variables("/tmp/%Y-$tag.txt")


def test_substitution_as_pmacct_does_it():
    n = FileNamer("x", refresh_time=300, history_secs=3600, post_tag=7, post_tag2=8)
    assert n.substitute("f-$tag-$tag2-$post_tag-$post_tag2-$ref-$hst", None, 1, 2) == \
        "f-1-2-7-8-300-3600"
    # peer_src_ip: dots and colons become underscores; not aggregated: null
    assert n.substitute("$peer_src_ip", "192_0_2_1", 0, 0) == "192_0_2_1"
    assert n.substitute("p-$peer_src_ip", None, 0, 0) == "p-null"
    # one trailing underscore is not part of the name; other names are left alone
    assert n.substitute("a-$tag_b", None, 5, 0) == "a-$tag_b"
    assert n.substitute("a-$tag_.txt", None, 5, 0) == "a-5_.txt"
    assert n.substitute("a-$unknown-$tzone", None, 5, 0) == "a-$unknown-$tzone"


def test_strftime_and_tzone_utc_and_local(zurich):
    assert strftime_name("%Y%m%d-%H%M$tzone", T, utc=True) == "20240101-0000Z"
    assert strftime_name("%Y%m%d-%H%M$tzone", T, utc=False) == "20240101-0100+01:00"
    assert strftime_name("$tzone-$tzone", T, utc=True) == "Z-$tzone"   # first one only
    assert strftime_name("/plain/name", T, utc=True) == "/plain/name"


def test_names_per_row_and_grouping_in_first_seen_order():
    rows = [dict(peer_src_ip="192.0.2.1", tag=1, packets=1, bytes=1),
            dict(peer_src_ip="2001:db8::1", tag=1, packets=1, bytes=1),
            dict(peer_src_ip="192.0.2.1", tag=2, packets=1, bytes=1),
            dict(peer_src_ip="192.0.2.1", tag=1, packets=1, bytes=1)]
    kb, keys, _ = keys_for("peer_src_ip,tag", rows)
    n = FileNamer("/d/$peer_src_ip/%Y-$tag.csv", utc=True)
    groups = n.group(keys, np.full(len(keys), T))
    assert [(name, list(rows)) for name, rows in groups] == [
        ("/d/192_0_2_1/2024-1.csv", [0, 3]),
        ("/d/2001_db8__1/2024-1.csv", [1]),
        ("/d/192_0_2_1/2024-2.csv", [2]),
    ]
    single = n.group(keys, np.full(len(keys), T), single=True)
    assert [(name, list(r)) for name, r in single] == [("/d/192_0_2_1/2024-1.csv",
                                                        [0, 1, 2, 3])]


def test_names_from_time_stamps_per_row():
    rows = [dict(dst_port=1, packets=1, bytes=1)] * 3
    kb, keys, _ = keys_for("dst_port", rows)
    n = FileNamer("/d/%H.txt", utc=True)
    groups = n.group(keys, np.array([T, T + 3600, T]))
    assert [(name, list(r)) for name, r in groups] == [("/d/00.txt", [0, 2]),
                                                       ("/d/01.txt", [1])]


def test_static_name_is_one_group():
    kb, keys, _ = keys_for("dst_port", [dict(dst_port=1)] * 2)
    n = FileNamer("/d/out.txt")
    assert [(a, list(b)) for a, b in n.group(keys, np.zeros(2, np.int64))] == \
        [("/d/out.txt", [0, 1])]
    assert n.name_for(keys, None, T) == "/d/out.txt"


def test_empty_purge_name_uses_null_values():
    kb = KeyBuilder(("peer_src_ip",))
    n = FileNamer("/d/$peer_src_ip-$tag-%Y.txt", utc=True)
    assert n.name_for(np.zeros(0, kb.key_dtype), None, T) == "/d/null-0-2024.txt"
