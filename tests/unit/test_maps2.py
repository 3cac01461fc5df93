"""What pmacct 1.7.7 cannot be the judge of (it crashes or prints nothing), checked on
exact values: pre_tag_map return=true, the NetFlow-only keys on NetFlow v5, BGP keys
refused, variable-length str custom primitives end to end, `pmacct -U`'s table."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from pypmacct.maps.custom_primitives import from_registry, read_primitives, registry_table
from pypmacct.maps.pretag import PreTagMap, read_map
from tests.support import ipfixgen, oracle
from tests.unit.test_pretag_map import Log, recs


def _map(tmp_path, text, daemon="nfacctd"):
    p = tmp_path / "m.map"
    p.write_text(text)
    return PreTagMap(str(p), daemon, Log())


def test_return_emits_a_copy_with_the_tags_so_far_then_goes_on_cleared(tmp_path):
    m = _map(tmp_path, "set_tag=1 in=1 jeq=outs return=true\n"
                       "set_tag=2 in=2 jeq=outs\n"
                       "set_tag2=10 out=1 label=outs\n"
                       "set_label=x out=2\n")
    r = recs([{"in_iface": 1, "out_iface": 1, "packets": 5},
              {"in_iface": 2, "out_iface": 1, "packets": 7},
              {"in_iface": 1, "out_iface": 2, "packets": 9},
              {"in_iface": 3, "out_iface": 3, "packets": 11}])
    out, strings = m.tag_batch(r, [""])
    got = [(int(x["packets"]), int(x["tag"]), int(x["tag2"]), strings[x["label"]])
           for x in out]
    # the two in=1 records first appear as emitted copies (tag 1), then as evaluated on
    # from cleared tags; in=2 is not a return rule: one record, tags stacked as usual
    assert got == [(5, 1, 0, ""), (9, 1, 0, ""),
                   (5, 0, 10, ""), (7, 2, 10, ""), (9, 0, 0, "x"), (11, 0, 0, "")]
    assert int(out["packets"].sum()) == 5 + 7 + 9 + 11 + 5 + 9


def test_return_without_a_reachable_jump_changes_nothing(tmp_path):
    m = _map(tmp_path, "set_tag=1 in=1 return=true\nset_tag=2 in=1\n")
    out, _ = m.tag_batch(recs([{"in_iface": 1}]), [""])
    assert out["tag"].tolist() == [1]


def test_netflow_only_keys_on_v5_and_in_other_daemons(tmp_path):
    r = recs([{"export_proto_version": 5, "flowset_id": 0, "fwd_status": 0, "in_iface": 1}])
    m = _map(tmp_path, "set_tag=1 fwdstatus=0\nset_tag=2 flowset_id=300\n")
    out, _ = m.tag_batch(r.copy(), [""])
    assert out["tag"].tolist() == [2]    # v5: fwdstatus never matches, flowset_id always
    m = _map(tmp_path, "set_tag=3 fwdstatus=7 is_bi_flow=true in=1\n", daemon="sfacctd")
    out, _ = m.tag_batch(r.copy(), [""])
    assert out["tag"].tolist() == [3]    # 1.7.7 ignores them outside nfacctd


def test_bgp_keys_are_refused_naming_bgp(tmp_path):
    p = tmp_path / "m.map"
    p.write_text("set_tag=1 comms=65000:1\nset_tag=2 dst_roa=v\nset_tag=3 in=1\n")
    rules, problems = read_map(str(p), "nfacctd")
    assert [r.tag for r in rules] == [3]
    assert len(problems) == 2, problems
    assert ":1: 'comms' needs a BGP daemon's RIB" in problems[0]
    assert ":2: 'dst_roa' needs a BGP daemon's RIB" in problems[1]


def test_vlen_primitive_file_forms(tmp_path):
    p = tmp_path / "p.lst"
    p.write_text("name=a field_type=82 len=vlen semantics=str\n"
                 "name=b field_type=9:1 len=vlen semantics=raw\n"
                 "name=c field_type=5 len=2 semantics=raw\n"
                 "name=d field_type=6 len=4 semantics=u_int\n")
    prims = read_primitives(str(p), set())
    assert [(x.name, x.vlen, x.length) for x in prims] == \
        [("a", True, 0), ("b", True, 0), ("c", False, 2), ("d", False, 4)]
    # pmacct -U: aggregate order; raw takes 3 x len + 1 bytes; vlen has 65535/65535
    table = registry_table(prims, ["src_port", "d", "c", "a", "b"])
    assert [{k: e[k] for k in ("name", "len", "off")} for e in table] == [
        {"name": "d", "len": 4, "off": 0}, {"name": "c", "len": 2, "off": 4},
        {"name": "a", "len": 65535, "off": 65535}, {"name": "b", "len": 65535, "off": 65535}]
    # and what the client needs to print their columns
    assert [(e["semantics"], e["vlen"]) for e in table] == \
        [("u_int", False), ("raw", False), ("str", True), ("raw", True)]
    back = from_registry(table)
    assert [(x.name, x.semantics, x.length, x.vlen, x.fmt_width) for x in back] == \
        [("d", "u_int", 4, False, 10), ("c", "raw", 2, False, 2), ("a", "str", 0, True, 1),
         ("b", "raw", 0, True, 1)]
    p.write_text("name=a field_type=82 len=vlen semantics=u_int\n")
    with pytest.raises(ValueError, match="line 1: len=vlen needs semantics str or raw"):
        read_primitives(str(p), set())


def test_vlen_str_primitives_end_to_end(tmp_path, our_nfacctd):
    """Standard (interfaceName, 82) and enterprise variable-length elements as str:
    totals per value equal the capture's (text up to the first NUL)."""
    capture = tmp_path / "c.pcap"
    ipfixgen.write(capture, seed=9, n=300)
    (tmp_path / "p.lst").write_text(
        "name=ifname field_type=82 len=vlen semantics=str\n"
        "name=ent_str field_type=9999:1 len=vlen semantics=str\n"
        "name=ifdesc field_type=83 len=vlen semantics=raw\n")
    s = oracle.print_settings(capture, "ifname, ent_str, ifdesc", "csv",
                              extra={"aggregate_primitives": str(tmp_path / "p.lst")})
    res = oracle.run_daemon(our_nfacctd, s, tmp_path / "ours")
    oracle.check_run(res, "ours")
    want = collections.Counter()
    for tpl, vals in ipfixgen.records(9, 300):
        if tpl is ipfixgen.T_VLEN:
            key = (vals[9].split(b"\0")[0].decode(), vals[11].split(b"\0")[0].decode(),
                   vals[10].hex("-").upper())
            want[key] += vals[7]
        else:
            want[("", "", "")] += vals[7] if tpl is ipfixgen.T_FWD else vals[9]
    got = collections.Counter()
    for row in oracle.parse_rows(res.output, "csv"):
        got[(row["ifname"], row["ent_str"], row["ifdesc"])] += int(row["PACKETS"])
    assert got == want
    assert any(k[0] == "eth0" for k in got)      # "eth0\0junk" cut at the NUL
