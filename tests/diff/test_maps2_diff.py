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
    # pmacct warns that a map with negations cannot be indexed
    _, ours = oracle.run_same_output(pmacct_nfacctd, our_nfacctd, s, tmp_path, fmt,
                                     strict_pmacct_log=False)
    out = ours.output
    for tag in ("10", "11", "12", "20", "21", "22"):      # every key took part
        assert (f'"tag": {tag},' in out) if fmt == "json" else (f"\n{tag}," in out)
    assert "DE-AD-BE-EF-00" in out and "7F-7F-7F-7F-7F-7F-7F-7F-7F" in out


def test_pmacct_U_lists_custom_primitives_as_pmacct(tmp_path, pmacct_nfacctd):
    """`pmacct -U` on a memory table aggregating fixed and raw custom primitives: the
    same NAME/LEN/OFF table as 1.7.7's client on 1.7.7's daemon. (1.7.7's memory plugin
    refuses vlen primitives at start-up; ours takes them: see the last table.)"""
    from tests.support.memory import C_CLIENT, MemoryDaemon, our_client
    capture = tmp_path / "c.pcap"
    ipfixgen.write(capture, seed=5, n=60)
    (tmp_path / "prims.lst").write_text(
        PRIMS + "name=fwd_cp field_type=89 len=1 semantics=u_int\n"
                "name=sp_raw field_type=7 len=2 semantics=raw\n"
                "name=dp_cp field_type=11 len=2 semantics=hex\n")
    tables = {"t": ("src_port", "fwd_cp", "sp_raw", "dp_cp")}
    extra = {"aggregate_primitives": str(tmp_path / "prims.lst")}
    theirs = MemoryDaemon(oracle.pmacct_binary("nfacctd"), tables, capture,
                          tmp_path / "pmacct", extra=extra).start()
    ours = MemoryDaemon(oracle.our_binary("nfacctd"), tables, capture, tmp_path / "ours",
                        extra=extra).start()
    try:
        theirs.wait_loaded(C_CLIENT)
        ours.wait_loaded(our_client())
        t = theirs.query(C_CLIENT, "t", ["-U"])
        o = ours.query(our_client(), "t", ["-U"])
    finally:
        theirs.stop()
        ours.stop()
    assert (o.returncode, o.stdout) == (t.returncode, t.stdout)
    assert o.stdout.decode().split() == ["NAME", "LEN", "OFF", "fwd_cp", "1", "0",
                                         "sp_raw", "2", "1", "dp_cp", "2", "8"]
    # ours with a vlen primitive too (1.7.7 would not start)
    v = MemoryDaemon(oracle.our_binary("nfacctd"), {"v": ("ent_raw", "dp_cp")}, capture,
                     tmp_path / "ours-v", extra=extra).start()
    try:
        v.wait_loaded(our_client())
        o = v.query(our_client(), "v", ["-U"])
    finally:
        v.stop()
    assert o.stdout.decode().split()[3:] == ["ent_raw", "65535", "65535", "dp_cp", "2", "0"]

