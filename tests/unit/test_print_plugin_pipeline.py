"""Our decoder feeding our print plugin, in-process, against pmacct 1.7.7's nfacctd with
the same print settings on the same capture: the output files must be identical after
sorting rows. (The same comparison through our nfacctd daemon belongs to tests/diff.)

timestamp_arrival is left out: pmacct stamps savefile records with the wall clock.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pypmacct.decoders import NetflowDecoder, NetflowOptions
from pypmacct.plugins.base import PluginContext
from pypmacct.plugins.print_plugin import PrintPlugin
from pypmacct.runtime.log import Logger
from pypmacct.runtime.stats import Stats
from pypmacct.sources.savefile import read_datagrams
from tests.support import oracle

from tests.diff.known_differences import KNOWN, zero_column

from .print_support import FakePcfg
from .test_print_plugin_oracle import CAPTURES, FIVE_TUPLE, L2_TIME, MPLS_NAT, ROUTING, _run

pytestmark = pytest.mark.oracle

# captures with a documented difference (docs/differences.md): the known column is
# adjusted on our side, and the adjustment must be needed
DOCUMENTED = {"111v6": [k for k in KNOWN if "corpus-111-01" in k.captures]}

CASES = [
    ("100", FIVE_TUPLE, "formatted", {}),
    ("111v6", FIVE_TUPLE, "csv", {}),
    ("101", FIVE_TUPLE, "json", {}),
    ("100", ROUTING, "csv", {}),
    ("111v6", ROUTING, "json", {}),
    ("111v4", ROUTING, "formatted", {}),
    ("101", L2_TIME, "formatted", {}),
    ("111v4", L2_TIME, "csv", {"timestamps_rfc3339": True, "timestamps_utc": True}),
    ("100", MPLS_NAT.replace(",tag,tag2", ""), "csv", {}),
    ("100", "sum_host", "csv", {}),
    ("101", "sum_port", "formatted", {}),
    ("101", "none", "json", {}),
    pytest.param("100", "src_host,dst_port,proto", "json",
                 {"print_history": "5m", "print_history_roundoff": "h"}),
    ("101", "src_host,dst_port,proto", "json",
     {"print_history": "1h", "print_history_roundoff": "h"}),
]


def _case_id(c):
    if hasattr(c, "values"):
        c = c.values
    cap, agg, fmt, opts = c
    return f"{cap}-{agg.split(',')[0]}-{fmt}{'-' + '-'.join(opts) if opts else ''}"


def decoded_batches(capture, n=64):
    """Decoded batches, arrival_seq made absolute as the core does."""
    dec = NetflowDecoder(NetflowOptions(), log=Logger(), stats=Stats())
    dgs = list(read_datagrams(str(capture)))
    base = 0
    for i in range(0, len(dgs), n):
        b = dec.decode(dgs[i:i + n])
        b.records["arrival_seq"] += base
        base += len(b)
        yield b


@pytest.mark.parametrize("cap,agg,fmt,opts", CASES, ids=[_case_id(c) for c in CASES])
def test_pipeline_matches_pmacct(pmacct_nfacctd, oracle_cache, tmp_path, cap, agg, fmt, opts):
    capture = CAPTURES[cap]
    expected = _run(oracle_cache, tmp_path / "oracle", capture, agg, fmt, dict(opts), None)
    out = tmp_path / "ours.txt"
    keys = {"print_output": fmt, "print_output_file": str(out), "print_refresh_time": 86400,
            **opts}
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        p = PrintPlugin(FakePcfg(aggregate=agg, **keys), PluginContext("nfacctd"))
        p.start()
        for b in decoded_batches(capture):
            p.ingest(b)
        p.finish()
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
    ours = out.read_text()
    for k in DOCUMENTED.get(cap, []):
        adjusted = zero_column(ours, fmt, k)
        if k.column in ours or f'"{k.json_key}"' in ours:
            assert adjusted != ours, f"documented difference '{k.doc}' no longer shows"
        ours = adjusted
    e = oracle.normalise(expected, fmt)
    a = oracle.normalise(ours, fmt)
    assert e == a, oracle.diff_message(e, a)
