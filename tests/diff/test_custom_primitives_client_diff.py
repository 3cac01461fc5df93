"""Custom primitives in memory tables: pmacct 1.7.7's nfacctd (memory plugins) queried
by its own client, ours by ours, on one capture; the outputs must be identical.

Columns of every fixed-length semantics (u_int of 2 and 4 bytes, hex, ip v4 and v6,
mac, raw cut and not, str) after the built-in ones, in formatted, CSV, JSON and the
event formats, with -a, -T, -E; the -c/-M/-N rules of 1.7.7 (a custom primitive may be
named but not matched: a value for it is refused, `*` or no value leaves it out).

Compared as in test_memory_diff: rows as sorted lists, 1.7.7's client asked until two
replies agree. With custom primitives 1.7.7's client no longer skips entries that read
as all zeros, so the zero entries its reply framing glitches into the output (counters
0, which no real entry has) show up as rows: those are taken out of its output.

Where 1.7.7 is wrong and ours is not (docs/differences.md), a separate test checks
ours on its own: a -M/-N query naming exactly the table's built-in primitives finds
nothing in 1.7.7 once the table has custom primitives.
"""
from __future__ import annotations

import json

import pytest

from tests.diff.test_custom_primitives_diff import PRIMITIVES
from tests.diff.test_memory_diff import both
from tests.support import flowgen
from tests.support.memory import (C_CLIENT, MemoryDaemon, normalise_table, our_client,
                                  split_table)
from tests.support.oracle import our_binary, pmacct_binary

pytestmark = pytest.mark.diff

ALL_CP = ("in_vlan_cp", "nh_cp", "tos_hex", "src6_cp", "srcmac_cp", "octets_cp",
          "dst_as_cp", "src4_raw", "src4_raw2", "dst4_str", "oct8", "oct8h")
# 8-byte integers (IPFIX octetDeltaCount)
MORE = ("name=oct8 field_type=1 len=8 semantics=u_int\n"
        "name=oct8h field_type=1 len=8 semantics=hex\n")
TABLES = {
    "cp": ("src_port",) + ALL_CP,
    "cponly": ("in_vlan_cp", "tos_hex"),
    # customs written among built-ins: printed after them, in aggregate order
    "mixed": ("tos_hex", "src_host", "in_vlan_cp", "proto"),
}
FORMATS = ("formatted", "csv", "json", "event_formatted", "event_csv")


@pytest.fixture(scope="module")
def cdaemons(tmp_path_factory, pmacct_nfacctd):
    work = tmp_path_factory.mktemp("custom-memory-diff")
    cap = work / "capture.pcap"
    flowgen.write_capture(cap, version=10, records=1200, seed=81, ipv6_share=0.3)
    prims = work / "prims.lst"
    prims.write_text(PRIMITIVES + MORE)
    extra = {"aggregate_primitives": str(prims)}
    theirs = MemoryDaemon(pmacct_binary("nfacctd"), TABLES, cap, work / "pmacct",
                          extra=extra).start()
    ours = MemoryDaemon(our_binary("nfacctd"), TABLES, cap, work / "ours",
                        extra=extra).start()
    try:
        t_tot = theirs.wait_loaded(C_CLIENT)
        o_tot = ours.wait_loaded(our_client())
        assert o_tot == t_tot, (t_tot, o_tot)
        yield theirs, ours
    finally:
        theirs.stop()
        ours.stop()


def _counter_cells(row: str, fmt: str, sep: str):
    if fmt == "json":
        d = json.loads(row)
        return [d.get("packets"), d.get("bytes")]
    cells = row.rstrip("\n").split(sep) if fmt == "csv" else row.split()
    return cells[-2:]


def _without_zero_rows(text: str, fmt: str, sep: str) -> str:
    """1.7.7's output without glitch rows (packets and bytes 0); the total adjusted."""
    if fmt.startswith("event_"):
        return text
    head, rows, tail = split_table(text, fmt)
    keep = [r for r in rows if _counter_cells(r, fmt, sep) not in (["0", "0"], [0, 0])]
    dropped = len(rows) - len(keep)
    if dropped and tail:
        n = int(tail[-1].split(": ")[1].split()[0])
        tail = tail[:-1] + [f"For a total of: {n - dropped} entries\n"]
    return "".join(head + keep + tail)


def _same(daemons, table, args, sep=","):
    t, o = both(daemons, table, args)
    assert o.returncode == t.returncode, (t.stdout[-300:], o.stdout[-300:])
    if "-O" in args:
        fmt = args[args.index("-O") + 1]
    elif "-s" in args or "-M" in args:
        fmt = "formatted"
    else:
        assert o.stdout == t.stdout
        return t, o
    theirs = _without_zero_rows(t.stdout.decode(), fmt, sep)
    ours = o.stdout.decode()
    if fmt == "json":
        # byte for byte, key order included
        assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    else:
        assert normalise_table(ours, fmt) == normalise_table(theirs, fmt)
    return t, o


STAT_CASES = [(t, f) for t in TABLES for f in FORMATS]


@pytest.mark.parametrize("table,fmt", STAT_CASES, ids=[f"{t}-{f}" for t, f in STAT_CASES])
def test_stats_with_custom_columns(cdaemons, table, fmt):
    t, o = _same(cdaemons, table, ["-s", "-O", fmt])
    text = o.stdout.decode()
    assert len(split_table(text, fmt)[1]) > 10
    if fmt in ("csv", "formatted"):
        head = text.splitlines()[0]
        for name in TABLES[table]:
            if name in ALL_CP:
                assert name in head
    if table == "cp" and fmt == "csv":
        assert "2001:db8:" in text and "0A-" in text     # ip v6 and raw values present


@pytest.mark.parametrize("args", [
    ["-s", "-a"], ["-s", "-a", "-O", "csv"], ["-s", "-a", "-O", "json"],
    ["-s", "-T", "bytes,5"], ["-s", "-O", "csv", "-E", ";"], ["-s", "-u"],
], ids=lambda a: " ".join(a))
def test_stats_options_with_custom_columns(cdaemons, args):
    for table in ("cp", "mixed"):
        _same(cdaemons, table, args, sep=";" if ";" in args else ",")


def _a_host(daemons) -> str:
    r = daemons[1].query(our_client(), "mixed", ["-s", "-O", "json"])
    return json.loads(r.stdout.splitlines()[0])["ip_src"]


@pytest.mark.parametrize("table,args", [
    # a value for a custom primitive: refused, as 1.7.7
    ("cponly", ["-c", "in_vlan_cp", "-M", "5"]),
    ("cp", ["-c", "src_port,in_vlan_cp", "-N", "8080,20"]),
    ("cp", ["-c", "in_vlan_cp,tos_hex", "-N", "*,3"]),
    # named but not matched (wildcard or no value)
    ("cp", ["-c", "in_vlan_cp", "-N", "*", "-n", "all"]),
    ("cp", ["-c", "in_vlan_cp", "-M", "*"]),
    ("cp", ["-c", "in_vlan_cp", "-M", "*", "-O", "csv"]),
    ("cp", ["-c", "dst_port,in_vlan_cp", "-N", "0", "-n", "all"]),
    ("cp", ["-c", "dst_port,in_vlan_cp", "-M", "0,*", "-O", "json"]),
    ("mixed", ["-c", "dst_port,tos_hex", "-N", "0;1", "-n", "all"]),
    # not a primitive of the plugin
    ("cp", ["-c", "nosuch", "-M", "*"]),
    ("cp", ["-c", "src_port,nosuch", "-N", "*"]),
    ("cp", ["-U"]),
    ("mixed", ["-U"]),
], ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_match_rules_with_custom_primitives(cdaemons, table, args):
    _same(cdaemons, table, args)


def test_match_on_host_with_custom_columns(cdaemons):
    """A query naming a primitive the table lacks (dst_port, zero there) takes 1.7.7's
    masked search, which it gets right: rows of one source address, custom columns
    printed."""
    host = _a_host(cdaemons)
    for fmt in ("formatted", "csv", "json"):
        t, o = _same(cdaemons, "mixed", ["-c", "src_host,dst_port", "-M", f"{host},0",
                                         "-O", fmt])
        assert host in o.stdout.decode()


def test_exact_match_with_custom_primitives_finds_the_rows(cdaemons):
    """-M/-N naming exactly the table's built-in primitives: 1.7.7 looks the entry up
    by hash with its client's (meaningless) custom buffer and never finds it; ours
    answers with the rows, the same ones -s lists (docs/differences.md)."""
    theirs, ours = cdaemons
    host = _a_host(cdaemons)
    rows = [json.loads(r) for r in ours.query(our_client(), "mixed",
                                              ["-s", "-O", "json"]).stdout.splitlines()]
    want = sorted((r for r in rows if r["ip_src"] == host and r["ip_proto"] == "tcp"),
                  key=json.dumps)
    args = ["-c", "src_host,proto", "-M", f"{host},tcp", "-O", "json"]
    got = sorted((json.loads(r) for r in ours.query(our_client(), "mixed",
                                                    args).stdout.splitlines()),
                 key=json.dumps)
    assert got == want and got
    n = ours.query(our_client(), "mixed", ["-c", "src_host,proto", "-N", f"{host},tcp",
                                           "-n", "packets"])
    assert int(n.stdout) == sum(r["packets"] for r in want)
    t = theirs.query(C_CLIENT, "mixed", ["-c", "src_host,proto", "-N", f"{host},tcp",
                                         "-n", "packets"])
    assert t.stdout.split()[0] == b"0"           # what 1.7.7 answers


def test_vlen_columns_in_client_tables(tmp_path):
    """len=vlen primitives (which 1.7.7's memory plugin refuses at start-up): the client
    prints them in CSV and JSON with the values the capture holds (text up to the first
    NUL for str, hex for raw), the same totals per value as the print plugin's test."""
    import collections

    from tests.support import ipfixgen
    capture = tmp_path / "c.pcap"
    ipfixgen.write(capture, seed=9, n=300)
    (tmp_path / "p.lst").write_text(
        "name=ifname field_type=82 len=vlen semantics=str\n"
        "name=ifdesc field_type=83 len=vlen semantics=raw\n")
    want = collections.Counter()
    for tpl, vals in ipfixgen.records(9, 300):
        if tpl is ipfixgen.T_VLEN:
            want[(vals[9].split(b"\0")[0].decode(), vals[10].hex("-").upper())] += vals[7]
        else:
            want[("", "")] += vals[7] if tpl is ipfixgen.T_FWD else vals[9]
    d = MemoryDaemon(our_binary("nfacctd"), {"v": ("ifname", "ifdesc")}, capture,
                     tmp_path / "ours",
                     extra={"aggregate_primitives": str(tmp_path / "p.lst")}).start()
    try:
        d.wait_loaded(our_client())
        csv = d.query(our_client(), "v", ["-s", "-O", "csv"]).stdout.decode().splitlines()
        js = d.query(our_client(), "v", ["-s", "-O", "json"]).stdout.decode().splitlines()
    finally:
        d.stop()
    assert csv[0] == "ifname,ifdesc,PACKETS,BYTES"
    got = collections.Counter()
    for line in csv[1:]:
        name, desc, packets, _ = line.split(",")
        got[(name, desc)] += int(packets)
    assert got == want and any(k[0] == "eth0" for k in got)
    got_js = collections.Counter()
    for line in js:
        row = json.loads(line)
        assert list(row)[:2] == ["ifname", "ifdesc"]
        got_js[(row["ifname"], row["ifdesc"])] += row["packets"]
    assert got_js == want
