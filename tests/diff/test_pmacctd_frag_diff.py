"""pmacctd_frag_buffer_size against pmacct 1.7.7: a capture with many fragmented IPv4
and IPv6 UDP datagrams overflows small fragment tables; the datagrams that find no room
are skipped (all their fragments), as in pmacct."""
from __future__ import annotations

import pytest

from tests.support import multirun, oracle, pktgen

pytestmark = pytest.mark.diff

# one plugin only: pmacct adds held-back fragments to its first plugin only
PLUGINS = {"five": ("src_host, dst_host, src_port, dst_port, proto", "csv", None)}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    p = pktgen.PktParams(seed=41, link="ethernet", packets=1200, frag_share=0.9,
                         frag_swap=0.3, ipv6_share=0.4)
    return pktgen.write_capture(tmp_path_factory.mktemp("frag") / "frag.pcap", p)


# 7199 bytes: 99 IPv4 (72-byte nodes) and 74 IPv6 (96-byte nodes) datagrams; 7200: 100
# and 75; 3600: 50 and 37 -- an off-by-one in a node size would show in the rows
@pytest.mark.parametrize("size", [7199, 7200, 3600])
def test_frag_buffer_size_same_as_pmacct(capture, size, tmp_path, oracle_cache):
    theirs, ours = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path, oracle_cache,
                                     extra={"pmacctd_frag_buffer_size": size})
    oracle.check_run(theirs, "pmacct pmacctd", strict_log=False)
    oracle.check_run(ours, "our pmacctd", strict_log=False)
    d = multirun.compare(theirs, ours, PLUGINS)
    assert not d, d + "\n" + ours.describe()
    assert "Fragment/4 buffer full. Skipping fragments. Increase pmacctd_frag_buffer_size" \
        in ours.log
    assert "Fragment/6 buffer full" in ours.log
    assert "Fragment/4 buffer full" in theirs.log and "Fragment/6 buffer full" in theirs.log


def test_one_node_more_is_one_datagram_more(capture, tmp_path, oracle_cache):
    """7199 vs 7200 bytes: one IPv4 and one IPv6 node more, so more packets counted
    (the sizes above are not all the same run)."""
    total = lambda run: sum(int(r["PACKETS"]) for r in oracle.parse_rows(
        run.outputs["out-five.txt"], "csv"))
    a = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path / "a", oracle_cache,
                          extra={"pmacctd_frag_buffer_size": 7199})[1]
    b = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path / "b", oracle_cache,
                          extra={"pmacctd_frag_buffer_size": 7200})[1]
    assert total(b) > total(a)


def test_default_frag_buffer_holds_them_all(capture, tmp_path, oracle_cache):
    """With the default 4096000 bytes nothing is skipped: more packets than with a small
    table, and no 'buffer full' line."""
    small = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path / "s", oracle_cache,
                              extra={"pmacctd_frag_buffer_size": 7200})[1]
    theirs, ours = multirun.run_both("pmacctd", capture, PLUGINS, tmp_path / "d", oracle_cache)
    assert not multirun.compare(theirs, ours, PLUGINS)
    assert "buffer full" not in ours.log
    total = lambda run: sum(int(r["PACKETS"]) for r in oracle.parse_rows(
        run.outputs["out-five.txt"], "csv"))
    assert total(ours) > total(small)
