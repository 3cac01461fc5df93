"""L7-filter .pat files and the Spencer regex dialect (pypmacct/classifiers/patterns.py),
and the per-flow rules of pypmacct/classifiers/flows.py."""
from __future__ import annotations

import numpy as np
import pytest

from pypmacct.classifiers.flows import FlowClassifier
from pypmacct.classifiers.patterns import (Classifier, PatternError, compile_pattern,
                                           load_classifiers, parse_pattern_file,
                                           pre_process, prepare_payload)


def m(pattern: bytes, payload: bytes, snaplen: int = 1500) -> bool:
    return bool(compile_pattern(pattern).search(prepare_payload(payload, snaplen)))


def test_pre_process_hex_and_case():
    assert pre_process(rb"GET\x20/\x41") == b"get /a"          # \x41 'A' lowercased too
    assert pre_process(rb"a\x4") == rb"a\x4"                    # incomplete escape: as is
    assert pre_process(rb"ab\x00cd") == b"ab"                   # NUL ends the C string
    assert pre_process(rb"\xZZ") == rb"\xzz"


@pytest.mark.parametrize("pattern,payload,want", [
    (rb"^220", b"220 hello", True),
    (rb"^220", b"x220 hello", False),                  # ^ only at the payload's start
    (rb"abc$", b"xxabc", True),
    (rb"abc$", b"abc\n", False),                       # $ is the end, not before a newline
    (rb"HTTP/1\.1", b"http/1.1 200", True),            # pattern and payload lowercased
    (rb"http/1\.1", b"HTTP/1x1", False),
    (rb"a\x2eb", b"aXb", True),                        # \x2e is a regex dot, as l7-filter
    (rb"a\.b", b"aXb", False),
    (rb"x{2}", b"x{2}", True),                         # braces are literal
    (rb"x{2}", b"xx", False),
    (rb"\d", b"d", True),                              # \c is c: no \d class
    (rb"\d", b"5", False),
    (rb"[\x09-\x0d -~]+end", b"\t some text end", True),
    (rb"^[^a-z]", b"5x", True),
    (rb"^[^a-z]", b"Ax", False),                       # lowercased to 'a'
    (rb"[]x]", b"]", True),                            # ] first is literal
    (rb"[a-]", b"-", True),                            # - last is literal
    (rb"[\]", b"\\", True),                            # no escapes inside brackets
    (rb"a.c", b"a\nc", True),                          # . matches a newline too
    (rb"^\x01\x02", b"\x00\x01\x00\x00\x02", True),    # NULs dropped before matching
    (rb"(foo|bar)+baz", b"foobarbaz", True),
    (rb"colou?r", b"color", True),
])
def test_dialect(pattern, payload, want):
    assert m(pattern, payload) is want


@pytest.mark.parametrize("pattern", [rb"(abc", rb"abc)", rb"[abc", b"abc\\",
                                     rb"*a", rb"a**", rb"a*?", rb"(a*)*", rb"(|a)+",
                                     rb"[z-a]"])
def test_spencer_errors(pattern):
    with pytest.raises(PatternError):
        compile_pattern(pattern)


def test_snaplen_counts_non_nul_bytes():
    payload = b"\0" * 50 + b"a" * 10 + b"marker"
    assert m(b"marker", payload, snaplen=16)           # 10 + 6 after the NULs went
    assert not m(b"marker", payload, snaplen=15)


def test_pattern_file_format(tmp_path):
    f = tmp_path / "x.pat"
    f.write_text("# comment\n\n#another\nfoo\n^foo bar\nsecond line ignored (\n")
    name, rx = parse_pattern_file(str(f))
    assert name == "foo" and rx.search(b"foo bar baz")
    f.write_text("name\r\n^a\r\n")                     # CRLF lines
    name, rx = parse_pattern_file(str(f))
    assert name == "name" and rx.search(b"abc") and not rx.search(b"\r")
    f.write_text("onlyname\n")
    with pytest.raises(PatternError, match="failed to get all needed data"):
        parse_pattern_file(str(f))
    f.write_text("sixteen-chars-xx\nabc\n")
    with pytest.raises(PatternError, match="x.pat:1: protocol name too long"):
        parse_pattern_file(str(f))
    f.write_text("ok\n" + "a" * 2048 + "\n")
    with pytest.raises(PatternError, match="pattern too long"):
        parse_pattern_file(str(f))


class _Log:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda msg: self.lines.append((level, msg))


def test_load_order_ids_and_skips(tmp_path):
    (tmp_path / "b.pat").write_text("bee\nb\n")
    (tmp_path / "a.pat").write_text("ay\na\n")
    (tmp_path / "c.pat").write_text("bad\n(\n")
    (tmp_path / "d.so").write_bytes(b"")
    (tmp_path / "e.pat").write_text("ee\ne\n")
    (tmp_path / "sub.pat").mkdir()
    log = _Log()
    cs = load_classifiers(str(tmp_path), log)
    assert [(c.id, c.protocol) for c in cs] == [(1, "ay"), (2, "bee"), (3, "ee")]
    levels = [lv for lv, _ in log.lines]
    assert levels.count("error") == 1 and levels.count("warn") == 1
    assert [c.protocol for c in load_classifiers(str(tmp_path), None, table_num=2)] == \
        ["ay", "bee"]
    with pytest.raises(OSError):
        load_classifiers(str(tmp_path / "missing"))


def _addr(last):
    a = np.zeros((len(last), 16), np.uint8)
    a[:, 0], a[:, 3] = 10, last
    return a


def _run(fc, pkts):
    """pkts: (src_last_octet, dst_last_octet, sport, dport, payload) in order."""
    buf = b"".join(p[4] for p in pkts)
    ends = np.cumsum([len(p[4]) for p in pkts])
    starts = ends - [len(p[4]) for p in pkts]
    return fc.classify(np.full(len(pkts), 4, np.uint8), _addr([p[0] for p in pkts]),
                       _addr([p[1] for p in pkts]), np.full(len(pkts), 17, np.uint8),
                       np.array([p[2] for p in pkts]), np.array([p[3] for p in pkts]),
                       np.frombuffer(buf, np.uint8), starts, ends).tolist()


def test_flow_rules_across_batches():
    cs = [Classifier(1, "hello", compile_pattern(b"^hello"), "x"),
          Classifier(2, "world", compile_pattern(b"world"), "y")]
    now = [1000]
    fc = FlowClassifier(cs, tentatives=2, clock=lambda: now[0])
    # a flow: empty payloads use no tries; the reply matches; both sides get class 1
    assert _run(fc, [(1, 2, 5, 6, b""), (1, 2, 5, 6, b"nope"), (2, 1, 6, 5, b"Hello"),
                     (1, 2, 5, 6, b"x")]) == [0, 0, 1, 1]
    # later batches: the flow keeps its class, in both directions
    assert _run(fc, [(2, 1, 6, 5, b"zzz"), (1, 2, 5, 6, b"")]) == [1, 1]
    # another flow: 2 tries on side A are used up over two batches; side B still has 2
    assert _run(fc, [(3, 4, 1, 2, b"a"), (3, 4, 1, 2, b"")]) == [0, 0]
    assert _run(fc, [(3, 4, 1, 2, b"b"), (3, 4, 1, 2, b"hello")]) == [0, 0]
    assert _run(fc, [(4, 3, 2, 1, b"a world"), (3, 4, 1, 2, b"q")]) == [2, 2]
    assert fc.tried == 5
    # both directions idle past the lifetime: the class is forgotten, tries start over
    now[0] += 61
    assert _run(fc, [(3, 4, 1, 2, b"q"), (3, 4, 1, 2, b"hello")]) == [0, 1]
    assert len(fc) == 1                                 # the idle first flow was pruned
    _run(fc, [(7, 8, 1, 1, b"")])
    assert len(fc) == 2
    now[0] += 200
    _run(fc, [(9, 8, 1, 1, b"")])
    assert len(fc) == 1                                 # idle entries pruned


# --- holding back the packets of flows not yet classified (FlowClassifier.account) ------
HOLD_DTYPE = np.dtype([("packets", "u8"), ("bytes", "u8"), ("class", "i4"), ("seq", "i8")])


class _Feed:
    """Feeds batches to account() and sums what comes out, per class."""

    def __init__(self, fc):
        self.fc, self.seq, self.sent = fc, 0, []
        self.out = np.zeros(0, HOLD_DTYPE)

    def batch(self, pkts, flags=None):
        """pkts as _run's; ``flags``: TCP flags per packet (then the packets are TCP)."""
        buf = b"".join(p[4] for p in pkts)
        ends = np.cumsum([len(p[4]) for p in pkts]).astype(np.int64)
        starts = ends - np.array([len(p[4]) for p in pkts], np.int64)
        recs = np.zeros(len(pkts), HOLD_DTYPE)
        recs["packets"] = 1
        recs["bytes"] = [100 + len(p[4]) for p in pkts]
        recs["seq"] = np.arange(self.seq, self.seq + len(pkts))
        self.seq += len(pkts)
        self.sent.append(recs.copy())
        proto = 17 if flags is None else 6
        got = self.fc.account(recs, np.full(len(pkts), 4, np.uint8), _addr([p[0] for p in pkts]),
                              _addr([p[1] for p in pkts]), np.full(len(pkts), proto, np.uint8),
                              np.array([p[2] for p in pkts]), np.array([p[3] for p in pkts]),
                              np.frombuffer(buf, np.uint8), starts, ends,
                              tcp_flags=None if flags is None else np.array(flags))
        self.out = np.concatenate([self.out, got])
        return got["seq"].tolist(), got["class"].tolist()

    def flush(self):
        got = self.fc.release_all()
        if got is not None:
            self.out = np.concatenate([self.out, got])

    def per_class(self):
        res = {}
        for c in np.unique(self.out["class"]).tolist():
            sel = self.out["class"] == c
            res[c] = (int(self.out["packets"][sel].sum()), int(self.out["bytes"][sel].sum()))
        return res

    def check_once(self):
        """Every record sent came out exactly once, with its counters untouched."""
        sent = np.concatenate(self.sent)
        assert sorted(self.out["seq"].tolist()) == list(range(len(sent)))
        order = np.argsort(self.out["seq"])
        assert (self.out["bytes"][order] == sent["bytes"]).all()
        assert self.fc.held == 0 and int(self.fc.hold_n.sum()) == 0


def test_held_packets_take_the_class_found_later():
    cs = [Classifier(1, "hello", compile_pattern(b"^hello"), "x")]
    now = [1000]
    fc = FlowClassifier(cs, tentatives=3, clock=lambda: now[0])
    f = _Feed(fc)
    # flow A: no match in the first batch: everything held, nothing leaves
    assert f.batch([(1, 2, 5, 6, b""), (1, 2, 5, 6, b"nope"), (2, 1, 6, 5, b"")]) == ([], [])
    assert fc.held == 3
    # flow B (another flow) is classified in its first batch: earlier packets of the
    # batch take the class; A's reply classifies A: A's held packets leave first
    seq, cls = f.batch([(3, 4, 7, 8, b"x"), (3, 4, 7, 8, b"hello"), (2, 1, 6, 5, b"Hello"),
                        (1, 2, 5, 6, b"more")])
    assert seq == [0, 1, 2, 3, 4, 5, 6] and cls == [1] * 7
    assert fc.held == 0 and fc.held_classified == 3
    # a classified flow's packets are not held
    assert f.batch([(1, 2, 5, 6, b"zz")]) == ([7], [1])
    f.check_once()
    assert f.per_class() == {1: (8, 800 + len(b"nopexhelloHellomorezz"))}


def test_out_of_tries_leaves_as_unknown():
    cs = [Classifier(1, "hello", compile_pattern(b"^hello"), "x")]
    fc = FlowClassifier(cs, tentatives=2, clock=lambda: 1000)
    f = _Feed(fc)
    # both directions use their 2 tries over two batches: released as unknown at once
    assert f.batch([(1, 2, 5, 6, b"a"), (1, 2, 5, 6, b"b"), (2, 1, 6, 5, b"c")]) == ([], [])
    seq, cls = f.batch([(2, 1, 6, 5, b"d"), (1, 2, 5, 6, b"")])
    assert seq == [0, 1, 2, 3, 4] and cls == [0] * 5
    # no more tries: a match comes too late and the flow is not held any more
    assert f.batch([(1, 2, 5, 6, b"hello")]) == ([5], [0])
    # one direction out of tries, the other silent: held until the end of input
    assert f.batch([(7, 8, 1, 1, b"x"), (7, 8, 1, 1, b"y"), (7, 8, 1, 1, b"hello")]) == ([], [])
    f.flush()
    f.check_once()
    assert f.per_class() == {0: (9, 900 + len(b"abcdhelloxyhello"))}


def test_hold_bounds():
    cs = [Classifier(1, "hello", compile_pattern(b"^hello"), "x")]
    now = [1000]
    # per flow: at most hold_per_flow records, then the flow leaves as unknown and is
    # not held again (its later class applies from the matching packet on)
    fc = FlowClassifier(cs, tentatives=5, hold_per_flow=4, clock=lambda: now[0])
    f = _Feed(fc)
    assert f.batch([(1, 2, 5, 6, b"")] * 3) == ([], [])
    seq, cls = f.batch([(1, 2, 5, 6, b""), (1, 2, 5, 6, b"")])
    assert seq == [0, 1, 2, 3, 4] and cls == [0] * 5 and fc.released_early == 1
    assert f.batch([(1, 2, 5, 6, b"q"), (1, 2, 5, 6, b"hello"), (2, 1, 6, 5, b"")]) == \
        ([5, 6, 7], [0, 1, 1])
    f.check_once()
    # time: held no longer than the flow lifetime
    fc = FlowClassifier(cs, tentatives=5, lifetime=60, clock=lambda: now[0])
    f = _Feed(fc)
    assert f.batch([(1, 2, 5, 6, b"a")]) == ([], [])
    now[0] += 30
    assert f.batch([(1, 2, 5, 6, b"")]) == ([], [])
    now[0] += 30
    assert f.batch([]) == ([0, 1], [0, 0])
    # the store: over hold_bytes, the flows holding the longest go first
    fc = FlowClassifier(cs, tentatives=5, hold_bytes=3 * HOLD_DTYPE.itemsize,
                        clock=lambda: now[0])
    f = _Feed(fc)
    assert f.batch([(1, 2, 5, 6, b"a"), (1, 2, 5, 6, b"b")]) == ([], [])
    now[0] += 1
    assert f.batch([(3, 4, 5, 6, b"a")]) == ([], [])
    now[0] += 1
    assert f.batch([(5, 6, 5, 6, b"a")]) == ([0, 1], [0, 0])
    assert fc.held == 2
    assert f.batch([(4, 3, 6, 5, b"hello")]) == ([2, 4], [1, 1])
    f.flush()
    f.check_once()
    assert f.per_class() == {0: (3, 303), 1: (2, 206)}


def test_closed_tcp_flows_leave_as_unknown():
    cs = [Classifier(1, "hello", compile_pattern(b"^hello"), "x")]
    fc = FlowClassifier(cs, tentatives=5, clock=lambda: 1000)
    f = _Feed(fc)
    SYN, SA, ACK, PA, FA, RA = 0x02, 0x12, 0x10, 0x18, 0x11, 0x14
    # a FIN one way: the other side may still send, so still held
    assert f.batch([(1, 2, 5, 6, b""), (2, 1, 6, 5, b""), (1, 2, 5, 6, b"nope")],
                   [SYN, SA, PA]) == ([], [])
    assert f.batch([(1, 2, 5, 6, b"")], [FA]) == ([], [])
    # ... and a FIN the other way closes it: everything leaves as unknown
    assert f.batch([(2, 1, 6, 5, b"")], [FA]) == ([0, 1, 2, 3, 4], [0] * 5)
    assert fc.held == 0 and fc.released_early == 1
    # a packet after that (a last ACK) is not held
    assert f.batch([(1, 2, 5, 6, b"")], [ACK]) == ([5], [0])
    # an RST ends another flow at once; the matching payload in its batch still wins
    assert f.batch([(3, 4, 7, 8, b"x")], [PA]) == ([], [])
    assert f.batch([(4, 3, 8, 7, b"")], [RA]) == ([6, 7], [0, 0])
    assert f.batch([(5, 6, 7, 8, b"x"), (6, 5, 8, 7, b"hello"), (5, 6, 7, 8, b"")],
                   [PA, PA, RA]) == ([8, 9, 10], [1, 1, 1])
    f.check_once()
