"""The QUICKSTART's options-accounting and NAT event logging examples, run by pmacct 1.7.7
and by us on the same NetFlow v9 and IPFIX captures (tests/support/eventgen.py).

- Section Va, "NetFlow daemon & accounting NetFlow v9/IPFIX options": nfacctd_time_new,
  nfacctd_account_options, print[data] (csv, pre_tag_filter 100) and print[data_options]
  (event_csv, pre_tag_filter 200), the pre_tag_map that splits on sample_type flow/option
  and the primitives.lst of vrf_id_ingress/vrf_id_egress/vrf_name, as written there
  (paths made relative).
- Section XX, "Using pmacct as traffic/event logger": the CGNAT print[nat] JSON config on
  its own, and the split of traffic (csv, pre_tag_filter 10) from NAT events (json,
  pre_tag_filter 20) with the four-line pre_tag_map on ip + sample_type flow/event; and a
  map on nat_event (pretag.map.example's key) splitting creates from deletes.

Outputs must be identical after sorting rows (JSON: only the wall-clock stamp_updated is
masked). nfacctd_time_new bins by arrival (wall-clock) time, so the options example's
file names depend on when each daemon ran: there the rows of all bins are merged (csv
counters summed per key) before comparing, and each name is checked to be a bin of the
run's own time.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.support import eventgen, oracle

pytestmark = pytest.mark.diff
NUL = b"\0"

# --------------------------------------------------------------------------------------
# Section Va: options accounting
# --------------------------------------------------------------------------------------
OPTIONS_MAP = """\
set_tag=100     ip=0.0.0.0/0    sample_type=flow
set_tag=200     ip=0.0.0.0/0    sample_type=option
"""
# the same for IPv6 exporters too: ip=0.0.0.0/0 does not match them (in 1.7.7 and ours)
OPTIONS_MAP6 = OPTIONS_MAP + """\
set_tag=100     ip=::/0         sample_type=flow
set_tag=200     ip=::/0         sample_type=option
"""
PRIMITIVES = """\
name=vrf_id_ingress     field_type=234  len=4   semantics=u_int
name=vrf_id_egress      field_type=235  len=4   semantics=u_int
name=vrf_name           field_type=236  len=32  semantics=str
"""


def options_settings(capture, account_options=True, options_aggregate=None) -> dict:
    s = {"daemonize": False, "pcap_savefile": str(capture), "logfile": "daemon.log",
         **oracle.ORACLE_BUFFERS,
         "nfacctd_time_new": True,
         "nfacctd_account_options": account_options,
         "plugins": "print[data], print[data_options]",
         "pre_tag_filter[data]": 100,
         "aggregate[data]": "peer_src_ip, in_iface, out_iface, tos, vrf_id_ingress, "
                            "vrf_id_egress",
         "print_refresh_time[data]": 300,
         "print_history[data]": 300,
         "print_history_roundoff[data]": "m",
         "print_output_file_append[data]": True,
         "print_output_file[data]": "flow_%s",
         "print_output[data]": "csv",
         "pre_tag_filter[data_options]": 200,
         "aggregate[data_options]": options_aggregate or "vrf_id_ingress, vrf_name",
         "print_refresh_time[data_options]": 300,
         "print_history[data_options]": 300,
         "print_history_roundoff[data_options]": "m",
         "print_output_file_append[data_options]": True,
         "print_output_file[data_options]": "options_%s",
         "print_output[data_options]": "event_csv",
         "aggregate_primitives": "primitives.lst",
         "pre_tag_map": "pretag.map",
         "maps_refresh": True}
    return s


def _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, settings, files, glob_pat):
    results = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        wd = tmp_path / who
        wd.mkdir()
        for name, text in files.items():
            (wd / name).write_text(text)
        t0 = time.time()
        res = oracle.run_daemon(binary, settings, wd, output_glob=glob_pat)
        res.measure["span"] = (t0, time.time())
        oracle.check_run(res, who, strict_log=(who == "pmacct"))
        results[who] = res
    return results


def _bins(res, prefix: str) -> dict[str, str]:
    """{file name: text} of one plugin; every name must be a 300 s bin of the run's time."""
    t0, t1 = res.measure["span"]
    out = {}
    for name, text in res.outputs.items():
        m = re.fullmatch(re.escape(prefix) + r"_(\d+)", name)
        if not m:
            continue
        start = int(m.group(1))
        assert start % 300 == 0 and t0 - 300 < start <= t1, (name, t0, t1)
        out[name] = text
    return out


def _merged_csv(files: dict[str, str], fmt: str) -> tuple[str, dict]:
    """(header, {key columns: [packets, bytes]}) over every bin file; event_csv: {row: 0}."""
    header, rows = None, {}
    for text in files.values():
        head, lines = oracle.split_output(text, fmt)
        if header is None:
            header = head[0]
        assert head[0] == header
        for line in lines:
            if fmt == "event_csv":
                rows[line] = 0
                continue
            *key, pk, by = line.split(",")
            acc = rows.setdefault(",".join(key), [0, 0])
            acc[0] += int(pk)
            acc[1] += int(by)
    return header, rows


@pytest.fixture(scope="module", params=[9, 10], ids=["v9", "ipfix"])
def options_capture(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("opts") / f"options-{request.param}.pcap"
    counts = eventgen.write_options(path, request.param)
    return request.param, path, counts


def _vrf_table() -> set[str]:
    """The event_csv rows the VRF and interface tables must give (names end at a NUL)."""
    rows = {f"{k},{v.partition(NUL)[0].decode()}" for k, v in eventgen.VRF_NAMES.items()}
    return rows | {"0,"}     # interface-table records carry no VRF id nor name


@pytest.mark.parametrize("account_options", [True, False], ids=["options", "no-options"])
def test_quickstart_account_options(options_capture, account_options, tmp_path,
                                    pmacct_nfacctd, our_nfacctd):
    version, capture, counts = options_capture
    files = {"pretag.map": OPTIONS_MAP, "primitives.lst": PRIMITIVES}
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd,
                    options_settings(capture, account_options), files, "*_[0-9]*")
    merged = {}
    for who, r in res.items():
        merged[who] = (_merged_csv(_bins(r, "flow"), "csv"),
                       _merged_csv(_bins(r, "options"), "event_csv"))
    assert merged["ours"] == merged["pmacct"]
    (head, flows), (ohead, options) = merged["ours"]
    assert head == ("PEER_SRC_IP,IN_IFACE,OUT_IFACE,TOS,vrf_id_ingress,vrf_id_egress,"
                    "PACKETS,BYTES")
    # every flow record of the IPv4 exporters, none of the IPv6 one (ip=0.0.0.0/0), no
    # option or event record (no counters to add, and none tagged 100)
    v4 = [e for e in eventgen.OPT_EXPORTERS if ":" not in e]
    assert {k.split(",")[0] for k in flows} == set(v4)
    assert sum(v[0] for v in flows.values()) == sum(counts["packets"][e] for e in v4)
    if account_options:
        assert ohead == "vrf_id_ingress,vrf_name"
        assert set(options) == _vrf_table()
    else:
        assert not options


def test_quickstart_account_options_ipv6_exporter(options_capture, tmp_path, pmacct_nfacctd,
                                                  our_nfacctd):
    """With ::/0 lines the IPv6 exporter's flows and tables are in too. In IPFIX its VRF
    table sends VRFname variable-length, which 1.7.7 cannot read in an options template
    (docs/differences.md): there only the IPv4 exporters' rows are compared."""
    version, capture, counts = options_capture
    files = {"pretag.map": OPTIONS_MAP6, "primitives.lst": PRIMITIVES}
    s = options_settings(capture, options_aggregate="peer_src_ip, vrf_id_ingress, vrf_name")
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, s, files, "*_[0-9]*")
    merged = {who: (_merged_csv(_bins(r, "flow"), "csv"),
                    _merged_csv(_bins(r, "options"), "event_csv")) for who, r in res.items()}
    assert merged["ours"][0] == merged["pmacct"][0]          # the data plugin: identical
    flows = merged["ours"][0][1]
    assert {k.split(",")[0] for k in flows} == set(eventgen.OPT_EXPORTERS)
    assert sum(v[0] for v in flows.values()) == sum(counts["packets"].values())
    ours, theirs = set(merged["ours"][1][1]), set(merged["pmacct"][1][1])
    v6 = next(e for e in eventgen.OPT_EXPORTERS if ":" in e)
    expected = {f"{e},{row}" for e in eventgen.OPT_EXPORTERS for row in _vrf_table()}
    assert ours == expected
    if version == 9:
        assert theirs == ours
    else:
        assert {r for r in theirs if not r.startswith(v6)} == \
            {r for r in ours if not r.startswith(v6)}
        # the documented difference is still there (else this branch is stale)
        assert {r for r in theirs if r.startswith(v6)} != {r for r in ours if r.startswith(v6)}


# --------------------------------------------------------------------------------------
# Section XX: NAT event logging
# --------------------------------------------------------------------------------------
A, B, C = eventgen.NAT_EXPORTERS
TRAFFIC = ("src_host, dst_host, peer_src_ip, peer_dst_ip, in_iface, out_iface, "
           "timestamp_start, timestamp_end, src_port, dst_port, proto, tos, src_mask, "
           "dst_mask, src_as, dst_as, tcpflags")
NAT = ("src_host, post_nat_src_host, src_port, post_nat_src_port, proto, nat_event, "
       "timestamp_start")
# the QUICKSTART's snippet with A.A.A.A and B.B.B.B; exporter C is in no line
SPLIT_MAP = f"""\
set_tag=10      ip={A}\tsample_type=flow
set_tag=20      ip={A}\tsample_type=event
set_tag=10      ip={B}\tsample_type=flow
set_tag=20      ip={B}\tsample_type=event
!
! ...
"""
# nat_event (IE 230) as pretag.map.example describes it: creates and deletes apart
NAT_EVENT_MAP = """\
set_tag=10      ip=0.0.0.0/0    sample_type=flow
set_tag=21      ip=0.0.0.0/0    nat_event=1
set_tag=22      ip=0.0.0.0/0    nat_event=2
set_tag=23      ip=0.0.0.0/0    sample_type=event
"""


def _plugin(s: dict, name: str, aggregate: str, fmt: str, fname: str) -> None:
    s[f"aggregate[{name}]"] = aggregate
    s[f"print_output_file[{name}]"] = fname
    s[f"print_output[{name}]"] = fmt
    s[f"print_history[{name}]"] = "5m"
    s[f"print_history_roundoff[{name}]"] = "m"
    s[f"print_refresh_time[{name}]"] = 300
    s[f"print_output_file_append[{name}]"] = True


def nat_settings(capture, mode: str) -> dict:
    s = {"daemonize": False, "pcap_savefile": str(capture), "logfile": "daemon.log",
         **oracle.ORACLE_BUFFERS}
    if mode == "nat":
        s["plugins"] = "print[nat]"
        _plugin(s, "nat", NAT, "json", "nat-%Y%m%d_%H%M.txt")
    elif mode == "traffic":
        s["plugins"] = "print[traffic]"
        _plugin(s, "traffic", TRAFFIC, "csv", "traffic-%Y%m%d_%H%M.txt")
    elif mode == "split":
        s["pre_tag_map"] = "pretag.map"
        s["plugins"] = "print[traffic], print[nat]"
        s["pre_tag_filter[traffic]"] = 10
        _plugin(s, "traffic", TRAFFIC, "csv", "traffic-%Y%m%d_%H%M.txt")
        s["pre_tag_filter[nat]"] = 20
        _plugin(s, "nat", NAT, "json", "nat-%Y%m%d_%H%M.txt")
    else:
        s["pre_tag_map"] = "pretag.map"
        s["plugins"] = "print[tags]"
        _plugin(s, "tags", "tag, peer_src_ip, nat_event, proto", "csv", "tags-%Y%m%d_%H%M.txt")
    return s


@pytest.fixture(scope="module", params=[9, 10], ids=["v9", "ipfix"])
def nat_capture(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("nat") / f"nat-{request.param}.pcap"
    counts = eventgen.write_nat(path, request.param)
    return request.param, path, counts


def _compare_files(res) -> None:
    names = sorted(res["pmacct"].outputs)
    assert names == sorted(res["ours"].outputs)
    for name in names:
        fmt = "json" if name.startswith("nat") else "csv"
        d = oracle.diff_message(oracle.normalise(res["pmacct"].outputs[name], fmt),
                                oracle.normalise(res["ours"].outputs[name], fmt))
        assert not d, f"{name}:\n{d}\n{res['ours'].describe()}"


def _rows(res, prefix: str, fmt: str) -> list[dict]:
    return [r for name, text in sorted(res.outputs.items()) if name.startswith(prefix)
            for r in oracle.parse_rows(text, fmt)]


NAT_KEYS = ["event_type", "ip_src", "port_src", "ip_proto", "post_nat_ip_src",
            "post_nat_port_src", "nat_event", "timestamp_start", "stamp_inserted",
            "stamp_updated"]


def test_quickstart_nat_json(nat_capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    """print[nat] on its own: events and flows alike, flows with counters, events without."""
    version, capture, counts = nat_capture
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, nat_settings(capture, "nat"), {},
                    "nat-*.txt")
    _compare_files(res)
    assert len(res["ours"].outputs) == 4            # 14 minutes from 22:13:20: four bins
    rows = _rows(res["ours"], "nat", "json")
    events = [r for r in rows if r["nat_event"]]
    flows = [r for r in rows if not r["nat_event"]]
    assert events and all(list(r) == NAT_KEYS for r in events)
    assert flows and all(list(r) == NAT_KEYS + ["packets", "bytes"] for r in flows)
    assert sum(r["packets"] for r in flows) == sum(counts["packets"].values())
    assert {r["nat_event"] for r in events} == set(eventgen.NAT_EVENTS)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", r["timestamp_start"])
               for r in rows)


def test_quickstart_traffic_log(nat_capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    """print[traffic] on its own (the flow logging example): NAT events land there too,
    with zero counters and their observation time."""
    version, capture, counts = nat_capture
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, nat_settings(capture, "traffic"),
                    {}, "traffic-*.txt")
    _compare_files(res)
    rows = _rows(res["ours"], "traffic", "csv")
    assert {r["PEER_SRC_IP"] for r in rows} == set(eventgen.NAT_EXPORTERS)
    assert sum(int(r["PACKETS"]) for r in rows) == sum(counts["packets"].values())
    assert any(r["PACKETS"] == "0" and r["DST_IP"] in ("", "0.0.0.0") for r in rows)


def test_quickstart_nat_split(nat_capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    """Traffic to csv (tag 10), events to json (tag 20), exporter C to neither."""
    version, capture, counts = nat_capture
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, nat_settings(capture, "split"),
                    {"pretag.map": SPLIT_MAP}, "*-*.txt")
    _compare_files(res)
    traffic = _rows(res["ours"], "traffic", "csv")
    events = _rows(res["ours"], "nat", "json")
    assert {r["PEER_SRC_IP"] for r in traffic} == {A, B}
    assert sum(int(r["PACKETS"]) for r in traffic) == counts["packets"][A] + counts["packets"][B]
    assert events and all(r["nat_event"] and list(r) == NAT_KEYS for r in events)


def test_quickstart_nat_event_key(nat_capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    """pre_tag_map's nat_event key: creates (1) and deletes (2) tagged apart, other events
    by sample_type=event, flows by sample_type=flow."""
    version, capture, counts = nat_capture
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, nat_settings(capture, "tags"),
                    {"pretag.map": NAT_EVENT_MAP}, "tags-*.txt")
    _compare_files(res)
    rows = _rows(res["ours"], "tags", "csv")
    by_tag = {}
    for r in rows:
        by_tag.setdefault(r["TAG"], set()).add(r["NAT_EVENT"])
    assert by_tag == {"10": {"0"}, "21": {"1"}, "22": {"2"}, "23": {"3", "4", "5"}}


# --------------------------------------------------------------------------------------
# networks_cache_entries
# --------------------------------------------------------------------------------------
NETWORKS = """\
10.0.0.0/8
65001,10.64.0.0/10
10.0.0.1,65003,10.200.0.0/13
10.200.7.0/24
65010,172.0.0.0/9
64999_65011,172.192.0.0/11
2001:db8:100::/40
2001:db8:200::/40
"""
CACHE_PLUGINS = {"dflt": None, "one": 1, "three": 3, "big": 1000003}


def test_networks_cache_entries_changes_nothing(tmp_path, pmacct_nfacctd, our_nfacctd):
    """The same lookups with a one-bucket, a three-bucket, a large and the default network
    cache (per plugin, plus a global value the plugins' own override): every plugin
    prints the same rows, in 1.7.7 and in ours, and ours prints what 1.7.7 prints."""
    from tests.support import flowgen

    capture = tmp_path / "c.pcap"
    flowgen.write_capture(capture, version=9, records=3000, seed=61, groups=("as", "masks"),
                          ipv6_share=0.3)
    s = oracle.print_settings(capture, "src_host", "csv")
    del s["aggregate"], s["print_output_file"]
    s["networks_file"] = "networks.lst"
    s["networks_cache_entries"] = 7
    s["plugins"] = ", ".join(f"print[{n}]" for n in CACHE_PLUGINS)
    for n, v in CACHE_PLUGINS.items():
        s[f"aggregate[{n}]"] = "src_net, dst_net, src_as, dst_as, src_mask, dst_mask"
        s[f"print_output_file[{n}]"] = f"{n}.csv"
        if v is not None:
            s[f"networks_cache_entries[{n}]"] = v
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, s, {"networks.lst": NETWORKS},
                    "*.csv")
    oracle.assert_same_output(res["pmacct"], res["ours"], "csv")
    for who, r in res.items():
        outs = {n: oracle.normalise(t, "csv") for n, t in r.outputs.items()}
        assert len(outs) == len(CACHE_PLUGINS)
        first = outs["dflt.csv"]
        assert len(first) > 50, who
        assert all(o == first for o in outs.values()), who


@pytest.mark.parametrize("value", ["0", "-5", "abc", "12abc"])
def test_networks_cache_entries_bad_value(value, tmp_path, pmacct_nfacctd, our_nfacctd):
    """Ours refuses a bad value at start-up naming file, line and key. 1.7.7 logs a warning
    and goes on with its default (documented in docs/config.md); atoi() makes it read
    "12abc" as 12 without a word."""
    capture = tmp_path / "c.pcap"
    eventgen.write_nat(capture, 9, datagrams=3)
    s = oracle.print_settings(capture, "src_net", "csv",
                              extra={"networks_file": "networks.lst",
                                     "networks_cache_entries": value})
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        wd = tmp_path / who
        wd.mkdir()
        (wd / "networks.lst").write_text(NETWORKS)
        r = oracle.run_daemon(binary, s, wd)
        text = r.log + r.stderr + r.stdout
        if who == "pmacct":
            assert r.returncode == 0 and r.outputs, r.describe()
            warned = "'networks_cache_entries' has to be > 0." in text
            assert warned == (value != "12abc"), text[-2000:]
        else:
            assert r.returncode != 0 and not r.outputs, r.describe()
            line = oracle.render_config(s).splitlines().index(
                f"networks_cache_entries: {value}") + 1
            assert re.search(rf"daemon\.conf:{line}\] invalid value for "
                             rf"'networks_cache_entries'", text), text[-2000:]


# --------------------------------------------------------------------------------------
# sample_type's traffic classes (pretag.map.example): flow-ipv4, flow-ipv6, flow-mpls-*
# --------------------------------------------------------------------------------------
CLASS_MAP = """\
set_tag=1       ip=0.0.0.0/0    sample_type=flow-ipv4
set_tag=2       ip=0.0.0.0/0    sample_type=flow-ipv6
set_tag=5       ip=0.0.0.0/0    sample_type=event
set_tag=6       ip=0.0.0.0/0    sample_type=option
set_tag=9       ip=0.0.0.0/0    sample_type=flow
"""
MPLS_MAP = """\
set_tag=3       ip=0.0.0.0/0    sample_type=flow-mpls-ipv4
set_tag=4       ip=0.0.0.0/0    sample_type=flow-mpls-ipv6
set_tag=1       ip=0.0.0.0/0    sample_type=flow-ipv4
set_tag=9       ip=0.0.0.0/0    sample_type=flow
"""


def _class_runs(tmp_path, pmacct_nfacctd, our_nfacctd, text):
    capture = tmp_path / "classes.pcap"
    eventgen.write_classes(capture)
    s = oracle.print_settings(capture, "tag, peer_src_ip, in_iface", "csv",
                              extra={"pre_tag_map": "pretag.map",
                                     "nfacctd_account_options": True})
    res = _run_both(tmp_path, pmacct_nfacctd, our_nfacctd, s, {"pretag.map": text}, "out.txt")
    tags = {who: {(r["PEER_SRC_IP"], int(r["IN_IFACE"])): int(r["TAG"])
                  for r in oracle.parse_rows(r.output, "csv")} for who, r in res.items()}
    return res, tags


def test_sample_type_classes(tmp_path, pmacct_nfacctd, our_nfacctd):
    """flow-ipv4/-ipv6 take only v9/IPFIX traffic without an MPLS label field (VLAN-tagged
    traffic and packet sections with an IPv4 packet included); NetFlow v5 and MPLS-labelled
    traffic are left to "flow"."""
    res, tags = _class_runs(tmp_path, pmacct_nfacctd, our_nfacctd, CLASS_MAP)
    oracle.assert_same_output(res["pmacct"], res["ours"], "csv")
    i, ex = eventgen.CLASS_IFACE, eventgen.CLASS_EXPORTERS
    want = {(ex[5], i["v5"]): 9}
    for v in (9, 10):
        want.update({(ex[v], i["ipv4"]): 1, (ex[v], i["vlan-ipv4"]): 1, (ex[v], i["ipv6"]): 2,
                     (ex[v], i["mpls-ipv4"]): 9, (ex[v], i["mpls-ipv6"]): 9,
                     (ex[v], i["event"]): 5, (ex[v], 0): 6})
    want[(ex[10], i["dlfs"])] = 1
    assert tags["ours"] == want


def test_sample_type_mpls_classes(tmp_path, pmacct_nfacctd, our_nfacctd):
    """flow-mpls-ipv4/-ipv6 match MPLS-labelled traffic of that family. 1.7.7 parses both
    keywords as "flow" (docs/differences.md): there every traffic record gets tag 3."""
    res, tags = _class_runs(tmp_path, pmacct_nfacctd, our_nfacctd, MPLS_MAP)
    i, ex = eventgen.CLASS_IFACE, eventgen.CLASS_EXPORTERS
    for who, got in tags.items():
        events = {k: t for k, t in got.items() if k[1] in (0, i["event"])}
        assert set(events.values()) == {0}, who
    traffic = {who: {k: t for k, t in got.items() if k[1] not in (0, i["event"])}
               for who, got in tags.items()}
    assert set(traffic["pmacct"]) == set(traffic["ours"])
    assert set(traffic["pmacct"].values()) == {3}          # the documented difference
    want = {(ex[5], i["v5"]): 9}
    for v in (9, 10):
        want.update({(ex[v], i["ipv4"]): 1, (ex[v], i["vlan-ipv4"]): 1, (ex[v], i["ipv6"]): 9,
                     (ex[v], i["mpls-ipv4"]): 3, (ex[v], i["mpls-ipv6"]): 4})
    want[(ex[10], i["dlfs"])] = 1
    assert traffic["ours"] == want
