"""pmacctd start-up keys against pmacct 1.7.7: pmacctd_force_frag_handling (the fragment
tables without port primitives) and sampling_rate refused together with an external
sampling rate."""
from __future__ import annotations

import pytest

from tests.support import multirun, oracle, pktgen

pytestmark = pytest.mark.diff

# no port, flag or flows primitive: without the force, fragments are plain packets
HOSTS = {"hosts": ("src_host, dst_host, proto", "csv", None)}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    p = pktgen.PktParams(seed=41, link="ethernet", packets=1200, frag_share=0.9,
                         frag_swap=0.3, ipv6_share=0.4)
    return pktgen.write_capture(tmp_path_factory.mktemp("forcefrag") / "frag.pcap", p)


def _packets(run):
    return sum(int(r["PACKETS"]) for r in oracle.parse_rows(run.outputs["out-hosts.txt"], "csv"))


def test_force_frag_handling_same_as_pmacct(capture, tmp_path, oracle_cache):
    """With a small fragment table, forced fragment handling skips the datagrams that
    find no room (as with port primitives); without the force every fragment counts."""
    extra = {"pmacctd_frag_buffer_size": 3600}
    theirs, ours = multirun.run_both("pmacctd", capture, HOSTS, tmp_path / "f", oracle_cache,
                                     extra={**extra, "pmacctd_force_frag_handling": True})
    oracle.check_run(theirs, "pmacct pmacctd", strict_log=False)
    oracle.check_run(ours, "our pmacctd", strict_log=False)
    d = multirun.compare(theirs, ours, HOSTS)
    assert not d, d + "\n" + ours.describe()
    assert "Fragment/4 buffer full" in ours.log and "Fragment/4 buffer full" in theirs.log
    plain_theirs, plain_ours = multirun.run_both("pmacctd", capture, HOSTS, tmp_path / "p",
                                                 oracle_cache, extra=extra)
    assert not multirun.compare(plain_theirs, plain_ours, HOSTS)
    assert "buffer full" not in plain_ours.log
    assert _packets(ours) < _packets(plain_ours)


@pytest.mark.parametrize("daemon", ["pmacctd", "sfacctd"])
def test_sampling_rate_with_ext_sampling_rate_refused(daemon, capture, tmp_path):
    """1.7.7: 'Internal packet sampling and external packet sampling are mutual
    exclusive', exit 1. Ours stops too, naming both keys and where they were set."""
    s = multirun.settings(capture, HOSTS, {f"{daemon}_ext_sampling_rate": 10,
                                           "sampling_rate[hosts]": 5})
    if daemon == "sfacctd":
        s["pcap_savefile"] = str(capture)        # a file is enough: it fails before reading
    theirs = oracle.run_daemon(oracle.pmacct_binary(daemon), s, tmp_path / "pmacct",
                               output_glob="out-*.txt", timeout=60)
    ours = oracle.run_daemon(oracle.our_binary(daemon), s, tmp_path / "ours",
                             output_glob="out-*.txt", timeout=60)
    assert theirs.returncode == 1 and "external packet sampling are mutual exclusive" in \
        theirs.log + theirs.stderr
    assert ours.returncode == 1, ours.describe()
    text = ours.log + ours.stderr
    assert f"'{daemon}_ext_sampling_rate' are mutually exclusive" in text, text
    assert "'sampling_rate' (plugin 'hosts', " in text and "daemon.conf:" in text
    assert not ours.outputs
