"""Config semantics against pmacct 1.7.7 itself: the same configuration file and switches
go to the real nfacctd (reading a two-flow NetFlow v5 capture, print plugin, CSV) and to
our loader; the primitives pmacct's CSV title shows must be the aggregate we compute."""
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

from pypmacct.config import load_config
from tests.support import oracle, pcapio

pytestmark = pytest.mark.oracle

TITLE_TO_PRIMITIVE = {"SRC_IP": "src_host", "DST_IP": "dst_host", "PROTOCOL": "proto",
                      "SRC_PORT": "src_port", "DST_PORT": "dst_port"}

# (id, settings after the common ones, switches, the aggregate plugin 'b' ends up with)
CASES = [
    ("scoped-then-global", {"aggregate[b]": "dst_host", "aggregate": "proto"}, [],
     ("proto",)),
    ("global-then-scoped", {"aggregate": "proto", "aggregate[b]": "dst_host"}, [],
     ("dst_host",)),
    ("switch-over-file", {"aggregate": "dst_host"}, ["-c", "src_port"], ("src_port",)),
    ("switch-over-scoped", {"aggregate[b]": "dst_host"}, ["-c", "proto"], ("proto",)),
    ("key-case-and-spaces", {" AggreGate [b] ": " DST_HOST , Proto "}, [],
     ("dst_host", "proto")),
    ("comment-lines", {"! aggregate": "proto", "   # aggregate": "proto",
                       "aggregate": "src_host"}, [], ("src_host",)),
]


def _v5(flows) -> bytes:
    hdr = struct.pack("!HHIIIIBBH", 5, len(flows), 100000, 1700000000, 0, 1, 0, 0, 0)
    body = b""
    for src, dst, sport, dport, proto in flows:
        body += struct.pack("!4s4s4sHHIIIIHHBBBBHHBBH",
                            bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))),
                            bytes(4), 1, 2, 10, 1000, 90000, 99000, sport, dport, 0, 0x18,
                            proto, 0, 0, 0, 24, 24, 0)
    return hdr + body


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pmacct_nfacctd):
    base = tmp_path_factory.mktemp("config-oracle")
    capture = base / "v5.pcap"
    with pcapio.open_writer(capture) as w:
        payload = _v5([("192.0.2.1", "198.51.100.1", 1234, 80, 6),
                       ("192.0.2.2", "198.51.100.1", 1235, 53, 17)])
        w.write(1_700_000_000_000_000_000,
                pcapio.udp_frame("10.0.0.1", "10.0.0.2", 5000, 2100, payload))

    def one(case):
        cid, extra, switches, _ = case
        settings = {"pcap_savefile": str(capture), "plugins": "print[b]",
                    "print_output": "csv", "print_output_file": "out.txt",
                    "print_refresh_time": 86400, "logfile": "daemon.log",
                    **oracle.ORACLE_BUFFERS, **extra}
        workdir = base / cid
        result = oracle.run_daemon(pmacct_nfacctd, settings, workdir, args=switches,
                                   timeout=60)
        ours = load_config("nfacctd", ["-f", str(workdir / "daemon.conf"), *switches])
        return cid, result, ours

    with ThreadPoolExecutor(len(CASES)) as pool:
        return {cid: (r, ours) for cid, r, ours in pool.map(one, CASES)}


@pytest.mark.parametrize("cid, expected", [(c[0], c[3]) for c in CASES])
def test_same_effective_aggregate_as_pmacct(runs, cid, expected):
    result, ours = runs[cid]
    assert result.returncode == 0, result.describe()
    title = result.output.splitlines()[0].split(",")
    pmacct_primitives = tuple(TITLE_TO_PRIMITIVE[t] for t in title
                              if t not in ("PACKETS", "BYTES"))
    assert pmacct_primitives == expected, result.describe()
    assert ours.plugin("b").get("aggregate") == expected
