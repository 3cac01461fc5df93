"""The memory plugin in-process: its table, its bound, its query server (protocol errors,
hung clients) and the pmacct client's outputs on known rows."""
from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest

from pypmacct.client import protocol as P
from pypmacct.client.main import Client, Exit
from pypmacct.plugins.base import PluginContext
from pypmacct.plugins.memory_plugin import MemoryPlugin, capacity

from .print_support import FakePcfg, batch


def make(tmp_path, aggregate="src_host,dst_host,src_port,dst_port,proto", **keys):
    keys.setdefault("imt_path", str(tmp_path / "t.pipe"))
    pcfg = FakePcfg(name="t", type_="memory", aggregate=aggregate, **keys)
    p = MemoryPlugin(pcfg, PluginContext("nfacctd"))
    p.start()
    return p


def flow(src, dst, sport, dport, proto=6, packets=1, nbytes=100, **kw):
    return dict(src_host=src, dst_host=dst, src_port=sport, dst_port=dport, proto=proto,
                packets=packets, bytes=nbytes, flows=1, **kw)


def request(path, req: dict | bytes):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(req if isinstance(req, bytes) else P.encode(dict(req, v=P.VERSION)))
    try:
        return P.recv_reply(s)
    finally:
        s.close()


def client(path, *args) -> tuple[int, str]:
    out = io.BytesIO()
    c = Client("pmacct", out)
    try:
        code = c.run(["-p", path] + list(args))
    except Exit as e:
        out.write(e.text.encode())
        code = e.code
    return code, out.getvalue().decode()


@pytest.fixture
def plugin(tmp_path):
    p = make(tmp_path)
    p.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1000, 80, packets=2, nbytes=300),
                    flow("10.0.0.1", "10.0.0.2", 1000, 80, packets=1, nbytes=50),
                    flow("10.0.0.3", "10.0.0.2", 1001, 25, packets=4, nbytes=4000),
                    flow("2001:db8::1", "2001:db8::2", 5, 80, proto=17, nbytes=70)]))
    yield p
    p.finish()


def test_stats_formatted_exact(plugin):
    code, out = client(plugin.path, "-s")
    assert code == 0
    assert out == (
        "SRC_IP                                         DST_IP                                  "
        "       SRC_PORT  DST_PORT  PROTOCOL    PACKETS               BYTES\n"
        "10.0.0.1                                       10.0.0.2                                "
        "       1000      80        tcp         3                     350\n"
        "10.0.0.3                                       10.0.0.2                                "
        "       1001      25        tcp         4                     4000\n"
        "2001:db8::1                                    2001:db8::2                             "
        "       5         80        udp         1                     70\n"
        "\nFor a total of: 3 entries\n")


def test_counters_and_wildcards(plugin):
    p = plugin.path
    assert client(p, "-c", "dst_port", "-N", "80") == (0, "420\n")
    assert client(p, "-c", "src_port,dst_port", "-N", "*,80;*,25;1000,*", "-n", "all") == \
        (0, "4 420 0 2\n4 4000 0 1\n3 350 0 1\n")
    assert client(p, "-c", "src_port,dst_port", "-N", "*,80;*,25", "-S", "-n", "all") == \
        (0, "8 4420 0 3\n")
    # an exact query: the fourth number is the number of entries matched (1.7.7: junk)
    assert client(p, "-c", "src_host,dst_host,src_port,dst_port,proto", "-N",
                  "10.0.0.1,10.0.0.2,1000,80,tcp", "-n", "all") == (0, "3 350 0 1\n")
    # a primitive the table does not have counts as zero, as in pmacct
    assert client(p, "-c", "dst_port,tos", "-N", "80,0;80,1") == (0, "420\n0\n")


def test_match_top_and_reset(plugin):
    code, out = client(plugin.path, "-c", "dst_port", "-M", "80", "-T", "bytes", "-O", "csv")
    assert out == ("SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES\n"
                   "10.0.0.1,10.0.0.2,1000,80,tcp,3,350\n"
                   "2001:db8::1,2001:db8::2,5,80,udp,1,70\n")
    assert client(plugin.path, "-c", "dst_port", "-N", "80", "-r") == (0, "420\n")
    assert client(plugin.path, "-c", "dst_port", "-N", "80") == (0, "0\n")
    assert client(plugin.path, "-c", "dst_port", "-N", "25") == (0, "4000\n")
    # reset entries count again from zero
    plugin.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1000, 80, nbytes=7)]))
    assert client(plugin.path, "-c", "dst_port", "-N", "80", "-n", "all") == (0, "1 7 0 1\n")


def test_erase_and_erase_stamp(plugin):
    assert client(plugin.path, "-i") == (0, "never\n")
    assert client(plugin.path, "-e") == (0, "OK: Clearing stats.\n")
    code, out = client(plugin.path, "-s", "-O", "csv")
    assert out == "SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES\n"
    code, out = client(plugin.path, "-i")
    assert code == 0 and int(out) in (0, 1)


def test_bounded_table_drops_new_aggregates_only(tmp_path):
    # 2 buckets + (2 - 1) pools of 352 * 3 bytes: 5 aggregates
    p = make(tmp_path, imt_buckets=2, imt_mem_pools_number=2, imt_mem_pools_size=352 * 3)
    try:
        assert p.limit == capacity(2, 2, 352 * 3) == 5
        rows = [flow(f"10.0.0.{i}", "10.0.1.1", 1, 2, nbytes=10) for i in range(8)]
        p.ingest(batch(rows))
        p.ingest(batch([flow("10.0.0.0", "10.0.1.1", 1, 2, nbytes=5),
                        flow("10.0.0.7", "10.0.1.1", 1, 2, nbytes=5)]))
        code, out = client(p.path, "-s", "-O", "csv")
        assert out.splitlines()[1:] == [f"10.0.0.{i},10.0.1.1,1,2,tcp,{2 if i == 0 else 1},"
                                        f"{15 if i == 0 else 10}" for i in range(5)]
        t = p.table
        assert (t.refused_aggregates, t.refused_packets, t.refused_bytes) == (4, 4, 35)
    finally:
        p.finish()


def test_unbounded_when_pools_is_zero(tmp_path):
    p = make(tmp_path, imt_buckets=2, imt_mem_pools_number=0)
    try:
        assert p.limit == 0
        p.ingest(batch([flow(f"10.0.{i // 250}.{i % 250}", "10.0.1.1", 1, 2)
                        for i in range(2000)]))
        assert client(p.path, "-c", "dst_port", "-N", "2", "-n", "all") == \
            (0, "2000 200000 0 2000\n")
    finally:
        p.finish()


def test_flows_count_only_with_the_flows_primitive(tmp_path):
    p = make(tmp_path, aggregate="proto,flows")
    try:
        p.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1, 2), flow("10.0.0.1", "10.0.0.2", 1, 2)]))
        assert client(p.path, "-c", "proto", "-N", "tcp", "-n", "all") == (0, "2 200 2 1\n")
        code, out = client(p.path, "-s", "-O", "json")
        assert out == '{"ip_proto": "tcp", "packets": 2, "flows": 2, "bytes": 200}\n'
    finally:
        p.finish()


def test_print_history_puts_no_time_bins_in_the_table(tmp_path):
    """The memory table has no time bins: flows 10 minutes apart under print_history: 5m
    sum into one entry, and the key has no stamp columns."""
    p = make(tmp_path, print_history="5m")
    try:
        assert p.time_bins is None
        assert "stamp_inserted" not in p.keys.key_dtype.names
        t0 = 1_700_000_000 * 1_000_000
        p.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1, 2, time_start=t0),
                        flow("10.0.0.1", "10.0.0.2", 1, 2, time_start=t0 + 600_000_000)]))
        assert client(p.path, "-c", "dst_port", "-N", "2", "-n", "all") == \
            (0, "2 200 0 1\n")
    finally:
        p.finish()


def test_zero_key_entries_are_listed(tmp_path):
    p = make(tmp_path, aggregate="none")
    try:
        p.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1, 2), flow("10.0.0.3", "10.0.0.2", 1, 2)]))
        code, out = client(p.path, "-s")
        assert out == ("PACKETS               BYTES\n2                     200\n"
                       "\nFor a total of: 1 entries\n")
    finally:
        p.finish()


# ---- protocol robustness ---------------------------------------------------------------
@pytest.mark.parametrize("raw, error", [
    (b"not json\n", "request is not JSON"),
    (b"[1, 2]\n", "request is not a JSON object"),
    (b'{"v": 9, "op": "stats"}\n', "unsupported protocol version"),
    (b'{"v": 1, "op": "drop_tables"}\n', "unknown operation"),
    (b'{"v": 1, "op": "counter", "queries": 5}\n', "'queries' must be a list"),
    (b'{"v": 1, "op": "counter", "queries": [{"src_host": "nonsense"}]}\n', "bad value"),
    (b'{"v": 1, "op": "counter", "queries": [{"bogus_prim": 1}]}\n', None),
    (b"\xff\xfe\n", "request is not JSON"),
])
def test_malformed_requests_get_an_error_reply(plugin, raw, error):
    hdr, blobs = request(plugin.path, raw)
    if error is None:       # an unknown primitive is a field the table lacks: no match
        assert hdr == {"ok": True, "counters": [[0, 0, 0, 0]], "blobs": []}
    else:
        assert hdr["ok"] is False and error in hdr["error"]
    # and the plugin keeps serving
    assert client(plugin.path, "-c", "dst_port", "-N", "80") == (0, "420\n")


def test_oversized_request_gets_an_error_reply(plugin):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(plugin.path)
    try:
        chunk = b"x" * 65536
        try:
            for _ in range(P.MAX_REQUEST // len(chunk) + 2):
                s.sendall(chunk)
        except OSError:
            pass                # the plugin may close on us once it has answered
        hdr, _ = P.recv_reply(s)
    finally:
        s.close()
    assert hdr["ok"] is False and "larger than" in hdr["error"]
    assert client(plugin.path, "-c", "dst_port", "-N", "25") == (0, "4000\n")


def test_too_many_queries(plugin):
    qs = [{"dst_port": 80}] * (P.MAX_QUERIES + 1)
    hdr, _ = request(plugin.path, {"op": "counter", "queries": qs})
    assert hdr["ok"] is False and "at most 4096" in hdr["error"]


def test_hung_clients_do_not_block_ingestion_or_other_clients(plugin):
    # clients that connect and never send, and one that asks for the table and never
    # reads its reply (a large one, so that the socket buffer fills up)
    rows = [flow(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", "10.9.9.9", 1, 2)
            for i in range(60000)]
    plugin.ingest(batch(rows))
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
    for s in silent:
        s.connect(plugin.path)
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    reader.connect(plugin.path)
    reader.sendall(P.encode({"v": 1, "op": "stats"}))
    time.sleep(0.3)
    try:
        t0 = time.monotonic()
        plugin.ingest(batch([flow("10.0.0.1", "10.0.0.2", 1000, 80, nbytes=1)]))
        # blocking on the silent clients would hang here for good; 5 s is only a bound
        assert time.monotonic() - t0 < 5.0
        assert client(plugin.path, "-c", "dst_port", "-N", "80") == (0, "421\n")
    finally:
        for s in silent + [reader]:
            s.close()


def test_socket_is_replaced_and_removed(tmp_path):
    path = tmp_path / "t.pipe"
    path.write_text("stale")
    p = make(tmp_path)
    assert path.is_socket() and (path.stat().st_mode & 0o777) == 0o777
    p.finish()
    assert not path.exists()


def test_socket_path_appears_only_once_it_listens(tmp_path, monkeypatch):
    # a client waiting for the path to exist must not then be refused: at listen()
    # time the final path must not be there yet
    path = tmp_path / "t.pipe"
    seen = []
    real_listen = socket.socket.listen

    def listen(self, *a):
        seen.append(path.exists())
        return real_listen(self, *a)

    monkeypatch.setattr(socket.socket, "listen", listen)
    p = make(tmp_path)
    try:
        assert seen == [False]
        assert path.is_socket() and [x.name for x in tmp_path.iterdir()] == ["t.pipe"]
        assert request(str(path), {"op": "stats"})[0]["rows"] == 0
    finally:
        p.finish()


def test_a_path_with_no_room_for_the_temporary_name_is_bound_in_place(tmp_path):
    name = "p" * (107 - len(str(tmp_path)) - 1)     # the longest path AF_UNIX takes
    path = tmp_path / name
    assert len(str(path)) == 107
    p = make(tmp_path, imt_path=str(path))
    try:
        assert path.is_socket() and request(str(path), {"op": "stats"})[0]["rows"] == 0
    finally:
        p.finish()


def test_concurrent_queries_while_ingesting(plugin):
    errors = []
    stop = threading.Event()

    def query_loop():
        while not stop.is_set():
            code, out = client(plugin.path, "-c", "dst_port", "-N", "25")
            if (code, out) != (0, "4000\n"):
                errors.append((code, out))

    threads = [threading.Thread(target=query_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(50):
            plugin.ingest(batch([flow("10.0.0.9", "10.0.0.2", 9, 9, nbytes=1)] * 200))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert client(plugin.path, "-c", "dst_port", "-N", "9") == (0, "10000\n")


def test_query_without_constraints_sums_the_table(plugin):
    assert client(plugin.path, "-c", "src_host", "-N", "*", "-n", "all") == \
        (0, "8 4420 0 3\n")
    assert client(plugin.path, "-c", "src_host", "-M", "*", "-O", "csv")[1].count("\n") == 4


def test_tunnel_proto_cell_widths():
    """1.7.7 prints a tunnel protocol name as %-10s plus 7 spaces, a number as %-10u
    plus 2."""
    from pypmacct.aggregate import KeyBuilder
    from pypmacct.client.render import TableRenderer
    from pypmacct.output.values import PROTOCOLS_NUMBER
    kb = KeyBuilder(("tunnel_proto",), )
    keys = np.zeros(2, dtype=kb.key_dtype)
    keys["tunnel_proto"] = [6, PROTOCOLS_NUMBER]
    vals = {"packets": np.array([1, 2], dtype=np.uint64),
            "bytes": np.array([10, 20], dtype=np.uint64),
            "flows": np.zeros(2, dtype=np.uint64)}
    r = TableRenderer("formatted", ("tunnel_proto",), kb.key_dtype)
    assert r.header() == b"TUNNEL_PROTOCOL  PACKETS               BYTES\n"
    assert r.lines(keys, vals, [""]) == (
        b"tcp" + b" " * 14 + b"1" + b" " * 21 + b"10\n"
        + str(PROTOCOLS_NUMBER).encode().ljust(12) + b"2" + b" " * 21 + b"20\n")
