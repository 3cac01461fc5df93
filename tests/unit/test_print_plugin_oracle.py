"""Formatting detail against pmacct 1.7.7's print plugin (the oracle).

For a capture and an aggregate, nfacctd runs once with JSON output and machine-friendly
settings (epoch timestamps, numeric protocols); its rows are turned back into key rows
and counters. nfacctd then runs again with the output format and options under test, and
our formatter renders the reconstructed rows with the same options: header and sorted
rows must be identical. This checks formatting independently of our decoder; the
end-to-end comparison (our nfacctd against pmacct's) lives in tests/diff.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pypmacct.aggregate import KeyBuilder
from pypmacct.cache import OR, SUM, AggregationCache
from pypmacct.output import OutputOptions, make_formatter
from pypmacct.output.columns import BY_NAME, JSON_ORDER
from pypmacct.output.json import purge_close, purge_init
from pypmacct.primitives import parse_aggregate
from pypmacct.timebins import TimeBins
from tests.support import oracle

pytestmark = pytest.mark.oracle

from tests.support.diffcases import CORPUS  # noqa: E402  (../shared/corpus, or PMACCT_CORPUS)
CAPTURES = {
    "100": CORPUS / "100-IPFIXv10-CISCO" / "traffic-00.pcap",
    "101": CORPUS / "101-NFv9-CISCO-cust_primitives" / "traffic-00.pcap",
    "111v4": CORPUS / "111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources" / "traffic-00.pcap",
    "111v6": CORPUS / "111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources" / "traffic-01.pcap",
}

FIVE_TUPLE = "src_host,dst_host,src_port,dst_port,proto"
ROUTING = ("peer_src_ip,peer_dst_ip,in_iface,out_iface,src_net,dst_net,src_mask,dst_mask,"
           "tos,tcpflags,mpls_vpn_rd,src_as,dst_as,peer_src_as,peer_dst_as")
L2_TIME = ("src_mac,dst_mac,vlan,cos,etype,sampling_rate,sampling_direction,timestamp_start,"
           "timestamp_end,timestamp_export,export_proto_seqno,export_proto_version,"
           "export_proto_sysid,flows")
MPLS_NAT = ("mpls_label_top,mpls_label_bottom,mpls_stack_depth,post_nat_src_host,"
            "post_nat_dst_host,post_nat_src_port,post_nat_dst_port,nat_event,tag,tag2,"
            "src_host")
LABELS = "label,tag,src_host,proto"

ZURICH = {"TZ": "Europe/Zurich"}

# (case id, capture, aggregate, variants); a variant is (format, extra config, env)
CASES = [
    ("5tuple-100", "100", FIVE_TUPLE, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {}, None),
        ("event_csv", {}, None), ("event_formatted", {}, None),
        ("csv", {"print_output_separator": "\\t"}, None),
        ("csv", {"print_output_separator": "\\s", "print_num_protos": True}, None),
        ("formatted", {"print_markers": True}, None),
        ("json", {"print_markers": True}, None),
    ]),
    ("5tuple-111v6", "111v6", FIVE_TUPLE, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {"print_num_protos": True}, None),
    ]),
    ("routing-100", "100", ROUTING, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {}, None),
    ]),
    ("routing-111v6", "111v6", ROUTING, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {}, None),
    ]),
    ("l2time-101", "101", L2_TIME, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {}, None),
        ("csv", {"timestamps_rfc3339": True}, ZURICH),
        ("formatted", {"timestamps_rfc3339": True}, ZURICH),
        ("json", {"timestamps_utc": True, "timestamps_rfc3339": True}, ZURICH),
        ("csv", {"timestamps_since_epoch": True}, None),
        ("formatted", {"timestamps_secs": True}, None),
        ("event_formatted", {}, ZURICH),
    ]),
    ("l2time-111v4", "111v4", L2_TIME, [
        ("csv", {}, ZURICH), ("json", {"timestamps_since_epoch": True}, None),
    ]),
    ("mplsnat-100", "100", MPLS_NAT, [
        ("formatted", {}, None), ("csv", {}, None), ("json", {}, None),
    ]),
    ("history-100", "100", "src_host,dst_port", [
        ("json", {}, None), ("json", {"timestamps_since_epoch": True}, None),
        ("json", {"timestamps_rfc3339": True}, ZURICH),
        ("csv", {}, None), ("formatted", {}, None),
    ]),
    ("sum_host-100", "100", "sum_host", [("formatted", {}, None), ("csv", {}, None),
                                         ("json", {}, None)]),
    ("sum_port-101", "101", "sum_port", [("csv", {}, None), ("json", {}, None)]),
    ("sum_net-100", "100", "sum_net", [("csv", {}, None), ("formatted", {}, None)]),
    ("none-101", "101", "none", [("formatted", {}, None), ("csv", {}, None),
                                ("json", {}, None), ("event_csv", {}, None)]),
    ("labels-100", "100", LABELS, [("csv", {}, None), ("json", {}, None)]),
]

CASE_EXTRA = {
    "history-100": {"print_history": "5m", "print_history_roundoff": "h"},
    "mplsnat-100": {"pre_tag_map": "tags.map"},
    "labels-100": {"pre_tag_map": "labels.map"},
}
MAPS = {
    "tags.map": "set_tag=5 ip=0.0.0.0/0\nset_tag2=7 ip=0.0.0.0/0\n",
    "labels.map": 'set_label=ab"c\\d ip=0.0.0.0/0\n',
}

BASE_JSON = {"print_output": "json", "timestamps_since_epoch": True, "print_num_protos": True}


def _settings(capture, aggregate, fmt, extra):
    s = oracle.print_settings(capture, aggregate, fmt, extra=extra)
    s["plugins"] = "print[a]"
    s = {(f"{k}[a]" if k.startswith(("aggregate", "print_")) else k): v for k, v in s.items()}
    return s


def _run(cache_dir, workdir, capture, aggregate, fmt, extra, env, strict=True):
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in MAPS.items():
        (workdir / name).write_text(text)
    settings = _settings(capture, aggregate, fmt, extra)
    if env:
        # the cache key covers the settings only: keep the zone in them
        settings["! tz"] = env["TZ"]
    res = oracle.cached_oracle_run(cache_dir, oracle.pmacct_binary("nfacctd"),
                                   {k: v for k, v in settings.items()},
                                   capture, workdir, env=env)
    oracle.check_run(res, "pmacct", strict_log=strict)
    return res.output


@pytest.fixture(scope="module")
def oracle_outputs(pmacct_nfacctd, oracle_cache, tmp_path_factory):
    """Every oracle run the cases need, run in parallel (each takes ~4 s of sleeps)."""
    base = tmp_path_factory.mktemp("print-oracle")
    jobs = {}
    for cid, cap, agg, variants in CASES:
        extra = CASE_EXTRA.get(cid, {})
        jobs[(cid, "base")] = (CAPTURES[cap], agg, "json", {**BASE_JSON, **extra}, None)
        for i, (fmt, opts, env) in enumerate(variants):
            jobs[(cid, i)] = (CAPTURES[cap], agg, fmt, {**extra, **opts}, env)
    results = {}

    def one(item):
        key, (cap, agg, fmt, extra, env) = item
        wd = base / f"{key[0]}-{key[1]}"
        return key, _run(oracle_cache, wd, cap, agg, fmt, extra, env)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for key, out in pool.map(one, jobs.items()):
            results[key] = out
    return results


# ---- turning pmacct's JSON rows back into key rows -----------------------------------
def _addr(text):
    if not text:
        return 0, b"\0" * 16
    ip = ipaddress.ip_address(text)
    return (4, ip.packed.ljust(16, b"\0")) if ip.version == 4 else (6, ip.packed)


def _rd(text):
    if text.startswith("vrfid:"):
        return struct.pack("!HHI", 0x1000, 0, int(text[6:]))
    t, a, v = text.split(":")
    if t == "0":
        return struct.pack("!HHI", 0, int(a), int(v))
    if t == "1":
        return struct.pack("!H4sH", 1, socket.inet_aton(a), int(v))
    return struct.pack("!HIH", 2, int(a), int(v))


def _usecs(text):
    secs, _, frac = text.partition(".")
    return int(secs) * 1_000_000 + int(frac or 0)


def rebuild(json_text: str, aggregate: str, history: bool):
    """(key builder, keys, values, strings) from pmacct's JSON rows."""
    prims = parse_aggregate(aggregate, "nfacctd")
    tb = TimeBins.from_config("5m", "h", 0, True) if history else None
    kb = KeyBuilder(prims, time_bins=tb)
    rows = [json.loads(l) for l in json_text.splitlines() if l.strip()]
    n = len(rows)
    keys = np.zeros(n, kb.key_dtype)
    vals = {c: np.zeros(n, np.uint64) for c in ("packets", "bytes", "flows")}
    vals["tcp_flags"] = np.zeros(n, np.uint8)
    if kb.track_flow_af:
        vals["flow_af"] = np.zeros(n, np.uint8)
    strings = [""]
    cols = {BY_NAME[name].json_key: BY_NAME[name] for name in JSON_ORDER}
    for i, row in enumerate(rows):
        for k, v in row.items():
            if k in ("event_type", "stamp_updated"):
                continue
            if k in vals:
                vals[k][i] = int(v)
                continue
            if k == "stamp_inserted":
                keys["stamp_inserted"][i] = int(v)
                continue
            col = cols[k]
            if col.source == "value":
                vals[col.field][i] = int(v)
                continue
            f = col.field
            kind = col.kind
            if kind in ("addr", "nexthop"):
                af, raw = _addr(v)
                keys[f]["af"][i] = af
                keys[f]["addr"][i] = np.void(raw)
                if kind == "nexthop":
                    vals["flow_af"][i] = af
            elif kind == "mac":
                keys[f][i] = np.void(bytes(int(x, 16) for x in v.split(":")))
            elif kind == "hex":
                keys[f][i] = int(v, 16)
            elif kind == "rd":
                keys[f][i] = np.void(_rd(v))
            elif kind == "timestamp":
                keys[f][i] = _usecs(v)
            elif kind == "char":
                keys[f][i] = ord(v) if v else 0
            elif kind in ("string", "bgp_string", "class"):
                strings.append(v)
                keys[f][i] = len(strings) - 1
            else:                     # numbers, and numeric protocols
                keys[f][i] = int(v)
    return kb, keys, vals, strings


# ---- comparing ---------------------------------------------------------------------------
_MARK_TEXT = re.compile(r"^--(START|END) \(\d+\)--$")
_MARK_JSON = re.compile(r'"writer_id": "a/\d+"|"duration": \d+')


def _normalise(text: str, fmt: str):
    lines = [l for l in text.split("\n") if l != ""]
    lines = [_MARK_TEXT.sub(r"--\1 (pid)--", l) for l in lines]
    lines = [_MARK_JSON.sub("<marker field>", l) for l in lines]
    return oracle.normalise("\n".join(lines) + "\n", fmt)


def _with_tz(env):
    old = os.environ.get("TZ")
    os.environ["TZ"] = (env or {}).get("TZ", "UTC")
    time.tzset()
    return old


def _restore_tz(old):
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def ours(kb, keys, vals, strings, fmt, opts, env):
    o = OutputOptions(separator=opts.get("print_output_separator", ","),
                      num_protos=bool(opts.get("print_num_protos")),
                      since_epoch=bool(opts.get("timestamps_since_epoch")),
                      rfc3339=bool(opts.get("timestamps_rfc3339")),
                      utc=bool(opts.get("timestamps_utc")))
    if opts.get("timestamps_secs"):
        # the plugin drops the microseconds before aggregating: do the same and re-sum
        keys = keys.copy()
        for f in ("ts_start", "ts_end", "ts_arrival"):
            if f in keys.dtype.names:
                keys[f] -= keys[f] % 1_000_000
        cache = AggregationCache(kb.key_dtype, {"packets": SUM, "bytes": SUM, "flows": SUM,
                                                "tcp_flags": OR})
        cache.add(keys, vals)
        keys, vals = cache.drain()
    old = _with_tz(env)
    try:
        f = make_formatter(fmt, kb.primitives, kb.key_dtype, o)
        body = f.render(keys, vals, strings)
        text = f.header() + body
        if opts.get("print_markers"):
            if f.json:
                text = (purge_init("a", 1).decode() + text
                        + purge_close("a", 1, len(keys), len(keys), 0).decode())
            else:
                text = "--START (1)--\n" + text + "--END (1)--\n"
        return text
    finally:
        _restore_tz(old)


def _params():
    for cid, cap, agg, variants in CASES:
        for i, (fmt, opts, env) in enumerate(variants):
            tz = f"-{env['TZ'].split('/')[-1]}" if env else ""
            extra = "-" + "-".join(sorted(k.replace("print_", "").replace("timestamps_", "ts_")
                                          for k in opts)) if opts else ""
            yield pytest.param(cid, agg, i, fmt, opts, env, id=f"{cid}-{fmt}{extra}{tz}")


@pytest.mark.parametrize("cid,agg,i,fmt,opts,env", list(_params()))
def test_formatting_matches_pmacct(oracle_outputs, cid, agg, i, fmt, opts, env):
    history = "print_history" in CASE_EXTRA.get(cid, {})
    kb, keys, vals, strings = rebuild(oracle_outputs[(cid, "base")], agg, history)
    assert len(keys) > 0
    expected = _normalise(oracle_outputs[(cid, i)], fmt)
    actual = _normalise(ours(kb, keys, vals, strings, fmt, opts, env), fmt)
    assert expected == actual, oracle.diff_message(expected, actual)


def test_the_oracle_refuses_formatted_with_labels_and_so_do_we(pmacct_nfacctd, tmp_path):
    for name, text in MAPS.items():
        (tmp_path / name).write_text(text)
    s = _settings(CAPTURES["100"], LABELS, "formatted", {"pre_tag_map": "labels.map"})
    res = oracle.run_daemon(pmacct_nfacctd, s, tmp_path)
    assert "variable-length primitives" in res.log + res.stderr + res.stdout
    from pypmacct.output import FormatterError
    kb = KeyBuilder(parse_aggregate(LABELS, "nfacctd"))
    with pytest.raises(FormatterError, match="variable-length primitives"):
        make_formatter("formatted", kb.primitives, kb.key_dtype)


def test_full_cache_keeps_what_pmacct_loses(pmacct_nfacctd, oracle_cache, tmp_path):
    """With a tiny print_cache_entries, pmacct's early purge is overwritten by the final
    one; ours keeps every aggregate: its file sums to pmacct's output with a big cache."""
    from pypmacct.plugins.base import PluginContext
    from pypmacct.plugins.print_plugin import PrintPlugin
    from pypmacct.record import Batch, empty_records

    from .print_support import FakePcfg

    agg = "src_host,dst_host,src_port,dst_port"
    cap = CAPTURES["101"]
    full = _run(oracle_cache, tmp_path / "full", cap, agg, "json", BASE_JSON, None)
    small = _run(oracle_cache, tmp_path / "small", cap, agg, "csv",
                 {"print_cache_entries": 3}, None, strict=False)
    kb, keys, vals, strings = rebuild(full, agg, False)
    assert len(oracle.parse_rows(small, "csv")) < len(keys)        # pmacct lost rows

    recs = empty_records(len(keys))
    for f in keys.dtype.names:
        recs[f] = keys[f]
    for c in ("packets", "bytes", "flows"):
        recs[c] = vals[c]
    out = tmp_path / "ours.csv"
    p = PrintPlugin(FakePcfg(aggregate=agg, print_output="csv", print_output_file=str(out),
                             print_cache_entries=3), PluginContext("nfacctd"))
    p.start()
    for _ in range(2):                         # every aggregate twice, far apart
        for i in range(len(recs)):
            p.ingest(Batch(recs[i:i + 1].copy(), [""]))
    p.finish()
    rows = oracle.parse_rows(out.read_text(), "csv")
    assert len(rows) > len(keys)               # early purges happened
    summed = {}
    for r in rows:
        k = (r["SRC_IP"], r["DST_IP"], r["SRC_PORT"], r["DST_PORT"])
        summed[k] = summed.get(k, 0) + int(r["BYTES"])
    want = {}
    for line in full.splitlines():
        o = json.loads(line)
        want[(o["ip_src"], o["ip_dst"], str(o["port_src"]), str(o["port_dst"]))] = 2 * o["bytes"]
    assert summed == want
