"""The QUICKSTART's filtering and pre-tagging examples, run by pmacct 1.7.7 and by us on
the same NetFlow v5 capture (print plugins in place of the SQL/memory ones): identical CSV.

- "in vs out traffic for network 192.168.0.0/16": aggregate_filter[in]/[out];
- the direction map (set_tag2=1/2 on dst/src host) and the jeq/label example that sets
  direction then interface (set_tag ... jeq=eval_ifindexes, set_tag=999 catch-all,
  set_tag2 under label=eval_ifindexes), with XXX = 192.168.1.10 in 192.168.1.0/24 and
  YYY = 10.1.2.3 in 10.1.0.0/16.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.support import oracle, pcapio
from tests.unit import nfbuild

pytestmark = pytest.mark.diff

HOSTS = ["192.168.1.10", "192.168.1.77", "192.168.200.5", "10.1.2.3", "10.1.9.9",
         "10.2.0.1", "8.8.8.8", "172.16.0.1"]

DIRECTION_MAP = """\
set_tag2=1 filter='dst host 192.168.1.10'
set_tag2=2 filter='src host 192.168.1.10'

set_tag2=1 filter='ether src 00:11:22:33:44:55'
set_tag2=2 filter='ether dst 00:11:22:33:44:55'
"""

IFINDEX_MAP = """\
set_tag=1 filter='dst net 192.168.1.0/24' jeq=eval_ifindexes
set_tag=2 filter='src net 192.168.1.0/24' jeq=eval_ifindexes
set_tag=1 filter='dst net 10.1.0.0/16' jeq=eval_ifindexes
set_tag=2 filter='src net 10.1.0.0/16' jeq=eval_ifindexes
set_tag=1 filter='ether src 00:22:33:44:55:66' jeq=eval_ifindexes
set_tag=2 filter='ether dst 00:22:33:44:55:66' jeq=eval_ifindexes
set_tag=999 filter='net 0.0.0.0/0'
!
set_tag2=100 filter='dst host 192.168.1.10' label=eval_ifindexes
set_tag2=100 filter='src host 192.168.1.10'
set_tag2=200 filter='dst host 10.1.2.3'
set_tag2=200 filter='src host 10.1.2.3'
set_tag2=200 filter='ether src 00:22:33:44:55:66'
set_tag2=200 filter='ether dst 00:22:33:44:55:66'
"""


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    rng = np.random.default_rng(77)
    path = tmp_path_factory.mktemp("qs") / "v5.pcap"
    with pcapio.open_writer(path) as w:
        for d in range(60):
            recs = []
            for _ in range(25):
                s, t = rng.choice(len(HOSTS), 2, replace=False)
                recs.append(nfbuild.v5_record(
                    src=HOSTS[s], dst=HOSTS[t], pkts=int(rng.integers(1, 50)),
                    octets=int(rng.integers(40, 60000)), sport=int(rng.integers(1, 65535)),
                    dport=int(rng.choice([22, 53, 80, 443])),
                    proto=int(rng.choice([6, 17])), first=1000 * d, last=1000 * d + 500))
            payload = nfbuild.v5(recs, seq=d * 25, unix=1_700_000_000 + d)
            w.write((1_700_000_000 + d) * 10**9,
                    pcapio.udp_frame("203.0.113.9", "192.0.2.1", 40000, 2100, payload))
    return path


def _compare(capture, tmp_path, pmacct_nfacctd, our_nfacctd, settings, files=None):
    results = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        wd = tmp_path / who
        wd.mkdir()
        for name, text in (files or {}).items():
            (wd / name).write_text(text)
        res = oracle.run_daemon(binary, settings, wd, output_glob="*.csv")
        oracle.check_run(res, who, strict_log=(who == "pmacct"))
        results[who] = res
    oracle.assert_same_output(results["pmacct"], results["ours"], "csv")
    return results


def _print_plugins(capture, plugins: dict, extra=None) -> dict:
    s = oracle.print_settings(capture, "src_host", "csv", extra=extra)
    del s["aggregate"], s["print_output_file"]
    s["plugins"] = ", ".join(f"print[{n}]" for n in plugins)
    for n, kv in plugins.items():
        s[f"print_output_file[{n}]"] = f"{n}.csv"
        for k, v in kv.items():
            s[f"{k}[{n}]"] = v
    return s


def test_quickstart_in_out_split(capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    s = _print_plugins(capture, {
        "in": {"aggregate": "dst_host", "aggregate_filter": "dst net 192.168.0.0/16"},
        "out": {"aggregate": "src_host", "aggregate_filter": "src net 192.168.0.0/16"}})
    res = _compare(capture, tmp_path, pmacct_nfacctd, our_nfacctd, s)
    rows = oracle.parse_rows(res["ours"].outputs["in.csv"], "csv")
    assert rows and all(r["DST_IP"].startswith("192.168.") for r in rows)


@pytest.mark.parametrize("name,text", [("direction", DIRECTION_MAP), ("ifindex", IFINDEX_MAP)])
def test_quickstart_pretag_maps(name, text, capture, tmp_path, pmacct_nfacctd, our_nfacctd):
    s = _print_plugins(capture, {"tags": {"aggregate": "tag, tag2"},
                                 "hosts": {"aggregate": "tag, tag2, src_host, dst_host"}},
                       extra={"pre_tag_map": "pretag.map"})
    res = _compare(capture, tmp_path, pmacct_nfacctd, our_nfacctd, s, {"pretag.map": text})
    tags = {(r["TAG"], r["TAG2"]) for r in oracle.parse_rows(res["ours"].outputs["tags.csv"],
                                                              "csv")}
    assert len(tags) >= 3, tags
