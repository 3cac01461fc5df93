"""pre_tag_map's NetFlow-only keys (flowset_id, is_bi_flow, fwdstatus, with negations)
and variable-length custom primitives (len=vlen, raw semantics, enterprise element)
against pmacct 1.7.7 nfacctd on a hand-built IPFIX capture: identical CSV and JSON.

What 1.7.7 cannot show (it prints nothing, or crashes): vlen str primitives, vlen on
standard elements, `return=true`: tests/unit/test_maps2.py checks ours on exact values."""
from __future__ import annotations

import pytest

from tests.support import ipfixgen, oracle

pytestmark = pytest.mark.diff

MAP = """\
set_tag=10 fwdstatus=130
set_tag=11 fwdstatus=-66 flowset_id=256
set_tag=12 fwdstatus=64
set_tag=13 fwdstatus=0
set_tag=14 fwdstatus=192 flowset_id=258
set_tag=20 is_bi_flow=true
set_tag=21 flowset_id=-257 is_bi_flow=false in=2
set_tag=22 is_bi_flow=-true in=3
"""
PRIMS = "name=ent_raw field_type=9999:2 len=vlen semantics=raw\n"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_netflow_map_keys_and_vlen_raw_same_as_pmacct(fmt, tmp_path, pmacct_nfacctd,
                                                      our_nfacctd):
    capture = tmp_path / "c.pcap"
    ipfixgen.write(capture, seed=5, n=600)
    (tmp_path / "pretag.map").write_text(MAP)
    (tmp_path / "prims.lst").write_text(PRIMS)
    s = oracle.print_settings(capture, "tag, src_port, ent_raw", fmt, extra={
        "pre_tag_map": str(tmp_path / "pretag.map"),
        "aggregate_primitives": str(tmp_path / "prims.lst")})
    results = {}
    for who, binary in (("pmacct", pmacct_nfacctd), ("ours", our_nfacctd)):
        res = oracle.run_daemon(binary, s, tmp_path / who)
        # pmacct warns that a map with negations cannot be indexed
        oracle.check_run(res, who, strict_log=False)
        results[who] = res
    oracle.assert_same_output(results["pmacct"], results["ours"], fmt)
    out = results["ours"].output
    for tag in ("10", "11", "12", "20", "21", "22"):      # every key took part
        assert (f'"tag": {tag},' in out) if fmt == "json" else (f"\n{tag}," in out)
    assert "DE-AD-BE-EF-00" in out and "7F-7F-7F-7F-7F-7F-7F-7F-7F" in out
