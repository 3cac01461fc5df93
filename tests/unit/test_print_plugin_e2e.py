"""The print plugin through our nfacctd, against pmacct 1.7.7's nfacctd: what the
differential matrix (tests/diff) does not cover — stdout, dynamic file names, the
latest-file link, markers, time bins in JSON, timestamp modes, separators, and a cache
too small for the capture.

Both daemons read the same capture with the same config; outputs are compared after
sorting rows (writer pids and the wall-clock purge time replaced by placeholders).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support import oracle
from tests.support.flowgen import GenParams, generate

from .test_print_plugin_oracle import CAPTURES, FIVE_TUPLE, L2_TIME

pytestmark = [pytest.mark.oracle, pytest.mark.diff]

_PIDS = [(re.compile(r"--(START|END) \(\d+\)--"), r"--\1 (pid)--"),
         (re.compile(r'"writer_id": "([^"/]+)/\d+"'), r'"writer_id": "\1/pid"'),
         (re.compile(r'"duration": \d+'), '"duration": 0')]


def _clean(text: str) -> str:
    for rx, sub in _PIDS:
        text = rx.sub(sub, text)
    return text


def _settings(capture, aggregate, fmt, **extra):
    s = {"daemonize": False, "pcap_savefile": str(capture), "plugins": "print[a]",
         "aggregate[a]": aggregate, "print_output[a]": fmt,
         "print_refresh_time[a]": 86400, "logfile": "daemon.log", **oracle.ORACLE_BUFFERS}
    s.update(extra)
    return {k: v for k, v in s.items() if v is not None}


def _glob(settings):
    pof = str(settings.get("print_output_file[a]", "none-*"))
    return re.sub(r"%[A-Za-z]|\$[a-z_]+", "*", pof)


def _both(pmacct, ours, tmp_path, settings, env=None, output_glob=None, strict=True):
    output_glob = output_glob or _glob(settings)
    res = {}
    for who, binary in (("pmacct", pmacct), ("ours", ours)):
        r = oracle.run_daemon(binary, settings, tmp_path / who, env=env, output_glob=output_glob)
        if strict:
            oracle.check_run(r, who)
        res[who] = r
    return res["pmacct"], res["ours"]


def _same(expected: str, actual: str, fmt: str):
    e = oracle.normalise(_clean(expected), fmt)
    a = oracle.normalise(_clean(actual), fmt)
    assert e == a, oracle.diff_message(e, a)


@pytest.fixture(scope="module")
def two_exporters(tmp_path_factory):
    path = tmp_path_factory.mktemp("cap") / "two.pcap"
    generate(GenParams(version=10, records=3000, exporters=2, exporter_family="mix",
                       seed=7)).write_pcap(path)
    return path


@pytest.mark.parametrize("fmt", ["formatted", "csv", "json"])
def test_stdout(pmacct_nfacctd, our_nfacctd, tmp_path, fmt):
    s = _settings(CAPTURES["100"], FIVE_TUPLE, fmt)
    res = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        r = oracle.run_daemon(binary, s, tmp_path / who, output_glob="none-*")
        assert r.returncode == 0, r.describe()
        res[who] = r.stdout
    _same(res["pmacct"], res["ours"], fmt)




@pytest.mark.parametrize("name,history", [
    ("out/$peer_src_ip/%Y.csv", {}),
    pytest.param("out/$peer_src_ip/%Y%m%d-%H%M.csv",
                 {"print_history[a]": "5m", "print_history_roundoff[a]": "h"}),
], ids=["purge-time", "time-bins"])
def test_dynamic_names_and_latest_links(pmacct_nfacctd, our_nfacctd, tmp_path, two_exporters,
                                        name, history):
    s = _settings(two_exporters, "peer_src_ip,src_host,dst_port", "csv",
                  **{"print_output_file[a]": name, "print_latest_file[a]": "latest/$peer_src_ip"},
                  **history)
    e, o = _both(pmacct_nfacctd, our_nfacctd, tmp_path, s, output_glob="out/*/*.csv")
    assert sorted(e.outputs) == sorted(o.outputs)
    assert len(e.outputs) >= 2
    for name in e.outputs:
        _same(e.outputs[name], o.outputs[name], "csv")
    for who in ("pmacct", "ours"):
        links = sorted(os.listdir(tmp_path / who / "latest"))
        assert len(links) == 2
    for link in os.listdir(tmp_path / "pmacct" / "latest"):
        assert os.readlink(tmp_path / "ours" / "latest" / link) == \
            os.readlink(tmp_path / "pmacct" / "latest" / link)


@pytest.mark.parametrize("fmt", ["formatted", "csv", "json"])
def test_markers(pmacct_nfacctd, our_nfacctd, tmp_path, fmt):
    s = _settings(CAPTURES["101"], "src_host,dst_host", fmt, **{"print_output_file[a]": "out.txt",
                                                                 "print_markers[a]": True})
    e, o = _both(pmacct_nfacctd, our_nfacctd, tmp_path, s)
    _same(e.output, o.output, fmt)
    assert _clean(o.output).splitlines()[0] in ("--START (pid)--",
                                                '{"event_type": "purge_init", "writer_id": "a/pid"}')


@pytest.mark.parametrize("extra,env", [
    ({"timestamps_rfc3339": True}, {"TZ": "Europe/Zurich"}),
    ({"timestamps_utc": True, "timestamps_rfc3339": True}, {"TZ": "Europe/Zurich"}),
    ({"timestamps_since_epoch": True}, None),
    ({"timestamps_secs": True}, None),
    ({}, {"TZ": "America/St_Johns"}),
], ids=["rfc3339-local", "rfc3339-utc", "epoch", "secs", "local-halfhour"])
def test_timestamp_modes(pmacct_nfacctd, our_nfacctd, tmp_path, extra, env):
    agg = L2_TIME.replace("timestamp_export,", "")
    s = _settings(CAPTURES["101"], agg, "csv", **{"print_output_file[a]": "out.csv"}, **extra)
    e, o = _both(pmacct_nfacctd, our_nfacctd, tmp_path, s, env=env)
    _same(e.output, o.output, "csv")


@pytest.mark.parametrize("extra", [
    {"print_history[a]": "1h", "print_history_roundoff[a]": "h"},
    {"print_history[a]": "1h", "print_history_roundoff[a]": "h", "timestamps_since_epoch": True},
], ids=["history", "history-epoch"])
def test_json_time_bins(pmacct_nfacctd, our_nfacctd, tmp_path, extra):
    s = _settings(CAPTURES["101"], "src_host,dst_port,proto", "json",
                  **{"print_output_file[a]": "out.json"}, **extra)
    e, o = _both(pmacct_nfacctd, our_nfacctd, tmp_path, s)
    _same(e.output, o.output, "json")


@pytest.mark.parametrize("fmt,extra", [
    ("csv", {"print_output_separator[a]": "\\t", "print_num_protos[a]": True}),
    ("event_csv", {}),
    ("event_formatted", {}),
])
def test_variants(pmacct_nfacctd, our_nfacctd, tmp_path, fmt, extra):
    s = _settings(CAPTURES["111v6"], FIVE_TUPLE + ",tos", fmt, **{"print_output_file[a]": "o.txt"},
                  **extra)
    e, o = _both(pmacct_nfacctd, our_nfacctd, tmp_path, s)
    _same(e.output, o.output, fmt)


def test_small_cache_loses_nothing(pmacct_nfacctd, our_nfacctd, tmp_path, two_exporters):
    """pmacct with a big cache is the reference; ours with a tiny one must sum to it."""
    agg = "src_host,dst_host,src_port,dst_port"
    big = _settings(two_exporters, agg, "json", **{"print_output_file[a]": "o.json"})
    ref = oracle.run_daemon(pmacct_nfacctd, big, tmp_path / "ref", output_glob="o.json")
    oracle.check_run(ref, "pmacct")
    small = dict(big, **{"print_cache_entries[a]": 7})
    ours = oracle.run_daemon(our_nfacctd, small, tmp_path / "ours", output_glob="o.json")
    assert ours.returncode == 0, ours.describe()
    assert "Finished cache entries" in ours.log

    def sums(text):
        out = {}
        for line in text.splitlines():
            r = json.loads(line)
            k = (r["ip_src"], r["ip_dst"], r["port_src"], r["port_dst"])
            out[k] = out.get(k, 0) + r["bytes"]
        return out
    assert sums(ours.output) == sums(ref.output)
