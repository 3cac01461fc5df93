"""geoipv2_file against pmacct 1.7.7 nfacctd (built with GeoIPv2): a MaxMind DB made with
mmdb-writer over the generator's address plan; country, postal code and coordinates of
sources and destinations; identical CSV and JSON."""
from __future__ import annotations

import pytest

from tests.support import flowgen, oracle

pytestmark = pytest.mark.diff
import mmdb_writer  # noqa: E402  (setup.py test extras)
from netaddr import IPSet  # noqa: E402  (a dependency of mmdb-writer)

NETS = [
    ("10.0.0.0/9", {"country": {"iso_code": "IT"}, "postal": {"code": "00100"},
                    "location": {"latitude": 41.9, "longitude": 12.5}}),
    ("10.128.0.0/10", {"country": {"iso_code": "DE"}, "postal": {"code": "10115-LONGCODE"},
                       "location": {"latitude": 52.52, "longitude": 13.405}}),
    ("172.0.0.0/9", {"country": {"iso_code": "FRA"}}),
    ("172.128.0.0/9", {"location": {"latitude": -33.8688, "longitude": 151.2093}}),
    ("2001:db8:100::/40", {"country": {"iso_code": "JP"}, "postal": {"code": "100-0001"},
                           "location": {"latitude": 35.6762, "longitude": 139.6503}}),
]


def make_db(path):
    w = mmdb_writer.MMDBWriter(ip_version=6, database_type="GeoIP2-City",
                               ipv4_compatible=True)
    for net, rec in NETS:
        w.insert_network(IPSet([net]), rec)
    w.to_db_file(str(path))


AGG = ("src_host_country, dst_host_country, src_host_pocode, dst_host_pocode, "
       "src_host_coords, dst_host_coords")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_geoipv2_same_as_pmacct(fmt, tmp_path, pmacct_nfacctd, our_nfacctd):
    capture = tmp_path / "c.pcap"
    flowgen.write_capture(capture, version=9, records=3000, seed=71, ipv6_share=0.3)
    make_db(tmp_path / "geo.mmdb")
    s = oracle.print_settings(capture, AGG, fmt,
                              extra={"geoipv2_file": str(tmp_path / "geo.mmdb")})
    _, ours = oracle.run_same_output(pmacct_nfacctd, our_nfacctd, s, tmp_path, fmt)
    assert "DE" in ours.output and "JP" in ours.output
