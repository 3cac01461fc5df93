"""uacctd for real: a network namespace made by the test, nftables rules logging the same
packets to two NFLOG groups, pmacct 1.7.7's uacctd on one group and ours on the other,
traffic sent inside the namespace; both must print the same rows.

Needs root, iproute2 and nftables (scripts/bootstrap.sh installs nftables).
"""
from __future__ import annotations

import textwrap

import pytest

from tests.support import oracle
from tests.support.netns import namespace, run_uacctd_pair

pytestmark = pytest.mark.diff


TRAFFIC = textwrap.dedent("""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(400):
        s.sendto(b'x' * (i % 90), ('127.0.0.1', 5000 + i % 9))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(('127.0.0.1', 5500)); srv.listen(1)
    t.connect(('127.0.0.1', 5500)); c, _ = srv.accept()
    for i in range(50):
        t.send(b'z' * 100)
    t.close(); c.close(); srv.close()
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    for i in range(150):
        s6.sendto(b'y' * (i % 70), ('::1', 5100 + i % 4))
""")

RULES = """
table inet pypmacct_test {
  chain out {
    type filter hook output priority 0;
    meta l4proto { tcp, udp } th dport 5000-5999 log group 11
    meta l4proto { tcp, udp } th dport 5000-5999 log group 12
  }
}
"""


@pytest.fixture
def netns():
    with namespace(RULES, "pmt", "the uacctd test") as name:
        yield name


def _conf(tmp, who, group, **more):
    d = tmp / who
    d.mkdir()
    (d / "uacctd.conf").write_text(oracle.render_config({**more,
        "daemonize": False, "plugins": "print[a], print[b]",
        "aggregate[a]": "src_host, dst_host, src_port, dst_port, proto, in_iface, out_iface, tos",
        "aggregate[b]": "dst_port, proto, src_mac, dst_mac",
        "print_output[a]": "csv", "print_output[b]": "json",
        "print_output_file[a]": str(d / "a.txt"), "print_output_file[b]": str(d / "b.txt"),
        "print_refresh_time": 86400, "logfile": str(d / "log"), "uacctd_group": group,
        "snaplen": 128,
    }))
    return d


def test_uacctd_same_output_as_pmacct_in_a_namespace(netns, tmp_path):
    # ours with a queue threshold: the kernel batches 16 packets per netlink message (and
    # flushes the rest after its 1 s timeout), so one read holds many messages
    theirs = _conf(tmp_path, "pmacct", 11)
    ours = _conf(tmp_path, "ours", 12, uacctd_threshold=16)
    run_uacctd_pair(netns, theirs, ours, TRAFFIC)
    for name, fmt in (("a.txt", "csv"), ("b.txt", "json")):
        want = (theirs / name).read_text()
        got = (ours / name).read_text()
        d = oracle.diff_message(oracle.normalise(want, fmt), oracle.normalise(got, fmt))
        assert not d, d + "\n" + (ours / "log").read_text()[-2000:]
    rows = oracle.parse_rows((ours / "a.txt").read_text(), "csv")
    udp = sum(int(r["PACKETS"]) for r in rows if r["PROTOCOL"] == "udp")
    assert udp == 550
    assert any(r["PROTOCOL"] == "tcp" for r in rows)
