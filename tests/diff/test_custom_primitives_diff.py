"""aggregate_primitives against pmacct 1.7.7 nfacctd: custom primitives of u_int, hex, ip
(IPv4 and IPv6), mac, raw (also cut short) and str semantics, some with a length the
template does not have; identical CSV, formatted and JSON output."""
from __future__ import annotations

import pytest

from tests.support import flowgen, oracle

pytestmark = pytest.mark.diff

PRIMITIVES = """\
! NetFlow v9 / IPFIX elements as custom primitives
name=in_vlan_cp   field_type=58   len=2   semantics=u_int
name=tos_hex      field_type=5    len=1   semantics=hex
name=nh_cp        field_type=15   len=4   semantics=ip
name=src6_cp      field_type=27   len=16  semantics=ip
name=srcmac_cp    field_type=56   len=6   semantics=mac
name=octets_cp    field_type=1    len=2   semantics=u_int
name=dst_as_cp    field_type=17   len=4   semantics=u_int
name=src4_raw     field_type=8    len=4   semantics=raw
name=src4_raw2    field_type=8    len=2   semantics=raw
name=dst4_str     field_type=12   len=8   semantics=str
"""
AGG = ("src_port, in_vlan_cp, nh_cp, tos_hex, src6_cp, srcmac_cp, octets_cp, dst_as_cp, "
       "src4_raw, src4_raw2, dst4_str")


@pytest.mark.parametrize("fmt", ["csv", "formatted", "json"])
@pytest.mark.parametrize("version", [9, 10])
def test_custom_primitives_same_as_pmacct(version, fmt, tmp_path, pmacct_nfacctd,
                                          our_nfacctd):
    capture = tmp_path / "c.pcap"
    flowgen.write_capture(capture, version=version, records=1500, seed=80 + version,
                          ipv6_share=0.3)
    (tmp_path / "prims.lst").write_text(PRIMITIVES)
    s = oracle.print_settings(capture, AGG, fmt,
                              extra={"aggregate_primitives": str(tmp_path / "prims.lst")})
    _, ours = oracle.run_same_output(pmacct_nfacctd, our_nfacctd, s, tmp_path, fmt)
    assert "2001:db8:" in ours.output


def test_bad_primitives_file_is_a_startup_error(tmp_path, our_nfacctd):
    capture = tmp_path / "c.pcap"
    flowgen.write_capture(capture, version=9, records=10, seed=1)
    (tmp_path / "prims.lst").write_text("name=x field_type=5 len=3 semantics=u_int\n")
    s = oracle.print_settings(capture, "x", "csv",
                              extra={"aggregate_primitives": str(tmp_path / "prims.lst")})
    res = oracle.run_daemon(our_nfacctd, s, tmp_path / "ours", timeout=60)
    assert res.returncode == 1
    assert "aggregate_primitives" in res.stderr and "line 1" in res.stderr, res.stderr
